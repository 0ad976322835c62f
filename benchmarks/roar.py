"""Remove And Retrain (ROAR, Hooker et al. 2019) on the MSLD classifier, as JSON.

    python benchmarks/roar.py [--ks 10,20,30,40,50,60,70,80,90] [--methods gradcam,fullgrad,saliency,rise,random]
        [--copies 1] [--rise-masks 500] [--fill mean|black] [--train-fraction 1] [--seed 0] [--n-boot 2000]
        [--out benchmarks/results/roar.json]
        [--maps PATH | --no-maps-cache] [--device cpu|cuda] [--threads T]

For every method and k: the top k % pixels of every MSLD image (train, validation and test
patients of ``msld.split_records()``) are replaced by the image's channel means (``--fill mean``,
as Hooker et al. 2019) or by black (``--fill black``, the other fill the FullGrad reproducibility
study runs), a new head is
trained on the edited training images (``msld.train(TrainSettings(copies=--copies), transform=...)``,
frozen ImageNet backbone, early stopping on the edited validation images), and the edited test
images are scored by the retrained model and by the original classifier (no retraining):
accuracy, balanced accuracy, ROC AUC with 95 % patient-bootstrap intervals. k = 0 (nothing
removed) is always added as the reference. Details: ``xai_lab.experiments.roar``.

The maps (clean classifier ``msld_efficientnet_lite0``, true label, un-augmented image) are
computed once and kept in ``--maps`` (default ``benchmarks/results/roar_maps_seed<seed>.pt``):
a run started again, or one with other ks, copies or methods, reuses every map whose method,
options, seed and classifier match. ``--device`` is where the maps are computed; the retraining
runs on the CPU (``msld.train`` has no device). The JSON (printed, and written to ``--out``):
``config``, ``rows`` (one per method and k), ``finding`` (``xai_lab.experiments.roar.summarize``),
``timing`` (seconds per method for the maps, per retraining) and ``run``.

Cost, measured on the project machine (2-core VM shared with other jobs, load 5-10, one torch
thread, process CPU seconds; an idle machine needs less): maps per image gradcam 0.13, saliency
0.15, fullgrad 0.41, random 0.004, RISE 0.11 per mask (500 masks: ~55 s per image, ~2.8 CPU
hours for the 182 images: the bulk of a full run, paid once thanks to the maps file; on a GPU
a small fraction of that). One retraining with copies=1 on the whole split: ~12 CPU s for the
training and validation images plus ~3 for the test images (one backbone pass per image, ~0.08
CPU s each); copies=c adds (c - 1) passes per training image. The default grid is 5 methods x 9
ks + 1 = 46 retrainings (~12 CPU min at copies=1). ``--train-fraction`` trains on a seeded
subsample of the training and validation patients (all test patients) for quicker runs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_common, check_device, environment, fraction, json_default, positive_int, set_threads  # noqa: E402

import xai_lab  # noqa: E402
from xai_lab.data import msld as msld_records  # noqa: E402
from xai_lab.experiments import roar as roar_experiment  # noqa: E402
from xai_lab.models import cache, msld  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUT = RESULTS / "roar.json"


def _ks(text: str) -> list[int | float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--ks must be percentages separated by commas, got {text!r}") from None
    if not values or any(not 0 < v <= 100 for v in values):
        raise argparse.ArgumentTypeError(f"--ks must lie in (0, 100] (k = 0 is always added), got {text!r}")
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"--ks repeats a value: {text!r}")
    return [int(v) if v.is_integer() else v for v in values]


def _methods(text: str) -> list[str]:
    try:
        return roar_experiment.check_methods([n.strip() for n in text.split(",") if n.strip()])
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


#: --fill: what the removed pixels become (``remove_top_fraction``'s fill) and how the config names it.
FILLS = {"mean": ("mean", "image channel means"), "black": (0.0, "black (0 in pixel units)")}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ks", type=_ks, default=list(roar_experiment.DEFAULT_KS), help="percentages of pixels removed")
    p.add_argument("--methods", type=_methods, default=list(roar_experiment.ROAR_METHODS), help="names separated by commas")
    p.add_argument("--copies", type=positive_int, default=1, help="views per training image (1: no augmentation)")
    p.add_argument("--rise-masks", type=positive_int, default=500, help="RISE masks per image")
    p.add_argument("--fill", choices=sorted(FILLS), default="mean", help="what the removed pixels become")
    p.add_argument("--train-fraction", type=fraction, default=1.0,
                   help="train on this seeded fraction of the training and validation patients (all test patients)")
    p.add_argument("--n-boot", type=positive_int, default=2000, help="bootstrap draws of test patients")
    p.add_argument("--maps", type=Path, default=None, help="saliency-map cache (default results/roar_maps_seed<seed>.pt)")
    p.add_argument("--no-maps-cache", action="store_true", help="compute the maps without reading or writing a file")
    return add_common(p, out=(DEFAULT_OUT, f"JSON file (default {DEFAULT_OUT})"),
                      seed_help="maps (batch b: seed + b), ties, bootstrap, training")


def _classifier_key(classifier) -> str:
    """16 hex digits of sha256 over the classifier head (the backbone is the fixed ImageNet one)."""
    head = classifier.model.classifier
    data = torch.cat([head.weight.detach().flatten(), head.bias.detach().flatten()]).cpu().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def load_maps(path: Path | None, classifier, records, methods, seed: int, options: dict, progress: bool) -> dict:
    """The maps of every method, from ``path`` where its entry matches (options, seed, classifier,
    images), computed (and saved to ``path``) otherwise."""
    keys = [str(r.path) for r in records]
    stored = {}
    if path is not None:
        stored = cache.load(path) or {}   # an unreadable file is reported (CacheWarning) and rebuilt
    classifier_key = _classifier_key(classifier)
    maps, seconds, computed = {}, {}, []
    for method in methods:
        wanted = {"options": roar_experiment.method_options(method, options), "seed": seed, "classifier": classifier_key}
        entry = stored.get(method)
        if entry is not None and entry["about"] == wanted and all(k in entry["maps"] for k in keys):
            maps[method], seconds[method] = entry["maps"], entry["seconds"]
            continue
        fresh = roar_experiment.saliency_maps(classifier, records, [method], seed, options, progress=progress)
        maps[method], seconds[method] = fresh[method], fresh["_seconds"][method]
        stored[method] = {"about": wanted, "maps": maps[method], "seconds": seconds[method]}
        computed.append(method)
        if path is not None:
            cache.save(stored, path)
    print(f"maps: computed {', '.join(computed) or 'none'}; reused {', '.join(m for m in methods if m not in computed) or 'none'}"
          + (f" ({path})" if path is not None else ""), file=sys.stderr)
    return {**maps, "_seconds": seconds, "_computed": computed}


def main(argv=None, classifier=None, records=None) -> dict:
    p = parser()
    args = p.parse_args(sys.argv[1:] if argv is None else list(argv))
    check_device(p, args.device)
    set_threads(args.threads)
    progress = sys.stderr.isatty()
    start, cpu_start, at_start = time.perf_counter(), time.process_time(), environment()
    settings = msld.TrainSettings(copies=args.copies, seed=args.seed)
    classifier = xai_lab.load_model(msld.NAME) if classifier is None else classifier
    classifier.model.to(args.device)
    split = msld.split_records(msld_records() if records is None else list(records), settings)
    if args.train_fraction < 1:
        split = roar_experiment.subsample_split(split, args.train_fraction, args.seed)
    records = split["train"] + split["val"] + split["test"]
    options = {"rise": {"n_masks": args.rise_masks}}
    maps_path = None if args.no_maps_cache else (args.maps or RESULTS / f"roar_maps_seed{args.seed}.pt")
    maps = load_maps(maps_path, classifier, records, args.methods, args.seed, options, progress)
    maps_done = time.perf_counter()
    classifier.model.to("cpu")
    ks = [0] + list(args.ks)
    rows = roar_experiment.roar(classifier, None, args.methods, ks, settings, maps, args.seed, options,
                                fill=FILLS[args.fill][0], n_boot=args.n_boot, progress=progress, split=split)
    test = split["test"]
    trained = [r["seconds"] for r in rows if r["k"] > 0 or r["method"] == args.methods[0]]
    out = {
        "benchmark": "roar", "model": msld.NAME,
        "config": {"methods": args.methods, "ks": ks, "copies": args.copies, "rise_masks": args.rise_masks,
                   "seed": args.seed, "n_boot": args.n_boot, "fill": FILLS[args.fill][1],
                   "target": "true label", "options": {m: roar_experiment.method_options(m, options) for m in args.methods},
                   "train_settings": asdict(settings),
                   "train_fraction": args.train_fraction,
                   "images": {name: len(part) for name, part in split.items()}},
        "rows": rows,
        "finding": roar_experiment.summarize(rows, test, args.n_boot, args.seed),
        "timing": {"maps_seconds": {m: round(s, 1) for m, s in maps["_seconds"].items()},
                   "maps_computed_now": maps["_computed"],
                   "retrainings": len(trained), "seconds_per_retraining": round(sum(trained) / len(trained), 2)},
        "run": {"command": "python benchmarks/roar.py " + " ".join(sys.argv[1:] if argv is None else list(argv)),
                "seconds": round(time.perf_counter() - start, 1), "cpu_seconds": round(time.process_time() - cpu_start, 1),
                "maps_seconds": round(maps_done - start, 1),
                "threads": torch.get_num_threads(), "device": str(args.device), **at_start},
    }
    text = json.dumps(out, default=json_default)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return json.loads(text)


if __name__ == "__main__":
    main()
