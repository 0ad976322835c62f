"""Figures of the MSLD classifier: accuracy, balanced accuracy and ROC AUC over images, each
with a 95 % percentile bootstrap interval that resamples *patients* with replacement (images of
one patient are not independent; :func:`xai_lab.stats.bootstrap` with the patients as
clusters), and the confusion matrix."""
from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from tqdm import tqdm

from ...stats import LEVEL, Interval, bootstrap, resample_counts
from .. import Classifier
from .data import PixelTransform, center_view, load_pixels
from .settings import CATEGORIES, POSITIVE, THRESHOLD

METRICS = ("accuracy", "balanced_accuracy", "roc_auc")


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
                         else classifier.from_pixels(center_view(load_pixels(r, transform)))
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


def _metric_statistic(name: str):
    """``statistic(values [N, 3] = (positive, score, predicted), weights [B, N])`` for
    :func:`~xai_lab.stats.bootstrap`: the metric ``name`` of :func:`weighted_metrics`, NaN in
    every metric for a resample that lacks a class (such draws are left out of all three)."""

    def statistic(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
        v = torch.from_numpy(values)
        out = weighted_metrics(torch.from_numpy(weights), v[:, 0] > 0.5, v[:, 1], v[:, 2] > 0.5)
        return torch.where(out["roc_auc"].isnan(), torch.nan, out[name]).numpy()

    return statistic


@dataclass(frozen=True)
class Evaluation:
    """The figures of one set of scored images (:func:`scores`): three metrics with their
    patient-bootstrap intervals; ``confusion`` [[TP, FN], [FP, TN]] (rows true, columns
    predicted, both in the order of :data:`CATEGORIES`); ``undefined_draws``: bootstrap draws
    lacking a class, left out of the intervals; ``patient_level``: the same per patient
    (:func:`evaluate`)."""

    accuracy: Interval
    balanced_accuracy: Interval
    roc_auc: Interval
    confusion: list
    n_images: int
    n_patients: int
    n_boot: int
    undefined_draws: int
    patient_level: Evaluation | None = None

    def metric(self, name: str) -> Interval:
        """The interval of ``name`` (one of :data:`METRICS`)."""
        if name not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {name!r}")
        return getattr(self, name)

    def as_dict(self) -> dict:
        """JSON-ready: each metric as ``{"value", "low", "high", "n", "level"}``."""
        out = {name: self.metric(name).as_dict() for name in METRICS}
        out["confusion"] = {"rows_true_cols_predicted": list(CATEGORIES), "matrix": self.confusion}
        out.update(n_images=self.n_images, n_patients=self.n_patients, n_boot=self.n_boot,
                   undefined_draws=self.undefined_draws)
        if self.patient_level is not None:
            out["patient_level"] = self.patient_level.as_dict()
        return out


def scores(positive: torch.Tensor, score: torch.Tensor, groups: Sequence[str], n_boot: int = 2000,
           seed: int = 0) -> Evaluation:
    """Metrics of scores ``score`` [N] (predicted positive when score >= :data:`THRESHOLD`) against ``positive``
    [N] (bool), each an :class:`~xai_lab.stats.Interval`: a percentile bootstrap over the distinct
    ``groups`` (patients), ``n_boot`` draws with ``seed`` (:func:`xai_lab.stats.bootstrap`). Draws
    lacking a class are left out of the intervals (``undefined_draws`` counts them)."""
    positive, score = torch.as_tensor(positive).bool(), torch.as_tensor(score).double()
    if positive.all() or not positive.any():
        raise ValueError("scores needs images of both classes")
    predicted = score >= THRESHOLD
    values = torch.stack([positive.double(), score, predicted.double()], 1).numpy()
    groups = list(groups)
    intervals = {name: bootstrap(values, groups, LEVEL, n_boot, seed, _metric_statistic(name)) for name in METRICS}
    names = sorted(set(groups))
    member = np.array([names.index(g) for g in groups])
    counts = resample_counts(len(names), n_boot, seed)[:, member]
    pos = positive.numpy()
    undefined = int(((counts[:, pos].sum(1) == 0) | (counts[:, ~pos].sum(1) == 0)).sum())
    matrix = [[int(((positive == (truth == POSITIVE)) & (predicted == (guess == POSITIVE))).sum())
               for guess in CATEGORIES] for truth in CATEGORIES]
    return Evaluation(**intervals, confusion=matrix, n_images=len(score), n_patients=len(names), n_boot=n_boot,
                      undefined_draws=undefined)


def evaluate(classifier: Classifier, records, n_boot: int = 2000, seed: int = 0, progress: bool | None = None,
             transform: PixelTransform | None = None) -> Evaluation:
    """:func:`scores` of the classifier on ``records`` (edited by ``transform`` when given), images
    as the unit and patients as the bootstrap clusters; ``patient_level`` repeats them with each
    patient's mean P(Monkeypox): :func:`evaluate_probabilities` of :func:`predict`."""
    return evaluate_probabilities(predict(classifier, records, progress=progress, transform=transform), records,
                                  n_boot, seed)


def evaluate_probabilities(probability: torch.Tensor, records, n_boot: int = 2000, seed: int = 0) -> Evaluation:
    """The figures of :func:`evaluate` from P(Monkeypox) [N] of the ``records`` already computed
    (by :func:`predict`, or by a head applied to features that several models share)."""
    probability = torch.as_tensor(probability)
    if probability.shape != (len(records),):
        raise ValueError(f"probability must hold one value per record, [{len(records)}], got {list(probability.shape)}")
    positive = torch.tensor([r.label == POSITIVE for r in records])
    patients = [r.patient_id for r in records]
    result = scores(positive, probability, patients, n_boot, seed)
    names = sorted(set(patients))
    member = torch.tensor([[p == name for p in patients] for name in names], dtype=torch.float64)
    mean_probability = member @ probability.double() / member.sum(1)
    patient_positive = (member @ positive.double()) > 0
    if not torch.equal(patient_positive, (member @ (~positive).double()) == 0):
        raise ValueError("A patient has images with both labels")
    per_patient = scores(patient_positive, mean_probability, names, n_boot, seed)
    return replace(result, patient_level=per_patient)


def describe(result: Evaluation) -> str:
    """The figures of :func:`evaluate` as a few lines of text."""
    lines = [f"{result.n_images} images of {result.n_patients} patients "
             f"(95 % intervals: {result.n_boot} bootstrap draws of patients)"]
    for level, res in (("images", result), ("patients", result.patient_level)):
        if res is None:
            continue
        figures = ", ".join(f"{name.replace('_', ' ')} {res.metric(name)}" for name in METRICS)
        lines.append(f"per {level}: {figures}")
        (tp, fn), (fp, tn) = res.confusion
        lines.append(f"  confusion (rows true, columns predicted Monkeypox / Others): "
                     f"Monkeypox {tp} / {fn}, Others {fp} / {tn}")
    return "\n".join(lines)
