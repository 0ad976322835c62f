"""Speed of xai_lab's perturbation methods and feature visualizations on EfficientNet-Lite0 at
224x224, each against its floor or its reference library in the same run.

    python benchmarks/speed_perturbation.py [--device cpu] [--threads N] [--repeats 3] [--warmup 1]
        [--n-masks 4000] [--window 32] [--stride 16] [--num-samples 1000] [--batch-size 100]
        [--parts rise,occlusion,lime,anchors,visualize] [--output FILE]

Prints JSON, one entry per part, on one image (scikit-image's chelsea, its predicted class as
an explicit target):

* ``rise``: ``explain(method="rise")`` against its floor, the bare batched no-grad forward of
  the same masked images (the masks built before the timing, ``batch_size`` images a pass;
  4 bytes per pixel per mask, 0.8 GB for 4000); ``ours_over_floor`` should stay below 1.15
  (ours rebuilds every batch of masks from the cached low-resolution grids and accumulates the
  map on top of the passes).
* ``occlusion``: against captum's ``Occlusion`` with the same window, stride, zero baseline and
  images per pass, on ``forward_func = softmax(model)`` (ours measures the probability too).
* ``lime``: against ``lime.lime_image.LimeImageExplainer.explain_instance`` called directly with
  its defaults (quickshift 4/200/0.2, ``batch_size=10``, ``top_labels=5``) and the same
  ``num_samples``; ours uses the same segmentation, with ``--batch-size`` images per pass and
  also with lime's 10 (``ours_batch_10_over_peer``: the same batches, so only our overhead is
  left). On CPUs whose caches a batch of 100 224x224 images overflows, the batch size alone
  can decide this ratio.
* ``anchors`` (alibi) and ``visualize`` (activation maximization, DeepDream): seconds and
  passes only, no peer.

Candidates of one part are timed in alternation (``_timing.py``), so a burst of load on a
shared machine slows all of them alike. The settings used are written to the JSON.
"""
from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # lime draws a progress bar over its samples

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_common, set_threads  # noqa: E402
from _timing import Candidate, environment, time_interleaved  # noqa: E402

import xai_lab  # noqa: E402
from xai_lab.methods.rise import rise_masks  # noqa: E402

PARTS = ("rise", "occlusion", "lime", "anchors", "visualize")


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3)


def bench_rise(clf, x, target, args) -> dict:
    """RISE against the bare forward of the same masked images."""
    n_masks, batch = args.n_masks, args.batch_size
    last = {}

    def ours():
        last["e"] = xai_lab.explain(clf, x, method="rise", n_masks=n_masks, cells=7, p=0.5, batch_size=batch,
                                    target=target, seed=0, progress=False)

    # the masks of the seed ours draws (extras["mask_seed"]), built untimed
    ours()
    seed = last["e"].extras["mask_seed"]
    masks = rise_masks(tuple(x.shape[-2:]), torch.arange(n_masks), n_masks, 7, 0.5, seed).to(x.device)

    def floor():
        with torch.no_grad():
            for start in range(0, n_masks, batch):
                clf.model(x * masks[start:start + batch])

    t = time_interleaved({"ours": Candidate(ours), "floor": Candidate(floor)}, args.repeats, args.warmup, args.device)
    e = last["e"]
    return {"settings": {"n_masks": n_masks, "cells": 7, "p": 0.5, "images_per_forward": batch,
                         "ours": "grids drawn once per seed (cached), full masks rebuilt per batch, timed"},
            "floor": "no-grad forward of the same masked images, masks built before the timing",
            "ours": t["ours"].as_dict(), "floor_timing": t["floor"].as_dict(),
            "ours_passes": {"forward": e.forward_passes, "backward": e.backward_passes},
            "ours_over_floor": _ratio(t["ours"].median, t["floor"].median), "target_ratio": "<= 1.15"}


def bench_occlusion(clf, x, target, args) -> dict:
    """Occlusion against captum's Occlusion on softmax(model)."""
    from captum.attr import Occlusion

    window, stride, batch = args.window, args.stride, args.batch_size
    last = {}

    def ours():
        last["e"] = xai_lab.explain(clf, x, method="occlusion", window=window, stride=stride, baseline="zero",
                                    output="probability", batch_size=batch, target=target, seed=0, progress=False)

    def forward_func(inputs):
        return torch.softmax(clf.model(inputs), dim=1)

    captum = Occlusion(forward_func)

    def peer():
        with torch.no_grad():
            last["captum"] = captum.attribute(x, sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
                                              baselines=0.0, target=target, perturbations_per_eval=batch)

    t = time_interleaved({"ours": Candidate(ours), "captum.Occlusion": Candidate(peer)}, args.repeats, args.warmup,
                         args.device)
    e = last["e"]
    agree = float((e.saliency - last["captum"].mean(dim=1).cpu()).abs().max())
    return {"settings": {"window": window, "stride": stride, "baseline": 0.0, "output": "probability",
                         "images_per_forward": batch, "windows": list(e.extras["windows"])},
            "ours": t["ours"].as_dict(), "peer": {"captum.Occlusion": t["captum.Occlusion"].as_dict()},
            "ours_passes": {"forward": e.forward_passes, "backward": e.backward_passes},
            "max_abs_difference_of_the_maps": agree,
            "ours_over_peer": _ratio(t["ours"].median, t["captum.Occlusion"].median), "target_ratio": "<= 1.0"}


def bench_lime(clf, x, target, args) -> dict:
    """LIME through xai_lab against LimeImageExplainer with its defaults."""
    from lime.lime_image import LimeImageExplainer

    num_samples = args.num_samples
    image = clf.to_pixels(x[0]).permute(1, 2, 0).cpu().numpy().astype(np.float64)
    last = {}

    def ours(batch_size=args.batch_size):
        with contextlib.redirect_stderr(open(os.devnull, "w")):
            last["e"] = xai_lab.explain(clf, x, method="lime", num_samples=num_samples, target=target, seed=0,
                                        progress=False, batch_size=batch_size)

    def classifier_fn(batch: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(batch, dtype=torch.float32, device=x.device).permute(0, 3, 1, 2)
        with torch.no_grad():
            return torch.softmax(clf.model(clf.from_pixels(t)), dim=1).cpu().numpy()

    def peer():
        with contextlib.redirect_stderr(open(os.devnull, "w")):
            LimeImageExplainer(random_state=0).explain_instance(image, classifier_fn, num_samples=num_samples)

    candidates = {"ours": Candidate(ours), "lime": Candidate(peer)}
    if args.batch_size != 10:  # the same batches as lime's default: what is left is our overhead
        candidates["ours_batch_10"] = Candidate(lambda: ours(10))
    t = time_interleaved(candidates, args.repeats, args.warmup, args.device)
    e = last["e"]
    report = {"settings": {"num_samples": num_samples, "segmentation": "quickshift (kernel_size=4, max_dist=200, "
                                                                       "ratio=0.2)",
                           "ours_batch_size": args.batch_size, "lime_batch_size": 10, "lime_top_labels": 5},
              "ours": t["ours"].as_dict(), "peer": {"lime.LimeImageExplainer": t["lime"].as_dict()},
              "ours_passes": {"forward": e.forward_passes, "backward": e.backward_passes},
              "superpixels": int(e.extras["segments"].max()) + 1,
              "ours_over_peer": _ratio(t["ours"].median, t["lime"].median), "target_ratio": "<= 1.0"}
    if "ours_batch_10" in t:
        report["ours_batch_10"] = t["ours_batch_10"].as_dict()
        report["ours_batch_10_over_peer"] = _ratio(t["ours_batch_10"].median, t["lime"].median)
    return report


def bench_anchors(clf, x, target, args) -> dict:
    last = {}

    def ours():
        last["e"] = xai_lab.explain(clf, x, method="anchors", target=target, seed=0, progress=False,
                                    batch_size=args.batch_size)

    t = time_interleaved({"ours": Candidate(ours)}, args.repeats, 0, args.device)
    e = last["e"]
    return {"settings": {"segmentation": "slic, n_segments=10 (alibi's default)", "threshold": 0.95, "p_sample": 0.5,
                         "batch_size": args.batch_size, "warmup": 0},
            "superpixels": int(e.extras["segments"].max()) + 1,
            "ours": t["ours"].as_dict(), "ours_passes": {"forward": e.forward_passes, "backward": e.backward_passes},
            "anchor": e.extras["anchor"][0], "precision": e.extras["precision"][0], "coverage": e.extras["coverage"][0]}


def bench_visualize(clf, args) -> dict:
    from skimage import data

    from xai_lab.visualize import activation_maximization, deep_dream

    steps, size = args.am_steps, args.am_size
    astronaut = torch.nn.functional.interpolate(
        torch.as_tensor(data.astronaut()).permute(2, 0, 1)[None].float() / 255, size=(224, 224), mode="bilinear",
        align_corners=False)[0]
    layer = "features.blocks.10"
    candidates = {
        "activation_maximization(class)": lambda: activation_maximization(clf, 967, steps=steps, size=size, seed=0),
        "activation_maximization(channel)": lambda: activation_maximization(clf, (layer, 0), steps=steps, size=size,
                                                                            seed=0),
        "deep_dream": lambda: deep_dream(clf, astronaut, layer, octaves=2, steps=5),
    }
    t = time_interleaved({k: Candidate(v) for k, v in candidates.items()}, args.repeats, args.warmup, args.device)
    passes = {"activation_maximization(class)": steps + 1, "activation_maximization(channel)": steps + 1,
              "deep_dream": 2 * 5 + 1}
    return {"settings": {"steps": steps, "size": size, "parametrization": "fourier", "deep_dream":
                         f"astronaut 224x224, layer {layer}, 2 octaves x 5 steps"},
            "timings": {k: {**t[k].as_dict(), "forward_passes": passes[k], "backward_passes": passes[k] - 1}
                        for k in candidates}}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common(parser, seed_help=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--n-masks", type=int, default=4000, help="RISE masks")
    parser.add_argument("--window", type=int, default=32, help="occlusion window")
    parser.add_argument("--stride", type=int, default=16, help="occlusion stride")
    parser.add_argument("--num-samples", type=int, default=1000, help="LIME samples")
    parser.add_argument("--batch-size", type=int, default=100, help="images per forward pass (ours and the peers "
                                                                     "that take it)")
    parser.add_argument("--am-steps", type=int, default=128, help="activation maximization steps")
    parser.add_argument("--am-size", type=int, default=128, help="activation maximization image side")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of: " + ", ".join(PARTS))
    parser.add_argument("--output", help="also write the JSON to this file")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")

    threads = set_threads(args.threads)
    from skimage import data

    clf = xai_lab.load_model()
    clf.model.to(args.device)
    x = clf.preprocess(data.chelsea())[None].to(args.device)
    with torch.no_grad():
        target = int(clf.model(x).argmax(1))

    start = time.perf_counter()
    results = {}
    with contextlib.redirect_stdout(sys.stderr):  # anything the libraries print stays out of the JSON
        for part in parts:
            print(f"[{time.perf_counter() - start:7.1f}s] {part}", file=sys.stderr, flush=True)
            results[part] = bench_visualize(clf, args) if part == "visualize" else \
                globals()[f"bench_{part}"](clf, x, target, args)

    report = {
        "model": "efficientnet_lite0 (ImageNet weights), input 1x3x224x224",
        "input": f"scikit-image chelsea, target {target} ({clf.categories[target]}), passed explicitly",
        "device": args.device, "threads": threads, "repeats": args.repeats, "warmup": args.warmup,
        "environment": environment(),
        "results": results,
        "ratios": {part: {k: v for k, v in r.items() if k.startswith("ours_over")} for part, r in results.items()
                   if any(k.startswith("ours_over") for k in r)},
        "total_seconds": round(time.perf_counter() - start, 1),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text + "\n")
    return report


if __name__ == "__main__":
    main()
