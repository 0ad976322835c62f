"""Figures of the MSLD classifier (msld_efficientnet_lite0) on patients it never saw, as JSON.

    python benchmarks/msld_classifier.py [--seed 0] [--n-boot 2000] [--data-dir DIR] [--cache-dir DIR] [--threads T]

Default: the test patients of ``patient_split(msld(), val=0.2, test=0.2, seed=0)``. ``--data-dir
DIR`` evaluates on ALL images of another folder with the msld-v1 layout (``images/<label>/*.jpg``,
``metadata.csv`` with ``image_id,label,patient_id[,sha256]``), e.g. the held-back independent test
set. The model comes from the cache (trained first if missing). Prints accuracy, balanced accuracy
and ROC AUC with 95 % intervals from a bootstrap over patients, the confusion matrix (rows true,
columns predicted, order Monkeypox, Others), the same per patient, and the training summary.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_common, positive_int, set_threads  # noqa: E402

from xai_lab.models import msld  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    add_common(parser, device=None, seed_help="training (augmentation) seed")
    parser.add_argument("--n-boot", type=positive_int, default=2000, help="bootstrap draws of patients")
    parser.add_argument("--data-dir", default=None, help="evaluate on all of this msld-v1-like folder")
    parser.add_argument("--cache-dir", default=None, help="where trained models are kept (default: the user cache)")
    return parser.parse_args(argv)


def evaluation_records(args: argparse.Namespace) -> tuple[list, str]:
    """(records, description): all of ``--data-dir``, or the test patients of the MSLD split."""
    if args.data_dir is not None:
        return msld.folder_records(args.data_dir), f"all of {args.data_dir}"
    settings = msld.TrainSettings(seed=args.seed)
    return (msld.split_records(None, settings)["test"],
            f"test patients of patient_split(msld(), val={settings.val}, test={settings.test}, seed={settings.split_seed})")


def _rounded(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def main(argv=None) -> dict:
    args = parse_args(argv)
    set_threads(args.threads)
    start = time.perf_counter()
    records, description = evaluation_records(args)
    classifier, info = msld.fit_or_load(msld.TrainSettings(seed=args.seed), cache_dir=args.cache_dir)
    result = msld.evaluate(classifier, records, n_boot=args.n_boot, seed=0)
    training = {k: info[k] for k in ("key", "cached", "seconds", "cpu_seconds", "step", "val_loss", "train_images", "val_images")}
    out = _rounded({"model": msld.NAME, "evaluated_on": description, **result.as_dict(), "training": training,
                    "seconds": time.perf_counter() - start})
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
