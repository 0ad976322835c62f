"""Faithfulness of explanation methods on EfficientNet-Lite0: pixel perturbation, deletion and
insertion, the sanity check, with bootstrap intervals over a fixed list of ImageNet images.

    python benchmarks/faithfulness.py [--n 200] [--methods default|cheap|all|NAME,...]
        [--out benchmarks/results/faithfulness] [--shard K/N] [--device cpu|cuda] [--threads T]
        [--sanity-images 10] [--sanity-steps 3] [--fractions 0.01,0.03,0.05,0.1] [--step 7168]
        [--seed 0] [--resamples 2000] [--limit K] [--jobs J]
    python benchmarks/faithfulness.py --merge DIR_OR_FILES... [--out DIR]

Images: ``xai_lab.data.imagenet_samples()`` (one per class, in class order), every
(1000 // n)-th one: every 5th at the default n = 200. Target: the predicted class. Per image
and method (``xai_lab.metrics.comparison.evaluate``): pixel perturbation (MoRF and LeRF x black
and mean replacement x AFOC, KL, PCUO at 1, 3, 5, 10 %), deletion and insertion AUC (7168 =
224 * 32 pixels per step: 8 steps), seconds and passes of the explanation; on the first
``--sanity-images`` images, the cascading-randomisation sanity check with ``--sanity-steps``
stages. Per method and score: mean and 95 % percentile-bootstrap interval over the images
(seeded; every method gets the same resamples).

Files under ``--out`` (a shard K/N adds ``-shard-K-of-N`` to each name): ``records.jsonl``
(one line per finished (image, method): a killed run started again skips what is there),
``summary.json`` (config, table, the finding), ``summary.csv`` (method, score, value, low,
high, n, better), ``per_image.csv``. ``--merge`` reads shard files (a folder: its ``records*.jsonl``)
and writes the same tables as one run over all their images.

The finding (Srinivas & Fleuret 2019, FullGrad, and its reproducibility study): removing the
least salient pixels and putting the image mean in their place (LeRF-mean), FullGrad changes
the output least, ahead of Grad-CAM, input gradients and random, by small margins.
``summary.json["finding"]`` checks this on ``lerf_mean_afoc@0.1``: whether FullGrad has the
lowest mean, whether its interval overlaps the others' and the paired differences.

Cost and the default list. Measured on the project machine (2-core AMD EPYC VM, one torch
thread) while it was loaded ~4.5x (other jobs), in process CPU seconds, which is roughly what
an idle machine takes in wall time (wall time under that load was 3-6x longer):

* one Lite0 forward ~0.07 s; the scores of one (image, method) pair, 38 forwards: ~2.05 s
  (pixel perturbation 4 x (1 + 4) forwards ~1.0 s; deletion + insertion at 224 * 32 pixels
  per step ~1.05 s; at 224 * 16 they take ~2.5 s).
* explanations per image: sobel 0.05, gradcam and the other gradient CAMs, cam, eigencam
  0.06-0.08, random 0.07, deconvnet 0.13, input_x_gradient 0.15, guided_backprop 0.15,
  saliency 0.17, ablationcam 0.24, smoothgradcampp (4 samples) 0.25, guided_gradcam 0.29,
  simple_fullgrad 0.43, fullgrad 0.46, smoothgrad (8) 0.75, gradient_shap (8) 1.25,
  integrated_gradients (16 steps) 2.2, deep_shap 3.8, occlusion (32 px, stride 16) 16,
  lime (200 samples) 22, rise (500 masks) 68, scorecam 150; anchors (a search of unbounded
  length) had not finished 2 images after 10 minutes of wall time under load.
* a whole run of the default list at --n 10 (60 pairs, sanity check on all 10 images):
  211 CPU s (178 user + 34 system), i.e. ~2.5 CPU s per pair all included and ~50 CPU s for
  the 60 sanity checks (3 stages).

Budget: 30 min on 2 cores = 3600 CPU s. The default list is the study's four methods plus the
Sobel control (random, sobel, saliency, input_x_gradient, gradcam, fullgrad): at n = 200,
1200 pairs x 2.5 + 50 (sanity, 10 images) + ~20 (start-up) ~ 3070 CPU s, about 26 minutes
with both cores busy, which ``--jobs 2`` does (two shards side by side, one thread each,
merged at the end); measured under load, so an idle machine should need less:

    python benchmarks/faithfulness.py --jobs 2

One process with two torch threads uses the cores less well on these small batches and may
not fit. Every further method adds ~2.3 CPU s per image (~4 min per method at n = 200 on 2
cores): ``--methods cheap`` runs every method whose explanation takes under 0.5 s (18
methods, ~80 min on 2 cores); ``--methods all`` runs every registered method with the
reduced settings of REDUCED (hours: RISE, LIME and Score-CAM alone take ~4 CPU min per image).
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
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (  # noqa: E402
    ResultsFile,
    add_common,
    check_device,
    count,
    json_default,
    merge_results,
    parse_shard,
    positive_int,
    read_results,
    record_key,
    set_threads,
    shard_slice,
)

import xai_lab  # noqa: E402
from xai_lab.data import imagenet_samples  # noqa: E402
from xai_lab.metrics.comparison import Protocol, compare, directions, evaluate, sanity_scores, summarize  # noqa: E402
from xai_lab.registry import method_spec  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "faithfulness"
MODEL = "efficientnet_lite0"
DEFAULT_METHODS = ("random", "sobel", "saliency", "input_x_gradient", "gradcam", "fullgrad")
CHEAP_METHODS = DEFAULT_METHODS + ("gradcampp", "hirescam", "xgradcam", "layercam", "cam", "eigencam",
                                   "simple_fullgrad", "guided_backprop", "deconvnet", "guided_gradcam",
                                   "ablationcam", "smoothgradcampp")
REDUCED = {
    "smoothgrad": {"n_samples": 8},
    "integrated_gradients": {"steps": 16},
    "gradient_shap": {"n_samples": 8},
    "smoothgradcampp": {"n_samples": 4},
    "occlusion": {"window": 32, "stride": 16},
    "rise": {"n_masks": 500},
    "lime": {"num_samples": 200},
}
SLOW = {
    "scorecam": "one forward pass per channel of the 1280-channel layer: ~150 s per image on one core",
    "rise": "a forward pass per mask: 500 masks (reduced from 4000): ~70 s per image",
    "lime": "a forward pass per sample plus quickshift: 200 samples (reduced from 1000): ~22 s per image",
    "anchors": "a beam search of unbounded length over sampled images: 2 images took over 10 min here (loaded machine)",
    "occlusion": "169 windows of 32 px, stride 16 (reduced from 16/8): ~16 s per image",
    "deep_shap": "~25 forward and 12 backward passes: ~4 s per image",
    "integrated_gradients": "16 steps (reduced from 50): ~2.2 s per image",
    "gradient_shap": "8 samples (reduced from 32): ~1.3 s per image",
    "smoothgrad": "8 samples (reduced from 25): ~0.75 s per image",
}
FAST_REASON = ("fast to explain, but every method adds ~2.3 CPU s of scores per image: left out to keep "
               "n = 200 under 30 min on 2 cores (--methods cheap runs them)")
FINDING_SCORE = "lerf_mean_afoc@0.1"
SHOWN = ("lerf_mean_afoc@0.1", "morf_black_afoc@0.1", "deletion_auc", "insertion_auc", "seconds")


def choose_methods(text: str) -> list[str]:
    """``default``, ``cheap``, ``all`` or a comma-separated list of registered method names."""
    if text == "default":
        names = list(DEFAULT_METHODS)
    elif text == "cheap":
        names = list(CHEAP_METHODS)
    elif text == "all":
        names = list(xai_lab.methods())
    else:
        names = [n.strip() for n in text.split(",") if n.strip()]
        if not names:
            raise argparse.ArgumentTypeError("--methods needs at least one name")
    registered = set(xai_lab.methods())
    for name in names:
        if name not in registered:
            try:
                method_spec(name)
            except ValueError as e:
                raise argparse.ArgumentTypeError(str(e)) from None
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"--methods names a method twice: {text}")
    return names


def excluded(methods) -> dict:
    """Why each registered method is not in ``methods``."""
    out = {}
    for name in xai_lab.methods():
        if name in methods:
            continue
        if name in SLOW:
            out[name] = SLOW[name]
        elif name in CHEAP_METHODS:
            out[name] = FAST_REASON
        else:
            out[name] = "not timed for this benchmark (--methods NAME runs it)"
    return out


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--fractions must be numbers separated by commas, got {text!r}") from None
    if not values or any(not 0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"--fractions must lie in (0, 1], got {text!r}")
    return values


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common(p, n=(200, "number of images (1..1000; default 200: every 5th sample)"),
               out=(None, f"output folder (default {DEFAULT_OUT}; with --merge DIR: DIR)"), shards=True,
               device="cuda" if torch.cuda.is_available() else "cpu",
               seed_help="explanation seed = seed + image index; bootstrap seed")
    p.add_argument("--methods", type=choose_methods, default=list(DEFAULT_METHODS),
                   help="default, cheap, all, or names separated by commas")
    p.add_argument("--sanity-images", type=count, default=10,
                   help="sanity check on the first this many images of the list (0: none)")
    p.add_argument("--sanity-steps", type=positive_int, default=3, help="cascade stages of the sanity check")
    p.add_argument("--fractions", type=_fractions, default=Protocol.fractions, help="pixel-perturbation fractions")
    p.add_argument("--step", type=positive_int, default=Protocol.step, help="pixels per step of deletion/insertion")
    p.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap resamples")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="run this many shards side by side (subprocesses, one torch thread each), then merge them")
    p.add_argument("--limit", type=count, default=None,
                   help="stop after this many new evaluations (a time-boxed run; run again to continue)")
    return p


def pick_images(n: int) -> list[int]:
    """Indices into ``imagenet_samples()``: every (1000 // n)-th, n of them."""
    if not 1 <= n <= 1000:
        raise ValueError(f"--n must be between 1 and 1000, got {n}")
    stride = 1000 // n
    return list(range(0, stride * n, stride))


def options_for(method: str) -> dict:
    return dict(REDUCED.get(method, {}))


def run(args, classifier=None) -> Path:
    """Evaluate the pairs of this run (or shard) that its results file lacks; returns that file."""
    set_threads(args.threads)
    images = pick_images(args.n)
    protocol = Protocol(fractions=tuple(args.fractions), step=args.step)
    config = {"benchmark": "faithfulness", "model": MODEL, "images": images, "target": "predicted class",
              "protocol": protocol.as_dict(), "seed": args.seed,
              "sanity": {"images": images[:args.sanity_images], "steps": args.sanity_steps},
              "shard": None if args.shard is None else f"{args.shard[0]}/{args.shard[1]}"}
    mine = images if args.shard is None else shard_slice(images, *args.shard)
    tag = "" if args.shard is None else f"-shard-{args.shard[0]}-of-{args.shard[1]}"
    try:
        results = ResultsFile(args.out / f"records{tag}.jsonl", config)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    for record in results.records:
        if record["method"] in args.methods and record.get("options", {}) != options_for(record["method"]):
            raise SystemExit(f"{results.path}: {record['method']} ran with options {record.get('options')}, "
                             f"now {options_for(record['method'])}; use another --out")
    sanity_set = set(config["sanity"]["images"])
    todo = {}
    for index in mine:
        evals = [m for m in args.methods if ("eval", index, m) not in results.done]
        checks = [m for m in args.methods if index in sanity_set and ("sanity", index, m) not in results.done]
        if evals or checks:
            todo[index] = (evals, checks)
    total = sum(len(e) + len(c) for e, c in todo.values())
    skipped = len(mine) * len(args.methods) + len(sanity_set & set(mine)) * len(args.methods) - total
    print(f"{len(mine)} images x {len(args.methods)} methods{' (shard ' + config['shard'] + ')' if args.shard else ''}: "
          f"{total} evaluations to run, {skipped} already in {results.path}", file=sys.stderr)
    if total == 0:
        return results.path
    if classifier is None:
        classifier = xai_lab.load_model(MODEL)
    classifier.model.to(args.device)
    samples = imagenet_samples(max(mine) + 1)
    done = 0
    with tqdm(total=total if args.limit is None else min(total, args.limit), desc=f"faithfulness{tag}",
              position=0 if args.shard is None else args.shard[0] - 1, disable=not sys.stderr.isatty()) as bar:
        for index, (evals, checks) in todo.items():
            sample = samples[index]
            x = classifier.preprocess(sample.path)
            about = {"image": index, "file": sample.path.name, "label": sample.label, "device": str(args.device)}
            for method in evals:
                if args.limit is not None and done >= args.limit:
                    break
                bar.set_postfix_str(f"image {index} {method}")
                record = evaluate(classifier, x, method, protocol, seed=args.seed + index, device=args.device,
                                  options=options_for(method))
                results.append({"kind": "eval", **about, "correct": record["target"] == sample.label, **record})
                done += 1
                bar.update()
            for method in checks:
                if args.limit is not None and done >= args.limit:
                    break
                bar.set_postfix_str(f"image {index} {method} sanity")
                target = results.done[("eval", index, method)]["target"]
                record = sanity_scores(classifier, x, method, target, steps=args.sanity_steps, seed=args.seed + index,
                                       options=options_for(method))
                results.append({"kind": "sanity", **about, **record})
                done += 1
                bar.update()
            if args.limit is not None and done >= args.limit:
                break
    if done < total:
        print(f"Stopped after {done} of {total} evaluations (--limit); run the same command again to continue.",
              file=sys.stderr)
    return results.path


def finding(records: list[dict], resamples: int, seed: int) -> dict:
    """The FullGrad study's claim checked on ``lerf_mean_afoc@0.1``, with intervals."""
    claim = ("FullGrad changes the output least when the 10 % least salient pixels are replaced by the image "
             "mean (LeRF-mean AFOC), better than Grad-CAM, input gradients and random, by small margins "
             "(Srinivas & Fleuret 2019 and its reproducibility study)")
    methods = sorted({r["method"] for r in records if r["kind"] == "eval"})
    if "fullgrad" not in methods or len(methods) < 2:
        return {"claim": claim, "available": False, "reason": "needs fullgrad and at least one other method"}
    if not any(FINDING_SCORE in r.get("scores", {}) for r in records):
        return {"claim": claim, "available": False, "reason": f"needs the score {FINDING_SCORE} (fraction 0.1, LeRF, mean)"}
    c = compare(records, FINDING_SCORE, "fullgrad", methods, resamples=resamples, seed=seed)
    others = {m: v for m, v in c["intervals"].items() if m != "fullgrad"}
    runner_up = min(others, key=lambda m: (c["better"].sort_key(others[m].value), m))
    small = c["versus"][runner_up]["intervals_overlap"]
    f = c["intervals"]["fullgrad"]

    def show(m):
        return f"{m} {c['intervals'][m].format(4)}"

    beaten = sorted(m for m, v in c["versus"].items() if v["difference_excludes_zero"] and v["difference"].value < 0)
    if c["is_best"]:
        verdict = (f"Holds: FullGrad has the lowest {FINDING_SCORE}, {f.format(4)}; "
                   f"the next best is {show(runner_up)}: " +
                   ("the intervals overlap, so the difference is small, as in the study." if small else
                    "the intervals do not overlap, a clearer margin than the study's."))
    else:
        verdict = (f"Does not hold for EfficientNet-Lite0: {show(c['best'])} is lower than FullGrad's "
                   f"{f.format(4)}; the intervals "
                   + ("overlap." if c["versus"][c["best"]]["intervals_overlap"] else "do not overlap."))
    verdict += f" Paired differences exclude zero in FullGrad's favour against: {', '.join(beaten) or 'none'}."
    by_fraction = {}
    for score in sorted({s for r in records for s in r.get("scores", {}) if s.startswith("lerf_mean_afoc@")}):
        by_fraction[score] = compare(records, score, "fullgrad", methods, resamples=resamples, seed=seed)["best"]
    return {"claim": claim, "available": True, **c, "fullgrad_lowest": c["is_best"], "runner_up": runner_up,
            "differences_small": small, "fullgrad_clearly_better_than": beaten, "best_by_fraction": by_fraction,
            "holds": c["is_best"], "verdict": verdict}


def write_outputs(out: Path, tag: str, config: dict, records: list[dict], resamples: int, seed: int,
                  extra: dict, expected_methods=()) -> dict:
    """summary{tag}.json, summary{tag}.csv and per_image{tag}.csv from the records. The run is
    ``complete`` when every image of the config (or shard) has every method of the records and
    of ``expected_methods``, and its sanity images their sanity records."""
    out.mkdir(parents=True, exist_ok=True)
    methods = sorted({r["method"] for r in records} | set(expected_methods))
    better = directions(records)
    table = {method: {score: {**interval.as_dict(), "better": better.get(score)} for score, interval in scores.items()}
             for method, scores in summarize(records, methods, resamples=resamples, seed=seed).items()}
    images = config["images"] if not config.get("shard") else shard_slice(config["images"], *parse_shard(config["shard"]))
    checked = [i for i in config["sanity"]["images"] if i in images]
    expected = {("eval", i, m) for i in images for m in methods} | {("sanity", i, m) for i in checked for m in methods}
    complete = expected <= {record_key(r) for r in records}
    options = {}
    for r in records:
        options.setdefault(r["method"], r.get("options", {}))
    sanity_layers = next((r["layers"] for r in records if r["kind"] == "sanity"), None)
    summary = {
        "config": {k: v for k, v in config.items() if k != "shard"},
        "shard": config.get("shard"),
        "complete": complete,
        "images_evaluated": len({r["image"] for r in records if r["kind"] == "eval"}),
        "methods": {m: {"family": method_spec(m).family, "options": options.get(m, options_for(m))} for m in methods},
        "excluded": excluded(methods),
        "sanity": {"images": sorted({r["image"] for r in records if r["kind"] == "sanity"}), "layers": sanity_layers},
        "bootstrap": {"level": 0.95, "resamples": resamples, "seed": seed},
        "table": table,
        "finding": finding(records, resamples, seed),
        **extra,
    }
    summary = json.loads(json.dumps(summary, default=json_default))   # what the file holds: intervals as dicts
    with open(out / f"summary{tag}.json", "w") as fh:
        json.dump(summary, fh, indent=1)
    with open(out / f"summary{tag}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "score", "value", "low", "high", "n", "better"])
        for method, scores in table.items():
            for score, s in scores.items():
                w.writerow([method, score, repr(s["value"]), repr(s["low"]), repr(s["high"]), s["n"], s["better"]])
    score_names = sorted({s for r in records for s in r.get("scores", {})})
    fields = ["kind", "image", "file", "label", "method", "target", "correct", "seconds", "forward_passes",
              "backward_passes", "eval_seconds", "sanity_seconds"]
    with open(out / f"per_image{tag}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(fields + score_names)
        for r in sorted(records, key=lambda r: (r["image"], r["method"], r["kind"])):
            w.writerow([r.get(k, "") for k in fields] + [repr(r["scores"][s]) if s in r["scores"] else "" for s in score_names])
    return summary


def report(summary: dict, out: Path, tag: str) -> None:
    table = summary["table"]
    shown = SHOWN + (f"sanity_spearman@{summary['config']['sanity']['steps']}",)
    print(f"{'method':18s}" + "".join(f"{s:>32s}" for s in shown))
    for method, scores in table.items():
        cells = []
        for s in shown:
            c = scores.get(s)
            cells.append(f"{c['value']:.4f} [{c['low']:.4f}, {c['high']:.4f}]".rjust(32) if c else " " * 32)
        print(f"{method:18s}" + "".join(cells))
    f = summary["finding"]
    print("Finding:", f["verdict"] if f.get("available") else f"not available ({f['reason']})")
    print(f"Wrote {out}/summary{tag}.json, summary{tag}.csv, per_image{tag}.csv"
          + ("" if summary["complete"] else " (incomplete: run again to finish)"))


def merge(paths: list[Path], out: Path | None, resamples: int, seed: int, extra: dict | None = None) -> dict:
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
    if info["duplicates_dropped"]:
        print(f"--merge: {info['duplicates_dropped']} records were in more than one file; kept the first",
              file=sys.stderr)
    if out is None:
        out = paths[0] if len(paths) == 1 and paths[0].is_dir() else DEFAULT_OUT
    summary = write_outputs(out, "", config, records, resamples, seed, {"merged_from": info["files"], **(extra or {})})
    report(summary, out, "")
    return summary


def shard_argv(argv: list[str], k: int, jobs: int, out: Path) -> list[str]:
    """The arguments of job ``k`` of ``jobs``: ``argv`` without ``--jobs``, ``--threads``,
    ``--limit`` and ``--out``, plus its shard, one torch thread and the output folder."""
    dropped = ("--jobs", "--threads", "--limit", "--out")
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in dropped:
            skip = True
        elif not a.startswith(tuple(d + "=" for d in dropped)):
            kept.append(a)
    return kept + ["--shard", f"{k}/{jobs}", "--threads", "1", "--out", str(out)]


def run_jobs(argv: list[str], args) -> dict:
    """Run ``args.jobs`` shards as subprocesses of this script at once, wait, and merge them."""
    import subprocess

    start = time.perf_counter()
    children = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *shard_argv(argv, k, args.jobs, args.out)])
                for k in range(1, args.jobs + 1)]
    failed = [k for k, child in enumerate(children, 1) if child.wait() != 0]
    if failed:
        raise SystemExit(f"--jobs: shard(s) {', '.join(f'{k}/{args.jobs}' for k in failed)} failed; "
                         "run the same command again to resume")
    files = [args.out / f"records-shard-{k}-of-{args.jobs}.jsonl" for k in range(1, args.jobs + 1)]
    return merge(files, args.out, args.resamples, args.seed,
                 {"run": {"seconds": round(time.perf_counter() - start, 1), "jobs": args.jobs, "threads": 1,
                          "device": str(args.device), "cpu_count": os.cpu_count()}})


def main(argv=None, classifier=None) -> dict:
    p = parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    if args.merge is not None:
        if args.shard is not None or args.limit is not None or args.jobs > 1:
            p.error("--merge combines finished files: it takes no --shard, --jobs or --limit")
        return merge(args.merge, args.out, args.resamples, args.seed)
    if args.out is None:
        args.out = DEFAULT_OUT
    if args.jobs > 1 and (args.shard is not None or args.limit is not None):
        p.error("--jobs makes its own shards and runs them to the end: drop --shard and --limit")
    if args.jobs > args.n:
        p.error(f"--jobs {args.jobs}: more jobs than images (--n {args.n})")
    try:
        pick_images(args.n)
    except ValueError as e:
        p.error(str(e))
    if args.shard is not None and args.shard[1] > args.n:
        p.error(f"--shard {args.shard[0]}/{args.shard[1]}: more shards than images (--n {args.n})")
    check_device(p, args.device)
    leftover = excluded(args.methods)
    if list(args.methods) == list(DEFAULT_METHODS) and (args.shard is None or args.shard[0] == 1):
        fast = [name for name in leftover if name in CHEAP_METHODS]
        print("Default methods: " + ", ".join(DEFAULT_METHODS) + ". Left out:", file=sys.stderr)
        if fast:
            print(f"  {', '.join(fast)}: {FAST_REASON}", file=sys.stderr)
        for name, why in leftover.items():
            if name not in fast:
                print(f"  {name}: {why}", file=sys.stderr)
    reduced = {m: REDUCED[m] for m in args.methods if m in REDUCED}
    if reduced:
        print(f"Reduced settings: {reduced}", file=sys.stderr)
    if args.jobs > 1:
        return run_jobs(argv, args)
    start = time.perf_counter()
    path = run(args, classifier)
    config, records = read_results(path)
    tag = path.stem[len("records"):]
    extra = {"results_file": str(path), "run": {"seconds": round(time.perf_counter() - start, 1),
                                                 "threads": torch.get_num_threads(), "device": str(args.device),
                                                 "cpu_count": os.cpu_count()}}
    summary = write_outputs(args.out, tag, config, records, args.resamples, args.seed, extra, args.methods)
    report(summary, args.out, tag)
    return summary


if __name__ == "__main__":
    main()
