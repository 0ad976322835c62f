"""Comparing explanation methods over many images: one record per (image, method) of faithfulness
scores and costs, and per method and score the mean with its bootstrap interval.

Per image (:func:`evaluate`): explain one image, then

* ``"{order}_{baseline}_{measure}@{k}"``: :func:`~xai_lab.metrics.pixel_perturbation` with the
  fraction ``k`` of the pixels removed most (``morf``) or least (``lerf``) salient first,
  replaced by ``black`` or the image ``mean``; measures AFOC, KL and PCUO;
* ``deletion_auc`` and ``insertion_auc`` (Petsiuk et al. 2018) at a coarse step;
* costs: ``seconds``, ``forward_passes``, ``backward_passes`` of the explanation;
* on request (:func:`sanity_scores`) the cascading-randomization sanity check (Adebayo et al.
  2018): ``sanity_spearman@s`` / ``sanity_ssim@s`` after cascade stage ``s`` and
  ``random_target_spearman``.

Each record declares, in ``record["better"]``, whether higher or lower values of each of its
scores are better (:class:`xai_lab.stats.Direction`), set where the score is computed.

Over images (:func:`summarize`, :func:`compare`): the mean and its percentile bootstrap interval
(:func:`xai_lab.stats.bootstrap`; the resamples depend only on the seed and n, so methods scored
on the same images share them), and paired differences (:func:`xai_lab.stats.paired_bootstrap`).
Records are plain JSON-ready dicts; the benchmark's results files (``benchmarks/_common.py``)
store them one per line.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..explain import explain
from ..stats import LEVEL, Direction, Interval, bootstrap, paired_bootstrap
from .localization import pointing_game, relevance_mass
from .perturbation import deletion_auc, insertion_auc, pixel_perturbation
from .sanity import sanity_check

MEASURES = ("afoc", "kl", "pcuo")
LOCALIZATION = ("relevance_mass", "pointing_game")
COST_FIELDS = ("seconds", "forward_passes", "backward_passes")
#: Removing the most salient pixels first should change the output much (higher is better);
#: removing the least salient first, little (lower is better).
ORDER_DIRECTION = {"morf": Direction.HIGHER, "lerf": Direction.LOWER}
#: The scores with fixed names: a map that deletes the class fast and inserts it fast is
#: faithful; a sane map changes when the model is randomized (low similarity) and with the
#: target; costs are better low.
DIRECTIONS = {"deletion_auc": Direction.LOWER, "insertion_auc": Direction.HIGHER,
              "random_target_spearman": Direction.LOWER, **{field: Direction.LOWER for field in COST_FIELDS}}


@dataclass(frozen=True)
class Protocol:
    """What is measured per image. ``fractions``: of the pixels removed in pixel perturbation
    (1, 3, 5, 10 % as in Srinivas & Fleuret 2019); ``step``: pixels removed or inserted per
    point of the deletion and insertion curves."""

    fractions: tuple[float, ...] = (0.01, 0.03, 0.05, 0.1)
    orders: tuple[str, ...] = ("morf", "lerf")
    baselines: tuple = ("black", "mean")
    step: int = 224 * 32
    deletion_baseline: str | float = "black"
    insertion_start: str | float = "blur"

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Protocol:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


DEFAULT_PROTOCOL = Protocol()


def score_name(order: str, baseline, measure: str, fraction: float) -> str:
    """``"lerf_mean_afoc@0.1"``: the key of one pixel-perturbation score."""
    return f"{order}_{baseline}_{measure}@{fraction:g}"


def perturbation_directions(protocol: Protocol = DEFAULT_PROTOCOL) -> dict[str, Direction]:
    """``{score name: Direction}`` of every score :func:`perturbation_scores` gives under
    ``protocol`` and of the costs of :func:`evaluate`."""
    out = {score_name(order, baseline, measure, f): ORDER_DIRECTION[order] for order in protocol.orders
           for baseline in protocol.baselines for measure in MEASURES for f in protocol.fractions}
    return {**out, **{name: DIRECTIONS[name] for name in ("deletion_auc", "insertion_auc", *COST_FIELDS)}}


def _one_image(x: torch.Tensor) -> torch.Tensor:
    x = x[None] if x.dim() == 3 else x
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"evaluate one image at a time: x must be [3, H, W] or [1, 3, H, W], got {list(x.shape)}")
    return x


def perturbation_scores(classifier, x: torch.Tensor, saliency: torch.Tensor, target: int,
                        protocol: Protocol = DEFAULT_PROTOCOL) -> tuple[dict, dict]:
    """Scores of one image's map under ``protocol``: ``({score name: float}, curves)``, curves
    holding the deletion and insertion curves (target probability per point). Their directions:
    :func:`perturbation_directions`."""
    x = _one_image(x)
    saliency = saliency.reshape(1, *x.shape[-2:])
    target = torch.as_tensor([int(target)])
    scores = {}
    for order in protocol.orders:
        for baseline in protocol.baselines:
            out = pixel_perturbation(classifier, x, saliency, target, order=order, baseline=baseline,
                                     fractions=protocol.fractions)
            for measure in MEASURES:
                for f, value in zip(protocol.fractions, out[measure][0].tolist()):
                    scores[score_name(order, baseline, measure, f)] = value
    deletion = deletion_auc(classifier, x, saliency, target, baseline=protocol.deletion_baseline, step=protocol.step)
    insertion = insertion_auc(classifier, x, saliency, target, start=protocol.insertion_start, step=protocol.step)
    scores["deletion_auc"] = float(deletion["auc"][0])
    scores["insertion_auc"] = float(insertion["auc"][0])
    curves = {"fractions": deletion["fractions"].tolist(), "deletion": deletion["curve"][0].tolist(),
              "insertion": insertion["curve"][0].tolist()}
    return scores, curves


def localization_scores(saliency: torch.Tensor, mask: torch.Tensor) -> dict:
    """Scores of one map against a known region ``mask`` [H, W] (the planted mark): ``relevance_mass``
    (share of the positive relevance inside, Arras et al. 2022) and ``pointing_game`` (1.0 when the
    map's maximum is inside, Zhang et al. 2018; a constant map points nowhere and scores 0), both
    better higher."""
    saliency = saliency.reshape(1, *mask.shape[-2:])
    mask = mask.reshape(1, *mask.shape[-2:]).bool()
    flat = saliency.flatten(1)
    spread = bool(flat.amax(1) > flat.amin(1))
    return {"relevance_mass": float(relevance_mass(saliency, mask)[0]),
            "pointing_game": float(bool(pointing_game(saliency, mask)[0]) and spread)}


def evaluate(classifier, x: torch.Tensor, method: str, protocol: Protocol = DEFAULT_PROTOCOL, seed: int = 0,
             device=None, options: dict | None = None, layer: str | None = None,
             mask: torch.Tensor | None = None) -> dict:
    """Explain one image [3, H, W] with ``method`` (predicted class, ``seed``, ``options``, at
    ``layer`` for a layer method, None: the model's default) and score the map: a record
    ``{"method", "options", "layer", "target", "seconds", "forward_passes", "backward_passes",
    "eval_seconds", "scores", "better", "curves"}`` (``better``: each score's and cost's
    direction, ``"higher"`` or ``"lower"``). With a ``mask`` [H, W] of the region that truly
    decides the output, the scores add :func:`localization_scores`."""
    options = dict(options or {})
    x = _one_image(x)
    e = explain(classifier, x, method=method, seed=seed, device=device, progress=False, layer=layer, **options)
    start = time.perf_counter()
    scores, curves = perturbation_scores(classifier, x, e.saliency, int(e.target[0]), protocol)
    better = {k: d.value for k, d in perturbation_directions(protocol).items()}
    if mask is not None:
        scores.update(localization_scores(e.saliency.cpu(), mask.cpu()))
        better.update({name: Direction.HIGHER.value for name in LOCALIZATION})
    return {"method": method, "options": options, "layer": layer, "target": int(e.target[0]), "seconds": e.seconds,
            "forward_passes": e.forward_passes, "backward_passes": e.backward_passes,
            "eval_seconds": time.perf_counter() - start, "scores": scores, "better": better, "curves": curves}


def recompute(classifier, x: torch.Tensor, record: dict, protocol: Protocol = DEFAULT_PROTOCOL, seed: int = 0,
              rtol: float = 1e-3, atol: float = 1e-4) -> float:
    """Evaluate the image ``x`` [3, H, W] again as ``record`` (an :func:`evaluate` record: its
    method, options and layer) was made, with ``protocol`` and ``seed``, and check the result
    against it: the same target and forward passes, and every score within ``rtol``/``atol``
    (``numpy.isclose``). Returns the largest absolute score difference; a ValueError names the
    first disagreement. A result stored with a benchmark can so be re-checked on the records
    a reader picks. Pick maps without near ties: a pixel-gradient map recomputed on a CPU with
    other vector instructions agrees to float32 rounding, but the rounding reorders its nearly
    tied pixels, and its removal scores move by more than these tolerances."""
    now = evaluate(classifier, x, record.get("base_method", record["method"]),
                   protocol, seed=seed, options=record.get("options"), layer=record.get("layer"))
    for key in ("target", "forward_passes"):
        if now[key] != record[key]:
            raise ValueError(f"{record['method']}: {key} is {now[key]} now, {record[key]} in the record")
    worst = 0.0
    for score, value in record["scores"].items():
        if score not in now["scores"] or not np.isclose(now["scores"][score], value, rtol=rtol, atol=atol):
            raise ValueError(f"{record['method']}: {score} is {now['scores'].get(score)} now, {value} in the record")
        worst = max(worst, abs(now["scores"][score] - value))
    return worst


def sanity_scores(classifier, x: torch.Tensor, method: str, target: int, steps: int = 3, seed: int = 0,
                  options: dict | None = None, layer: str | None = None) -> dict:
    """The cascading-randomization check of one image with ``steps`` stages: a record
    ``{"method", "options", "layers", "sanity_seconds", "scores", "better"}`` with scores
    ``sanity_spearman@s``, ``sanity_ssim@s`` (s = 1..steps, the last stage randomizes every
    layer) and ``random_target_spearman``, all better lower (a map that stays the same when
    the model is randomized does not depend on it)."""
    options = dict(options or {})
    if layer is not None:
        options["layer"] = layer
    x = _one_image(x)
    start = time.perf_counter()
    out = sanity_check(classifier, x, method, target=torch.as_tensor([int(target)]), steps=steps, seed=seed, options=options)
    scores = {}
    for s in range(len(out["layers"])):
        scores[f"sanity_spearman@{s + 1}"] = float(out["spearman"][s, 0])
        scores[f"sanity_ssim@{s + 1}"] = float(out["ssim"][s, 0])
    scores["random_target_spearman"] = float(out["random_target_spearman"][0])
    return {"method": method, "options": options, "layers": list(out["layers"]),
            "sanity_seconds": time.perf_counter() - start, "scores": scores,
            "better": {k: Direction.LOWER.value for k in scores}}


def _values(record: dict) -> dict:
    values = dict(record.get("scores", {}))
    if record["kind"] == "eval":
        values.update({k: record[k] for k in COST_FIELDS if k in record})
    return values


def per_image(records: Iterable[dict], method: str, score: str) -> dict:
    """``{image: value}`` of one method's score."""
    out = {}
    for r in records:
        if r["method"] == method:
            values = _values(r)
            if score in values:
                out[r["image"]] = values[score]
    return out


def directions(records: Iterable[dict]) -> dict[str, Direction]:
    """``{score: Direction}`` as the records declare them (``record["better"]``); a ValueError if
    two records disagree."""
    out: dict = {}
    for r in records:
        for score, direction in r.get("better", {}).items():
            found = out.setdefault(score, Direction(direction))
            if found is not Direction(direction):
                raise ValueError(f"records disagree on the direction of {score!r}")
    return out


def summarize(records: Iterable[dict], methods: Sequence[str] | None = None, level: float = LEVEL,
              resamples: int = 2000, seed: int = 0) -> dict[str, dict[str, Interval]]:
    """``{method: {score: Interval}}``: the mean of each score over the images each method has it
    for, with :func:`xai_lab.stats.bootstrap` (by cluster where the records carry a ``"cluster"``,
    e.g. the patient of an MSLD image: images of one patient are resampled together; values taken
    in image order, so any order of the records, or of the files they were merged from, gives the same table). ``methods`` fixes the
    row order (default: sorted names). The scores' directions: :func:`directions`."""
    records = sorted(records, key=lambda r: (r["image"], r["kind"], r["method"]))
    values: dict = {}
    clusters: dict = {}
    for r in records:
        for score, value in _values(r).items():
            values.setdefault(r["method"], {}).setdefault(score, []).append(value)
            clusters.setdefault(r["method"], {}).setdefault(score, []).append(r.get("cluster"))
    names = list(methods) if methods is not None else sorted(values)

    def interval(method, score, vals):
        groups = clusters[method][score]
        by = None if all(c is None for c in groups) else groups
        return bootstrap(vals, clusters=by, level=level, resamples=resamples, seed=seed)

    return {method: {score: interval(method, score, vals) for score, vals in values.get(method, {}).items()}
            for method in names}


def compare(records: Sequence[dict], score: str, method: str, methods: Sequence[str] | None = None,
            level: float = LEVEL, resamples: int = 2000, seed: int = 0) -> dict:
    """Is ``method`` the best of ``methods`` on ``score`` (in the direction the records declare
    for it)? Returns ``intervals`` {method: Interval}, ``best`` (the best mean), ``is_best``, and
    per other method ``versus``: ``difference`` (``method`` minus it, paired over the images both
    have: :func:`xai_lab.stats.paired_bootstrap`), ``intervals_overlap`` (of the two methods' own
    intervals) and ``difference_excludes_zero``. Where the records carry a ``"cluster"`` (the
    patient of an MSLD image), every interval resamples whole clusters: the images of one patient
    are not independent evidence."""
    direction = directions(records).get(score)
    if direction is None:
        raise ValueError(f"No record declares the direction of {score!r}")
    values = {m: per_image(records, m, score) for m in (methods or sorted({r["method"] for r in records}))}
    values = {m: v for m, v in values.items() if v}
    if method not in values:
        raise ValueError(f"No {score!r} values for {method!r}")
    cluster_of = {r["image"]: r.get("cluster") for r in records}
    if all(c is None for c in cluster_of.values()):
        cluster_of = {}

    def clusters(images):
        return [cluster_of[i] for i in images] if cluster_of else None

    intervals = {m: bootstrap([v[i] for i in sorted(v)], clusters(sorted(v)), level=level, resamples=resamples,
                              seed=seed) for m, v in values.items()}
    best = min(intervals, key=lambda m: (direction.sort_key(intervals[m].value), m))
    versus = {}
    for other, vals in values.items():
        if other == method:
            continue
        common = sorted(set(vals) & set(values[method]))
        diff = paired_bootstrap([values[method][i] for i in common], [vals[i] for i in common], clusters(common),
                                level=level, resamples=resamples, seed=seed)
        versus[other] = {"difference": diff, "intervals_overlap": intervals[method].overlaps(intervals[other]),
                         "difference_excludes_zero": diff.excludes(0.0)}
    return {"score": score, "better": direction, "method": method, "level": level, "intervals": intervals,
            "best": best, "is_best": best == method, "versus": versus}
