"""EfficientNet-Lite0 fine-tuned to tell monkeypox lesions from other rashes (MSLD v1).

``load_model("msld_efficientnet_lite0")`` is the ImageNet EfficientNet-Lite0 with a new
two-class head (``categories = ["Monkeypox", "Others"]``), trained on the *training patients*
of ``patient_split(msld(), val=0.2, test=0.2, seed=0)`` the first time it is asked for and kept
in ``cache_dir()/models/msld_<key>.pt``; the key hashes the training and validation files, the
:class:`TrainSettings` and the package version, so any change retrains and chapters share one model.

Training (transfer learning by a linear probe, Kornblith et al. 2019, "Do Better ImageNet Models
Transfer Better?"): the backbone stays frozen; every training image is seen as it is plus
``copies - 1`` augmented views (random resized crop, flips, brightness/contrast/saturation
jitter, all drawn from one seeded ``torch.Generator``), each mapped once to its pooled ``features`` vector
``phi(x) = mean_{h,w} features(x)`` (1280 numbers). The head is multinomial logistic regression
on standardised features, ``z = (phi - mu) / sigma``,

    min_{W,b}  mean_i CE(W z_i + b, y_i) + (weight_decay / 2) ||W||^2,

fitted by full-batch Adam from zero and stopped at the step with the lowest cross-entropy on the
validation patients; the standardisation is then folded into the final ``nn.Linear``
(``W' = W / sigma``, ``b' = b - W' mu``), so the result is a plain EfficientNet-Lite0.

Preprocessing: MSLD images are 224 x 224, so the classifier resizes the short side to 224 and
centre-crops 224 (the identity on MSLD) instead of ImageNet's 256 -> 224, which would cut 12.5 %
off every border, where lesions often are.

Evaluation (:func:`evaluate`): accuracy, balanced accuracy and ROC AUC over images, each with a
95 % percentile bootstrap interval that resamples *patients* with replacement (images of one
patient are not independent), and the confusion matrix.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import LITE_MEAN, LITE_STD, Classifier, make_preprocess
from .efficientnet_lite import EfficientNetLite, efficientnet_lite0

NAME = "msld_efficientnet_lite0"
CATEGORIES = ["Monkeypox", "Others"]
POSITIVE = "Monkeypox"
IMAGE_SIZE = 224
RECIPE = "clean view + augmented views, frozen backbone, logistic head on pooled features"  # in the cache key


@dataclass(frozen=True)
class TrainSettings:
    """Everything that determines the trained weights (all of it goes into the cache key).

    ``seed`` drives the augmentation; the patient split uses its own ``split_seed`` so the test
    patients stay the same for every training seed. The defaults had the least validation loss
    among weight_decay in {0.01, 0.1, 0.3, 1, 3}, lr in {0.001, 0.003, 0.01}, 4 or 8 views, with or
    without the unaugmented view; fine-tuning the last block or the head convolution as well
    improved nothing measurable on the 37 validation images and cost 4 to 15 s of CPU per epoch.
    """

    seed: int = 0
    copies: int = 8                  # views of each training image: itself and copies - 1 augmented ones
    crop_scale: tuple = (0.5, 1.0)   # random resized crop: fraction of the image area
    crop_ratio: tuple = (3 / 4, 4 / 3)
    jitter: float = 0.2              # brightness/contrast/saturation factors in [1 - j, 1 + j]
    weight_decay: float = 0.3
    lr: float = 0.01
    max_steps: int = 1000
    patience: int = 100              # stop when the validation loss has not improved for this many steps
    val: float = 0.2
    test: float = 0.2
    split_seed: int = 0
    threads: int = 1                 # torch threads while training: fixed so sums are always reduced alike
    batch_size: int = 16


# ----------------------------------------------------------------------------- data

def split_records(records=None, settings: TrainSettings = TrainSettings()) -> dict:
    """``patient_split`` of the MSLD records (default: all of ``data.msld()``) with the settings' fractions."""
    from ..data import msld, patient_split

    return patient_split(msld() if records is None else records, val=settings.val, test=settings.test,
                         seed=settings.split_seed)


def folder_records(root) -> list:
    """Records of a folder laid out like ``msld-v1``: ``metadata.csv`` with columns
    ``image_id,label,patient_id[,sha256]`` and images at ``images/<label>/<image_id>.jpg``.
    Files with a ``sha256`` are checked against it."""
    from ..data import DataError, ImageRecord, _sha256

    root = Path(root)
    meta = root / "metadata.csv"
    if not meta.is_file():
        raise DataError(f"No metadata.csv in {root} (expected columns image_id,label,patient_id[,sha256])")
    with open(meta, newline="") as fh:
        rows = list(csv.DictReader(fh))
    missing = {"image_id", "label", "patient_id"} - set(rows[0] if rows else {})
    if missing:
        raise DataError(f"{meta} lacks the column(s) {', '.join(sorted(missing))}")
    records = []
    for row in rows:
        if row["label"] not in CATEGORIES:
            raise DataError(f"{meta}: label {row['label']!r} of {row['image_id']} is not one of {CATEGORIES}")
        path = root / "images" / row["label"] / f"{row['image_id']}.jpg"
        if not path.is_file():
            raise DataError(f"Missing image {path} (listed in {meta})")
        if row.get("sha256") and _sha256(path) != row["sha256"]:
            raise DataError(f"{path} does not match the sha256 in {meta}")
        records.append(ImageRecord(path=path, label=row["label"], patient_id=row["patient_id"], image_id=row["image_id"]))
    return records


def _labels(records) -> torch.Tensor:
    return torch.tensor([CATEGORIES.index(r.label) for r in records])


PixelTransform = Callable[[torch.Tensor, object], torch.Tensor]
"""``transform(pixels, record) -> pixels``: edits one image ([3, H, W] in [0, 1]) before the
model sees it, e.g. plants a mark or removes salient pixels (the shortcut and ROAR experiments)."""


def _pixels(record, transform: PixelTransform | None = None) -> torch.Tensor:
    """The image as a float tensor [3, H, W] in [0, 1], unresized, edited by ``transform``."""
    from torchvision.transforms.functional import to_tensor

    pixels = to_tensor(record.load())
    return pixels if transform is None else transform(pixels, record).clamp(0, 1)


def _centre_view(pixels: torch.Tensor, size: int = IMAGE_SIZE) -> torch.Tensor:
    """The classifier's geometry on a pixel tensor: short side resized to ``size``, centre crop
    (the identity on MSLD's 224 x 224 images)."""
    import torchvision.transforms.functional as TF

    if min(pixels.shape[1:]) != size:
        pixels = TF.resize(pixels, size, antialias=True)
    return TF.center_crop(pixels, [size, size])


# ----------------------------------------------------------------------------- augmentation

def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def random_crop_box(height: int, width: int, generator: torch.Generator, scale=(0.5, 1.0),
                    ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random crop with area fraction in ``scale`` and log-uniform aspect
    ratio w/h in ``ratio`` (Szegedy et al. 2015's "Inception" crop); the whole image after 10 misses."""
    for _ in range(10):
        area = height * width * _uniform(generator, *scale)
        aspect = math.exp(_uniform(generator, math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(height - h + 1, (), generator=generator))
            left = int(torch.randint(width - w + 1, (), generator=generator))
            return top, left, h, w
    return 0, 0, height, width


def augment(pixels: torch.Tensor, generator: torch.Generator, settings: TrainSettings = TrainSettings(),
            size: int = IMAGE_SIZE) -> torch.Tensor:
    """One random view [3, size, size] of an image [3, H, W] in [0, 1]: resized crop, horizontal
    and vertical flips (p = 1/2 each: lesions have no up or left), then brightness, contrast and
    saturation scaled by factors uniform in [1 - jitter, 1 + jitter]. All draws use ``generator``."""
    import torchvision.transforms.functional as TF

    top, left, h, w = random_crop_box(pixels.shape[1], pixels.shape[2], generator, settings.crop_scale,
                                      settings.crop_ratio)
    x = TF.resized_crop(pixels, top, left, h, w, [size, size], antialias=True)
    if float(torch.rand((), generator=generator)) < 0.5:
        x = x.flip(-1)
    if float(torch.rand((), generator=generator)) < 0.5:
        x = x.flip(-2)
    low, high = 1 - settings.jitter, 1 + settings.jitter
    x = TF.adjust_brightness(x, _uniform(generator, low, high))
    x = TF.adjust_contrast(x, _uniform(generator, low, high))
    x = TF.adjust_saturation(x, _uniform(generator, low, high))
    return x.clamp(0, 1)


# ----------------------------------------------------------------------------- training

def _cache_dir(cache_dir=None) -> Path:
    from ..data import cache_dir as user_cache

    return Path(cache_dir) if cache_dir is not None else user_cache() / "models"


def cache_key(settings: TrainSettings, records=None) -> str:
    """16 hex digits of sha256 over: the sha256 of every training and validation file (with its
    split), the settings, the training recipe and the package version."""
    from .. import __version__
    from ..data import _sha256

    parts = split_records(records, settings)
    files = sorted((split, r.image_id or r.path.name, _sha256(r.path)) for split in ("train", "val") for r in parts[split])
    payload = json.dumps({"files": files, "settings": asdict(settings), "recipe": RECIPE, "version": __version__},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def cache_path(settings: TrainSettings = TrainSettings(), records=None, cache_dir=None) -> Path:
    return _cache_dir(cache_dir) / f"msld_{cache_key(settings, records)}.pt"


@contextmanager
def _deterministic(threads: int):
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
        images = [_pixels(r, transform) for r in records]
    elif transform is not None:
        images = [(_centre_view(_pixels(r, transform)) - mean) / std for r in records]
    else:
        preprocess = make_preprocess(LITE_MEAN, LITE_STD, IMAGE_SIZE, IMAGE_SIZE)
        images = [preprocess(r.path) for r in records]
    out = []
    with tqdm(total=copies * len(records), desc=desc, disable=not progress, leave=False) as bar:
        for _ in range(copies):
            views = [(augment(im, generator, settings) - mean) / std for im in images] if generator is not None else images
            for start in range(0, len(views), settings.batch_size):
                batch = torch.stack(views[start:start + settings.batch_size])
                out.append(backbone.pool(backbone.features(batch)).flatten(1))
                bar.update(len(batch))
    return torch.cat(out) if out else torch.zeros(0, backbone.classifier.in_features)


def fit_head(train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
             settings: TrainSettings) -> tuple[nn.Linear, dict]:
    """Logistic regression on standardised features (full-batch Adam from zero, L2 penalty
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


def _imagenet_backbone() -> EfficientNetLite:
    from . import _lite0_imagenet_weights

    model = efficientnet_lite0()
    model.load_state_dict(_lite0_imagenet_weights(), strict=True)
    return model.eval()


def train(settings: TrainSettings = TrainSettings(), records=None, progress: bool | None = None,
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
    with _deterministic(settings.threads):
        model = _imagenet_backbone()
        generator = torch.Generator().manual_seed(settings.seed)
        train_x = torch.cat([
            pooled_features(model, parts["train"], settings, None, 1, progress, "MSLD training images", transform),
            pooled_features(model, parts["train"], settings, generator, settings.copies - 1, progress,
                            "MSLD augmented views", transform),
        ])
        val_x = pooled_features(model, parts["val"], settings, None, 1, progress, "MSLD validation", transform)
        train_y = _labels(parts["train"]).repeat(settings.copies)
        head, fit = fit_head(train_x, train_y, val_x, _labels(parts["val"]), settings)
        model.classifier = nn.Linear(head.in_features, len(CATEGORIES))
        model.classifier.load_state_dict(head.state_dict())
    info = {**fit, "seconds": round(time.perf_counter() - start, 1), "cpu_seconds": round(time.process_time() - cpu_start, 1),
            "train_images": len(parts["train"]), "val_images": len(parts["val"]),
            "train_patients": sorted({r.patient_id for r in parts["train"]}),
            "val_patients": sorted({r.patient_id for r in parts["val"]}),
            "settings": asdict(settings)}
    return model.eval(), info


def as_classifier(model: EfficientNetLite) -> Classifier:
    """The two-class network (e.g. from :func:`train`) as a :class:`Classifier` with MSLD preprocessing."""
    return Classifier(NAME, model, list(CATEGORIES), "features", LITE_MEAN, LITE_STD, head="classifier",
                      preprocess=make_preprocess(LITE_MEAN, LITE_STD, IMAGE_SIZE, IMAGE_SIZE))


def fit_or_load(settings: TrainSettings = TrainSettings(), records=None, cache_dir=None, force: bool = False,
                progress: bool | None = None) -> tuple[Classifier, dict]:
    """The trained classifier from the cache, or trained now and cached. ``info`` has the training
    summary plus ``cached`` (True when nothing was trained), ``path`` and ``key``."""
    path = cache_path(settings, records, cache_dir)
    if path.is_file() and not force:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model = efficientnet_lite0(num_classes=len(CATEGORIES))
        model.load_state_dict(saved["state_dict"], strict=True)
        info = json.loads(saved["info"])
        return as_classifier(model), {**info, "cached": True, "path": str(path)}
    model, info = train(settings, records, progress)
    info["key"] = path.stem.split("_", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save({"state_dict": model.state_dict(), "info": json.dumps(info)}, partial)
    os.replace(partial, path)
    return as_classifier(model), {**info, "cached": False, "path": str(path)}


def load(weights="imagenet") -> Classifier:
    """``load_model`` entry: ``"imagenet"`` = fine-tuned from the ImageNet weights (trained on first
    use, then cached); ``None`` = the same two-class network with random weights (untrained)."""
    if weights is None:
        return as_classifier(efficientnet_lite0(num_classes=len(CATEGORIES)))
    return fit_or_load()[0]


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def predict(classifier: Classifier, records, batch_size: int = 16, progress: bool | None = None,
            transform: PixelTransform | None = None) -> torch.Tensor:
    """P(Monkeypox) [N] for each record, with the classifier's own preprocessing (after
    ``transform(pixels, record)`` when one is given)."""
    if progress is None:
        progress = sys.stderr.isatty()
    positive = classifier.categories.index(POSITIVE)
    out = []
    for start in tqdm(range(0, len(records), batch_size), desc="MSLD predictions", disable=not progress, leave=False):
        x = torch.stack([classifier.preprocess(r.path) if transform is None
                         else classifier.from_pixels(_centre_view(_pixels(r, transform)))
                         for r in records[start:start + batch_size]])
        out.append(classifier.predict_proba(x)[:, positive].cpu())
    return torch.cat(out)


def weighted_metrics(weights: torch.Tensor, positive: torch.Tensor, score: torch.Tensor,
                     predicted: torch.Tensor) -> dict[str, torch.Tensor]:
    """Accuracy, balanced accuracy ``(TPR + TNR) / 2`` and ROC AUC of a set in which image i
    appears ``weights[b, i]`` times, for every row b of ``weights`` [B, N] at once.

    AUC (Mann-Whitney): ``sum_{i pos, j neg} w_i w_j [s_i > s_j] + 1/2 [s_i = s_j]`` divided by
    ``(sum_pos w)(sum_neg w)``. A row without positives or negatives gives NaN where undefined.
    """
    w = weights.double()
    pos = positive.double()
    correct = (predicted == positive).double()
    w_pos, w_neg = w * pos, w * (1 - pos)
    n_pos, n_neg = w_pos.sum(1), w_neg.sum(1)
    s = score.double()
    beats = (s[:, None] > s[None, :]).double() + 0.5 * (s[:, None] == s[None, :]).double()
    return {
        "accuracy": (w * correct).sum(1) / w.sum(1),
        "balanced_accuracy": ((w_pos * correct).sum(1) / n_pos + (w_neg * correct).sum(1) / n_neg) / 2,
        "roc_auc": torch.einsum("bi,ij,bj->b", w_pos, beats, w_neg) / (n_pos * n_neg),
    }


def scores(positive: torch.Tensor, score: torch.Tensor, groups: Sequence[str], n_boot: int = 2000,
           seed: int = 0) -> dict:
    """Metrics of scores ``score`` [N] (predicted positive when score >= 1/2) against ``positive``
    [N] (bool), each as {"value", "ci95"}: a percentile bootstrap over the distinct ``groups``
    (patients), drawn with replacement ``n_boot`` times from a generator seeded ``seed``. Draws
    lacking a class are left out of the intervals (``undefined_draws`` counts them)."""
    positive, score = positive.bool(), score.double()
    predicted = score >= 0.5
    names = sorted(set(groups))
    group_of = torch.tensor([names.index(g) for g in groups])
    point = weighted_metrics(torch.ones(1, len(score)), positive, score, predicted)
    generator = torch.Generator().manual_seed(seed)
    drawn = torch.randint(len(names), (n_boot, len(names)), generator=generator)
    counts = torch.zeros(n_boot, len(names)).scatter_add_(1, drawn, torch.ones(n_boot, len(names)))
    boot = weighted_metrics(counts[:, group_of], positive, score, predicted)
    defined = ~boot["roc_auc"].isnan()
    result = {}
    for name, value in point.items():
        lo, hi = torch.quantile(boot[name][defined], torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
        result[name] = {"value": float(value[0]), "ci95": [lo, hi]}
    matrix = [[int(((positive == (truth == POSITIVE)) & (predicted == (guess == POSITIVE))).sum())
               for guess in CATEGORIES] for truth in CATEGORIES]
    result["confusion"] = {"rows_true_cols_predicted": list(CATEGORIES), "matrix": matrix}
    result.update(n_images=len(score), n_patients=len(names), n_boot=n_boot, undefined_draws=int((~defined).sum()))
    return result


def evaluate(classifier: Classifier, records, n_boot: int = 2000, seed: int = 0, progress: bool | None = None,
             transform: PixelTransform | None = None) -> dict:
    """:func:`scores` of the classifier on ``records`` (edited by ``transform`` when given), images
    as the unit and patients as the bootstrap clusters; ``patient_level`` repeats them with each
    patient's mean P(Monkeypox)."""
    probability = predict(classifier, records, progress=progress, transform=transform)
    positive = torch.tensor([r.label == POSITIVE for r in records])
    patients = [r.patient_id for r in records]
    result = scores(positive, probability, patients, n_boot, seed)
    names = sorted(set(patients))
    member = torch.tensor([[p == name for p in patients] for name in names], dtype=torch.float64)
    mean_probability = member @ probability.double() / member.sum(1)
    patient_positive = (member @ positive.double()) > 0
    if not torch.equal(patient_positive, (member @ (~positive).double()) == 0):
        raise ValueError("A patient has images with both labels")
    result["patient_level"] = scores(patient_positive, mean_probability, names, n_boot, seed)
    return result


def describe(result: dict) -> str:
    """The figures of :func:`evaluate` as a few lines of text."""
    lines = [f"{result['n_images']} images of {result['n_patients']} patients "
             f"(95 % intervals: {result['n_boot']} bootstrap draws of patients)"]
    for level, res in (("images", result), ("patients", result.get("patient_level"))):
        if res is None:
            continue
        figures = ", ".join(f"{name.replace('_', ' ')} {res[name]['value']:.3f} [{res[name]['ci95'][0]:.3f}, "
                            f"{res[name]['ci95'][1]:.3f}]" for name in ("accuracy", "balanced_accuracy", "roc_auc"))
        lines.append(f"per {level}: {figures}")
        (tp, fn), (fp, tn) = res["confusion"]["matrix"]
        lines.append(f"  confusion (rows true, columns predicted Monkeypox / Others): Monkeypox {tp} / {fn}, Others {fp} / {tn}")
    return "\n".join(lines)
