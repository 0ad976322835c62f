"""What the benchmark scripts share: command-line arguments, results files and shards.

* Arguments: :func:`positive_int` and friends as argparse types; :func:`add_common` adds the
  options the scripts share (``--seed``, ``--device``, ``--threads``, and where a script has
  them ``--n``, ``--out``, ``--shard``, ``--merge``) with one wording; :func:`check_device`
  refuses a CUDA device where there is none.
* Results files (:class:`ResultsFile`) are JSON lines: a header ``{"kind": "header", "config":
  ...}`` then one record per line, flushed as it is written, so a run can be killed and
  resumed. A record is keyed by ``(kind, image, method)`` (:func:`record_key`);
  :func:`merge_results` combines files whose configs agree (shards of one run).
* Shards: ``--shard K/N`` (:func:`parse_shard`) runs the K-th of N contiguous slices of the
  work (:func:`shard_slice`).
* Jobs: :func:`run_jobs` runs a script's jobs serially or as Ray tasks (``--ray [ADDRESS]``),
  appending each record to the results file as it finishes; a deadline or Ctrl-C/SIGTERM stops
  it with the finished records kept.
* JSON: :func:`json_default` writes :class:`xai_lab.stats.Interval` values as
  ``{"value", "low", "high", "n", "level"}``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from xai_lab.stats import Interval

REPO = Path(__file__).resolve().parents[1]


def positive_int(text: str) -> int:
    """argparse ``type=``: a whole number >= 1, with a clear message otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def count(text: str) -> int:
    """argparse ``type=``: a whole number >= 0."""
    return 0 if text.strip() == "0" else positive_int(text)


def fraction(text: str) -> float:
    """argparse ``type=``: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1], got {value}")
    return value


def shard(text: str) -> tuple[int, int]:
    """argparse ``type=`` for ``--shard K/N`` (:func:`parse_shard`)."""
    try:
        return parse_shard(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_common(parser: argparse.ArgumentParser, *, n: tuple[int, str] | None = None, out: tuple | None = None,
               shards: bool = False, device: str | None = "cpu",
               seed_help: str | None = "random seed") -> argparse.ArgumentParser:
    """The options the benchmark scripts share, with one wording: ``--threads``; ``--seed``
    unless ``seed_help`` is None; ``--device`` (default ``device``) unless it is None; ``--n``
    when ``n = (default, help)``; ``--out`` when ``out = (default, help)``; ``--shard K/N`` and
    ``--merge PATH...`` with ``shards``."""
    if n is not None:
        parser.add_argument("--n", type=positive_int, default=n[0], help=n[1])
    if out is not None:
        parser.add_argument("--out", type=Path, default=out[0], help=out[1])
    if shards:
        parser.add_argument("--shard", type=shard, default=None, metavar="K/N",
                            help="run only the K-th of N slices of the work")
        parser.add_argument("--merge", nargs="+", type=Path, default=None, metavar="PATH",
                            help="combine results files (or a folder's records*.jsonl) instead of running")
    if seed_help is not None:
        parser.add_argument("--seed", type=int, default=0, help=seed_help)
    if device is not None:
        parser.add_argument("--device", default=device, help="cpu or cuda")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's choice)")
    return parser


def check_device(parser: argparse.ArgumentParser, device) -> None:
    """``parser.error`` for a CUDA device on a machine without CUDA."""
    if not str(device).startswith("cpu") and not torch.cuda.is_available():
        parser.error(f"--device {device}: CUDA is not available here")


def set_threads(threads: int | None) -> int:
    """``torch.set_num_threads(threads)`` unless None; returns the thread count in effect."""
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def json_default(obj):
    """``json.dump(..., default=json_default)``: an Interval as its dict."""
    if isinstance(obj, Interval):
        return obj.as_dict()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def record_key(record: dict) -> tuple:
    """``(kind, image, method)``: what a results file holds at most once."""
    return record["kind"], record["image"], record["method"]


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


#: The config entries that may grow when a method is registered after a run began.
GROWING = ("settings", "variants")


def adds_methods(old: dict, new: dict) -> bool:
    """Whether config ``new`` is ``old`` with methods added and nothing else changed: the
    ``settings`` table (a dict) and the ``variants`` list may gain entries, every entry of ``old``
    is kept as it was, every other key is equal. ``old``'s records then stay valid under ``new``."""
    if {k: v for k, v in old.items() if k not in GROWING} != {k: v for k, v in new.items() if k not in GROWING}:
        return False
    for key in GROWING:
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            if not all(name in after and after[name] == entry for name, entry in before.items()):
                return False
        elif isinstance(before, list) and isinstance(after, list):
            if not set(map(json.dumps, before)) <= set(map(json.dumps, after)):
                return False
        else:
            return False
    return True


class ResultsFile:
    """Append-only results file for one run. Opening an existing file checks that it was made
    with the same ``config`` (or one that only adds methods: the header is then rewritten to the
    new config, see :func:`adds_methods`), cuts off a final line left unfinished by a kill, and
    loads its records; :meth:`append` writes one record per line and flushes it to disk."""

    def __init__(self, path, config: dict):
        self.path = Path(path)
        self.config = json.loads(json.dumps(config))
        self.records: list[dict] = []
        if self.path.exists():
            self._cut_unfinished_line()
        if self.path.exists() and self.path.stat().st_size > 0:
            found, self.records = read_results(self.path)
            if found != self.config and adds_methods(found, self.config):
                self._rewrite_header()
            elif found != self.config:
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

    def _rewrite_header(self) -> None:
        """The file with its first line replaced by this config's header (written beside, then renamed)."""
        lines = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps({"kind": "header", "config": self.config}) + "\n" + "".join(lines[1:]),
                           encoding="utf-8")
        os.replace(partial, self.path)

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
    must agree except for ``shard`` and for methods one of them adds (:func:`adds_methods`: the
    config with the most methods is kept); a record present in several files is kept once (the first),
    and ``info`` says how many duplicates were dropped and which files were read."""
    if not paths:
        raise ValueError("no results files to merge")
    config, records, seen, duplicates, options = None, [], set(), 0, {}
    for path in paths:
        found, rows = read_results(path)
        found = {k: v for k, v in found.items() if k != "shard"}
        if config is None:
            config, first = found, path
        elif adds_methods(config, found):
            config = found
        elif found != config and not adds_methods(found, config):
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


# --- running jobs, serially or on Ray ------------------------------------------------------------------------

class JobsRun(NamedTuple):
    """What :func:`run_jobs` did: ``ran`` records appended; ``interrupted`` None, or why it stopped
    early (Ctrl-C or SIGTERM; a deadline is no interruption)."""

    ran: int
    interrupted: str | None


INTERRUPTED = "interrupted (SIGINT or SIGTERM): the records before it are kept, the jobs in progress are lost"


def importable_name(function: Callable) -> tuple[str, str]:
    """``(module, name)`` under which a Ray worker imports ``function``. A function of the script
    being run (module ``__main__``) is found under the script's file name, as the worker imports
    it (``benchmarks/`` on its path); a function that is not at a module's top level has no such
    name (ValueError)."""
    module, name = function.__module__, function.__qualname__
    if "." in name or "<" in name:
        raise ValueError(f"{name} is not at the top level of {module}: a Ray worker could not import it")
    if module == "__main__":
        module = Path(sys.modules["__main__"].__file__).stem
    return module, name


def _job_by_name(module: str, name: str, item, job_args: tuple):
    """One job in a Ray worker: the job function imported by its module name. Ray pickles a
    function by reference, and a script's function would be ``__main__.f``, which in the worker is
    Ray's own main module."""
    return getattr(importlib.import_module(module), name)(item, *job_args)


def worker_environment() -> dict[str, str]:
    """The environment variables a Ray worker needs: this repository and ``benchmarks/`` on
    ``PYTHONPATH`` (the scripts import ``_common`` and themselves by name), ``XAI_LAB_DATA_DIR``
    and ``OMP_NUM_THREADS`` where this process has them."""
    path = [str(REPO), str(REPO / "benchmarks")] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    return {"PYTHONPATH": os.pathsep.join(path),
            **{k: os.environ[k] for k in ("XAI_LAB_DATA_DIR", "OMP_NUM_THREADS") if k in os.environ}}


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_jobs(todo: Sequence, job: Callable[..., dict], job_args: tuple, results: ResultsFile, *,
             ray_address: str | None = None, device: str = "cpu", deadline: float | None = None,
             describe: Callable[[Any], object] = repr) -> JobsRun:
    """``job(item, *job_args)`` for every item of ``todo``, each returning one record that is
    appended to ``results`` as it finishes (in completion order), with a progress line
    ``[k/len(todo)] describe(item)`` on stderr.

    ``ray_address`` None: in this process, in order; no job starts after ``deadline`` (a
    ``time.time()`` value). Else one Ray task per item with one CPU (and one GPU when ``device``
    is CUDA): Ray is started (``ray.init()``, a local Ray for ``""``, the cluster at the address
    otherwise; workers get :func:`worker_environment`) unless this process already started it,
    and shut down at the end if started here; at ``deadline`` the unfinished tasks are canceled.
    ``job`` must be a module-level function (:func:`importable_name`): the worker imports it by
    name, so the serial and the Ray run call one function and their records agree.

    Ctrl-C, or a SIGTERM (turned into one while this runs), stops the run: the records appended
    so far are kept, the jobs in progress are lost (canceled on Ray), and ``interrupted`` says so."""
    ran, interrupted = 0, None

    def finished(item, record: dict) -> None:
        nonlocal ran
        results.append(record)
        ran += 1
        print(f"[{ran}/{len(todo)}] {describe(item)}", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        if ray_address is None:
            for item in todo:
                if deadline is not None and time.time() > deadline:
                    break
                finished(item, job(item, *job_args))
        else:
            _run_on_ray(todo, job, job_args, finished, ray_address, device, deadline)
    except KeyboardInterrupt:
        interrupted = INTERRUPTED
        print(f"{interrupted}; writing the run log", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return JobsRun(ran, interrupted)


def _run_on_ray(todo: Sequence, job: Callable, job_args: tuple, finished: Callable, address: str, device: str,
                deadline: float | None) -> None:
    """The Ray half of :func:`run_jobs`: one task per item, ``finished(item, record)`` as each
    completes, the rest canceled at the deadline or on an interrupt."""
    import ray

    module, name = importable_name(job)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address or None, runtime_env={"env_vars": worker_environment()}, include_dashboard=False)
        signal.signal(signal.SIGTERM, _raise_interrupt)  # ray.init puts in its own, which ends the process at once
    task = ray.remote(num_cpus=1, num_gpus=1 if str(device).startswith("cuda") else 0)(_job_by_name)
    pending: list = []
    try:
        items = {}
        for item in todo:
            ref = task.remote(module, name, item, job_args)
            items[ref] = item
            pending.append(ref)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1,
                                      timeout=None if deadline is None else max(deadline - time.time(), 0.0))
            if not ready:
                break
            finished(items[ready[0]], ray.get(ready[0]))
    finally:
        for ref in pending:
            ray.cancel(ref)
        if started_here:
            ray.shutdown()


def environment() -> dict:
    """The commit, package versions and the machine."""
    from importlib.metadata import PackageNotFoundError, version

    def git(*argv):
        try:
            return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    versions = {}
    for package in ("torch", "torchvision", "numpy", "captum", "grad-cam", "torchcam", "zennit", "quantus", "lime", "alibi",
                    "ray", "xai_lab"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {"commit": git("rev-parse", "HEAD"),
            "uncommitted_changes_outside_results": bool(git("status", "--porcelain", "--", ".", ":!benchmarks/results")),
            "packages": versions, "python": platform.python_version(),
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpu_count": os.cpu_count(), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                        else None}}
