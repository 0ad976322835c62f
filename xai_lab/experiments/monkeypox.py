"""Studies of the MSLD monkeypox classifier (the book's chapters "Training the monkeypox
classifier" and "What does the monkeypox classifier look at?").

* The data: :func:`dataset_summary` and :func:`split_summary` (images and patients per class and
  split), :func:`images_per_patient`, :func:`patients_by_image_count`.
* The split leak: :func:`image_split` (by image, the split that must not be used) against
  :func:`xai_lab.data.patient_split`; :func:`nearest_neighbors` (does a test image's nearest
  training image belong to its own patient?) and :func:`split_leak` (the test ROC AUC of the
  linear probe, or of a 1-nearest-neighbor rule, under both kinds of split over several seeds).
* Thresholds: :func:`balanced_accuracy` ``(TPR + TNR) / 2`` and :func:`best_threshold`.
* The chosen cases: :func:`pick_cases` (the most confident right and wrong answers per class) and
  :func:`case_study` (the classifier scored on its test patients, with its cases and per-class
  means with patient-bootstrap intervals); :func:`sample_patients` (one image of random patients);
  :func:`two_class_identities` (the maps of the two classes tied by the head and the softmax).
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
from ..explain import explain
from ..metrics.localization import relevance_mass
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


def patients_by_image_count(records) -> dict[int, dict[str, int]]:
    """For every number of images n from 1 to the largest: how many patients of each class have
    exactly n images (zeros included), ``{n: {class: patients}}``."""
    per_class = images_per_patient(records)
    top = max(max(counts) for counts in per_class.values())
    return {n: {label: counts.count(n) for label, counts in per_class.items()} for n in range(1, top + 1)}


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


def sample_patients(records, per_class: int = 4, seed: int = 0) -> list:
    """``per_class`` patients of each class (in the order of the classes) drawn without
    replacement by one ``random.Random(seed)`` from the sorted patient ids, and for each the first
    of its records: one image per patient."""
    rng = random.Random(seed)
    out = []
    for label in msld.CATEGORIES:
        for patient in rng.sample(sorted({r.patient_id for r in records if r.label == label}), per_class):
            out.append(next(r for r in records if r.patient_id == patient))
    return out


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


def split_by(kind: str, records, seed: int, val: float = msld.DEFAULT_SETTINGS.val,
             test: float = msld.DEFAULT_SETTINGS.test) -> dict:
    """``"by image"``: :func:`image_split`; ``"by patient"``: :func:`xai_lab.data.patient_split`;
    the fractions default to the classifier's (:data:`xai_lab.models.msld.DEFAULT_SETTINGS`)."""
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
    return float(msld.weighted_metrics(ones, positive, score, score >= msld.THRESHOLD)["roc_auc"][0])


def balanced_accuracy(positive, score, threshold: float = msld.THRESHOLD) -> float:
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
    (with the validation and test fractions of ``settings``, stratified by class), and the test
    score of ``scorer`` on the frozen features [N, D] (in the order of ``records``): ``"head"``
    -- :func:`xai_lab.models.msld.fit_head` (early stopping on the validation part), scored by
    the test ROC AUC; ``"nearest_neighbor"`` -- each test image labeled like its most similar
    training image (cosine), scored by the test accuracy. ``difference``: the percentile
    bootstrap (seed 0) of the mean paired difference over the seeds."""
    if scorer not in SCORERS:
        raise ValueError(f"scorer must be one of {', '.join(SCORERS)}, got {scorer!r}")
    name, score_of = SCORERS[scorer]
    labels = msld.label_indices(records)
    seeds = tuple(seeds)
    scores = {kind: tuple(score_of(features, labels, records, split_by(kind, records, s, settings.val, settings.test),
                                   settings) for s in seeds)
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
    said = p >= msld.THRESHOLD
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


@dataclass(frozen=True)
class CaseStudy:
    """The classifier on its test patients (:func:`case_study`): ``records``, their
    ``p_positive`` = P(Monkeypox) [N], the test ``roc_auc`` (patient bootstrap of
    :func:`xai_lab.models.msld.scores`) and the four ``cases`` of :func:`pick_cases`."""

    classifier: object
    records: list
    p_positive: torch.Tensor
    roc_auc: Interval
    cases: dict[str, tuple[int, str]]

    @property
    def is_positive(self) -> np.ndarray:
        """[N] bool: the true class is Monkeypox."""
        return np.array([r.label == msld.POSITIVE for r in self.records])

    @property
    def patients(self) -> list[str]:
        return [r.patient_id for r in self.records]

    @property
    def predicted(self) -> torch.Tensor:
        """[N] the predicted class index (order of ``CATEGORIES``: P(Monkeypox) >= THRESHOLD gives 0)."""
        return (self.p_positive < msld.THRESHOLD).long()

    @property
    def true(self) -> torch.Tensor:
        """[N] the true class index (order of ``CATEGORIES``)."""
        return torch.tensor([msld.CATEGORIES.index(r.label) for r in self.records])

    @property
    def chosen(self) -> list[int]:
        """The indices (into ``records``) of the cases, in the order of ``cases``."""
        return [i for i, _ in self.cases.values()]

    @property
    def mistakes(self) -> list[int]:
        """Positions among the cases (0..3) of the "wrong" cases that are mistakes (not fallbacks)."""
        return [k for k, (case, (i, _)) in enumerate(self.cases.items())
                if case.startswith("wrong") and self.predicted[i] != self.true[i]]

    def inputs(self, indices=None) -> torch.Tensor:
        """The preprocessed images [n, 3, H, W] of ``indices`` (default: every test record)."""
        indices = range(len(self.records)) if indices is None else indices
        return torch.stack([self.classifier.preprocess(self.records[i].path) for i in indices])

    def case_table(self) -> dict[str, dict]:
        """One row per case: image id, true and predicted class, P(Monkeypox) and the rule that chose it."""
        return {case: {"image": self.records[i].image_id, "true": self.records[i].label,
                       "predicted": msld.CATEGORIES[int(self.predicted[i])],
                       "P(Monkeypox)": round(float(self.p_positive[i]), 3), "rule": rule}
                for case, (i, rule) in self.cases.items()}

    def by_class(self, values, n_boot: int = 2000, seed: int = 0) -> dict[str, Interval]:
        """The mean of one value per test image [N] within each true class, with the percentile
        bootstrap over that class's patients (:func:`xai_lab.stats.bootstrap`, patients as clusters)."""
        values, patients = np.asarray(values, dtype=np.float64), np.array(self.patients)
        return {label: bootstrap(values[members], patients[members], resamples=n_boot, seed=seed)
                for label, members in ((msld.POSITIVE, self.is_positive),
                                       (msld.CATEGORIES[1], ~self.is_positive))}

    def region_shares(self, region: torch.Tensor, methods: Sequence[str] = ("gradcam",), seed: int = 0
                      ) -> dict[tuple[str, str], Interval]:
        """Where each method's map of the predicted class falls, for every test image: the share of
        its positive mass in ``region`` [H, W] (:func:`xai_lab.metrics.relevance_mass`,
        ``sum_region max(S, 0) / sum max(S, 0)``), averaged per true class with :meth:`by_class`.
        ``{(method, class): Interval}``; a map that ignored position would give the region's area share."""
        maps = explain(self.classifier, self.inputs(), method=list(methods), target=self.predicted, seed=seed)
        return {(name, label): interval for name, e in maps.items()
                for label, interval in self.by_class(relevance_mass(e.saliency, region)).items()}


def case_study(classifier=None, records=None, n_boot: int = 2000, seed: int = 0) -> CaseStudy:
    """Score the test patients and choose four cases (:func:`pick_cases`). Defaults: the book's
    classifier (``load_model("msld_efficientnet_lite0")``, trained or loaded from the cache) and
    the test split of :func:`xai_lab.models.msld.split_records`."""
    if classifier is None:
        from ..models import load_model

        classifier = load_model(msld.NAME)
    records = msld.split_records()["test"] if records is None else list(records)
    p = msld.predict(classifier, records, progress=False)
    truth = torch.tensor([r.label == msld.POSITIVE for r in records])
    auc = msld.scores(truth, p, [r.patient_id for r in records], n_boot, seed).roc_auc
    return CaseStudy(classifier, records, p, auc, pick_cases(p, truth.numpy()))


def two_class_identities(classifier, x: torch.Tensor, predicted, true, window: int = 112,
                         stride: int = 56) -> dict[str, float]:
    """How exactly a two-class classifier ties the maps of its two classes, as three errors that
    are zero when the identities hold (``x`` [N, 3, H, W], ``predicted`` and ``true`` [N]).

    A head fitted from zero by gradient steps on the cross-entropy keeps opposite rows
    (``dCE/dz_0 = p_0 - y_0 = -dCE/dz_1`` at every step, so ``W_1 = -W_0``, ``b_1 = -b_0``):
    ``z_1 = -z_0``, the input gradient of one class is minus that of the other and the saliency
    ``|grad|`` (Simonyan et al. 2014) of both is the same. Any two-class softmax has ``p_1 = 1 - p_0``,
    so occlusion's map (Zeiler & Fergus 2014: the drop of the target probability, here with
    ``window`` and ``stride``) of one class is minus that of the other. Returns
    ``max |row_0 + row_1| / max |row|`` of the head (weights and bias), ``max |occlusion(true) +
    occlusion(predicted)|`` and ``max |saliency(true) - saliency(predicted)| / max saliency(predicted)``."""
    head = dict(classifier.model.named_modules())[classifier.head]
    rows = torch.cat([head.weight, head.bias[:, None]], 1).detach()
    occlusion = [explain(classifier, x, method="occlusion", target=t, window=window, stride=stride).saliency
                 for t in (predicted, true)]
    saliency = [explain(classifier, x, method="saliency", target=t).saliency for t in (predicted, true)]
    return {"head: max |row Monkeypox + row Others| / max |row|": float((rows[0] + rows[1]).abs().max() / rows.abs().max()),
            "occlusion: max |map(true) + map(predicted)|": float((occlusion[0] + occlusion[1]).abs().max()),
            "saliency: max |map(true) - map(predicted)| / max map": float((saliency[1] - saliency[0]).abs().max()
                                                                          / saliency[0].max())}


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
    answers (at :data:`~xai_lab.models.msld.THRESHOLD`) that ``flip``."""

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
        shift, flips = p - before, (p >= msld.THRESHOLD) != (before >= msld.THRESHOLD)
        out[name] = EditEffect(p, msld.scores(truth, p, patients, n_boot, seed), float(shift.mean()),
                               float(shift.min()), float(shift.max()), int(flips.sum()))
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


__all__ = ["CaseStudy", "EditEffect", "NearestNeighbors", "SPLITS", "STATISTICS", "SplitLeak", "StatisticAUC",
           "balanced_accuracy", "best_threshold", "border_band", "case_study", "dataset_summary", "edit_effects", "hide",
           "image_split", "image_statistics", "images_per_patient", "nearest_neighbors", "patients_by_image_count",
           "patients_in_several_splits", "pick_cases", "roc_auc", "sample_patients", "scale_brightness", "split_by",
           "split_leak", "split_summary", "statistic_aucs", "two_class_identities"]
