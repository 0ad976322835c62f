"""Studies of the MSLD monkeypox classifier (the book's chapters "Training the monkeypox
classifier" and "What does the monkeypox classifier look at?").

* The data: :func:`dataset_summary` and :func:`split_summary` (images and patients per class and
  split), :func:`images_per_patient`.
* The split leak: :func:`image_split` (by image, the split that must not be used) against
  :func:`xai_lab.data.patient_split`; :func:`nearest_neighbors` (does a test image's nearest
  training image belong to its own patient?) and :func:`split_leak` (the test ROC AUC of the
  linear probe, or of a 1-nearest-neighbor rule, under both kinds of split over several seeds).
* Thresholds: :func:`balanced_accuracy` ``(TPR + TNR) / 2`` and :func:`best_threshold`.
* The chosen cases: :func:`pick_cases` (the most confident right and wrong answers per class).
* Edits for ``transform=`` of :func:`xai_lab.models.msld.predict`: :func:`border_band`,
  :func:`hide` (a region replaced by the image's mean color), :func:`scale_brightness`, and
  :func:`edit_effects` (what each edit does to the classifier's answers).
* The skin-tone confound: :func:`image_statistics` (lightness, CIELAB color, contrast,
  saturation, sharpness, framing, the individual typology angle) and :func:`statistic_aucs` (how
  well each statistic alone, and all together, rank the test patients).

Every interval is a :class:`xai_lab.stats.Interval`; scores over test images use the patient
bootstrap of :func:`xai_lab.models.msld.scores`.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data import patient_split
from ..models import msld
from ..stats import Interval, bootstrap

SPLITS = ("by image", "by patient")


# --- the data ---------------------------------------------------------------------------------

def images_per_patient(records) -> dict[str, list[int]]:
    """For each class, the number of images of each of its patients (patients sorted by id)."""
    out = {}
    for label in msld.CATEGORIES:
        counts: dict[str, int] = {}
        for r in records:
            if r.label == label:
                counts[r.patient_id] = counts.get(r.patient_id, 0) + 1
        out[label] = [counts[p] for p in sorted(counts)]
    return out


def dataset_summary(records) -> dict[str, dict[str, float]]:
    """Per class and for "all": images, patients, mean and largest images per patient, and the
    patients with a single image."""
    per_class = images_per_patient(records)
    groups = {**per_class, "all": [n for counts in per_class.values() for n in counts]}
    return {name: {"images": sum(c), "patients": len(c), "images per patient (mean)": round(float(np.mean(c)), 2),
                   "images per patient (max)": max(c), "patients with one image": sum(n == 1 for n in c)}
            for name, c in groups.items()}


def split_summary(split: dict) -> dict[str, dict[str, int]]:
    """Per split: images, patients and the images of each class."""
    return {name: {"images": len(part), "patients": len({r.patient_id for r in part}),
                   **{f"{label} images": sum(r.label == label for r in part) for label in msld.CATEGORIES}}
            for name, part in split.items()}


def patients_in_several_splits(split: dict) -> int:
    """How many patients have images in more than one split (0 for a split by patient)."""
    seen: dict[str, set] = {}
    for name, part in split.items():
        for r in part:
            seen.setdefault(r.patient_id, set()).add(name)
    return sum(len(s) > 1 for s in seen.values())


# --- the split leak ---------------------------------------------------------------------------

def image_split(records, val: float = 0.2, test: float = 0.2, seed: int = 0) -> dict:
    """Split by *image*, stratified by class (each class's images shuffled with
    ``random.Random(seed)`` and cut into test, validation, training): the split that must not be
    used for medical images, kept to measure what it leaks."""
    rng = random.Random(seed)
    out = {"train": [], "val": [], "test": []}
    for label in msld.CATEGORIES:
        part = [r for r in records if r.label == label]
        rng.shuffle(part)
        n_test, n_val = round(test * len(part)), round(val * len(part))
        out["test"] += part[:n_test]
        out["val"] += part[n_test:n_test + n_val]
        out["train"] += part[n_test + n_val:]
    return out


def split_by(kind: str, records, seed: int, val: float = 0.2, test: float = 0.2) -> dict:
    """``"by image"``: :func:`image_split`; ``"by patient"``: :func:`xai_lab.data.patient_split`."""
    if kind == "by image":
        return image_split(records, val, test, seed)
    if kind == "by patient":
        return patient_split(records, val=val, test=test, seed=seed)
    raise ValueError(f"kind must be one of {SPLITS}, got {kind!r}")


def _indices(records, part) -> torch.Tensor:
    index = {r.image_id: i for i, r in enumerate(records)}
    return torch.tensor([index[r.image_id] for r in part])


def _cosine_nearest(features: torch.Tensor, train: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
    unit = torch.nn.functional.normalize(features, dim=1)
    return train[(unit[test] @ unit[train].T).argmax(1)]


@dataclass(frozen=True)
class NearestNeighbors:
    """Of ``n_test`` test images, ``seen``: those whose patient also has training images;
    ``same_patient``: of these, those whose nearest training image (cosine similarity of the
    features) is a photograph of the same patient."""

    n_test: int
    seen: int
    same_patient: int


def nearest_neighbors(features: torch.Tensor, records, split: dict) -> NearestNeighbors:
    """:class:`NearestNeighbors` of ``split`` (features [N, D] in the order of ``records``)."""
    train, test = _indices(records, split["train"]), _indices(records, split["test"])
    nearest = _cosine_nearest(features, train, test)
    train_patients = {r.patient_id for r in split["train"]}
    seen = [r.patient_id in train_patients for r in split["test"]]
    same = [records[int(j)].patient_id == r.patient_id for j, r in zip(nearest, split["test"])]
    return NearestNeighbors(len(seen), sum(seen), sum(s and t for s, t in zip(seen, same)))


def roc_auc(positive, score) -> float:
    """ROC AUC (Mann-Whitney, ties counted one half) of ``score`` [N] against ``positive`` [N]."""
    positive, score = torch.as_tensor(positive).bool(), torch.as_tensor(score).double()
    ones = torch.ones(1, len(score), dtype=torch.float64)
    return float(msld.weighted_metrics(ones, positive, score, score >= 0.5)["roc_auc"][0])


def balanced_accuracy(positive, score, threshold: float = 0.5) -> float:
    """``(TPR + TNR) / 2`` of the rule "positive when ``score >= threshold``"."""
    positive, score = torch.as_tensor(positive).bool(), torch.as_tensor(score).double()
    ones = torch.ones(1, len(score), dtype=torch.float64)
    return float(msld.weighted_metrics(ones, positive, score, score >= threshold)["balanced_accuracy"][0])


def best_threshold(positive, score) -> float:
    """The observed score that, as threshold, maximizes :func:`balanced_accuracy` (the lowest of
    equally good ones)."""
    candidates = np.unique(torch.as_tensor(score).double().numpy())
    return float(candidates[np.argmax([balanced_accuracy(positive, score, t) for t in candidates])])


def _head_auc(features, labels, records, split, settings) -> float:
    ids = {name: _indices(records, split[name]) for name in ("train", "val", "test")}
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)  # a tiny fit: one thread is fastest (training does the same)
    try:
        head, _ = msld.fit_head(features[ids["train"]], labels[ids["train"]], features[ids["val"]],
                                labels[ids["val"]], settings)
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        p_positive = torch.softmax(head(features[ids["test"]]), dim=1)[:, msld.CATEGORIES.index(msld.POSITIVE)]
    return roc_auc(labels[ids["test"]] == msld.CATEGORIES.index(msld.POSITIVE), p_positive)


def _nearest_accuracy(features, labels, records, split, settings) -> float:
    train, test = _indices(records, split["train"]), _indices(records, split["test"])
    guess = labels[_cosine_nearest(features, train, test)]
    return float((guess == labels[test]).double().mean())


SCORERS = {"head": ("test ROC AUC", _head_auc), "nearest_neighbor": ("test accuracy", _nearest_accuracy)}


@dataclass(frozen=True)
class SplitLeak:
    """One score per seed under each kind of split (``scores["by image"]``, ``scores["by
    patient"]``), what the score is (``score``), and the bootstrap intervals (over the seeds) of
    each mean (:meth:`mean`) and of the mean difference by image minus by patient
    (``difference``)."""

    seeds: tuple[int, ...]
    score: str
    scores: dict[str, tuple[float, ...]]
    difference: Interval

    def mean(self, kind: str) -> Interval:
        """The mean score of one kind of split with its bootstrap interval over the seeds."""
        return bootstrap(np.array(self.scores[kind]), seed=0)


def split_leak(features: torch.Tensor, records, settings: msld.TrainSettings = msld.DEFAULT_SETTINGS,
               seeds: Sequence[int] = range(10), scorer: str = "head") -> SplitLeak:
    """What a split by image leaks: for each seed, the split by image and the split by patient
    (60/20/20, stratified by class), and the test score of ``scorer`` on the frozen features
    [N, D] (in the order of ``records``): ``"head"`` -- :func:`xai_lab.models.msld.fit_head`
    (early stopping on the validation part), scored by the test ROC AUC; ``"nearest_neighbor"``
    -- each test image labeled like its most similar training image (cosine), scored by the
    test accuracy. ``difference``: the percentile bootstrap (seed 0) of the mean paired
    difference over the seeds."""
    if scorer not in SCORERS:
        raise ValueError(f"scorer must be one of {', '.join(SCORERS)}, got {scorer!r}")
    name, score_of = SCORERS[scorer]
    labels = msld.label_indices(records)
    seeds = tuple(seeds)
    scores = {kind: tuple(score_of(features, labels, records, split_by(kind, records, s), settings) for s in seeds)
              for kind in SPLITS}
    difference = bootstrap(np.array(scores["by image"]) - np.array(scores["by patient"]), seed=0)
    return SplitLeak(seeds, name, scores, difference)


# --- choosing images, editing them ------------------------------------------------------------

def pick_cases(p_positive, is_positive) -> dict[str, tuple[int, str]]:
    """Four images by rule: the most confident right answer of each class and the most confident
    mistake of each class (a class without a mistake gives its least confident right answer).
    ``{case: (index, rule)}`` with cases "right, <class>" and "wrong, <class>"."""
    p = np.asarray(p_positive, dtype=np.float64)
    truth = np.asarray(is_positive, dtype=bool)
    said = p >= 0.5
    confidence = np.where(said, p, 1 - p)

    def pick(mask, fallback):
        if mask.any():
            return int(np.flatnonzero(mask)[confidence[mask].argmax()]), "most confident"
        return int(np.flatnonzero(fallback)[confidence[fallback].argmin()]), "no mistake: least confident"

    positive, negative = msld.CATEGORIES[0], msld.CATEGORIES[1]
    return {
        f"right, {positive}": pick(truth & said, truth & said),
        f"right, {negative}": pick(~truth & ~said, ~truth & ~said),
        f"wrong, {positive}": pick(truth & ~said, truth & said),
        f"wrong, {negative}": pick(~truth & said, ~truth & ~said),
    }


def border_band(size: int = msld.IMAGE_SIZE, width: int = 28) -> torch.Tensor:
    """[size, size] bool: the outer ``width`` pixels of the image (area ``1 - (1 - 2 w / s)^2``)."""
    if not 0 < 2 * width < size:
        raise ValueError(f"width must lie in (0, size / 2), got {width} for size {size}")
    band = torch.ones(size, size, dtype=torch.bool)
    band[width:-width, width:-width] = False
    return band


def hide(region: torch.Tensor) -> msld.PixelTransform:
    """A ``transform(pixels, record)`` that replaces ``region`` [H, W] by the image's mean color."""
    def transform(pixels, record):
        out = pixels.clone()
        mean = pixels.mean(dim=(1, 2), keepdim=True).expand_as(pixels)
        out[:, region] = mean[:, region]
        return out
    return transform


def scale_brightness(factor: float) -> msld.PixelTransform:
    """A ``transform(pixels, record)`` that multiplies every pixel by ``factor`` (clipped to [0, 1]
    by :func:`xai_lab.models.msld.load_pixels`)."""
    return lambda pixels, record: pixels * factor


@dataclass(frozen=True)
class EditEffect:
    """What one edit of the test images does to the classifier: ``p_positive`` [N] on the edited
    images, their ``scores`` (:func:`xai_lab.models.msld.scores`, patient bootstrap), and against
    the unedited images the mean, smallest and largest change of P(positive) and the number of
    answers (threshold 1/2) that ``flip``."""

    p_positive: torch.Tensor
    scores: msld.Evaluation
    mean_shift: float
    min_shift: float
    max_shift: float
    flips: int

    def row(self) -> dict:
        """The effect as one table row of text and numbers."""
        return {"roc_auc": str(self.scores.roc_auc), "balanced_accuracy": str(self.scores.balanced_accuracy),
                "mean P(positive)": round(float(self.p_positive.mean()), 3), "mean shift": round(self.mean_shift, 3),
                "shifts from": round(self.min_shift, 3), "shifts to": round(self.max_shift, 3), "flips": self.flips}


def edit_effects(classifier, records, edits: dict, n_boot: int = 2000, seed: int = 0) -> dict[str, EditEffect]:
    """:class:`EditEffect` of each ``transform(pixels, record)`` of ``edits`` (``None``: the images
    as they are) on ``records``, each compared with the unedited images."""
    before = msld.predict(classifier, records, progress=False)
    truth = torch.tensor([r.label == msld.POSITIVE for r in records])
    patients = [r.patient_id for r in records]
    out = {}
    for name, transform in edits.items():
        p = before if transform is None else msld.predict(classifier, records, progress=False, transform=transform)
        shift = p - before
        out[name] = EditEffect(p, msld.scores(truth, p, patients, n_boot, seed), float(shift.mean()),
                               float(shift.min()), float(shift.max()), int(((p >= 0.5) != (before >= 0.5)).sum()))
    return out


# --- the skin-tone confound -------------------------------------------------------------------

STATISTICS = ("lightness L*", "a* (red)", "b* (yellow)", "contrast (sd L*)", "saturation", "sharpness",
              "border - inside L*", "ITA (degrees)")


def image_statistics(records, band: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """Eight numbers per image that say nothing about lesions, each [N] in the order of ``records``
    (images resized to 224 x 224): mean lightness L* and mean a*, b* (CIELAB); the spread of L*
    (contrast); mean HSV saturation; sharpness (variance of the Laplacian of the gray image,
    times 1000); the mean L* of ``band`` (default :func:`border_band`) minus that of the inside
    (framing); and the individual typology angle ``ITA = arctan((L* - 50) / b*)`` in degrees of
    the image's median L* and b* (Chardon et al. 1991; a skin-tone measure, here of the whole
    photograph; higher is lighter; b* floored at 1 so that grayish photographs keep its sign)."""
    from skimage.color import rgb2hsv, rgb2lab
    from skimage.filters import laplace

    inner = ~(border_band() if band is None else band).numpy()
    rows = []
    for record in records:
        rgb = np.asarray(record.load().resize((224, 224)), dtype=np.float64) / 255
        lab, hsv = rgb2lab(rgb), rgb2hsv(rgb)
        L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
        rows.append((L.mean(), a.mean(), b.mean(), L.std(), hsv[..., 1].mean(), laplace(rgb.mean(2)).var() * 1e3,
                     L[~inner].mean() - L[inner].mean(),
                     np.degrees(np.arctan((np.median(L) - 50) / max(np.median(b), 1.0)))))
    table = np.array(rows, dtype=np.float64).reshape(len(records), len(STATISTICS))
    return {name: table[:, k] for k, name in enumerate(STATISTICS)}


@dataclass(frozen=True)
class StatisticAUC:
    """How well one score ranks the test patients: ``high_means`` (the class a high value stands
    for, chosen on the training patients; "" for a fitted model) and the test ``roc_auc`` with
    its patient-bootstrap interval."""

    high_means: str
    roc_auc: Interval


def statistic_aucs(statistics: dict[str, np.ndarray], records, split: dict, n_boot: int = 2000,
                   seed: int = 0) -> dict[str, StatisticAUC]:
    """Each statistic of :func:`image_statistics` (over ``records``) as a score of the test
    patients: its direction chosen on the training patients (AUC >= 1/2), its test ROC AUC with
    the patient bootstrap of :func:`xai_lab.models.msld.scores`; and "all (logistic
    regression)": scikit-learn's logistic regression (C = 1) on the standardized statistics,
    fitted on the training patients."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    index = {r.image_id: i for i, r in enumerate(records)}
    train = [index[r.image_id] for r in split["train"]]
    test = [index[r.image_id] for r in split["test"]]
    y_train = np.array([r.label == msld.POSITIVE for r in split["train"]])
    truth = torch.tensor([r.label == msld.POSITIVE for r in split["test"]])
    patients = [r.patient_id for r in split["test"]]
    out = {}
    for name, values in statistics.items():
        sign = 1 if roc_auc(torch.tensor(y_train), torch.tensor(values[train])) >= 0.5 else -1
        result = msld.scores(truth, torch.tensor(sign * values[test]), patients, n_boot, seed)
        out[name] = StatisticAUC(msld.CATEGORIES[0] if sign > 0 else msld.CATEGORIES[1], result.roc_auc)
    table = np.stack(list(statistics.values()), 1)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)).fit(table[train], y_train)
    p = torch.tensor(model.predict_proba(table[test])[:, 1])
    out["all (logistic regression)"] = StatisticAUC("", msld.scores(truth, p, patients, n_boot, seed).roc_auc)
    return out


__all__ = ["EditEffect", "NearestNeighbors", "SPLITS", "STATISTICS", "SplitLeak", "StatisticAUC", "balanced_accuracy",
           "best_threshold", "border_band", "dataset_summary", "edit_effects", "hide", "image_split", "image_statistics",
           "images_per_patient", "nearest_neighbors", "patients_in_several_splits", "pick_cases", "roc_auc",
           "scale_brightness", "split_by", "split_leak", "split_summary", "statistic_aucs"]
