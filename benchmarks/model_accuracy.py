"""Top-1 / top-5 accuracy of a model on the 1000 ImageNet sample images (one per class).

    python benchmarks/model_accuracy.py [--model efficientnet_lite0] [--n 1000] [--batch-size 50] [--device cpu] [--threads T]

Prints JSON {"model", "n", "top1", "top5", "seconds"}.
"""
import argparse
import json
import os
import sys
import time

import torch
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_common, positive_int, set_threads  # noqa: E402

import xai_lab  # noqa: E402
from xai_lab.data import imagenet_samples  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--batch-size", type=positive_int, default=50)
    add_common(parser, n=(1000, "number of sample images (one per class, in class order)"), seed_help=None)
    args = parser.parse_args()
    set_threads(args.threads)

    clf = xai_lab.load_model(args.model)
    clf.model.to(args.device)
    records = imagenet_samples(args.n)
    top1 = top5 = 0
    start = time.perf_counter()
    for i in tqdm(range(0, len(records), args.batch_size), desc="classifying"):
        batch = records[i:i + args.batch_size]
        x = torch.stack([clf.preprocess(r.path) for r in batch])
        probs = clf.predict_proba(x)
        labels = torch.tensor([r.label for r in batch], device=probs.device)
        top = probs.topk(5, dim=1).indices
        top1 += int((top[:, 0] == labels).sum())
        top5 += int((top == labels[:, None]).any(1).sum())
    n = len(records)
    print(json.dumps({"model": args.model, "n": n, "top1": round(top1 / n, 4), "top5": round(top5 / n, 4),
                      "seconds": round(time.perf_counter() - start, 1)}))


if __name__ == "__main__":
    main()
