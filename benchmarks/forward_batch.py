"""Seconds per image of one forward pass of EfficientNet-Lite0 (no gradients) at several batch
sizes, interleaved in one process: the number that decides how many perturbed images a
perturbation method (occlusion, RISE, LIME, Score-CAM, Ablation-CAM, the removal metrics) should
send through the model at a time on a given machine (``xai_lab.ops.CPU_FORWARD_BATCH``).
``--backward``: a forward pass and a backward pass from the summed top logits to the input
instead, the work of the gradient methods that batch noisy or scaled copies (SmoothGrad,
integrated gradients, GradientSHAP).

    python benchmarks/forward_batch.py [--batch-sizes 1,4,16,64,100] [--threads 1] [--device cpu]
        [--repeats 5] [--budget 20] [--channels-last] [--backward] [--out FILE.json]

Each batch size is one candidate of ``_timing.time_interleaved`` (warmed up once, then rounds in
rotating order, as many as fit in ``--budget`` seconds, at least ``--repeats``; the median). The
JSON printed (and written to ``--out``) holds, per batch size, the median seconds per call and per
image and the ratio to the fastest per-image cost, with the command, commit, packages, machine
and load averages. The input's pixel values do not change the cost of a pass.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_common, check_device, environment, positive_int, set_threads  # noqa: E402
from _timing import Candidate, time_interleaved  # noqa: E402

import xai_lab  # noqa: E402


def forward_candidate(model: torch.nn.Module, batch: torch.Tensor) -> Candidate:
    """One no-grad forward pass of ``batch``."""
    def run():
        with torch.no_grad():
            model(batch)
    return Candidate(run)


def backward_candidate(model: torch.nn.Module, batch: torch.Tensor) -> Candidate:
    """One forward pass of ``batch`` and a backward pass from the sum of each image's top logit to
    the input (parameters not requiring gradients: only the input's gradient is wanted)."""
    def run():
        x = batch.detach().requires_grad_(True)
        torch.autograd.grad(model(x).amax(1).sum(), x)
    return Candidate(run)


def measure(batch_sizes: list[int], device: str = "cpu", repeats: int = 5, budget: float = 20.0,
            channels_last: bool = False, side: int = 224, backward: bool = False) -> list[dict]:
    """One row per batch size: median seconds per call and per image, and the per-image ratio to
    the fastest batch size."""
    model = xai_lab.load_model().model.to(device).eval().requires_grad_(False)
    make = backward_candidate if backward else forward_candidate
    candidates = {}
    for n in batch_sizes:
        x = torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(n)).to(device) * 2 - 1
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        candidates[n] = make(model, x)
    timings = time_interleaved(candidates, repeats=repeats, warmup=1, device=device, budget_seconds=budget)
    rows = [{"batch": n, "seconds_per_call": round(timings[n].median, 5),
             "seconds_per_image": round(timings[n].median / n, 6), "rounds": len(timings[n].times)}
            for n in batch_sizes]
    best = min(r["seconds_per_image"] for r in rows)
    for r in rows:
        r["per_image_over_fastest"] = round(r["seconds_per_image"] / best, 3)
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common(parser, out=(None, "also write the JSON to this file"), seed_help=None)
    parser.add_argument("--batch-sizes", default="1,4,16,64,100", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed rounds at least (median)")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of timed rounds (more rounds where cheap)")
    parser.add_argument("--channels-last", action="store_true", help="channels-last input")
    parser.add_argument("--backward", action="store_true", help="forward + backward to the input")
    args = parser.parse_args(argv)
    try:
        batch_sizes = [positive_int(t) for t in args.batch_sizes.split(",") if t.strip()]
    except argparse.ArgumentTypeError as e:
        parser.error(f"--batch-sizes: {e}")
    if not batch_sizes:
        parser.error("--batch-sizes: give at least one value")
    if args.budget < 0:
        parser.error(f"--budget: must be at least 0, got {args.budget}")
    check_device(parser, args.device)
    threads = set_threads(args.threads)
    load_start, start = os.getloadavg(), time.perf_counter()
    rows = measure(batch_sizes, args.device, args.repeats, args.budget, args.channels_last, backward=args.backward)
    report = {"command": " ".join(["python", "benchmarks/forward_batch.py", *(sys.argv[1:] if argv is None else argv)]),
              **environment(), "device": args.device, "threads": threads,
              "memory_format": "channels_last" if args.channels_last else "contiguous (NCHW)",
              "pass": "forward + backward to the input" if args.backward else "forward, no gradients",
              "load_average_1_5_15": {"start": [round(v, 2) for v in load_start],
                                      "end": [round(v, 2) for v in os.getloadavg()]},
              "rows": rows, "total_seconds": round(time.perf_counter() - start, 1)}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out is not None:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
