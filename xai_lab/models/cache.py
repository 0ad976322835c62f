"""Trained models (and other costly results) kept on disk: one key, one file.

* :func:`key` -- 16 hex digits of sha256 over a JSON payload (sorted keys): whatever determines
  the result (data hashes, settings, recipe, package version) goes in, so any change gives a
  new file.
* :func:`save` -- ``torch.save`` to a temporary file beside the target, then ``os.replace``:
  a reader never sees half a file, and two processes saving the same key leave one whole file.
  The file's sha256 is written beside it (``<name>.sha256``).
* :func:`load` -- the saved object, or None when the file is absent. A file that does not match
  its checksum, or that ``torch.load`` cannot read (truncated, empty, not a torch file), is
  reported in a :class:`CacheWarning` naming its path, and None is returned: the caller
  rebuilds it.
* :func:`fit_or_load` -- a model from its cached state dict, or trained and saved; a cached
  state dict that does not fit the model (a foreign file) is reported with its first few
  mismatched keys, and the model retrained.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ..data import sha256_file

MISMATCHES_SHOWN = 5


class CacheWarning(UserWarning):
    """A cached file was unusable (its path and the reason are in the message); it is rebuilt."""


def models_dir(cache_dir=None) -> Path:
    """``cache_dir`` when given, else the user cache's ``models`` folder (``data.cache_dir()``)."""
    from ..data import cache_dir as user_cache

    return Path(cache_dir) if cache_dir is not None else user_cache() / "models"


def key(payload) -> str:
    """16 hex digits of sha256 over ``json.dumps(payload, sort_keys=True)``."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def checksum_path(path) -> Path:
    """Where the sha256 of ``path`` is kept: ``<path>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def _replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def save(obj, path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically, with its sha256 in :func:`checksum_path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = {}

    def write_object(partial: Path) -> None:
        torch.save(obj, partial)
        digest["sha256"] = sha256_file(partial)

    _replace_atomically(path, write_object)
    _replace_atomically(checksum_path(path), lambda partial: partial.write_text(digest["sha256"] + "\n"))
    return path


def warn(path, reason: str) -> None:
    """A :class:`CacheWarning`: ``path`` is unusable for ``reason`` and will be rebuilt."""
    warnings.warn(f"Cached file {path} is unusable ({reason}); rebuilding it", CacheWarning, stacklevel=3)


def load(path, weights_only: bool = True):
    """The object saved at ``path`` by :func:`save`; None when there is no file, or (with a
    :class:`CacheWarning` naming the path) when it does not match its checksum or cannot be read.
    A file without a checksum beside it (saved before checksums were kept) is read if it can be."""
    path = Path(path)
    if not path.is_file():
        return None
    stored = checksum_path(path)
    if stored.is_file():
        expected = stored.read_text().strip()
        found = sha256_file(path)
        if found != expected:
            warn(path, f"its sha256 {found[:12]}... differs from the {expected[:12]}... saved with it: "
                       f"truncated or overwritten, {path.stat().st_size} bytes")
            return None
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # any unreadable file is rebuilt; the reason goes into the warning
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        warn(path, f"torch.load failed: {type(exc).__name__}: {first_line[:200]}")
        return None


def state_dict_mismatch(model: nn.Module, state: dict) -> str | None:
    """Why ``state`` does not fit ``model`` (the first :data:`MISMATCHES_SHOWN` missing,
    unexpected and wrongly shaped keys, with counts), or None when it fits exactly."""
    if not isinstance(state, dict):
        return f"expected a state dict, found {type(state).__name__}"
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {list(getattr(state[k], 'shape', []))} instead of {list(own[k].shape)}"
              for k in own if k in state and getattr(state[k], "shape", None) != own[k].shape]
    parts = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if names:
            more = f" and {len(names) - MISMATCHES_SHOWN} more" if len(names) > MISMATCHES_SHOWN else ""
            parts.append(f"{len(names)} {label}: {', '.join(names[:MISMATCHES_SHOWN])}{more}")
    return "; ".join(parts) or None


def fit_or_load(path, build: Callable[[], nn.Module], train: Callable[[], tuple[nn.Module, dict]],
                force: bool = False) -> tuple[nn.Module, dict]:
    """``(model, info)``: ``build()`` with the state dict cached at ``path``, or ``train()``'s
    model saved there (with ``info``) when the file is absent, unusable (warned) or ``force``.
    ``info`` gains ``cached`` (nothing was trained) and ``path``."""
    path = Path(path)
    saved = None if force else load(path)
    if saved is not None:
        state = saved.get("state_dict") if isinstance(saved, dict) else None
        model = build()
        problem = (state_dict_mismatch(model, state) if state is not None
                   else "no state_dict in it: not a cached model")
        if problem is None and not isinstance(saved.get("info"), str):
            problem = "no training info in it: not a cached model"
        if problem is None:
            model.load_state_dict(state, strict=True)
            return model.eval(), {**json.loads(saved["info"]), "cached": True, "path": str(path)}
        warn(path, problem)
    model, info = train()
    save({"state_dict": model.state_dict(), "info": json.dumps(info)}, path)
    return model, {**info, "cached": False, "path": str(path)}


__all__ = ["CacheWarning", "checksum_path", "fit_or_load", "key", "load", "models_dir", "save", "state_dict_mismatch"]
