"""Comparing explanation methods over many images: one record per (image, method) of faithfulness
scores and costs, a bootstrap interval per method and score, and results files that a run
appends to as it goes, so that it can be killed and resumed, split into shards and merged.

Per image (:func:`evaluate`): explain one image, then

* ``"{order}_{baseline}_{measure}@{k}"``: :func:`~xai_lab.metrics.pixel_perturbation` with the
  fraction ``k`` of the pixels removed most (``morf``) or least (``lerf``) salient first,
  replaced by ``black`` or the image ``mean``; measures AFOC, KL and PCUO;
* ``deletion_auc`` and ``insertion_auc`` (Petsiuk et al. 2018) at a coarse step;
* costs: ``seconds``, ``forward_passes``, ``backward_passes`` of the explanation;
* on request (:func:`sanity_scores`) the cascading-randomisation sanity check (Adebayo et al.
  2018): ``sanity_spearman@s`` / ``sanity_ssim@s`` after cascade stage ``s`` and
  ``random_target_spearman``.

Over images (:func:`bootstrap_interval`, :func:`summarize`): the mean and a percentile bootstrap
interval (Efron & Tibshirani 1993): draw the n per-image values n times with replacement, B
times; the interval is the (1 - level) / 2 and (1 + level) / 2 quantiles of the B means. The
resamples depend only on the seed and n, so methods scored on the same images share them.

Results files (:class:`ResultsFile`) are JSON lines: a header ``{"kind": "header", "config":
...}`` then one record per line, flushed as it is written. A record is keyed by
``(kind, image, method)``; :func:`merge_results` combines files whose configs agree.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from ..explain import explain
from .perturbation import deletion_auc, insertion_auc, pixel_perturbation
from .sanity import sanity_check

MEASURES = ("afoc", "kl", "pcuo")
COST_FIELDS = ("seconds", "forward_passes", "backward_passes")


@dataclass(frozen=True)
class Protocol:
    """What is measured per image. ``fractions``: of the pixels removed in pixel perturbation
    (1, 3, 5, 10 % as in Srinivas & Fleuret 2019); ``step``: pixels removed or inserted per
    point of the deletion and insertion curves."""

    fractions: tuple[float, ...] = (0.01, 0.03, 0.05, 0.1)
    orders: tuple[str, ...] = ("morf", "lerf")
    baselines: tuple = ("black", "mean")
    step: int = 224 * 32
    deletion_baseline: str | float = "black"
    insertion_start: str | float = "blur"

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Protocol":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def score_name(order: str, baseline, measure: str, fraction: float) -> str:
    """``"lerf_mean_afoc@0.1"``: the key of one pixel-perturbation score."""
    return f"{order}_{baseline}_{measure}@{fraction:g}"


def better(score: str) -> str | None:
    """``"lower"`` or ``"higher"``: which values of ``score`` mean a more faithful (or cheaper,
    or saner) map; None for a name this module does not produce."""
    if score.startswith("morf_") or score == "insertion_auc":
        return "higher"
    if (score.startswith(("lerf_", "sanity_")) or score in ("deletion_auc", "random_target_spearman")
            or score in COST_FIELDS):
        return "lower"
    return None


def _one_image(x: torch.Tensor) -> torch.Tensor:
    x = x[None] if x.dim() == 3 else x
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"evaluate one image at a time: x must be [3, H, W] or [1, 3, H, W], got {list(x.shape)}")
    return x


def perturbation_scores(classifier, x: torch.Tensor, saliency: torch.Tensor, target: int,
                        protocol: Protocol = Protocol()) -> tuple[dict, dict]:
    """Scores of one image's map under ``protocol``: ``({score name: float}, curves)``, curves
    holding the deletion and insertion curves (target probability per point)."""
    x = _one_image(x)
    saliency = saliency.reshape(1, *x.shape[-2:])
    target = torch.as_tensor([int(target)])
    scores = {}
    for order in protocol.orders:
        for baseline in protocol.baselines:
            out = pixel_perturbation(classifier, x, saliency, target, order=order, baseline=baseline,
                                     fractions=protocol.fractions)
            for measure in MEASURES:
                for f, value in zip(protocol.fractions, out[measure][0].tolist()):
                    scores[score_name(order, baseline, measure, f)] = value
    deletion = deletion_auc(classifier, x, saliency, target, baseline=protocol.deletion_baseline, step=protocol.step)
    insertion = insertion_auc(classifier, x, saliency, target, start=protocol.insertion_start, step=protocol.step)
    scores["deletion_auc"] = float(deletion["auc"][0])
    scores["insertion_auc"] = float(insertion["auc"][0])
    curves = {"fractions": deletion["fractions"].tolist(), "deletion": deletion["curve"][0].tolist(),
              "insertion": insertion["curve"][0].tolist()}
    return scores, curves


def evaluate(classifier, x: torch.Tensor, method: str, protocol: Protocol = Protocol(), seed: int = 0,
             device=None, options: dict | None = None) -> dict:
    """Explain one image [3, H, W] with ``method`` (predicted class, ``seed``, ``options``) and
    score the map: a record ``{"method", "options", "target", "seconds", "forward_passes",
    "backward_passes", "eval_seconds", "scores", "curves"}``."""
    options = dict(options or {})
    x = _one_image(x)
    e = explain(classifier, x, method=method, seed=seed, device=device, progress=False, **options)
    start = time.perf_counter()
    scores, curves = perturbation_scores(classifier, x, e.saliency, int(e.target[0]), protocol)
    return {"method": method, "options": options, "target": int(e.target[0]), "seconds": e.seconds,
            "forward_passes": e.forward_passes, "backward_passes": e.backward_passes,
            "eval_seconds": time.perf_counter() - start, "scores": scores, "curves": curves}


def sanity_scores(classifier, x: torch.Tensor, method: str, target: int, steps: int = 3, seed: int = 0,
                  options: dict | None = None) -> dict:
    """The cascading-randomisation check of one image with ``steps`` stages: a record
    ``{"method", "options", "layers", "sanity_seconds", "scores"}`` with scores
    ``sanity_spearman@s``, ``sanity_ssim@s`` (s = 1..steps, the last stage randomises every
    layer) and ``random_target_spearman``."""
    options = dict(options or {})
    x = _one_image(x)
    start = time.perf_counter()
    out = sanity_check(classifier, x, method, target=torch.as_tensor([int(target)]), steps=steps, seed=seed, **options)
    scores = {}
    for s in range(len(out["layers"])):
        scores[f"sanity_spearman@{s + 1}"] = float(out["spearman"][s, 0])
        scores[f"sanity_ssim@{s + 1}"] = float(out["ssim"][s, 0])
    scores["random_target_spearman"] = float(out["random_target_spearman"][0])
    return {"method": method, "options": options, "layers": list(out["layers"]),
            "sanity_seconds": time.perf_counter() - start, "scores": scores}


def bootstrap_interval(values: Sequence[float], level: float = 0.95, resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of ``values`` and its percentile bootstrap interval at
    ``level`` from ``resamples`` resamples drawn with ``numpy.random.default_rng(seed)``."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"values must be a non-empty 1-d sequence, got shape {list(v.shape)}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError("resamples must be >= 1")
    index = np.random.default_rng(seed).integers(0, v.size, size=(resamples, v.size))
    means = v[index].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(v.mean()), float(low), float(high)


def record_key(record: dict) -> tuple:
    """``(kind, image, method)``: what a results file holds at most once."""
    return record["kind"], record["image"], record["method"]


def _values(record: dict) -> dict:
    values = dict(record.get("scores", {}))
    if record["kind"] == "eval":
        values.update({k: record[k] for k in COST_FIELDS if k in record})
    return values


def per_image(records: Iterable[dict], method: str, score: str) -> dict:
    """``{image: value}`` of one method's score."""
    out = {}
    for r in records:
        if r["method"] == method:
            values = _values(r)
            if score in values:
                out[r["image"]] = values[score]
    return out


def summarize(records: Iterable[dict], methods: Sequence[str] | None = None, level: float = 0.95,
              resamples: int = 2000, seed: int = 0) -> dict:
    """``{method: {score: {"mean", "low", "high", "n", "better"}}}`` over the images each
    method has that score for (values taken in image order, so any order of the records, or of
    the files they were merged from, gives the same table). ``methods`` fixes the row order
    (default: sorted names)."""
    records = sorted(records, key=record_key)
    values: dict = {}
    for r in records:
        for score, value in _values(r).items():
            values.setdefault(r["method"], {}).setdefault(score, []).append(value)
    names = list(methods) if methods is not None else sorted(values)
    table = {}
    for method in names:
        table[method] = {}
        for score, vals in values.get(method, {}).items():
            mean, low, high = bootstrap_interval(vals, level, resamples, seed)
            table[method][score] = {"mean": mean, "low": low, "high": high, "n": len(vals), "better": better(score)}
    return table


def compare(records: Sequence[dict], score: str, method: str, methods: Sequence[str] | None = None,
            level: float = 0.95, resamples: int = 2000, seed: int = 0) -> dict:
    """Is ``method`` the best of ``methods`` on ``score``? Returns the mean and interval of
    each, ``best`` (the best mean), ``is_best``, and per other method the paired difference
    (``method`` minus it, over the images both have) with its bootstrap interval,
    ``intervals_overlap`` (of the two methods' own intervals) and ``difference_excludes_zero``."""
    direction = better(score)
    if direction is None:
        raise ValueError(f"{score!r} is not a score this module knows the direction of")
    values = {m: per_image(records, m, score) for m in (methods or sorted({r["method"] for r in records}))}
    values = {m: v for m, v in values.items() if v}
    if method not in values:
        raise ValueError(f"No {score!r} values for {method!r}")
    intervals = {m: bootstrap_interval([v[i] for i in sorted(v)], level, resamples, seed) for m, v in values.items()}
    sign = 1 if direction == "lower" else -1
    best = min(intervals, key=lambda m: (sign * intervals[m][0], m))
    versus = {}
    _, low, high = intervals[method]
    for other, vals in values.items():
        if other == method:
            continue
        common = sorted(set(vals) & set(values[method]))
        diff = bootstrap_interval([values[method][i] - vals[i] for i in common], level, resamples, seed)
        _, o_low, o_high = intervals[other]
        versus[other] = {"difference": diff[0], "low": diff[1], "high": diff[2], "n": len(common),
                         "intervals_overlap": bool(low <= o_high and o_low <= high),
                         "difference_excludes_zero": bool(diff[1] > 0 or diff[2] < 0)}
    return {"score": score, "better": direction, "method": method, "level": level,
            "intervals": {m: {"mean": i[0], "low": i[1], "high": i[2], "n": len(values[m])} for m, i in intervals.items()},
            "best": best, "is_best": best == method, "versus": versus}


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with 1 <= K <= N, or a ValueError saying what is wrong."""
    parts = str(text).split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"shard must look like K/N (e.g. 1/4: the first of 4 slices), got {text!r}")
    k, n = int(parts[0]), int(parts[1])
    if n < 1:
        raise ValueError(f"shard K/N needs N >= 1, got {text!r}")
    if not 1 <= k <= n:
        raise ValueError(f"shard K/N needs 1 <= K <= N, got {text!r} (K counts from 1)")
    return k, n


def shard_slice(items: Sequence, k: int, n: int) -> list:
    """The K-th of N contiguous slices of ``items`` (sizes differ by at most one; together
    they are ``items`` in order)."""
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    size = len(items)
    return list(items[(k - 1) * size // n: k * size // n])


def read_results(path) -> tuple[dict, list[dict]]:
    """``(config, records)`` of a results file. Every line is written with its newline, so text
    after the last newline is a write that a kill cut short: it is ignored. Any other line that
    is not JSON is an error."""
    path = Path(path)
    with open(path, "rb") as fh:
        complete = fh.read().split(b"\n")[:-1]
    if not complete:
        raise ValueError(f"{path} has no header line: not a results file")
    rows = []
    for number, line in enumerate(complete, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {number}: not JSON ({e})") from e
    header, records = rows[0], rows[1:]
    if header.get("kind") != "header" or "config" not in header:
        raise ValueError(f"{path} does not start with a results header")
    return header["config"], records


class ResultsFile:
    """Append-only results file for one run. Opening an existing file checks that it was made
    with the same ``config``, cuts off a final line left unfinished by a kill, and loads its
    records; :meth:`append` writes one record per line and flushes it to disk."""

    def __init__(self, path, config: dict):
        self.path = Path(path)
        self.config = json.loads(json.dumps(config))
        self.records: list[dict] = []
        if self.path.exists():
            self._cut_unfinished_line()
        if self.path.exists() and self.path.stat().st_size > 0:
            found, self.records = read_results(self.path)
            if found != self.config:
                changed = sorted(k for k in set(found) | set(self.config) if found.get(k) != self.config.get(k))
                raise ValueError(f"{self.path} was written with other settings ({', '.join(changed)} differ); "
                                 "use another output folder or delete the file to start again")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write({"kind": "header", "config": self.config})
        self.done = {record_key(r): r for r in self.records}

    def _cut_unfinished_line(self) -> None:
        """Drop the text after the last newline: a record whose write a kill interrupted."""
        with open(self.path, "rb+") as fh:
            data = fh.read()
            if not data.endswith(b"\n"):
                fh.truncate(data.rfind(b"\n") + 1)

    def _write(self, row: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, allow_nan=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def append(self, record: dict) -> None:
        key = record_key(record)
        if key in self.done:
            raise ValueError(f"{key} is already in {self.path}")
        self._write(record)
        self.records.append(record)
        self.done[key] = record


def merge_results(paths: Sequence) -> tuple[dict, list[dict], dict]:
    """Combine results files (shards of one run): ``(config, records, info)``. Their configs
    must agree except for ``shard``; a record present in several files is kept once (the first),
    and ``info`` says how many duplicates were dropped and which files were read."""
    if not paths:
        raise ValueError("no results files to merge")
    config, records, seen, duplicates, options = None, [], set(), 0, {}
    for path in paths:
        found, rows = read_results(path)
        found = {k: v for k, v in found.items() if k != "shard"}
        if config is None:
            config, first = found, path
        elif found != config:
            changed = sorted(k for k in set(found) | set(config) if found.get(k) != config.get(k))
            raise ValueError(f"{path} and {first} come from runs with other settings ({', '.join(changed)} differ)")
        for r in rows:
            key = record_key(r)
            known = options.setdefault(r["method"], r.get("options", {}))
            if r.get("options", {}) != known:
                raise ValueError(f"{path}: method {r['method']!r} ran with options {r.get('options')}, "
                                 f"elsewhere with {known}")
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            records.append(r)
    records.sort(key=record_key)
    return config, records, {"files": [str(p) for p in paths], "duplicates_dropped": duplicates}
