"""Wall-clock timing for the benchmark scripts (benchmarks/speed.py): the median of the timed
rounds after warm-up (a few, or as many as fit a time budget), the candidates interleaved.

    from _timing import time_interleaved
    timings = time_interleaved({"ours": run_ours, "peer": run_peer}, repeats=3, warmup=1)
    timings["ours"].median / timings["peer"].median

A candidate is a zero-argument callable, or a :class:`Candidate` whose ``before``/``after``
run untimed around every call (set up and remove a library's hooks, so that they do not slow
the other candidates timed in alternation with it).

Nothing here changes torch's thread count: call ``torch.set_num_threads`` (or
:func:`set_threads`) first and the timings run under it (``_common.environment`` records the
commit, packages and machine).
``time_interleaved`` alternates the candidates round by round (rotating who goes first), so a
burst of load on a shared machine slows all of them rather than one.
"""
from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from _common import set_threads

__all__ = ["Candidate", "Timing", "rounds_for", "set_threads", "time_call", "time_interleaved"]


@dataclass
class Timing:
    """Seconds of each timed repeat (warm-up calls excluded)."""

    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    def as_dict(self, digits: int = 4) -> dict:
        return {"median_s": round(self.median, digits), "times_s": [round(t, digits) for t in self.times]}


@dataclass
class Candidate:
    """``run()`` is timed; ``before()`` and ``after()`` run untimed around each call."""

    run: Callable[[], object]
    before: Callable[[], object] | None = None
    after: Callable[[], object] | None = None

    def __call__(self) -> object:
        return self.run()


def _synchronize(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _call(fn, device) -> float:
    """Seconds taken by one call of ``fn`` (its before/after hooks excluded)."""
    candidate = fn if isinstance(fn, Candidate) else Candidate(fn)
    if candidate.before is not None:
        candidate.before()
    try:
        gc.collect()
        _synchronize(device)
        start = time.perf_counter()
        candidate.run()
        _synchronize(device)
        return time.perf_counter() - start
    finally:
        if candidate.after is not None:
            candidate.after()


def time_call(fn: Callable[[], object], repeats: int = 3, warmup: int = 1, device=None) -> Timing:
    """Call ``fn()`` ``warmup`` times untimed, then ``repeats`` times timed."""
    return time_interleaved({"fn": fn}, repeats, warmup, device)["fn"]


def rounds_for(budget_seconds: float, round_seconds: float, repeats: int, max_rounds: int = 200) -> int:
    """How many rounds to time: at least ``repeats``, more while ``rounds * round_seconds`` (one
    round: one call of every candidate, estimated from the warm-up) fits in ``budget_seconds``, at
    most ``max_rounds``. Cheap calls thus get many rounds, where a median of three would carry the
    noise of a few milliseconds; costly ones keep ``repeats``."""
    if round_seconds <= 0 or budget_seconds <= 0:
        return repeats
    return max(repeats, min(max_rounds, int(budget_seconds / round_seconds + 1e-9)))


def time_interleaved(fns: dict[str, Callable[[], object] | Candidate], repeats: int = 3, warmup: int = 1,
                     device=None, budget_seconds: float = 0.0) -> dict[str, Timing]:
    """Time several zero-argument callables in alternation: every one is warmed up ``warmup``
    times, then each of the rounds calls every one once, round r starting with the (r mod k)-th.
    Rounds: ``repeats``, or more where the warm-up says that more fit in ``budget_seconds``
    (:func:`rounds_for`). ``device``: a CUDA device is synchronized before and after each call."""
    if repeats < 1 or warmup < 0 or budget_seconds < 0:
        raise ValueError("repeats must be >= 1, warmup >= 0 and budget_seconds >= 0")
    names = list(fns)
    last_warmup = {}
    for name in names:
        for _ in range(warmup):
            last_warmup[name] = _call(fns[name], device)
    rounds = rounds_for(budget_seconds, sum(last_warmup.values()), repeats) if warmup else repeats
    timings = {name: Timing() for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            timings[name].times.append(_call(fns[name], device))
    return timings

