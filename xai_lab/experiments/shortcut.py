"""A planted shortcut: a colored square on the MSLD images of chosen classes, a classifier
trained on them, and a score of how well each explanation method finds the square.

Shortcut learning (Geirhos et al. 2020, "Shortcut learning in deep neural networks"): a model
learns a decision rule that works on its training data for a reason other than the intended one.
Here the reason is known exactly, because we put it there:

* :class:`Mark` -- a ``size`` x ``size`` square of one RGB ``color``. Its position in an image is
  drawn from ``sha256(f"{seed}/{image_id}")``: uniform over every position that keeps the whole
  square inside, the same for the same image on every call and every machine, different from
  image to image (:func:`mark_box`, :func:`mark_mask`).
* :func:`marked` -- a ``transform(pixels, record)`` for the ``transform=`` hook of
  :func:`xai_lab.models.msld.train`, ``predict`` and ``evaluate`` that plants the mark on the
  images of the classes in ``on`` (``("Monkeypox",)``: the shortcut; both classes: fix 1, the mark
  then carries no information about the class; ``()``: clean images).
* :func:`masked` -- the mark's box filled with the mean color of the rest of the image, on the
  images of every class in ``on`` (fix 2). Filling it on one class only would leave a flat square
  on that class alone: a new shortcut.
* :func:`train_marked` -- the MSLD classifier's twin trained on transformed images.
* :func:`localization_scores` -- explain the marked images with each method and score the map on
  the mark's box by relevance mass (Arras et al. 2022) and the pointing game (Zhang et al. 2018),
  each as a mean over patients with a percentile bootstrap interval over patients.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ..explain import explain
from ..metrics import bounding_box, box_iou, pointing_game, relevance_mass
from ..models import Classifier, msld
from ..models import cache as model_cache
from ..stats import LEVEL, Interval, bootstrap

SCORES = ("relevance_mass", "pointing_game", "box_iou")
#: The threshold of the box score: a fraction of the map's maximum (Selvaraju et al. 2017 use 15 %).
BOX_THRESHOLD = 0.15
SCORE_LABELS = {"relevance_mass": "relevance mass", "pointing_game": "pointing game", "box_iou": "box IoU"}

#: The book's shortcut chapters' time budget: every method family with modest settings. IG and SmoothGrad
#: with 16 samples; occlusion with a 48-pixel window (the mark's size) at stride 48 (25
#: positions); RISE with 300 masks, LIME with 200 samples and Score-CAM at the last block (320
#: channels: a quarter of the head's 1280 forward passes) on the first 2 images only.
#: ``batch_size`` keeps every forward pass at :data:`CPU_BATCH` images or fewer (IG and SmoothGrad
#: count copies of the 8 images a call explains, occlusion and RISE images, Score-CAM masked
#: inputs, LIME samples): the maps are those of any batch size up to float rounding, and a CPU
#: pass over 64 to 200 images of 224 x 224 costs two to three times more per image than one over
#: 16, whose activations stay in the caches (one torch thread on a shared two-core machine;
#: this alone took the chapter's localization from about 140 to about 65 CPU seconds).
CPU_BATCH = 16
CHAPTER_METHODS = {
    "saliency": {}, "integrated_gradients": {"steps": 16, "batch_size": 2},
    "smoothgrad": {"n_samples": 16, "batch_size": 2}, "guided_backprop": {},
    "fullgrad": {}, "gradcam": {}, "gradcampp": {}, "layercam": {},
    "scorecam": {"layer": "features.blocks.15", "batch_size": CPU_BATCH, "images": 2},
    "occlusion": {"window": 48, "stride": 48, "batch_size": CPU_BATCH},
    "rise": {"n_masks": 300, "batch_size": CPU_BATCH, "images": 2},
    "lime": {"num_samples": 200, "batch_size": CPU_BATCH, "images": 2},
    "random": {}, "sobel": {},
}
#: The methods of :data:`CHAPTER_METHODS` that cost one forward and one backward pass per image,
#: occlusion (26 forward passes) and the controls (the chapter "Fixing the planted shortcut").
CHAPTER_FAST_METHODS = {k: v for k, v in CHAPTER_METHODS.items()
                        if k not in ("integrated_gradients", "smoothgrad", "scorecam", "rise", "lime")}


@dataclass(frozen=True)
class Mark:
    """A ``size`` x ``size`` pixel square of RGB ``color`` (each in [0, 1]); ``seed`` picks the
    positions (one per image id, see :func:`mark_box`). The default, a 48-pixel magenta square
    (4.6 % of a 224 x 224 image), is one that the frozen-backbone MSLD head learns as a shortcut
    (shown in the book's chapter "Exposing a planted shortcut")."""

    size: int = 48
    color: tuple[float, float, float] = (1.0, 0.0, 1.0)
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"size must be a positive number of pixels, got {self.size!r}")
        if len(self.color) != 3 or not all(0 <= c <= 1 for c in self.color):
            raise ValueError(f"color must be three RGB values in [0, 1], got {self.color!r}")


def image_id(item) -> str:
    """The id that fixes the mark's position: a string as is, else ``record.image_id`` (or the
    file name without its suffix for records that have none)."""
    if isinstance(item, str):
        return item
    found = getattr(item, "image_id", None)
    if found:
        return str(found)
    path = getattr(item, "path", None)
    if path is None:
        raise TypeError(f"Expected an image id or a record with image_id or path, got {type(item).__name__}")
    return path.stem


def mark_box(item, mark: Mark = Mark(), height: int = msld.IMAGE_SIZE,
             width: int = msld.IMAGE_SIZE) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` of the mark in an image of ``height`` x ``width`` pixels: the first
    two 8-byte words of ``sha256(f"{mark.seed}/{image_id(item)}")`` modulo the number of valid
    rows ``height - size + 1`` and columns ``width - size + 1`` (uniform up to 2^-50)."""
    size = mark.size
    if size > height or size > width:
        raise ValueError(f"a {size}-pixel mark does not fit in a {height} x {width} image")
    digest = hashlib.sha256(f"{mark.seed}/{image_id(item)}".encode()).digest()
    top = int.from_bytes(digest[:8], "big") % (height - size + 1)
    left = int.from_bytes(digest[8:16], "big") % (width - size + 1)
    return top, left, size, size


def mark_mask(item, mark: Mark = Mark(), height: int = msld.IMAGE_SIZE, width: int = msld.IMAGE_SIZE) -> torch.Tensor:
    """The mark's pixels as a bool mask [height, width]."""
    top, left, h, w = mark_box(item, mark, height, width)
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[top:top + h, left:left + w] = True
    return mask


def _check_pixels(pixels: torch.Tensor) -> None:
    if not isinstance(pixels, torch.Tensor) or pixels.dim() != 3 or pixels.shape[0] != 3:
        shape = list(pixels.shape) if isinstance(pixels, torch.Tensor) else type(pixels).__name__
        raise ValueError(f"pixels must be a tensor [3, H, W] in [0, 1], got {shape}")


def _check_classes(on: Sequence[str]) -> tuple[str, ...]:
    if isinstance(on, str):
        raise TypeError(f"on must be a sequence of class names, e.g. ({on!r},), not the string {on!r}")
    on = tuple(on)
    unknown = sorted(set(on) - set(msld.CATEGORIES))
    if unknown:
        raise ValueError(f"Unknown class(es) {', '.join(unknown)}; MSLD classes: {', '.join(msld.CATEGORIES)}")
    return on


def plant(pixels: torch.Tensor, item, mark: Mark = Mark()) -> torch.Tensor:
    """A copy of ``pixels`` [3, H, W] with the mark's box set to its color."""
    _check_pixels(pixels)
    top, left, h, w = mark_box(item, mark, *pixels.shape[1:])
    out = pixels.clone()
    color = torch.tensor(mark.color, dtype=pixels.dtype, device=pixels.device)
    out[:, top:top + h, left:left + w] = color.view(3, 1, 1)
    return out


def fill_box(pixels: torch.Tensor, item, mark: Mark = Mark()) -> torch.Tensor:
    """A copy of ``pixels`` [3, H, W] with the mark's box filled with the per-channel mean of the
    pixels *outside* it, so whatever was in the box (the mark or skin) leaves no trace."""
    _check_pixels(pixels)
    inside = mark_mask(item, mark, *pixels.shape[1:]).to(pixels.device)
    mean = pixels[:, ~inside].mean(1)
    out = pixels.clone()
    out[:, inside] = mean[:, None]
    return out


PixelTransform = msld.PixelTransform  # transform(pixels [3, H, W] in [0, 1], record) -> pixels


def marked(mark: Mark = Mark(), on: Sequence[str] = ("Monkeypox",)) -> PixelTransform:
    """``transform(pixels, record)``: the mark planted (:func:`plant`) on the images whose label is
    in ``on``, the others returned unchanged."""
    on = _check_classes(on)

    def transform(pixels: torch.Tensor, record) -> torch.Tensor:
        return plant(pixels, record, mark) if record.label in on else pixels

    transform.description = f"marked({mark!r}, on={on!r})"
    return transform


def masked(mark: Mark = Mark(), on: Sequence[str] = tuple(msld.CATEGORIES)) -> PixelTransform:
    """``transform(pixels, record)``: the mark's box filled by :func:`fill_box` on the images whose
    label is in ``on`` (default: every class, so the filled square is no signal either)."""
    on = _check_classes(on)

    def transform(pixels: torch.Tensor, record) -> torch.Tensor:
        return fill_box(pixels, record, mark) if record.label in on else pixels

    transform.description = f"masked({mark!r}, on={on!r})"
    return transform


RECIPE = "shortcut v1: plant = box set to the color; fill = box set to the mean outside it"  # in the cache key


def train_marked(transform: PixelTransform | None, copies: int = 2, seed: int = 0, records=None,
                 progress: bool = False, cache: bool = True, cache_dir=None) -> tuple[Classifier, dict]:
    """The MSLD classifier's twin (:func:`xai_lab.models.msld.train`: frozen ImageNet
    EfficientNet-Lite0, logistic head, early stopping on the validation patients) trained on
    images edited by ``transform``; ``copies`` views per training image (the image and
    ``copies - 1`` augmented ones; the default model uses 8, 2 trains about four times faster).

    With ``cache`` and a transform made by :func:`marked` or :func:`masked` (or None: clean
    images), the weights are kept by :func:`xai_lab.models.cache.fit_or_load` (a damaged file is
    reported and retrained) in ``cache_dir`` (default: the MSLD models' cache folder) under a
    key that hashes :func:`xai_lab.models.msld.cache_key` (data, settings, package version),
    the transform's ``description`` and :data:`RECIPE`, so chapters share one training. Other
    transforms are trained every time. Returns ``(classifier, training info)``, info with
    ``cached``."""
    settings = msld.TrainSettings(seed=seed, copies=copies)
    description = "clean" if transform is None else getattr(transform, "description", None)

    def train_now():
        model, info = msld.train(settings, records, progress=progress, transform=transform)
        return model, {**info, "transform": description}

    if not cache or description is None:
        model, info = train_now()
        return msld.as_classifier(model), {**info, "cached": False, "path": None}
    key = model_cache.key({"msld": msld.cache_key(settings, records), "transform": description, "recipe": RECIPE})
    path = model_cache.models_dir(cache_dir) / f"shortcut_{key}.pt"
    model, info = model_cache.fit_or_load(path, lambda: msld.efficientnet_lite0(num_classes=len(msld.CATEGORIES)),
                                          train_now)
    return msld.as_classifier(model), info


def inputs(classifier: Classifier, records, transform: PixelTransform | None = None) -> torch.Tensor:
    """The records' images at their own size, edited by ``transform`` and scaled for ``classifier``:
    [N, 3, H, W]. The mark's box is in image pixels; MSLD images are 224 x 224, the model's input
    size, so these are the images :func:`xai_lab.models.msld.predict` classifies."""
    from torchvision.transforms.functional import to_tensor

    out = []
    for record in records:
        pixels = to_tensor(record.load())
        if transform is not None:
            pixels = transform(pixels, record).clamp(0, 1)
        out.append(classifier.from_pixels(pixels))
    return torch.stack(out)


def conditions(mark: Mark = Mark()) -> dict[str, PixelTransform | None]:
    """The three test sets of the experiment: ``clean`` (no mark), ``marked Monkeypox`` (as in the
    shortcut's training) and ``marked Others`` (the mark moved to the other class)."""
    return {"clean": None, "marked Monkeypox": marked(mark, ("Monkeypox",)), "marked Others": marked(mark, ("Others",))}


def evaluate_conditions(classifier: Classifier, records, mark: Mark = Mark(), n_boot: int = 2000,
                        seed: int = 0) -> dict[str, dict]:
    """:func:`xai_lab.models.msld.evaluate` (patient-bootstrap intervals) on each of
    :func:`conditions`: {condition: result}."""
    return {name: msld.evaluate(classifier, records, n_boot=n_boot, seed=seed, progress=False, transform=t)
            for name, t in conditions(mark).items()}


def shared_backbone(classifiers: Sequence[Classifier]) -> bool:
    """True when the classifiers differ in their ``head`` alone: the same class names, input
    scaling and network type, each with a named head, and equal weights and buffers everywhere
    outside the head (the MSLD twins: one frozen ImageNet backbone, a logistic head each). Their
    predictions then follow from one pass through the first network up to its head's input."""
    first = classifiers[0]
    if any(c.head is None for c in classifiers):
        return False

    def body(c: Classifier) -> dict:
        return {k: v for k, v in c.model.state_dict().items() if not k.startswith(f"{c.head}.")}

    reference = body(first)
    for c in classifiers[1:]:
        if (type(c.model) is not type(first.model) or c.categories != first.categories or c.head != first.head
                or tuple(c.mean) != tuple(first.mean) or tuple(c.std) != tuple(first.std)):
            return False
        other = body(c)
        if other.keys() != reference.keys() or not all(torch.equal(other[k], reference[k]) for k in reference):
            return False
    return True


def evaluate_models(classifiers: Mapping[str, Classifier], records, mark: Mark = Mark(), n_boot: int = 2000,
                    seed: int = 0) -> dict[str, dict[str, dict]]:
    """:func:`evaluate_conditions` of several classifiers, ``{label: {condition: result}}``.

    When they share everything but their head (:func:`shared_backbone`), each test set goes
    through the first network once: the input of its head is recorded (a forward pre-hook) and
    every classifier's head is applied to it, P(Monkeypox) = softmax(head(features)), then
    :func:`xai_lab.models.msld.evaluate_probabilities`. This is the computation each classifier
    would make on its own, with one backbone pass instead of one per classifier (the
    preprocessing of the records is the first classifier's). Otherwise each classifier is
    evaluated on its own."""
    classifiers = dict(classifiers)
    if not classifiers:
        raise ValueError("no classifiers to evaluate")
    group = list(classifiers.values())
    if len(group) == 1 or not shared_backbone(group):
        return {label: evaluate_conditions(c, records, mark, n_boot, seed) for label, c in classifiers.items()}
    first = group[0]
    head = first.model.get_submodule(first.head)
    positive = first.categories.index(msld.POSITIVE)
    out: dict = {label: {} for label in classifiers}
    for name, transform in conditions(mark).items():
        features = []
        hook = head.register_forward_pre_hook(lambda module, args, kept=features: kept.append(args[0].detach()))
        try:
            msld.predict(first, records, progress=False, transform=transform)
        finally:
            hook.remove()
        pooled = torch.cat(features)
        for label, c in classifiers.items():
            with torch.no_grad():
                logits = c.model.get_submodule(c.head)(pooled.to(c.device))
            probability = torch.softmax(logits, dim=1)[:, positive].cpu()
            out[label][name] = msld.evaluate_probabilities(probability, records, n_boot, seed)
    return out


def accuracy_table(results: Mapping[str, dict], metric: str = "accuracy"):
    """A pandas table of ``metric`` ("accuracy", "balanced_accuracy" or "roc_auc") of several
    :func:`evaluate_conditions` results ``{model label: {condition: result}}``: one row per model,
    one column per condition, each cell "value [low, high]" (patient-bootstrap 95 % interval)."""
    import pandas as pd

    rows = {label: {condition: r.metric(metric).format(2) for condition, r in by_condition.items()}
            for label, by_condition in results.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def plot_interval_bars(intervals: Mapping[str, Mapping[str, Interval]], ax=None, ylabel: str = "",
                       reference: float | None = None, reference_label: str | None = None, reference_style: str = ":",
                       tick_labels: Sequence[str] | None = None, rotate: bool = False, top: float = 1.05):
    """Grouped bars with interval error bars: one group per key of the inner mappings (in the
    order of the first), one bar per outer key (a model), height ``value``, error bar ``[low,
    high]``; an optional horizontal ``reference`` line (chance, a uniform map's score). The one
    drawing routine of :func:`plot_accuracy` and :func:`plot_scores`. Returns the axes."""
    import matplotlib.pyplot as plt
    import numpy as np

    groups = list(next(iter(intervals.values())))
    if ax is None:
        per_bar = 0.55 if rotate else 1.1
        _, ax = plt.subplots(figsize=(max(6.0 if rotate else 5.0, per_bar * len(groups) * len(intervals)),
                                      3.4 if rotate else 3.2))
    width = 0.8 / len(intervals)
    positions = np.arange(len(groups))
    for k, (label, by_group) in enumerate(intervals.items()):
        values = np.array([by_group[g].value for g in groups])
        errors = np.array([[by_group[g].value - by_group[g].low for g in groups],
                           [by_group[g].high - by_group[g].value for g in groups]])
        ax.bar(positions + (k - (len(intervals) - 1) / 2) * width, values, width, yerr=errors,
               capsize=2 if rotate else 3, label=label)
    if reference is not None:
        ax.axhline(reference, color="k", linestyle=reference_style, linewidth=1, label=reference_label)
    labels = list(tick_labels) if tick_labels is not None else groups
    if rotate:
        ax.set_xticks(positions, labels, rotation=45, ha="right")
    else:
        ax.set_xticks(positions, labels)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, top)
    return ax


def plot_accuracy(results: Mapping[str, dict], metric: str = "accuracy", ax=None):
    """Grouped bars of ``metric`` per test condition (one bar per model of ``results``
    ``{model label: {condition: evaluate result}}``) with the bootstrap intervals as error bars."""
    intervals = {label: {c: r.metric(metric) for c, r in by_condition.items()}
                 for label, by_condition in results.items()}
    conditions = list(next(iter(results.values())))
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(conditions) * len(results)), 3.2))
    ax = plot_interval_bars(intervals, ax, metric.replace("_", " "), reference=0.5, tick_labels=conditions)
    ax.set_xlabel("test set")
    ax.legend(fontsize=8, loc="lower left")
    return ax


def patient_interval(values, patients: Sequence[str], level: float = LEVEL, resamples: int = 2000,
                     seed: int = 0) -> Interval:
    """The mean over patients of each patient's mean value, with :func:`xai_lab.stats.bootstrap`
    over the patient means (images of one patient are not independent: the patients are
    resampled, each counting once whatever its number of images); ``n``: the number of patients."""
    values = torch.as_tensor(values, dtype=torch.float64).flatten()
    if len(values) != len(patients):
        raise ValueError(f"{len(values)} values but {len(patients)} patients")
    names = sorted(set(patients))
    per_patient = [float(values[[p == name for p in patients]].mean()) for name in names]
    return bootstrap(per_patient, level=level, resamples=resamples, seed=seed)


def localization_scores(classifier: Classifier, records, methods: Sequence[str] | Mapping[str, dict],
                        mark: Mark = Mark(), transform: PixelTransform | None = None,
                        target: str | None = msld.POSITIVE, batch_size: int = 8, seed: int = 0,
                        keep_maps: int = 0, level: float = LEVEL, resamples: int = 2000) -> dict:
    """How much of each method's map falls on the mark, over the ``records`` with the mark planted.

    ``transform`` edits the images first (default: :func:`marked` on every class, so every record
    carries the mark); ``methods``: names or {name: options} for :func:`xai_lab.explain` (an
    option ``layer`` is explain's ``layer=`` for that method, an option ``images`` runs it on the
    first that many records only, for costly methods), ``batch_size`` images at a time, ``seed``.
    ``target``: the class whose score is explained (default Monkeypox, the class the shortcut's
    mark stands for: the same question for every image and every model, whatever each one
    predicts), or None for the predicted class.

    Per image and method: relevance mass (share of the positive relevance on the mark), the
    pointing game (is the map's maximum on the mark; a constant map points nowhere and counts as
    a miss) and the box IoU (the map as a weakly supervised localizer: the box around its largest
    region above :data:`BOX_THRESHOLD` of its maximum, :func:`xai_lab.metrics.bounding_box`,
    against the mark's box by intersection over union; 0 for a map without a positive value).

    Returns ``{"summary": {method: {score: Interval}}`` (:func:`patient_interval`), ``"per_image":
    {method: {score: [N]}}, "costs": {method: {"seconds", "forward_passes"}}, "area_fraction"`` (the mark's
    share of the image: what a uniform map scores), ``"image_ids"``, ``"patients"``, ``"target"``,
    ``"maps"``: {method: [keep_maps, H, W]} of the first ``keep_maps`` images, ``"inputs"``: those
    images [keep_maps, 3, H, W]}."""
    records = list(records)
    if not records:
        raise ValueError("no records to score")
    requests = dict(methods) if isinstance(methods, Mapping) else {name: {} for name in methods}
    if not requests:
        raise ValueError("no methods to score")
    if transform is None:
        transform = marked(mark, msld.CATEGORIES)
    groups: dict = {}  # one explain call per (layer, image limit): CAMs at one layer share one pass
    limit = {}
    for name, options in requests.items():
        options = dict(options)
        limit[name] = int(options.pop("images", len(records)))
        if limit[name] < 1:
            raise ValueError(f"{name}: images must be at least 1, got {limit[name]}")
        groups.setdefault((options.pop("layer", None), limit[name]), {})[name] = options
    target_index = None if target is None else classifier.categories.index(target)
    per_image = {m: {s: [] for s in SCORES} for m in requests}
    costs = {m: {"seconds": 0.0, "forward_passes": 0} for m in requests}
    maps = {m: [] for m in requests}
    kept = []
    for start in range(0, len(records), batch_size):
        batch = records[start:start + batch_size]
        x = inputs(classifier, batch, transform)
        masks = torch.stack([mark_mask(r, mark, *x.shape[-2:]) for r in batch])
        explained = {}
        for (layer, most), group in groups.items():
            if most > start:
                explained.update(explain(classifier, x[:most - start], method=group, target=target_index, layer=layer,
                                         seed=seed, progress=False))
        for name, e in explained.items():
            m = masks[:len(e)]
            flat = e.saliency.flatten(1)
            spread = flat.amax(1) > flat.amin(1)
            per_image[name]["relevance_mass"].append(relevance_mass(e.saliency, m))
            per_image[name]["pointing_game"].append(pointing_game(e.saliency, m) & spread)
            per_image[name]["box_iou"].append(torch.tensor([_box_iou_with_mark(s, r, mark) for s, r in
                                                            zip(e.saliency, batch)]))
            costs[name]["seconds"] += e.seconds
            costs[name]["forward_passes"] += e.forward_passes * len(e)
            room = keep_maps - sum(len(k) for k in maps[name])
            if room > 0:
                maps[name].append(e.saliency[:room])
        room = keep_maps - sum(len(k) for k in kept)
        if room > 0:
            kept.append(x[:room])
    patients = [r.patient_id for r in records]
    per_image = {m: {s: torch.cat(v).double() for s, v in scores.items()} for m, scores in per_image.items()}
    summary = {m: {s: patient_interval(v, patients[:limit[m]], level, resamples, seed) for s, v in scores.items()}
               for m, scores in per_image.items()}
    area = mark.size ** 2 / (x.shape[-2] * x.shape[-1])
    return {"summary": summary, "per_image": per_image,
            "costs": {m: {"seconds": c["seconds"], "forward_passes": c["forward_passes"] / min(limit[m], len(records))}
                      for m, c in costs.items()},
            "area_fraction": area, "image_ids": [image_id(r) for r in records], "patients": patients,
            "target": target, "maps": {m: torch.cat(v) if v else None for m, v in maps.items()},
            "inputs": torch.cat(kept) if kept else None}


def _box_iou_with_mark(saliency: torch.Tensor, item, mark: Mark) -> float:
    """IoU of the box of one map [H, W] (:data:`BOX_THRESHOLD`) with the mark's box; 0 without a positive value."""
    if not bool((saliency > 0).any()):
        return 0.0
    return box_iou(bounding_box(saliency, BOX_THRESHOLD), mark_box(item, mark, *saliency.shape))


def ranking(scores: dict, by: str = "relevance_mass") -> list[str]:
    """Method names of :func:`localization_scores` sorted by the mean of ``by`` (best first;
    ties by name)."""
    if by not in SCORES:
        raise ValueError(f"by must be one of {', '.join(SCORES)}, got {by!r}")
    return sorted(scores["summary"], key=lambda m: (-scores["summary"][m][by].value, m))


def score_table(results: Mapping[str, dict], by: str = "relevance_mass", scores: Sequence[str] = SCORES):
    """A pandas table, one row per method and one column per (model, score) of several
    :func:`localization_scores` results ``{model label: result}``, each cell "mean [low, high]";
    rows in the order of :func:`ranking` of the first result by ``by``."""
    import pandas as pd

    first = next(iter(results.values()))
    rows = {}
    for method in ranking(first, by):
        row = {}
        for label, result in results.items():
            for score in scores:
                row[(label, SCORE_LABELS[score])] = result["summary"][method][score].format(2)
        rows[method] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns) if len(results) > 1 else [c[1] for c in table.columns]
    return table


def plot_scores(results: Mapping[str, dict], score: str = "relevance_mass", ax=None,
                order: Sequence[str] | None = None):
    """Bars of ``score`` per method with their bootstrap intervals as error bars, one bar per
    model of ``results`` ``{model label: localization_scores result}``, and the mark's area
    fraction (what a uniform map gets) as a dashed line for relevance mass. Returns the axes."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
    first = next(iter(results.values()))
    order = list(order) if order is not None else ranking(first, score)
    intervals = {label: {m: result["summary"][m][score] for m in order} for label, result in results.items()}
    highest = max(i.high for by_method in intervals.values() for i in by_method.values())
    uniform = score == "relevance_mass"
    ax = plot_interval_bars(intervals, ax, score.replace("_", " "),
                            reference=first["area_fraction"] if uniform else None,
                            reference_label="mark's area (uniform map)", reference_style="--", rotate=True,
                            top=min(1.05, max(0.25, 1.15 * highest)))
    ax.legend(fontsize=8)
    return ax


CONTROLS = ("random", "sobel")
"""The control maps of :data:`CHAPTER_METHODS`: a seeded uniform random map and an edge detector
that never looks at the model. A method is evidence of the shortcut only where it beats both."""


def one_per_patient(records, label: str = msld.POSITIVE, limit: int | None = None) -> list:
    """The first record of each patient of class ``label``, in the order of ``records``; the
    first ``limit`` of them when given."""
    first: dict = {}
    for r in records:
        if r.label == label:
            first.setdefault(r.patient_id, r)
    return list(first.values())[:limit]


def outline_mark(ax, item, mark: Mark = Mark(), color: str = "white", linewidth: float = 1.0,
                 height: int = msld.IMAGE_SIZE, width: int = msld.IMAGE_SIZE):
    """Draw the outline of the mark's box (:func:`mark_box` in a ``height`` x ``width`` image) on
    an axes showing the image or a map of it."""
    import matplotlib.pyplot as plt

    top, left, h, w = mark_box(item, mark, height, width)
    ax.add_patch(plt.Rectangle((left - 0.5, top - 0.5), w, h, fill=False, edgecolor=color, linewidth=linewidth))


def plot_images(records, transform: PixelTransform | Sequence[PixelTransform | None] | None = None,
                titles: Sequence[str] | None = None, size: float = 2.3):
    """The records' images as ``transform`` leaves them (:func:`xai_lab.models.msld.load_pixels`),
    in one row (:func:`xai_lab.plot.image_grid`): ``transform`` is one for every record or a
    list with one per record (None: the image as it is); ``titles``: one per image. Returns the
    figure."""
    from ..plot import image_grid

    records = list(records)
    transforms = list(transform) if isinstance(transform, (list, tuple)) else [transform] * len(records)
    if len(transforms) != len(records):
        raise ValueError(f"{len(transforms)} transforms for {len(records)} records")
    pictures = [msld.load_pixels(r, t).permute(1, 2, 0).numpy() for r, t in zip(records, transforms)]
    return image_grid(pictures, titles, size=size)


def plot_maps(result: dict, records, classifier: Classifier, mark: Mark = Mark(),
              methods: Sequence[str] | None = None, size: float = 1.5):
    """The maps a :func:`localization_scores` result kept (``keep_maps``), one row per kept image
    (``records``: the records scored, in order) and one column per method of ``methods``
    (default: all), each map on its own color scale with its color bar
    (:func:`xai_lab.plot.own_scale_grid`: a map with negative values centered on zero with a
    diverging color map, others from zero), the image first; the mark's box outlined on every
    panel (white on the image, black on the maps). Returns the figure."""
    from ..plot import own_scale_grid, to_image

    if result.get("inputs") is None:
        raise ValueError("the result kept no maps: call localization_scores with keep_maps >= 1")
    methods = list(result["maps"]) if methods is None else list(methods)
    x = result["inputs"]
    n, columns = len(x), len(methods) + 1
    fig = own_scale_grid([to_image(xi, classifier) for xi in x], {m: result["maps"][m][:n] for m in methods},
                         row_titles=result["image_ids"][:n], size=size, colorbar=True)
    for k, ax in enumerate(fig.axes[:n * columns]):  # the panels row by row; the color bars come after them
        outline_mark(ax, records[k // columns], mark, "white" if k % columns == 0 else "black", 1.0, *x.shape[-2:])
        ax.title.set_fontsize(7)
    return fig


def no_better_than_controls(result: dict, score: str = "relevance_mass", controls: Sequence[str] = CONTROLS) -> list[str]:
    """The methods of a :func:`localization_scores` result, controls excluded, whose interval of
    ``score`` does not lie above the interval of every control (their low end is at or below
    the highest control's high end)."""
    summary = result["summary"]
    ceiling = max(summary[c][score].high for c in controls if c in summary)
    return [m for m in ranking(result, score) if m not in controls and summary[m][score].low <= ceiling]


@dataclass(frozen=True)
class Change:
    """How a method's score on the mark changed from one model to another: ``before`` and
    ``after`` (:class:`~xai_lab.stats.Interval`); ``lower``: the mean fell; ``apart``: the after
    interval lies entirely below the before interval."""

    before: Interval
    after: Interval

    @property
    def lower(self) -> bool:
        return self.after.value < self.before.value

    @property
    def apart(self) -> bool:
        return self.after.high < self.before.low


def score_changes(before: dict, after: dict, score: str = "relevance_mass",
                  skip: Sequence[str] = CONTROLS) -> dict[str, Change]:
    """:class:`Change` of ``score`` for every method of two :func:`localization_scores` results
    (the methods of ``before``, in its order, without ``skip``)."""
    return {m: Change(before["summary"][m][score], after["summary"][m][score])
            for m in before["summary"] if m not in skip}


def mark_effect(conditions_result: Mapping[str, object], metric: str = "accuracy") -> float:
    """The shortcut's signature in one :func:`evaluate_conditions` result: ``metric`` with the
    mark on the Monkeypox images minus with the mark on the Others images (near 0 for a model
    that does not care which class carries the mark)."""
    return (conditions_result["marked Monkeypox"].metric(metric).value
            - conditions_result["marked Others"].metric(metric).value)


__all__ = ["CHAPTER_FAST_METHODS", "CHAPTER_METHODS", "CONTROLS", "CPU_BATCH", "Change", "Mark", "RECIPE", "SCORES",
           "accuracy_table", "conditions", "evaluate_conditions", "evaluate_models", "fill_box", "image_id", "inputs",
           "localization_scores", "mark_box", "mark_effect", "mark_mask", "marked", "masked",
           "no_better_than_controls", "one_per_patient", "outline_mark", "patient_interval", "plant", "plot_accuracy",
           "plot_images", "plot_interval_bars", "plot_maps", "plot_scores", "ranking", "score_changes", "score_table",
           "shared_backbone", "train_marked"]
