"""Training the MSLD classifier (transfer learning by a linear probe, Kornblith et al. 2019, "Do
Better ImageNet Models Transfer Better?"), and the cached model.

The backbone stays frozen; every training image is seen as it is plus ``copies - 1`` augmented
views (:mod:`.augmentation`), each mapped once to its pooled ``features`` vector ``phi(x) =
mean_{h,w} features(x)`` (1280 numbers). The head is multinomial logistic regression on
standardized features, ``z = (phi - mu) / sigma``,

    min_{W,b}  mean_i CE(W z_i + b, y_i) + (weight_decay / 2) ||W||^2,

fitted by full-batch Adam from zero and stopped at the step with the lowest cross-entropy on the
validation patients; the standardization is then folded into the final ``nn.Linear``
(``W' = W / sigma``, ``b' = b - W' mu``), so the result is a plain EfficientNet-Lite0.

:func:`fit_or_load` keeps the weights in ``cache_dir()/models/msld_<key>.pt`` through
:mod:`xai_lab.models.cache`; the key hashes the training and validation files, the
:class:`TrainSettings`, :data:`RECIPE` and the package version, so any change retrains and
chapters share one model.
"""
from __future__ import annotations

import math
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .. import LITE_MEAN, LITE_STD, Classifier, cache, make_preprocess
from ..efficientnet_lite import EfficientNetLite, efficientnet_lite0
from .augmentation import augment
from .data import PixelTransform, center_view, label_indices, load_pixels, split_records
from .settings import CATEGORIES, DEFAULT_SETTINGS, IMAGE_SIZE, NAME, TrainSettings

RECIPE = "clean view + augmented views, frozen backbone, logistic head on pooled features"  # in the cache key


def cache_key(settings: TrainSettings, records=None) -> str:
    """16 hex digits of sha256 over: the sha256 of every training and validation file (with its
    split), the settings, the training recipe and the package version."""
    from ... import __version__
    from ...data import sha256_file

    parts = split_records(records, settings)
    files = sorted((split, r.image_id or r.path.name, sha256_file(r.path))
                   for split in ("train", "val") for r in parts[split])
    return cache.key({"files": files, "settings": asdict(settings), "recipe": RECIPE, "version": __version__})


def cache_path(settings: TrainSettings = DEFAULT_SETTINGS, records=None, cache_dir=None) -> Path:
    return cache.models_dir(cache_dir) / f"msld_{cache_key(settings, records)}.pt"


@contextmanager
def deterministic(threads: int):
    """Fixed thread count and deterministic kernels inside; the caller's settings restored after."""
    old = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), \
        torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old[0])
        torch.use_deterministic_algorithms(old[1], warn_only=old[2])


@torch.no_grad()
def pooled_features(backbone: EfficientNetLite, records, settings: TrainSettings, generator: torch.Generator | None,
                    copies: int = 1, progress: bool = False, desc: str = "features",
                    transform: PixelTransform | None = None) -> torch.Tensor:
    """``mean_{h,w} features(x)`` [copies * len(records), 1280], copy-major. With a generator every
    copy is an :func:`augment` view; without, the classifier's preprocessing (the image as is).
    ``transform(pixels, record)`` edits each image (pixels [3, H, W] in [0, 1]) before either."""
    mean = torch.tensor(LITE_MEAN).view(3, 1, 1)
    std = torch.tensor(LITE_STD).view(3, 1, 1)
    if generator is not None:
        images = [load_pixels(r, transform) for r in records]
    elif transform is not None:
        images = [(center_view(load_pixels(r, transform)) - mean) / std for r in records]
    else:
        preprocess = make_preprocess(LITE_MEAN, LITE_STD, IMAGE_SIZE, IMAGE_SIZE)
        images = [preprocess(r.path) for r in records]
    out = []
    with tqdm(total=copies * len(records), desc=desc, disable=not progress, leave=False) as bar:
        for _ in range(copies):
            views = images if generator is None else [(augment(im, generator, settings) - mean) / std for im in images]
            for start in range(0, len(views), settings.batch_size):
                batch = torch.stack(views[start:start + settings.batch_size])
                out.append(backbone.pool(backbone.features(batch)).flatten(1))
                bar.update(len(batch))
    return torch.cat(out) if out else torch.zeros(0, backbone.classifier.in_features)


def fit_head(train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
             settings: TrainSettings) -> tuple[nn.Linear, dict]:
    """Logistic regression on standardized features (full-batch Adam from zero, L2 penalty
    ``weight_decay / 2 * ||W||^2``), kept at the step of least validation cross-entropy; returns
    the equivalent ``nn.Linear`` on raw features and {step, val_loss, train_loss}."""
    mu = train_x.mean(0)
    sigma = train_x.std(0).clamp_min(1e-6)
    z_train, z_val = (train_x - mu) / sigma, (val_x - mu) / sigma
    weight = torch.zeros(len(CATEGORIES), train_x.shape[1], requires_grad=True)
    bias = torch.zeros(len(CATEGORIES), requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=settings.lr)
    best = (math.inf, 0, weight.detach().clone(), bias.detach().clone(), math.nan)
    for step in range(1, settings.max_steps + 1):
        loss = F.cross_entropy(z_train @ weight.T + bias, train_y)
        optimizer.zero_grad()
        (loss + settings.weight_decay / 2 * weight.pow(2).sum()).backward()
        optimizer.step()
        with torch.no_grad():
            val_loss = float(F.cross_entropy(z_val @ weight.T + bias, val_y))
        if val_loss < best[0]:
            best = (val_loss, step, weight.detach().clone(), bias.detach().clone(), float(loss.detach()))
        elif step - best[1] >= settings.patience:
            break
    val_loss, step, w, b, train_loss = best
    head = nn.Linear(train_x.shape[1], len(CATEGORIES))
    with torch.no_grad():
        head.weight.copy_(w / sigma)
        head.bias.copy_(b - head.weight @ mu)
    return head, {"step": step, "val_loss": val_loss, "train_loss": train_loss}


def imagenet_backbone() -> EfficientNetLite:
    from .. import lite0_imagenet_weights

    model = efficientnet_lite0()
    model.load_state_dict(lite0_imagenet_weights(), strict=True)
    return model.eval()


def train(settings: TrainSettings = DEFAULT_SETTINGS, records=None, progress: bool | None = None,
          transform: PixelTransform | None = None) -> tuple[EfficientNetLite, dict]:
    """Fit the two-class model on the training patients (early stopping on the validation
    patients); the test patients are never read. ``transform(pixels, record)`` edits every
    training and validation image first (nothing is cached then: see :func:`fit_or_load`).
    ``records`` may also be a split already made, ``{"train": [...], "val": [...], ...}`` (ROAR
    trains on a subsample of the patients that way). Returns (model in eval mode, info)."""
    if progress is None:
        progress = sys.stderr.isatty()
    if settings.copies < 1:
        raise ValueError(f"copies must be at least 1 (the image itself), got {settings.copies}")
    parts = records if isinstance(records, dict) else split_records(records, settings)
    for name in ("train", "val"):
        if {r.label for r in parts[name]} != set(CATEGORIES):
            raise ValueError(f"The {name} patients must include both classes; got {len(parts[name])} images")
    start, cpu_start = time.perf_counter(), time.process_time()
    with deterministic(settings.threads):
        model = imagenet_backbone()
        generator = torch.Generator().manual_seed(settings.seed)
        train_x = torch.cat([
            pooled_features(model, parts["train"], settings, None, 1, progress, "MSLD training images", transform),
            pooled_features(model, parts["train"], settings, generator, settings.copies - 1, progress,
                            "MSLD augmented views", transform),
        ])
        val_x = pooled_features(model, parts["val"], settings, None, 1, progress, "MSLD validation", transform)
        train_y = label_indices(parts["train"]).repeat(settings.copies)
        head, fit = fit_head(train_x, train_y, val_x, label_indices(parts["val"]), settings)
        model.classifier = nn.Linear(head.in_features, len(CATEGORIES))
        model.classifier.load_state_dict(head.state_dict())
    info = {**fit, "seconds": round(time.perf_counter() - start, 1),
            "cpu_seconds": round(time.process_time() - cpu_start, 1),
            "train_images": len(parts["train"]), "val_images": len(parts["val"]),
            "train_patients": sorted({r.patient_id for r in parts["train"]}),
            "val_patients": sorted({r.patient_id for r in parts["val"]}),
            "settings": asdict(settings)}
    return model.eval(), info


def as_classifier(model: EfficientNetLite) -> Classifier:
    """The two-class network (e.g. from :func:`train`) as a :class:`Classifier` with MSLD preprocessing."""
    return Classifier(NAME, model, list(CATEGORIES), "features", LITE_MEAN, LITE_STD, head="classifier",
                      preprocess=make_preprocess(LITE_MEAN, LITE_STD, IMAGE_SIZE, IMAGE_SIZE))


def fit_or_load(settings: TrainSettings = DEFAULT_SETTINGS, records=None, cache_dir=None, force: bool = False,
                progress: bool | None = None) -> tuple[Classifier, dict]:
    """The trained classifier from the cache (:func:`xai_lab.models.cache.fit_or_load`: a
    damaged or foreign file is reported and retrained), or trained now and cached. ``info`` has
    the training summary plus ``cached`` (True when nothing was trained), ``path`` and ``key``."""
    path = cache_path(settings, records, cache_dir)

    def train_now():
        model, info = train(settings, records, progress)
        return model, {**info, "key": path.stem.split("_", 1)[1]}

    model, info = cache.fit_or_load(path, lambda: efficientnet_lite0(num_classes=len(CATEGORIES)), train_now, force)
    return as_classifier(model), info


def describe_training(info: dict) -> str:
    """The ``info`` of :func:`train` / :func:`fit_or_load` as a few lines of text: how long training
    took, the images and views, the settings that shape the head, and where early stopping kept
    the weights (step, validation and training cross-entropy)."""
    settings = info["settings"]
    shown = {k: settings[k] for k in ("copies", "crop_scale", "jitter", "weight_decay", "lr")}
    return (f"training took {info['seconds']} s when it ran; training: {info['train_images']} images x "
            f"{settings['copies']} views, validation: {info['val_images']} images\n"
            f"settings: {shown}\n"
            f"early stopping at step {info['step']} of at most {settings['max_steps']}: "
            f"validation cross-entropy {info['val_loss']:.3f}, training cross-entropy {info['train_loss']:.3f}")


def load(weights="imagenet") -> Classifier:
    """``load_model`` entry: ``"imagenet"`` = fine-tuned from the ImageNet weights (trained on first
    use, then cached); ``None`` = the same two-class network with random weights (untrained)."""
    if weights is None:
        return as_classifier(efficientnet_lite0(num_classes=len(CATEGORIES)))
    return fit_or_load()[0]
