"""The grid behind the book's offline method explorer (book/explorer.md): every method's map, its
deletion and insertion curves and its cost, per image, layer and target, stored small enough to
be drawn by the browser with no Python behind it.

    python benchmarks/explorer.py [--imagenet 50,400] [--msld-per-class 1] [--methods all|NAME,...]
        [--out benchmarks/results/explorer-v1] [--map-size 56] [--curve-step 3584]
        [--limit K] [--stop-after SECONDS] [--note TEXT] [--device cpu] [--threads T] [--seed 0]

The grid (one record per cell; ``records.jsonl`` keyed by ``(kind, image, method)`` with kind the
target's role):

* images: ImageNet samples by index through EfficientNet-Lite0 (``--imagenet``; by default an
  American alligator, whose runner-up is the African crocodile, a look-alike class, and an
  academic gown, whose runner-up is the mortarboard, a second object in the same picture), and
  the first ``--msld-per-class`` test images of each class that the monkeypox classifier
  (``xai_lab.models.msld``) classifies correctly, in the order of ``msld.split_records()``. The
  images are fed to the models as in ``benchmarks/comparison.py`` (``load_dataset``); records
  name each image by its path relative to the data folder, never by its pixels;
* methods: every method of ``xai_lab.methods()``; every layer method at the last feature map and
  at ``comparison.INTERMEDIATE`` (``comparison.variants``: CAM at the last map only), with the
  comparison's settings except the perturbation methods, made cheaper here (:data:`CHEAPER`) so
  that the whole grid costs about half an hour of one CPU core;
* targets: the predicted class (``"predicted"``) and the class with the second largest logit
  (``"runner_up"``); seed ``seed + image position`` for both.

Per cell: the map (``xai_lab.explain``) averaged over blocks down to ``--map-size`` squared
pixels and quantized to 8 bits (:func:`quantize`: ``min``, ``max`` and the bytes in base64,
row-major; decode with :func:`dequantize`), ``signed`` (any negative value in the full map:
``xai_lab.plot.is_signed``), the deletion and insertion curves of the full map
(``xai_lab.metrics.deletion_auc`` / ``insertion_auc``, ``--curve-step`` pixels a point, the
comparison protocol's baselines) with their AUCs, the target's class and probability, forward
and backward passes, wall seconds (``Explanation.seconds``) and CPU seconds of the explanation.

``provenance.json``: every run that added records (command, commit at its start, wall and CPU
seconds, records added, threads) with the packages and the machine (``_common.environment``).
The run is resumable: the same command continues where a killed or time-boxed run stopped.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import comparison  # noqa: E402  (its settings, variants and image loading: one home)
from _common import REPO, ResultsFile, add_common, check_device, count, environment, positive_int, set_threads  # noqa: E402

import xai_lab  # noqa: E402
from xai_lab.metrics import deletion_auc, insertion_auc  # noqa: E402
from xai_lab.metrics.comparison import Protocol  # noqa: E402
from xai_lab.plot import is_signed  # noqa: E402
from xai_lab.registry import method_spec  # noqa: E402

DEFAULT_OUT = REPO / "benchmarks" / "results" / "explorer-v1"
ROLES = ("predicted", "runner_up")
#: The comparison's settings, except for these perturbation methods, made cheaper for the grid.
CHEAPER = {
    "rise": ({"n_masks": 500}, "500 random 7 x 7 masks (the comparison uses 2000)"),
    "lime": ({"num_samples": 300}, "300 perturbed samples of the quickshift superpixels (the comparison uses 1000)"),
    "occlusion": ({"window": 32, "stride": 16}, "32-pixel window, stride 16: 169 occluded copies and the clean "
                                                "image, 170 forward passes (the comparison: 16 and 8, 730)"),
    "anchors": ({"threshold": 0.95, "batch_size": 100, "max_anchor_size": 3},
                "precision threshold 0.95, anchors of at most 3 of alibi's 10 SLIC superpixels (the comparison: 5)"),
}
SETTINGS = {**comparison.SETTINGS, **CHEAPER}


def quantize(saliency: torch.Tensor, size: int) -> dict:
    """A map [H, W] averaged over blocks to [size, size] (``adaptive_avg_pool2d``) and quantized
    to 8 bits: ``{"size", "min", "max", "data"}``, data the bytes q = round(255 (v - min) / (max - min))
    row-major in base64 (all zeros for a constant map). :func:`dequantize` inverts it to within
    (max - min) / 510."""
    small = F.adaptive_avg_pool2d(saliency.detach().float().cpu().reshape(1, 1, *saliency.shape[-2:]), size)[0, 0]
    low, high = float(small.min()), float(small.max())
    scale = (high - low) / 255 if high > low else 1.0
    q = torch.round((small - low) / scale).clamp(0, 255).to(torch.uint8).numpy()
    return {"size": [size, size], "min": low, "max": high, "data": base64.b64encode(q.tobytes()).decode("ascii")}


def dequantize(stored: dict) -> np.ndarray:
    """The [size, size] float map of a :func:`quantize` record: min + q (max - min) / 255."""
    q = np.frombuffer(base64.b64decode(stored["data"]), dtype=np.uint8).reshape(stored["size"])
    return stored["min"] + q.astype(np.float64) * (stored["max"] - stored["min"]) / 255


def index_list(text: str) -> list[int]:
    """argparse ``type=``: ImageNet sample indices separated by commas (``none``: no ImageNet image)."""
    if text.strip() == "none":
        return []
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected indices separated by commas, got {text!r}") from None
    if not values or any(not 0 <= v < 1000 for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"expected distinct indices of the 1000 ImageNet samples, got {text!r}")
    return values


def relative_file(path: Path) -> str:
    """An image's path relative to the data folder (or the download cache): what the book reads back."""
    path = Path(path).resolve()
    for root in (xai_lab.data.data_dir(), xai_lab.data.cache_dir()):
        if root is not None and path.is_relative_to(Path(root).resolve()):
            return path.relative_to(Path(root).resolve()).as_posix()
    raise ValueError(f"{path} lies outside the data folder and the download cache")


def pick_msld(per_class: int, device: str) -> list[int]:
    """The first ``per_class`` test images of each class that the monkeypox classifier gets right."""
    if per_class == 0:
        return []
    data = comparison.load_dataset("msld", device)
    chosen: dict[str, list[int]] = {}
    for i, item in enumerate(data["items"]):
        mine = chosen.setdefault(item.label, [])
        if len(mine) < per_class:
            with torch.no_grad():
                predicted = int(data["classifier"].model(data["input"](i)[None].to(device)).argmax(1))
            if data["classifier"].categories[predicted] == item.label:
                mine.append(i)
    return sorted(i for found in chosen.values() for i in found)


def make_config(args) -> dict:
    images = [("imagenet", i) for i in args.imagenet] + [("msld", i) for i in pick_msld(args.msld_per_class, args.device)]
    methods = args.methods or xai_lab.methods()
    return {"benchmark": "explorer", "version": 1, "seed": args.seed,
            "images": [{"image": f"{d}/{i:04d}", "dataset": d, "index": i,
                        "file": relative_file(comparison.load_dataset(d, args.device)["items"][i].path),
                        "model": comparison.MODELS[d]} for d, i in images],
            "variants": comparison.variants(methods), "targets": list(ROLES),
            "layers": {"last": "the classifier's default_layer", "intermediate": comparison.INTERMEDIATE},
            "settings": {name: {"options": o, "why": why} for name, (o, why) in SETTINGS.items() if name in methods},
            "map": {"size": args.map_size, "pooling": "block average (adaptive_avg_pool2d)", "bits": 8},
            "curves": {"step": args.curve_step, "deletion_baseline": Protocol().deletion_baseline,
                       "insertion_start": Protocol().insertion_start}}


def run_cell(config: dict, image: dict, position: int, role: str, variant: str, device: str) -> dict:
    """One record: the map of ``variant`` for the ``role`` class of ``image``, its curves and cost."""
    data = comparison.load_dataset(image["dataset"], device)
    classifier = data["classifier"]
    name, layer = comparison.split_variant(variant)
    spec = method_spec(name)
    layer = (layer or classifier.default_layer) if spec.needs_layer else None
    x = data["input"](image["index"])[None].to(device)
    with torch.no_grad():
        probabilities = torch.softmax(classifier.model(x), 1)[0]
    target = int(probabilities.topk(2).indices[ROLES.index(role)])
    options = dict(config["settings"][name]["options"])
    cpu = time.process_time()
    e = xai_lab.explain(classifier, x, method=name, target=target, layer=layer, seed=config["seed"] + position,
                        device=device, progress=False, **options)
    explain_cpu = time.process_time() - cpu
    curves = {}
    for kind, metric, start in (("deletion", deletion_auc, {"baseline": config["curves"]["deletion_baseline"]}),
                                ("insertion", insertion_auc, {"start": config["curves"]["insertion_start"]})):
        out = metric(classifier, x, e.saliency, torch.tensor([target]), step=config["curves"]["step"], **start)
        curves[kind] = {"auc": float(out["auc"][0]), "curve": [round(float(v), 6) for v in out["curve"][0]]}
        curves["fractions"] = [round(float(v), 6) for v in out["fractions"]]
    return {"kind": role, "image": image["image"], "method": variant, "base_method": name, "family": spec.family,
            "layer": layer, "options": options, "target": target, "target_label": classifier.categories[target],
            "target_probability": float(probabilities[target]), "forward_passes": e.forward_passes,
            "backward_passes": e.backward_passes, "seconds": e.seconds, "explain_cpu_seconds": explain_cpu,
            "signed": is_signed(e.saliency), "map": quantize(e.saliency[0], config["map"]["size"]), **curves,
            "cpu_seconds": time.process_time() - cpu}


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run(args) -> dict:
    """Add the grid's missing records to ``records.jsonl`` and this run to ``provenance.json``."""
    set_threads(args.threads)
    config = make_config(args)
    try:
        results = ResultsFile(args.out / "records.jsonl", config)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    cells = [(image, position, role, variant) for position, image in enumerate(config["images"])
             for role in ROLES for variant in config["variants"]]
    todo = [c for c in cells if (c[2], c[0]["image"], c[3]) not in results.done]
    todo = todo if args.limit is None else todo[:args.limit]
    print(f"{len(cells)} cells, {len(cells) - len(todo)} done or skipped; running {len(todo)}", file=sys.stderr)
    start, cpu, at_start, before, interrupted = time.time(), time.process_time(), environment(), len(results.records), None
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for n, (image, position, role, variant) in enumerate(todo, 1):
            if args.stop_after is not None and time.time() - start > args.stop_after:
                break
            record = run_cell(config, image, position, role, variant, args.device)
            results.append(record)
            print(f"[{n}/{len(todo)}] {image['image']} {role} {variant}: {record['cpu_seconds']:.1f} s CPU",
                  file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        interrupted = "interrupted (SIGINT or SIGTERM): the records before it are kept, the cell in progress is lost"
        print(interrupted, file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
    added = results.records[before:]
    log = {"command": "python benchmarks/explorer.py " + " ".join(args.argv), "interrupted": interrupted,
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)), "commit_at_start": at_start["commit"],
           "uncommitted_changes_at_start": at_start["uncommitted_changes_outside_results"],
           "wall_seconds": round(time.time() - start, 1), "cpu_seconds": round(time.process_time() - cpu, 1),
           "cpu_seconds_cells": round(sum(r["cpu_seconds"] for r in added), 1), "records_added": len(added),
           "threads": torch.get_num_threads(), "device": str(args.device), "note": args.note}
    path = args.out / "provenance.json"
    provenance = json.loads(path.read_text()) if path.exists() else {"runs": []}
    provenance.update(environment())
    provenance["runs"].append(log)
    provenance["total_wall_seconds"] = round(sum(r["wall_seconds"] for r in provenance["runs"]), 1)
    provenance["total_cpu_seconds"] = round(sum(r["cpu_seconds"] for r in provenance["runs"]), 1)
    provenance["records"] = len(results.records)
    provenance["cells_planned"] = len(cells)
    path.write_text(json.dumps(provenance, indent=1) + "\n")
    print(f"{len(results.records)} of {len(cells)} cells in {results.path}", file=sys.stderr)
    if interrupted:
        raise SystemExit(130)
    return provenance


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(p, out=(DEFAULT_OUT, "output folder"), seed_help="explanation seed = seed + image position")
    p.add_argument("--imagenet", type=index_list, default=[50, 400],
                   help="ImageNet sample indices separated by commas, or none (default: 50,400)")
    p.add_argument("--msld-per-class", type=count, default=1,
                   help="the first this many correctly classified MSLD test images of each class")
    p.add_argument("--methods", type=comparison.choose_methods, default=None,
                   help="all (the default) or names separated by commas")
    p.add_argument("--map-size", type=positive_int, default=56, help="side of the stored maps in pixels")
    p.add_argument("--curve-step", type=positive_int, default=224 * 16,
                   help="pixels deleted or inserted per point of the curves")
    p.add_argument("--limit", type=count, default=None, help="run at most this many new cells")
    p.add_argument("--stop-after", type=positive_int, default=None, metavar="SECONDS",
                   help="start no new cell after this many seconds (run again to continue)")
    p.add_argument("--note", default=None, help="a remark kept in the run's provenance")
    return p


def main(argv=None) -> dict:
    comparison.check_settings()
    p = parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    args.argv = argv
    check_device(p, args.device)
    if not args.imagenet and args.msld_per_class == 0:
        p.error("no images: give --imagenet indices or --msld-per-class >= 1")
    if args.map_size > 224 or 224 % args.map_size:
        p.error(f"--map-size must divide the input side 224, got {args.map_size}")
    return run(args)


if __name__ == "__main__":
    main()
