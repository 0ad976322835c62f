"""Which metric can you trust? Every metric's ranking of the explanation methods against the known
answer of the planted-shortcut model, with patient-bootstrap intervals.

    python benchmarks/metric_trust.py [--n 100] [--classes Monkeypox,Others] [--methods default|NAME,...]
        [--metrics default|NAME,...] [--quick] [--out benchmarks/results/metric-trust-v1]
        [--resamples 2000] [--ray [ADDRESS]] [--limit K] [--stop-after SECONDS] [--note TEXT]
        [--seed 0] [--device cpu|cuda] [--threads T]

The model is the planted-shortcut model (``shortcut.train_marked(marked(Mark(), ("Monkeypox",)),
copies=2)``, trained and cached on first use, the one of the book's shortcut chapters and of
``benchmarks/comparison.py``); the images are the first ``--n`` MSLD test images of the
``--classes`` (default both: 39 images of 26 patients), each with the mark planted, and every
map explains the Monkeypox score (the class the mark stands for). Per (image, method)
(``xai_lab.experiments.metric_trust.score_image``, seed ``seed + image index``): the relevance
mass on the mark (the ground truth) and each metric's score of the method's map
(``metric_trust.METRICS``: deletion and insertion AUC, MoRF and LeRF pixel perturbation, ROAD
MoRF and LeRF, faithfulness correlation, max-sensitivity, sparseness, complexity, the sanity
check, the random-logit test). Then per metric (``metric_trust.trust``): Spearman's rho and
Kendall's tau between its method ranking and the truth's, each with a 95 % bootstrap interval
that resamples patients.

``--methods default`` is ``metric_trust.DEFAULT_METHODS`` (13 methods, cheap but diverse, with
their options); ``--metrics default`` is ``metric_trust.DEFAULT_METRICS``. ``--quick``: the first
image of each of the first 2 patients, gradcam, saliency and random, every default metric at ``metric_trust.QUICK_SETTINGS``,
written under ``<out>/quick`` (a smoke run of the whole pipeline, about a minute of CPU).

Files under ``--out``: ``records.jsonl`` (one line per finished (image, method), patients first:
the first image of every patient, then their second images, and so on, so that a partial run
holds as many patients as it can; a killed or time-boxed run started again with the same command
continues where it stopped; a run that adds methods keeps the old records), ``summary.json``
(config, coverage, the truth ranking with intervals, one entry per metric), ``provenance.json``
(every run that added records: command, the commit at its start, wall and CPU seconds; package
versions and machine of the last run, and whether it ran on Ray).

Ray: ``--ray`` starts a local Ray (``ray.init()``), ``--ray ADDRESS`` joins a running cluster
(``ray start --head`` on one node, ``ray start --address=HEAD:6379`` on the others); each
(image, method) job is one Ray task with one CPU (and one GPU with ``--device cuda``), records are
appended as they finish, and ``--stop-after`` cancels the tasks still pending. A worker loads the
model and the images once per process (:func:`load_inputs`; the main process loads them first, so
an untrained model is trained and cached once), and the records equal a serial run's with the
same seed (timings aside). Every node needs this repository and the data at the same paths
(``XAI_LAB_DATA_DIR`` is passed on to the workers) and the same Python environment: a shared
file system, as on a Slurm cluster, where the recipe for ``benchmarks/comparison.py`` in
README.md applies as it is:

    python benchmarks/metric_trust.py --ray --stop-after 3600      # a local Ray, one task per CPU
    python benchmarks/metric_trust.py --ray HEAD_HOST:6379          # the cluster at HEAD_HOST

Cost (process CPU seconds, one torch thread on a loaded 2-core machine; an idle machine or a
GPU needs less): per (image, method) the metrics that read the map alone take about 10 s
(deletion and insertion ~1 s each, ROAD MoRF and LeRF ~1.3 s each, faithfulness correlation
~3.5 s), and the metrics that explain again cost about 11 more explanations (max-sensitivity 6,
the sanity check 3, the random-logit test 2). One explanation of one image: the gradient CAMs
and gradients ~0.1 s, FullGrad ~0.4, integrated gradients, SmoothGrad and occlusion ~1.6, RISE
(100 masks) ~6, Score-CAM (320 channels) ~23. The default run, 39 images x 13 methods, is
estimated at about 6 CPU hours (~530 s per image), three quarters of it Score-CAM and RISE.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from dataclasses import asdict
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
    positive_int,
    read_results,
    run_jobs,
    set_threads,
)

import xai_lab  # noqa: E402
from xai_lab.experiments import metric_trust as mt  # noqa: E402
from xai_lab.experiments import shortcut  # noqa: E402
from xai_lab.models import msld  # noqa: E402
from xai_lab.registry import method_spec  # noqa: E402

DEFAULT_OUT = REPO / "benchmarks" / "results" / "metric-trust-v1"
MODEL = "shortcut.train_marked(marked(Mark(), ('Monkeypox',)), copies=2)"
QUICK = {"n": 2, "methods": ("gradcam", "saliency", "random")}
#: Where the classifier and the images come from: ``(function, *arguments)``, the function named
#: ``"module:name"`` and returning ``(classifier, images)``, the images a pool that ``--classes``,
#: ``--quick`` and ``--n`` select from (:func:`select_images`). A name rather than the objects, so
#: that a Ray worker loads them itself, once per process (:func:`load_inputs`).
SHORTCUT_SOURCE = ("metric_trust:shortcut_model_and_test_images",)


def choose_methods(text: str) -> dict[str, dict]:
    """``default`` (:data:`metric_trust.DEFAULT_METHODS` with their options) or registered names
    separated by commas (the default options where a name is one of the defaults, else none)."""
    if text == "default":
        return {k: dict(v) for k, v in mt.DEFAULT_METHODS.items()}
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        try:
            method_spec(name)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    if len(names) < 2 or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"--methods needs at least two different names to rank, got {text!r}")
    return {name: dict(mt.DEFAULT_METHODS.get(name, {})) for name in names}


def choose_metrics(text: str) -> list[str]:
    """``default`` (:data:`metric_trust.DEFAULT_METRICS`) or metric names separated by commas."""
    names = list(mt.DEFAULT_METRICS) if text == "default" else [n.strip() for n in text.split(",") if n.strip()]
    try:
        return list(mt.check_metrics(names))
    except (TypeError, ValueError) as e:
        raise argparse.ArgumentTypeError(f"--metrics: {e}") from None


def choose_classes(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in msld.CATEGORIES]
    if not names or bad or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"--classes: MSLD classes ({', '.join(msld.CATEGORIES)}) separated by commas, "
                                         f"got {text!r}")
    return names


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(p, n=(100, "the first N test images of --classes (all of them when fewer)"),
               out=(None, f"output folder (default {DEFAULT_OUT}; with --quick: its quick/ folder)"),
               seed_help="explanation and metric seed = seed + image index; bootstrap seed")
    p.add_argument("--classes", type=choose_classes, default=list(msld.CATEGORIES),
                   help="the test images of these classes, the mark planted on each")
    p.add_argument("--methods", type=choose_methods, default=None, help="default, or names separated by commas")
    p.add_argument("--metrics", type=choose_metrics, default=None, help="default, or names separated by commas")
    p.add_argument("--quick", action="store_true", help="2 images, 3 methods, every metric at small sizes")
    p.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap resamples")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the (image, method) jobs as Ray tasks: a local Ray without ADDRESS, else the cluster at ADDRESS")
    p.add_argument("--limit", type=count, default=None, help="run at most this many new (image, method) jobs")
    p.add_argument("--stop-after", type=positive_int, default=None, metavar="SECONDS",
                   help="start no new job after this many seconds (run again to continue)")
    p.add_argument("--note", default=None, help="a remark kept in the run's provenance")
    return p


def make_config(args, settings: mt.Settings) -> dict:
    """The run's identity: a results file made under another config is refused (methods added are allowed)."""
    return {"benchmark": "metric-trust", "version": 1, "model": MODEL, "mark": asdict(shortcut.Mark()),
            "images": {"split": "test", "classes": args.classes, "n": args.n, "mark_on": "every image"},
            "target": msld.POSITIVE, "truth": mt.TRUTH, "seed": args.seed, "metrics": args.metrics,
            "metric_settings": settings.as_dict(), "settings": args.methods}


def run(args, records, settings: mt.Settings, source: tuple) -> tuple[Path, dict]:
    """Score every (image, method) the results file lacks, patients first (:func:`patients_first`),
    serially or on Ray (:func:`_common.run_jobs`); returns the file and a run log."""
    config = make_config(args, settings)
    try:
        results = ResultsFile(args.out / "records.jsonl", config)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    jobs = [(i, name) for i in patients_first(records) for name in args.methods]
    todo = [(i, name) for i, name in jobs if ("score", image_key(i, records[i]), name) not in results.done]
    todo = todo if args.limit is None else todo[:args.limit]
    print(f"{len(jobs)} jobs, {len(jobs) - len(todo)} done or left out, running {len(todo)} ({results.path})",
          file=sys.stderr)
    spec = {"source": tuple(source), "images": (tuple(args.classes), args.n, args.quick), "methods": args.methods,
            "metrics": args.metrics, "settings": settings, "seed": args.seed, "device": str(args.device),
            "threads": args.threads}
    start, cpu, at_start = time.time(), time.process_time(), environment()
    ran, interrupted = run_jobs(todo, score_job, (spec,), results, ray_address=args.ray, device=args.device,
                                deadline=None if args.stop_after is None else start + args.stop_after,
                                describe=lambda job: f"{image_key(job[0], records[job[0]])} {job[1]}")
    new = results.records[len(results.records) - ran:] if ran else []
    return results.path, {"command": "python benchmarks/metric_trust.py " + " ".join(args.argv),
                          "interrupted": interrupted, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
                          "commit_at_start": at_start["commit"],
                          "uncommitted_changes_at_start": at_start["uncommitted_changes_outside_results"],
                          "wall_seconds": round(time.time() - start, 1),
                          "cpu_seconds": round(time.process_time() - cpu, 1),
                          "cpu_seconds_jobs": round(sum(r["cpu_seconds"] for r in new), 1), "jobs_run": ran,
                          "note": args.note, "ray": args.ray, "device": str(args.device),
                          "threads": torch.get_num_threads()}


def patients_first(records) -> list[int]:
    """The images' indices in the order a run scores them: the first image of every patient (in
    image order), then every patient's second, and so on. A run stopped early then holds as many
    patients, the bootstrap's resampling units, as it can (in image order the first four test
    images are one patient's, whose intervals say nothing)."""
    seen: dict[str, int] = {}
    rank = []
    for record in records:
        rank.append(seen.get(record.patient_id, 0))
        seen[record.patient_id] = rank[-1] + 1
    return sorted(range(len(records)), key=lambda i: (rank[i], i))


def image_key(index: int, record) -> str:
    """``"0003/M01_02"``: the image's position in the run and its id (what a record is keyed by)."""
    return f"{index:04d}/{shortcut.image_id(record)}"


# --- one job, in this process or in a Ray worker -------------------------------------------------------------

def shortcut_model_and_test_images() -> tuple[xai_lab.Classifier, list]:
    """The benchmark's classifier and image pool (:data:`SHORTCUT_SOURCE`): the planted-shortcut
    model (:data:`MODEL`, trained and cached on first use) and the MSLD test images."""
    classifier, _ = shortcut.train_marked(shortcut.marked(shortcut.Mark(), ("Monkeypox",)), copies=2)
    return classifier, msld.split_records()["test"]


def select_images(pool, classes, n: int, quick: bool) -> list:
    """The run's images from ``pool``: those of ``classes`` in pool order, with ``quick`` only the
    first image of each patient (the bootstrap needs two patients for a finite interval), the first ``n``."""
    images = [r for r in pool if r.label in classes]
    if quick:
        images = list({r.patient_id: r for r in reversed(images)}.values())[::-1]
    return images[:n]


_LOADED: dict = {}


def load_inputs(source: tuple, classes, n: int, quick: bool, device: str = "cpu") -> tuple[xai_lab.Classifier, list]:
    """``(classifier, images)`` of a run: ``source`` (:data:`SHORTCUT_SOURCE`) called, its model
    moved to ``device``, its images selected (:func:`select_images`); once per process for each
    ``(source, classes, n, quick, device)``, so that a Ray worker loads them for its first job only."""
    key = (tuple(source), tuple(classes), n, quick, str(device))
    if key not in _LOADED:
        module, _, name = source[0].partition(":")
        classifier, pool = getattr(importlib.import_module(module), name)(*source[1:])
        classifier.model.to(device)
        _LOADED[key] = classifier, select_images(pool, classes, n, quick)
    return _LOADED[key]


def score_job(job: tuple[int, str], spec: dict) -> dict:
    """One record: :func:`metric_trust.score_image` of ``job = (image index, method)``, with its
    costs. ``spec``: what every job of the run shares (the source and selection of the images, the
    methods' options, metrics, settings, seed, device, threads; :func:`run`). The same function
    runs serially and in a Ray worker, which imports it by name, so their records agree."""
    index, method = job
    set_threads(spec["threads"])
    classifier, images = load_inputs(spec["source"], *spec["images"], spec["device"])
    record = images[index]
    x = shortcut.inputs(classifier, [record], shortcut.marked(shortcut.Mark(), msld.CATEGORIES)).to(spec["device"])
    mask = shortcut.mark_mask(record, shortcut.Mark(), *x.shape[-2:])
    options, metrics = spec["methods"][method], spec["metrics"]
    cpu, wall = time.process_time(), time.perf_counter()
    scores = mt.score_image(classifier, x, mask, method, options, metrics, spec["settings"], msld.POSITIVE,
                            spec["seed"] + index)
    return {"kind": "score", "image": image_key(index, record), "index": index, "file": record.path.name,
            "label": record.label, "cluster": record.patient_id, "method": method, "options": options,
            "scores": scores, "better": {name: mt.METRICS[name].better.value for name in metrics},
            "seconds": round(time.perf_counter() - wall, 3), "cpu_seconds": round(time.process_time() - cpu, 3)}


def write_outputs(out: Path, config: dict, records: list[dict], resamples: int, seed: int, run_log: dict) -> dict:
    """summary.json (coverage, truth ranking, agreement per metric) and provenance.json (run logs)."""
    methods = list(config["settings"])
    images = sorted({r["image"] for r in records})
    complete = [i for i in images if {r["method"] for r in records if r["image"] == i} >= set(methods)]
    summary = {"config": config, "coverage": {"images_planned": config["images"]["planned"],
                                              "images_started": len(images), "images_with_every_method": len(complete),
                                              "records": len(records)},
               "bootstrap": {"level": xai_lab.stats.LEVEL, "resamples": resamples, "seed": seed, "clusters": "patients"}}
    if len(complete) >= 1:
        scores = mt.TrustScores.from_records(records, methods, config["metrics"])
        summary["truth"] = {m: i.as_dict() for m, i in mt.truth_intervals(scores, resamples=resamples, seed=seed).items()}
        summary["trust"] = {name: t.as_dict() for name, t in mt.trust(scores, resamples=resamples, seed=seed).items()}
    summary = json.loads(json.dumps(summary, default=json_default))
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    path = out / "provenance.json"
    provenance = json.loads(path.read_text()) if path.exists() else {"runs": []}
    provenance.update(environment())
    provenance["runs"].append(run_log)
    provenance["total_wall_seconds"] = round(sum(r["wall_seconds"] or 0 for r in provenance["runs"]), 1)
    provenance["total_cpu_seconds_jobs"] = round(sum(r["cpu_seconds_jobs"] for r in provenance["runs"]), 1)
    path.write_text(json.dumps(provenance, indent=1) + "\n")
    return summary


def report(summary: dict) -> None:
    c = summary["coverage"]
    print(f"{c['images_with_every_method']} of {c['images_planned']} images with every method ({c['records']} records)")
    for t in summary.get("trust", {}).values():
        rho, tau = t["spearman"], t["kendall"]
        print(f"{t['label']:28s} rho {rho['value']:+.2f} [{rho['low']:+.2f}, {rho['high']:+.2f}]  "
              f"tau {tau['value']:+.2f} [{tau['low']:+.2f}, {tau['high']:+.2f}]  ({t['better']} is better)")


def main(argv=None, source: tuple = SHORTCUT_SOURCE) -> dict:
    """Run (or continue) the benchmark; ``source`` names where the classifier and the images come
    from (:data:`SHORTCUT_SOURCE`, the planted-shortcut model and the MSLD test images; tests: a toy)."""
    p = parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    args.argv = argv
    check_device(p, args.device)
    set_threads(args.threads)
    settings = mt.QUICK_SETTINGS if args.quick else mt.DEFAULT_SETTINGS
    if args.quick:
        args.n = min(args.n, QUICK["n"])
        args.methods = args.methods or choose_methods(",".join(QUICK["methods"]))
    args.methods = args.methods or choose_methods("default")
    args.metrics = args.metrics or choose_metrics("default")
    args.out = args.out or (DEFAULT_OUT / "quick" if args.quick else DEFAULT_OUT)
    _, records = load_inputs(source, args.classes, args.n, args.quick, args.device)
    if not records:
        p.error(f"no test images of {', '.join(args.classes)}")
    path, log = run(args, records, settings, source)
    config, found = read_results(path)
    config["images"]["planned"] = len(records)
    summary = write_outputs(args.out, config, found, args.resamples, args.seed, log)
    report(summary)
    if log["interrupted"]:
        raise SystemExit(130)
    return summary


if __name__ == "__main__":
    main()
