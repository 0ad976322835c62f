"""The comparison of every explanation method: faithfulness, sanity, localization and cost per
(image, method), on ImageNet, on the MSLD test patients and on the planted-shortcut model, with
bootstrap intervals; serially or on Ray.

    python benchmarks/comparison.py [--n 200] [--datasets imagenet,msld,shortcut] [--methods all|NAME,...]
        [--out benchmarks/results/comparison-v1] [--sanity-images 10] [--sanity-steps 3]
        [--ray [ADDRESS]] [--shard K/N] [--limit K] [--stop-after SECONDS] [--device cpu|cuda]
        [--threads T] [--seed 0] [--resamples 2000]
    python benchmarks/comparison.py --merge DIR_OR_FILES... [--out DIR]
    python benchmarks/comparison.py --layer-sweep N [--out DIR]

What is compared (the settings table :data:`SETTINGS`, written once; ``summary.json`` holds it):

* every method of ``xai_lab.methods()``, none left out, with the options a careful user would
  choose (RISE 2000 masks, LIME 1000 samples, Score-CAM on every channel of its layer, the
  sampling methods at their documented defaults; anchors with its search bounded, see
  :data:`SETTINGS`);
* every layer method (CAMs) twice: at the model's last feature map (``gradcam``) and at the
  intermediate block :data:`INTERMEDIATE` (``gradcam@features.blocks.10``), where the gradient
  varies over positions and Grad-CAM, XGrad-CAM and HiResCAM stop being one map;
* datasets (:data:`DATASETS`): ``imagenet`` -- ``xai_lab.data.imagenet_samples()`` through
  EfficientNet-Lite0, every (1000 // n)-th; ``msld`` -- the MSLD test patients' images through
  ``load_model("msld_efficientnet_lite0")``; ``shortcut`` -- the same test images with the mark
  planted on every image, through the model trained with the mark on Monkeypox only
  (``xai_lab.experiments.shortcut``), where the mark is the truth the map should find. Each
  dataset takes its first n images in that order (MSLD has fewer: all of them).

Per (image, method) (``xai_lab.metrics.comparison.evaluate``; target: the predicted class; seed
``seed + image index``): MoRF and LeRF with black and mean replacement (AFOC, KL, PCUO at 10 %),
deletion and insertion AUC, the explanation's seconds and forward/backward passes; on the
shortcut images relevance mass and pointing game on the mark; on the first ``--sanity-images``
images of each dataset the cascading-randomization sanity check and class discrimination
(``random_target_spearman``: Spearman agreement of the map for a random other class with the map
for the predicted class; lower is better). Per dataset, method and score:
the mean with its 95 % percentile-bootstrap interval over images (over patients for MSLD and the
shortcut: ``xai_lab.stats.bootstrap(..., clusters=...)``), and rankings with paired intervals.

Files under ``--out``: ``records.jsonl`` (one line per finished job; a killed or time-boxed run
started again with the same command continues), ``summary.json`` (config, settings, coverage,
tables, rankings), ``summary.csv`` (dataset, method, score, value, low, high, n, better),
``provenance.json`` (every run that added records: command, the commit at its start, wall and
CPU seconds; package versions and machine of the last run). ``--shard K/N`` runs the K-th of N slices of the jobs
(``records-shard-K-of-N.jsonl``); ``--merge`` combines them.

Ray: ``--ray`` starts a local Ray (``ray.init()``), ``--ray ADDRESS`` joins a running cluster;
each job is one Ray task (one CPU); records are identical to a serial run with the same seed
(timings aside). Every Ray node needs this repository at the same path and the same Python
environment (a shared file system, as on a Slurm cluster): see README.md.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    REPO,
    ResultsFile,
    add_common,
    check_device,
    count,
    environment,
    json_default,
    merge_results,
    positive_int,
    read_results,
    run_jobs,
    set_threads,
    shard_slice,
)

import xai_lab  # noqa: E402
from xai_lab.metrics.comparison import Protocol, compare, directions, evaluate, sanity_scores, summarize  # noqa: E402
from xai_lab.metrics.layer_sweep import layer_sweep, sweep_means  # noqa: E402
from xai_lab.registry import method_spec  # noqa: E402

DEFAULT_OUT = REPO / "benchmarks" / "results" / "comparison-v1"
DATASETS = ("imagenet", "msld", "shortcut")
MODELS = {"imagenet": "efficientnet_lite0", "msld": "msld_efficientnet_lite0",
          "shortcut": "shortcut.train_marked(marked(Mark(), ('Monkeypox',)), copies=2)"}
#: The intermediate block of EfficientNet-Lite0 (14 x 14 positions at 224 pixels) for the layer methods.
INTERMEDIATE = "features.blocks.10"
#: The layer sweep (``--layer-sweep N``): the gradient CAMs at one block of each stage of
#: EfficientNet-Lite0 from the 28 x 28 maps on (blocks 4, 7: 28 and 14 px; 10: 14 px; 14, 15: 7 px)
#: and at the last feature map, on the first N ImageNet images of the run's order.
SWEEP_LAYERS = ("features.blocks.4", "features.blocks.7", "features.blocks.10", "features.blocks.14",
                "features.blocks.15", "features")
SWEEP_METHODS = ("gradcam", "xgradcam", "hirescam", "gradcampp", "layercam")
#: Every method's options, and why. Empty options: the method's defaults (``xai_lab.registry``).
SETTINGS = {
    "saliency": ({}, "one backward pass"),
    "input_x_gradient": ({}, "one backward pass"),
    "guided_backprop": ({}, "one backward pass"),
    "deconvnet": ({}, "one backward pass"),
    "lrp": ({}, "epsilon-plus-flat (flat first layer, z+ convolutions, epsilon dense layers): one backward pass"),
    "smoothgrad": ({"n_samples": 25}, "25 noisy samples (Smilkov et al. 2017 use 50; 25 is the package default)"),
    "integrated_gradients": ({"steps": 50}, "50 steps from a zero baseline (Sundararajan et al. 2017: 20-300)"),
    "gradient_shap": ({"n_samples": 32}, "32 samples (the package default)"),
    "deep_shap": ({}, "DeepLIFT rescale rule against the default baselines"),
    "fullgrad": ({}, "one backward pass with bias gradients"),
    "simple_fullgrad": ({}, "one backward pass with bias gradients"),
    "cam": ({}, "the head's weights"),
    "gradcam": ({}, "one pass"),
    "gradcampp": ({}, "one pass"),
    "xgradcam": ({}, "one pass"),
    "hirescam": ({}, "one pass"),
    "layercam": ({}, "one pass"),
    "eigencam": ({}, "no target: the first principal component"),
    "ablationcam": ({}, "one forward pass per channel (tail only)"),
    "smoothgradcampp": ({"n_samples": 16}, "16 noisy samples (the package default)"),
    "guided_gradcam": ({}, "Grad-CAM times guided backpropagation"),
    "scorecam": ({}, "every channel of the layer: 1280 forward passes at the last map, 112 at blocks.10"),
    "occlusion": ({"window": 16, "stride": 8}, "16-pixel window, stride 8: 729 forward passes"),
    "rise": ({"n_masks": 2000}, "2000 random 7 x 7 masks (Petsiuk et al. 2018 use 4000-8000 for ResNet)"),
    "lime": ({"num_samples": 1000}, "1000 perturbed samples of the quickshift superpixels"),
    "anchors": ({"threshold": 0.95, "batch_size": 100, "max_anchor_size": 5},
                "precision threshold 0.95 on alibi's 10 SLIC superpixels, anchors of at most 5 of them (the best "
                "anchor found is kept where the bound stops the beam search); its cost is recorded per image"),
    "random": ({}, "control: a random map"),
    "sobel": ({}, "control: an edge detector"),
}
SCORES_SHOWN = ("deletion_auc", "insertion_auc", "morf_black_afoc@0.1", "lerf_mean_afoc@0.1", "relevance_mass",
                "pointing_game", "seconds", "forward_passes")


#: Layer methods that are defined at the last feature map only, and why.
LAST_MAP_ONLY = {"cam": "CAM weights the channels by the head's weights: only the feature map pooled into the head has them"}


def variants(methods=None) -> list[str]:
    """Each method once, a layer method also at :data:`INTERMEDIATE` (``"gradcam@features.blocks.10"``)
    unless it exists at the last feature map only (:data:`LAST_MAP_ONLY`)."""
    out = []
    for name in methods or xai_lab.methods():
        out.append(name)
        if method_spec(name).needs_layer and name not in LAST_MAP_ONLY:
            out.append(f"{name}@{INTERMEDIATE}")
    return out


def split_variant(variant: str) -> tuple[str, str | None]:
    """``"gradcam@features.blocks.10"`` -> ``("gradcam", "features.blocks.10")``; ``"gradcam"`` -> ``("gradcam", None)``."""
    name, _, layer = variant.partition("@")
    return name, layer or None


def check_settings() -> None:
    """Every registered method has settings and every setting is a registered method's option."""
    missing = sorted(set(xai_lab.methods()) - set(SETTINGS))
    unknown = sorted(set(SETTINGS) - set(xai_lab.methods()))
    if missing or unknown:
        raise SystemExit(f"SETTINGS out of date: no settings for {missing}, settings for unknown {unknown}")
    for name, (options, _) in SETTINGS.items():
        bad = set(options) - set(method_spec(name).options)
        if bad:
            raise SystemExit(f"SETTINGS[{name!r}]: {sorted(bad)} are not options of {name}")


def choose_methods(text: str) -> list[str]:
    """``all`` or registered names separated by commas."""
    names = list(xai_lab.methods()) if text == "all" else [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("--methods needs at least one name")
    for name in names:
        try:
            method_spec(name)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return names


def choose_datasets(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in DATASETS]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"--datasets: choose from {', '.join(DATASETS)}, got {text!r}")
    return names


def pick_images(dataset: str, n: int, available: int) -> list[int]:
    """ImageNet: every (1000 // n)-th of the 1000 samples; MSLD and the shortcut: the first n test images."""
    if dataset == "imagenet":
        if not 1 <= n <= 1000:
            raise ValueError(f"--n must be between 1 and 1000, got {n}")
        return list(range(0, (1000 // n) * n, 1000 // n))
    return list(range(min(n, available)))


def dataset_size(dataset: str) -> int:
    """ImageNet: 1000 samples; MSLD and the shortcut: the test patients' images."""
    if dataset == "imagenet":
        return 1000
    from xai_lab.models import msld

    return len(msld.split_records()["test"])


# --- one job, in this process or in a Ray worker -------------------------------------------------------------

_LOADED: dict = {}


def load_dataset(name: str, device: str = "cpu") -> dict:
    """``{"classifier", "items", "input(i)", "mask(i)", "cluster(i)"}`` of a dataset, loaded once per process."""
    if (name, device) in _LOADED:
        return _LOADED[(name, device)]
    if name == "imagenet":
        from xai_lab.data import imagenet_samples

        classifier = xai_lab.load_model(MODELS[name])
        items = imagenet_samples()
        entry = {"classifier": classifier, "items": items, "input": lambda i: classifier.preprocess(items[i].path),
                 "mask": lambda i: None, "cluster": lambda i: None, "file": lambda i: items[i].path.name}
    else:
        from xai_lab.experiments import shortcut
        from xai_lab.models import msld

        items = msld.split_records()["test"]
        if name == "msld":
            classifier, transform = xai_lab.load_model(MODELS[name]), None
            mask = None
        else:
            mark = shortcut.Mark()
            classifier, _ = shortcut.train_marked(shortcut.marked(mark, ("Monkeypox",)), copies=2)
            transform = shortcut.marked(mark, msld.CATEGORIES)
            mask = lambda i: shortcut.mark_mask(items[i], mark)  # noqa: E731
        entry = {"classifier": classifier, "items": items,
                 "input": lambda i: shortcut.inputs(classifier, [items[i]], transform)[0],
                 "mask": mask or (lambda i: None), "cluster": lambda i: items[i].patient_id,
                 "file": lambda i: items[i].path.name}
    classifier.model.to(device)
    _LOADED[(name, device)] = entry
    return entry


def run_job(job: tuple, config: dict, device: str = "cpu", threads: int | None = None) -> dict:
    """One record: ``job = (kind, dataset, index, variant)``, kind ``"eval"`` or ``"sanity"``.
    The same function runs serially and in a Ray worker, so the records agree."""
    kind, dataset, index, variant = job
    set_threads(threads)
    data = load_dataset(dataset, device)
    classifier = data["classifier"]
    name, layer = split_variant(variant)
    options = dict(SETTINGS[name][0])
    x = data["input"](index).to(device)
    label = data["items"][index].label
    label = label if isinstance(label, int) else classifier.categories.index(label)
    seed = config["seed"] + index
    about = {"kind": kind, "dataset": dataset, "image": f"{dataset}/{index:04d}", "index": index,
             "file": data["file"](index), "label": label, "cluster": data["cluster"](index), "method": variant,
             "base_method": name}
    cpu = time.process_time()
    if kind == "eval":
        record = evaluate(classifier, x, name, Protocol.from_dict(config["protocol"]), seed=seed, device=device,
                          options=options, layer=layer, mask=data["mask"](index))
        record.pop("curves")
        record["correct"] = record["target"] == label
    else:
        with torch.no_grad():
            target = int(classifier.model(x[None]).argmax(1))
        record = sanity_scores(classifier, x, name, target, steps=config["sanity"]["steps"], seed=seed,
                               options=options, layer=layer)
        record["options"] = options
        record["layer"] = layer
    return {**about, **{k: v for k, v in record.items() if k != "method"}, "cpu_seconds": time.process_time() - cpu}


# --- the run ------------------------------------------------------------------------------------------------

TIMING = ("seconds", "eval_seconds", "sanity_seconds", "cpu_seconds")


def make_config(args) -> dict:
    return {"benchmark": "comparison", "version": 1, "n": args.n, "seed": args.seed,
            "protocol": Protocol(fractions=(0.1,)).as_dict(), "target": "predicted class",
            "intermediate_layer": INTERMEDIATE, "sanity": {"images": args.sanity_images, "steps": args.sanity_steps},
            "settings": {name: options for name, (options, _) in SETTINGS.items()},
            "shard": None if args.shard is None else f"{args.shard[0]}/{args.shard[1]}"}


def all_jobs(args, config: dict) -> list[tuple]:
    """Every job of the run in order: the first image of each dataset, then the second, ...; per
    image each variant's evaluation and (on the first ``--sanity-images`` images) its sanity
    check. A time-boxed chunk thus covers the datasets evenly."""
    images = {d: pick_images(d, args.n, dataset_size(d)) for d in args.datasets}
    jobs = []
    for position in range(max(len(v) for v in images.values())):
        for dataset in args.datasets:
            if position >= len(images[dataset]):
                continue
            for variant in variants(args.methods):
                jobs.append(("eval", dataset, images[dataset][position], variant))
                if position < config["sanity"]["images"]:
                    jobs.append(("sanity", dataset, images[dataset][position], variant))
    return jobs


def job_key(job: tuple) -> tuple:
    kind, dataset, index, variant = job
    return kind, f"{dataset}/{index:04d}", variant


def run(args) -> tuple[Path, dict]:
    """Run the jobs of this run (or shard) that its results file lacks; returns the file and a run log."""
    set_threads(args.threads)
    config = make_config(args)
    jobs = all_jobs(args, config)
    mine = jobs if args.shard is None else shard_slice(jobs, *args.shard)
    tag = "" if args.shard is None else f"-shard-{args.shard[0]}-of-{args.shard[1]}"
    try:
        results = ResultsFile(args.out / f"records{tag}.jsonl", config)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    todo = [job for job in mine if job_key(job) not in results.done]
    if args.limit is not None:
        todo = todo[:args.limit]
    print(f"{len(mine)} jobs, {len(mine) - len([j for j in mine if job_key(j) not in results.done])} already in "
          f"{results.path}; running {len(todo)}", file=sys.stderr)
    start, cpu, at_start = time.time(), time.process_time(), environment()
    deadline = None if args.stop_after is None else start + args.stop_after
    # run_jobs: serially or on Ray; a deadline, Ctrl-C or a kill ends it with the finished records and this run log
    ran, interrupted = run_jobs(todo, run_job, (config, args.device, args.threads), results, ray_address=args.ray,
                                device=args.device, deadline=deadline, describe=job_key)
    return results.path, {"command": "python benchmarks/comparison.py " + " ".join(args.argv),
                          "interrupted": interrupted,
                          "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
                          "commit_at_start": at_start["commit"],
                          "uncommitted_changes_at_start": at_start["uncommitted_changes_outside_results"],
                          "wall_seconds": round(time.time() - start, 1),
                          "cpu_seconds_main_process": round(time.process_time() - cpu, 1),
                          "cpu_seconds_jobs": round(sum(r["cpu_seconds"] for r in results.records[-ran:]) if ran else 0.0, 1),
                          "jobs_run": ran, "note": args.note, "ray": args.ray, "device": str(args.device),
                          "threads": torch.get_num_threads()}


def sweep(args) -> dict:
    """``--layer-sweep N``: :func:`xai_lab.metrics.layer_sweep.layer_sweep` of :data:`SWEEP_METHODS`
    at :data:`SWEEP_LAYERS` on N ImageNet images (every (1000 // N)-th), written to
    ``layer_sweep.json`` under ``--out``: the points, their means per (layer, method), the methods
    whose maps equal Grad-CAM's on every image at each layer (agreement >= 1 - 1e-6), provenance."""
    data = load_dataset("imagenet", str(args.device))
    indices = pick_images("imagenet", args.layer_sweep, 1000)
    set_threads(args.threads)
    x = torch.stack([data["input"](i) for i in indices]).to(args.device)
    protocol = Protocol()
    start, cpu, at_start = time.time(), time.process_time(), environment()
    points = layer_sweep(data["classifier"], x, SWEEP_METHODS, SWEEP_LAYERS, seed=args.seed, step=protocol.step,
                         deletion_baseline=protocol.deletion_baseline, insertion_start=protocol.insertion_start,
                         device=args.device)
    means = sweep_means(points)
    same = {layer: [m for m in SWEEP_METHODS if m != "gradcam"
                    and all(p.agreement >= 1 - 1e-6 for p in points if p.layer == layer and p.method == m)]
            for layer in SWEEP_LAYERS}
    result = {"config": {"benchmark": "comparison/layer-sweep", "version": 1, "n": args.layer_sweep,
                         "images": [data["file"](i) for i in indices], "layers": list(SWEEP_LAYERS),
                         "methods": list(SWEEP_METHODS), "reference": "gradcam", "seed": args.seed,
                         "target": "predicted class", "step": protocol.step,
                         "deletion_baseline": protocol.deletion_baseline, "insertion_start": protocol.insertion_start},
              "points": [p.as_dict() for p in points],
              "means": [{"layer": layer, "method": method, **values} for (layer, method), values in means.items()],
              "same_map_as_gradcam": same,
              "provenance": {"command": "python benchmarks/comparison.py " + " ".join(args.argv),
                             "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
                             "wall_seconds": round(time.time() - start, 1),
                             "cpu_seconds": round(time.process_time() - cpu, 1), "note": args.note, **at_start}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "layer_sweep.json").write_text(json.dumps(result, indent=1, default=json_default) + "\n",
                                                encoding="utf-8")
    for layer in SWEEP_LAYERS:
        print(f"{layer}: same map as Grad-CAM: {', '.join(same[layer]) or 'none'}")
    return result


# --- summaries ----------------------------------------------------------------------------------------------

def coverage(config: dict, records: list[dict], datasets=DATASETS) -> dict:
    """Per dataset: images planned, images with every variant evaluated, records done."""
    out = {}
    every = set(variants())
    for dataset in datasets:
        evals = [r for r in records if r["dataset"] == dataset and r["kind"] == "eval"]
        planned = len(pick_images(dataset, config["n"], dataset_size(dataset)))
        by_image: dict = {}
        for r in evals:
            by_image.setdefault(r["image"], set()).add(r["method"])
        out[dataset] = {"images_planned": planned, "images_started": len(by_image),
                        "images_with_every_method": sum(1 for m in by_image.values() if every <= m),
                        "methods_evaluated": sorted({r["method"] for r in evals}),
                        "methods_missing": sorted(every - {r["method"] for r in evals}),
                        "eval_records": len(evals),
                        "sanity_records": sum(1 for r in records if r["dataset"] == dataset and r["kind"] == "sanity")}
    return out


def ranked_block(have: dict) -> tuple[list, set]:
    """``(variants, images)`` to rank, from ``{variant: set of images}``: for each threshold k, the
    variants with at least k images and the images they all have; the block with the most
    (variant, image) pairs (ties: more images). Chunks stop in the middle of an image and add
    methods later, so the variants differ in their images."""
    best: tuple = ([], set())
    for k in sorted({len(v) for v in have.values()}):
        core = sorted(m for m, v in have.items() if len(v) >= k)
        common = set.intersection(*(have[m] for m in core))
        if (len(core) * len(common), len(common)) > (len(best[0]) * len(best[1]), len(best[1])):
            best = (core, common)
    return best


def rankings(records: list[dict], resamples: int, seed: int, sanity_steps: int) -> dict:
    """Per dataset and shown score: the variants from best to worst by mean, the best, and the
    variants whose paired difference to the best excludes zero. Ranked are the variants and images
    of :func:`ranked_block`; the other variants (a chunk in progress) are listed as ``not_ranked_yet``."""
    out = {}
    for dataset in sorted({r["dataset"] for r in records}):
        mine = [r for r in records if r["dataset"] == dataset]
        out[dataset] = {}
        for score in SCORES_SHOWN + (f"sanity_spearman@{sanity_steps}", "random_target_spearman"):
            have: dict = {}
            for r in mine:
                values = {**r.get("scores", {}), **{k: r[k] for k in ("seconds", "forward_passes") if k in r
                                                     and r["kind"] == "eval"}}
                if score in values:
                    have.setdefault(r["method"], set()).add(r["image"])
            core, common = ranked_block(have)
            if len(core) < 2 or len(common) < 2:
                continue
            ranked = [r for r in mine if r["image"] in common and r["method"] in core]
            best = compare(ranked, score, core[0], core, resamples=resamples, seed=seed)["best"]
            c = compare(ranked, score, best, core, resamples=resamples, seed=seed)
            order = sorted(c["intervals"], key=lambda m: (c["better"].sort_key(c["intervals"][m].value), m))
            out[dataset][score] = {"better": c["better"].value, "images": len(common), "order": order, "best": best,
                                   "means": {m: c["intervals"][m].value for m in order},
                                   "best_clearly_ahead_of": sorted(m for m, v in c["versus"].items()
                                                                   if v["difference_excludes_zero"]),
                                   "not_ranked_yet": sorted(set(have) - set(core))}
    return out


def write_outputs(out: Path, tag: str, config: dict, records: list[dict], resamples: int, seed: int,
                  run_log: dict | None = None) -> dict:
    """summary{tag}.json, summary{tag}.csv; provenance.json gains ``run_log``."""
    out.mkdir(parents=True, exist_ok=True)
    better = directions(records)
    datasets = [d for d in DATASETS if any(r["dataset"] == d for r in records)]
    table = {}
    for dataset in datasets:
        mine = [r for r in records if r["dataset"] == dataset]
        table[dataset] = {m: {s: {**i.as_dict(), "better": better.get(s)} for s, i in scores.items()}
                          for m, scores in summarize(mine, sorted({r["method"] for r in mine}),
                                                     resamples=resamples, seed=seed).items()}
    summary = {"config": {k: v for k, v in config.items() if k != "shard"}, "shard": config.get("shard"),
               "settings": {name: {"family": method_spec(name).family, "options": o, "why": why,
                                   "layers": (["last feature map"] + ([] if name in LAST_MAP_ONLY else [INTERMEDIATE])
                                              if method_spec(name).needs_layer else []),
                                   "why_not_intermediate": LAST_MAP_ONLY.get(name)} for name, (o, why) in SETTINGS.items()},
               "models": {d: MODELS[d] for d in DATASETS}, "coverage": coverage(config, records),
               "bootstrap": {"level": 0.95, "resamples": resamples, "seed": seed,
                             "clusters": {"imagenet": "images", "msld": "patients", "shortcut": "patients"}},
               "table": table, "rankings": rankings(records, resamples, seed, config["sanity"]["steps"])}
    summary = json.loads(json.dumps(summary, default=json_default))
    (out / f"summary{tag}.json").write_text(json.dumps(summary, indent=1) + "\n")
    with open(out / f"summary{tag}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dataset", "method", "score", "value", "low", "high", "n", "better"])
        for dataset, methods in table.items():
            for method, scores in methods.items():
                for score, s in scores.items():
                    w.writerow([dataset, method, score, repr(s["value"]), repr(s["low"]), repr(s["high"]), s["n"],
                                s["better"]])
    if run_log is not None:
        path = out / "provenance.json"
        provenance = json.loads(path.read_text()) if path.exists() else {"runs": []}
        provenance.update(environment())
        provenance["runs"].append(run_log)
        # an interrupted run's entry has no wall seconds (None): it adds nothing here
        provenance["total_wall_seconds"] = round(sum(r["wall_seconds"] or 0 for r in provenance["runs"]), 1)
        provenance["total_cpu_seconds_jobs"] = round(sum(r["cpu_seconds_jobs"] for r in provenance["runs"]), 1)
        path.write_text(json.dumps(provenance, indent=1) + "\n")
    return summary


def report(summary: dict) -> None:
    for dataset, c in summary["coverage"].items():
        print(f"{dataset}: {c['images_with_every_method']} of {c['images_planned']} images with every method "
              f"({c['eval_records']} evaluations, {c['sanity_records']} sanity checks)")


# --- command line -------------------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(p, n=(200, "images per dataset (ImageNet: every (1000 // n)-th; MSLD: at most its test images)"),
               out=(None, f"output folder (default {DEFAULT_OUT}; with --merge DIR: DIR)"), shards=True,
               seed_help="explanation seed = seed + image index; bootstrap seed")
    p.add_argument("--datasets", type=choose_datasets, default=list(DATASETS), help="names separated by commas")
    p.add_argument("--methods", type=choose_methods, default=None,
                   help="all (the default) or names separated by commas (a chunk of the run)")
    p.add_argument("--sanity-images", type=count, default=10, help="sanity check on the first this many images")
    p.add_argument("--sanity-steps", type=positive_int, default=3, help="cascade stages of the sanity check")
    p.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap resamples")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the jobs as Ray tasks: a local Ray without ADDRESS, else the cluster at ADDRESS")
    p.add_argument("--limit", type=count, default=None, help="run at most this many new jobs")
    p.add_argument("--note", default=None, help="a remark kept in the run's provenance (e.g. 'shared machine')")
    p.add_argument("--layer-sweep", type=positive_int, default=None, metavar="N",
                   help="instead of the comparison: the gradient CAMs at six depths on N ImageNet images "
                        "(layer_sweep.json under --out)")
    p.add_argument("--stop-after", type=positive_int, default=None, metavar="SECONDS",
                   help="start no new job after this many seconds (a time-boxed chunk; run again to continue)")
    return p


def merge(paths: list[Path], out: Path | None, resamples: int, seed: int) -> dict:
    files = []
    for p in paths:
        if p.is_dir():
            found = sorted(p.glob("records*.jsonl"))
            if not found:
                raise SystemExit(f"--merge: no records*.jsonl in {p}")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise SystemExit(f"--merge: {p} does not exist")
    try:
        config, records, info = merge_results(files)
    except ValueError as e:
        raise SystemExit(f"--merge: {e}") from None
    out = out or (paths[0] if len(paths) == 1 and paths[0].is_dir() else DEFAULT_OUT)
    summary = write_outputs(out, "", config, records, resamples, seed)
    summary["merged_from"] = info["files"]
    report(summary)
    return summary


def main(argv=None) -> dict:
    check_settings()
    p = parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    args.argv = argv
    if args.merge is not None:
        if args.shard is not None or args.limit is not None or args.ray is not None:
            p.error("--merge combines finished files: it takes no --shard, --limit or --ray")
        return merge(args.merge, args.out, args.resamples, args.seed)
    args.out = args.out or DEFAULT_OUT
    check_device(p, args.device)
    if args.layer_sweep is not None:
        if args.shard is not None or args.ray is not None:
            p.error("--layer-sweep runs in this process: it takes no --shard or --ray")
        try:
            pick_images("imagenet", args.layer_sweep, 1000)
        except ValueError as e:
            p.error(str(e))
        return sweep(args)
    try:
        pick_images("imagenet", args.n, 1000)
    except ValueError as e:
        p.error(str(e))
    path, log = run(args)
    config, records = read_results(path)
    summary = write_outputs(args.out, path.stem[len("records"):], config, records, args.resamples, args.seed, log)
    report(summary)
    if log["interrupted"]:
        raise SystemExit(130)  # what a shell reports for an interrupted command, after the files are written
    return summary


if __name__ == "__main__":
    main()
