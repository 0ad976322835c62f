"""Which metric can you trust? Evaluation metrics judged against a known answer.

Faithfulness, robustness and complexity metrics rank explanation methods, and they disagree
with one another; on real data nobody knows which ranking is right. On the planted-shortcut
model (:mod:`xai_lab.experiments.shortcut`: a classifier trained with a magenta square on the
Monkeypox images) the answer is known on marked images: the square carries the decision, so a
method is better the more of its map falls on the square. This module asks each metric whether
it ranks the methods in that order.

* **The ground truth** per image i and method m: the relevance mass on the mark (Arras et al.
  2022, "CLEVR-XAI"), t_im = sum_{p in mark} R+_p / sum_p R+_p of the method's map of the score
  explained (default: Monkeypox, the class the mark stands for). The truth ranking orders the
  methods by their mean over images, T_m = mean_i t_im (higher is better).
* **A metric's ranking**: its per-image score s_im of the same map (or the same method, for
  the metrics that explain again: max-sensitivity, the sanity check, the random-logit test),
  averaged over images, S_m = mean_i s_im, turned into a goodness G_m = S_m where the metric
  declares higher values better and G_m = -S_m where lower (each metric's
  ``higher_is_better``, as a :class:`xai_lab.stats.Direction`).
* **Agreement**: the rank correlation across the M methods between G and T, Spearman's rho
  (:func:`spearman_rows`: the convention of :func:`xai_lab.metrics.spearman`, average ranks,
  0 when either ranking is constant, for many resamples at once) and Kendall's tau-b
  (:func:`kendall_rows`). +1: the metric orders the
  methods as the truth does; -1: in reverse; 0: unrelated.
* **Intervals**: :func:`xai_lab.stats.bootstrap` over images, whole patients resampled
  (``clusters``), each resample recomputing both means and the correlation, so the interval
  holds the uncertainty of both rankings. A score that is not finite (a metric undefined for a
  map, e.g. sparseness of an all-zero map) is left out of its method's mean; a resample in
  which a method has no finite score is left out of the interval.

:func:`score_image` scores one (image, method); :func:`per_image_scores` every record and method
(a pure function: resumable records are the benchmark's, ``benchmarks/metric_trust.py``, which
builds the same :class:`TrustScores` with :meth:`TrustScores.from_records`); :func:`trust` gives
one :class:`MetricTrust` per metric; :func:`plot_trust` and :func:`plot_ranking` draw them;
:func:`recompute` checks a stored record of the benchmark against the code as it is now.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..explain import explain
from ..metrics import (
    complexity,
    deletion_auc,
    faithfulness_correlation,
    insertion_auc,
    local_lipschitz_estimate,
    max_sensitivity,
    pixel_perturbation,
    random_logit,
    relevance_mass,
    road,
    sanity_check,
    sparseness,
)
from ..metrics.comparison import DIRECTIONS, ORDER_DIRECTION
from ..models import msld
from ..stats import LEVEL, Direction, Interval, bootstrap
from .shortcut import CHAPTER_METHODS, CPU_BATCH, Mark, PixelTransform, image_id, inputs, mark_mask, marked

TRUTH = "relevance_mass"
DEFAULT_MARK = Mark()  # the shortcut model's mark: a 48-pixel magenta square


def _chapter_options(name: str, **changes) -> dict:
    """A method's options of :data:`xai_lab.experiments.shortcut.CHAPTER_METHODS` (without its
    ``images`` limit), with ``changes``."""
    return {**{k: v for k, v in CHAPTER_METHODS[name].items() if k != "images"}, **changes}


#: The methods ranked by default, cheap but diverse: five CAMs (Score-CAM at the last block,
#: 320 channels), FullGrad, four gradient methods, occlusion with the mark's window, RISE with
#: few masks, and the two controls (a random map, an edge detector). {name: explain options}.
DEFAULT_METHODS = {
    "gradcam": {}, "gradcampp": {}, "layercam": {}, "scorecam": _chapter_options("scorecam"), "fullgrad": {},
    "saliency": {}, "input_x_gradient": {}, "integrated_gradients": _chapter_options("integrated_gradients"),
    "smoothgrad": _chapter_options("smoothgrad"), "occlusion": _chapter_options("occlusion"),
    "rise": _chapter_options("rise", n_masks=100), "random": {}, "sobel": {},
}


@dataclass(frozen=True)
class Settings:
    """The metrics' parameters. ``step``: pixels deleted or inserted per point of the deletion
    and insertion curves; ``pixel_fraction`` / ``pixel_baseline``: the share of pixels removed
    and what replaces them in MoRF/LeRF pixel perturbation (AFOC, Srinivas & Fleuret 2019);
    ``road_fractions`` / ``road_noise``: ROAD's removed fractions and imputation noise;
    ``faithfulness_runs`` / ``faithfulness_subset``: random subsets of pixels and their size;
    ``sensitivity_samples`` / ``sensitivity_radius``: max-sensitivity's perturbed points and L∞
    radius (``lipschitz_std``: the local Lipschitz estimate's noise, same samples);
    ``sanity_steps``: cascade stages (the score is the last, every layer re-initialized);
    ``random_logit_similarity``: "ssim" (the paper's), "spearman" or "pearson";
    ``batch_size``: images per forward pass of the metrics that perturb the input."""

    step: int = 224 * 16
    deletion_baseline: str = "black"
    insertion_start: str = "blur"
    pixel_fraction: float = 0.1
    pixel_baseline: str = "black"
    road_fractions: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)
    road_noise: float = 0.01
    faithfulness_runs: int = 50
    faithfulness_subset: int = 224
    sensitivity_samples: int = 5
    sensitivity_radius: float = 0.2
    lipschitz_std: float = 0.1
    sanity_steps: int = 1
    random_logit_similarity: str = "ssim"
    batch_size: int = CPU_BATCH

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: Mapping) -> Settings:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


DEFAULT_SETTINGS = Settings()
#: Small sizes for a quick look (the chapter, ``--quick``): fewer points, fractions, subsets and
#: samples: 8 points per deletion or insertion curve instead of 15, 11 forward passes of
#: faithfulness correlation instead of 51, 2 ROAD imputations per order instead of 5.
QUICK_SETTINGS = Settings(step=224 * 32, road_fractions=(0.3, 0.7), faithfulness_runs=10, sensitivity_samples=3)


@dataclass(frozen=True)
class MetricInput:
    """What a metric sees for one (image, method): the classifier, the image ``x`` [1, 3, H, W],
    the method's map ``saliency`` [1, H, W] of ``target`` (a class index), the method's name and
    explain ``options`` (for the metrics that explain again), the ``seed`` and the settings."""

    classifier: object
    x: torch.Tensor
    saliency: torch.Tensor
    method: str
    options: Mapping
    target: int
    seed: int
    settings: Settings


@dataclass(frozen=True)
class Metric:
    """A metric as ranked here: ``label`` for tables, which values are ``better`` (declared by
    the metric where it is computed), and ``score(MetricInput) -> float``, the per-image value."""

    label: str
    better: Direction
    score: Callable[[MetricInput], float]


def _direction(higher_is_better: bool) -> Direction:
    return Direction.HIGHER if higher_is_better else Direction.LOWER


def _deletion(m: MetricInput) -> float:
    """Deletion AUC (Petsiuk et al. 2018): the target's probability as the most salient pixels go."""
    s = m.settings
    return float(deletion_auc(m.classifier, m.x, m.saliency, m.target, baseline=s.deletion_baseline, step=s.step,
                              batch_size=s.batch_size)["auc"][0])


def _insertion(m: MetricInput) -> float:
    """Insertion AUC (Petsiuk et al. 2018): the most salient pixels put back into a blurred image."""
    s = m.settings
    return float(insertion_auc(m.classifier, m.x, m.saliency, m.target, start=s.insertion_start, step=s.step,
                               batch_size=s.batch_size)["auc"][0])


def _pixel_perturbation(order: str) -> Callable[[MetricInput], float]:
    def score(m: MetricInput) -> float:
        """AFOC |p_k - p| / p with the ``pixel_fraction`` most (MoRF) or least (LeRF) salient pixels replaced."""
        out = pixel_perturbation(m.classifier, m.x, m.saliency, m.target, order=order, baseline=m.settings.pixel_baseline,
                                 fractions=(m.settings.pixel_fraction,))
        return float(out["afoc"][0, 0])
    return score


def _road(order: str) -> Callable[[MetricInput], float]:
    def score(m: MetricInput) -> float:
        """ROAD (Rong et al. 2022): the target's logit after noisy linear imputation of the pixels
        ranked first, averaged over the fractions (a per-image area under the curve whose 0/1
        version, correct or not, the paper averages over images)."""
        s = m.settings
        out = road(m.classifier, m.x, m.saliency, m.target, order=order, fractions=s.road_fractions, noise=s.road_noise,
                   seed=m.seed, batch_size=s.batch_size, progress=False)
        return float(out["score"][0].mean())
    return score


def _faithfulness(m: MetricInput) -> float:
    s = m.settings
    return float(faithfulness_correlation(m.classifier, m.x, m.saliency, m.target, subset_size=s.faithfulness_subset,
                                          runs=s.faithfulness_runs, seed=m.seed, batch_size=s.batch_size,
                                          progress=False)["correlation"][0])


def _max_sensitivity(m: MetricInput) -> float:
    s = m.settings
    return float(max_sensitivity(m.classifier, m.x, m.method, m.target, radius=s.sensitivity_radius,
                                 samples=s.sensitivity_samples, seed=m.seed, batch_size=s.batch_size, progress=False,
                                 options=dict(m.options))["score"][0])


def _local_lipschitz(m: MetricInput) -> float:
    s = m.settings
    return float(local_lipschitz_estimate(m.classifier, m.x, m.method, m.target, std=s.lipschitz_std,
                                          samples=s.sensitivity_samples, seed=m.seed, batch_size=s.batch_size,
                                          progress=False, options=dict(m.options))["score"][0])


def _sanity(m: MetricInput) -> float:
    """Spearman of |map| with |map of the model with every layer re-initialized| (Adebayo et al. 2018)."""
    out = sanity_check(m.classifier, m.x, m.method, target=m.target, steps=m.settings.sanity_steps, seed=m.seed,
                       options=dict(m.options))
    return float(out["spearman"][-1, 0])


def _random_logit(m: MetricInput) -> float:
    return float(random_logit(m.classifier, m.x, m.method, m.target, similarity=m.settings.random_logit_similarity,
                              seed=m.seed, options=dict(m.options))["similarity"][0])


def _sparseness(m: MetricInput) -> float:
    return float(sparseness(m.saliency.cpu())[0])


def _complexity(m: MetricInput) -> float:
    return float(complexity(m.saliency.cpu())[0])


#: Every metric this module can rank by: {name: Metric}. The directions come from where each
#: score is made (``higher_is_better`` of the metric functions, the comparison module's
#: directions); the sanity check's similarity is better low (a map that stays the same when
#: the model is destroyed does not explain the model), as in
#: :func:`xai_lab.metrics.comparison.sanity_scores`.
METRICS: dict[str, Metric] = {
    "deletion": Metric("deletion AUC", DIRECTIONS["deletion_auc"], _deletion),
    "insertion": Metric("insertion AUC", DIRECTIONS["insertion_auc"], _insertion),
    "morf": Metric("MoRF AFOC", ORDER_DIRECTION["morf"], _pixel_perturbation("morf")),
    "lerf": Metric("LeRF AFOC", ORDER_DIRECTION["lerf"], _pixel_perturbation("lerf")),
    "road_morf": Metric("ROAD MoRF", _direction(road.higher_is_better["morf"]), _road("morf")),
    "road_lerf": Metric("ROAD LeRF", _direction(road.higher_is_better["lerf"]), _road("lerf")),
    "faithfulness_correlation": Metric("faithfulness correlation",
                                       _direction(faithfulness_correlation.higher_is_better), _faithfulness),
    "max_sensitivity": Metric("max-sensitivity", _direction(max_sensitivity.higher_is_better), _max_sensitivity),
    "local_lipschitz": Metric("local Lipschitz estimate", _direction(local_lipschitz_estimate.higher_is_better),
                              _local_lipschitz),
    "sparseness": Metric("sparseness", _direction(sparseness.higher_is_better), _sparseness),
    "complexity": Metric("complexity", _direction(complexity.higher_is_better), _complexity),
    "sanity": Metric("sanity check (Spearman)", Direction.LOWER, _sanity),
    "random_logit": Metric("random logit (SSIM)", _direction(random_logit.higher_is_better), _random_logit),
}
#: The metrics ranked by default: every family (the local Lipschitz estimate, a second robustness
#: score, on request).
DEFAULT_METRICS = ("deletion", "insertion", "morf", "lerf", "road_morf", "road_lerf", "faithfulness_correlation",
                   "max_sensitivity", "sparseness", "complexity", "sanity", "random_logit")


def check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    """``metrics`` as a tuple of known names without repeats; a ValueError naming the bad one."""
    if isinstance(metrics, str):
        raise TypeError(f"metrics must be a sequence of names, e.g. ({metrics!r},), not the string {metrics!r}")
    metrics = tuple(metrics)
    if not metrics:
        raise ValueError("metrics must name at least one metric")
    for name in metrics:
        if name not in METRICS:
            raise ValueError(f"Unknown metric {name!r}; known: {', '.join(METRICS)}")
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics names a metric twice: {metrics}")
    return metrics


def _method_requests(methods: Sequence[str] | Mapping[str, Mapping]) -> dict[str, dict]:
    if isinstance(methods, str):
        raise TypeError(f"methods must be names or {{name: options}}, not the string {methods!r}")
    requests = {name: dict(options) for name, options in methods.items()} if isinstance(methods, Mapping) \
        else {name: {} for name in methods}
    if len(requests) < 2:
        raise ValueError(f"methods must name at least two methods to rank, got {methods!r}")
    return requests


def score_image(classifier, x: torch.Tensor, mask: torch.Tensor, method: str, options: Mapping | None = None,
                metrics: Sequence[str] = DEFAULT_METRICS, settings: Settings = DEFAULT_SETTINGS,
                target: str | int = msld.POSITIVE, seed: int = 0) -> dict[str, float]:
    """Explain one image ``x`` [3, H, W] (or [1, 3, H, W]) with ``method`` (``options`` go to
    :func:`xai_lab.explain`, ``layer`` among them) for ``target`` (a class name or index) and
    score the map: ``{"relevance_mass": t, metric: s, ...}``, the relevance mass on ``mask``
    [H, W] (the mark: the ground truth) and each metric's per-image score (:data:`METRICS`)."""
    metrics = check_metrics(metrics)
    x = x[None] if x.dim() == 3 else x
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"score one image at a time: x must be [3, H, W] or [1, 3, H, W], got {list(x.shape)}")
    mask = torch.as_tensor(mask).bool().cpu()
    if mask.shape != x.shape[-2:]:
        raise ValueError(f"mask must be [H, W] = {list(x.shape[-2:])}, got {list(mask.shape)}")
    index = classifier.categories.index(target) if isinstance(target, str) else int(target)
    options = dict(options or {})
    e = explain(classifier, x, method, target=index, seed=seed, progress=False, **options)
    job = MetricInput(classifier, x, e.saliency, method, options, index, seed, settings)
    out = {TRUTH: float(relevance_mass(e.saliency.cpu(), mask[None])[0])}
    out.update({name: METRICS[name].score(job) for name in metrics})
    return out


@dataclass(frozen=True, eq=False)
class TrustScores:
    """Per-image scores of M methods on N images: ``truth`` [N, M] (relevance mass on the mark)
    and ``values[metric]`` [N, M]; ``clusters`` (N patient ids: resampled whole),
    ``image_ids`` and each metric's direction in ``better``."""

    methods: tuple[str, ...]
    image_ids: tuple[str, ...]
    clusters: tuple[str, ...]
    truth: np.ndarray
    values: Mapping[str, np.ndarray]
    better: Mapping[str, Direction] = field(default_factory=dict)

    def __post_init__(self):
        n, m = len(self.image_ids), len(self.methods)
        if m < 2:
            raise ValueError(f"need at least two methods to rank, got {list(self.methods)}")
        if n < 1 or len(self.clusters) != n:
            raise ValueError(f"need at least one image and one cluster label per image, got {n} images and "
                             f"{len(self.clusters)} labels")
        for name, array in {TRUTH: self.truth, **self.values}.items():
            if np.shape(array) != (n, m):
                raise ValueError(f"{name}: expected scores [images, methods] = [{n}, {m}], got {list(np.shape(array))}")
        if set(self.better) != set(self.values):
            raise ValueError(f"better must give the direction of each metric: {sorted(self.values)}")

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self.values)

    @classmethod
    def from_records(cls, records: Iterable[Mapping], methods: Sequence[str] | None = None,
                     metrics: Sequence[str] | None = None) -> TrustScores:
        """The scores of records ``{"image", "cluster", "method", "scores": {...}}`` (one per (image,
        method), as :func:`score_image` gives them), in image order: the images that have every
        method of ``methods`` (default: every method found, in order of appearance) and every
        metric of ``metrics`` (default: those of the first record); directions from :data:`METRICS`."""
        records = list(records)
        if not records:
            raise ValueError("no records")
        methods = tuple(methods) if methods is not None else tuple(dict.fromkeys(r["method"] for r in records))
        metrics = check_metrics(metrics if metrics is not None else [k for k in records[0]["scores"] if k != TRUTH])
        wanted = (TRUTH, *metrics)
        found: dict = {}
        cluster: dict = {}
        for r in records:
            if r["method"] in methods and all(k in r["scores"] for k in wanted):
                found.setdefault(r["image"], {})[r["method"]] = r["scores"]
                cluster[r["image"]] = r.get("cluster", r["image"])
        images = sorted(i for i, by_method in found.items() if set(methods) <= set(by_method))
        if not images:
            raise ValueError(f"no image has every method of {list(methods)} with every metric of {list(metrics)}")

        def table(score: str) -> np.ndarray:
            return np.array([[found[i][m][score] for m in methods] for i in images], dtype=np.float64)

        return cls(methods, tuple(images), tuple(cluster[i] for i in images), table(TRUTH),
                   {name: table(name) for name in metrics}, {name: METRICS[name].better for name in metrics})

    def select(self, methods: Sequence[str]) -> TrustScores:
        """The same scores for a subset of the methods, in the given order."""
        unknown = sorted(set(methods) - set(self.methods))
        if unknown:
            raise ValueError(f"unknown methods {unknown}; scored: {list(self.methods)}")
        k = [self.methods.index(m) for m in methods]
        return replace(self, methods=tuple(methods), truth=self.truth[:, k],
                       values={name: v[:, k] for name, v in self.values.items()})


def per_image_scores(classifier, records, methods: Sequence[str] | Mapping[str, Mapping] = DEFAULT_METHODS,
                     metrics: Sequence[str] = DEFAULT_METRICS, settings: Settings = DEFAULT_SETTINGS,
                     mark: Mark = DEFAULT_MARK, transform: PixelTransform | None = None, target: str | int = msld.POSITIVE,
                     seed: int = 0, progress: bool = False) -> TrustScores:
    """:func:`score_image` for every record and method: the records' images edited by
    ``transform`` (default: the mark planted on every image, :func:`~xai_lab.experiments.shortcut.marked`
    on every class), the mark's pixels as the ground truth, image i explained with seed
    ``seed + i``; ``methods``: names or {name: explain options}. Clusters: the records'
    patients. Nothing is read or written: the same arguments give the same scores."""
    from tqdm import tqdm

    records = list(records)
    if not records:
        raise ValueError("no records to score")
    requests = _method_requests(methods)
    metrics = check_metrics(metrics)
    transform = marked(mark, msld.CATEGORIES) if transform is None else transform
    rows = []
    jobs = tqdm(total=len(records) * len(requests), desc="metric trust", leave=False, disable=not progress)
    for i, record in enumerate(records):
        x = inputs(classifier, [record], transform)
        mask = mark_mask(record, mark, *x.shape[-2:])
        for name, options in requests.items():
            scores = score_image(classifier, x, mask, name, options, metrics, settings, target, seed + i)
            rows.append({"image": f"{i:04d}/{image_id(record)}", "cluster": record.patient_id, "method": name,
                         "scores": scores})
            jobs.update()
    jobs.close()
    return TrustScores.from_records(rows, list(requests), metrics)


def recompute(classifier, record: Mapping, config: Mapping, metrics: Sequence[str] | None = None, pool=None,
              rtol: float = 1e-3, atol: float = 1e-4) -> float:
    """Score a stored (image, method) ``record`` of the benchmark (``benchmarks/metric_trust.py``,
    made under ``config``: its metric settings, seed and mark on every image) again with
    :func:`score_image` and check it: the relevance mass and every metric of ``metrics``
    (default: every metric of the record) within ``rtol``/``atol`` (``numpy.isclose``) of the
    stored scores. The image is the one of ``pool`` (default: the MSLD test split) whose id the
    record names, at seed ``config["seed"] + record["index"]``. Returns the largest absolute
    difference; a ValueError names the first disagreement. Metrics that draw random samples
    agree too (the seed is the record's), but cost more to check."""
    wanted = [k for k in record["scores"] if k != TRUTH] if metrics is None else list(check_metrics(metrics))
    missing = sorted(set(wanted) - set(record["scores"]))
    if missing:
        raise ValueError(f"the record has no scores of {missing}; it has {sorted(record['scores'])}")
    name = record["image"].split("/", 1)[-1]
    found = [r for r in (msld.split_records()["test"] if pool is None else pool) if image_id(r) == name]
    if len(found) != 1:
        raise ValueError(f"the record's image {name!r} is not (or not once) in the pool: {len(found)} matches")
    mark = Mark(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["mark"].items()})
    x = inputs(classifier, found, marked(mark, msld.CATEGORIES))
    now = score_image(classifier, x, mark_mask(found[0], mark, *x.shape[-2:]), record["method"], record["options"],
                      wanted, Settings.from_dict(config["metric_settings"]), config["target"],
                      config["seed"] + record["index"])
    worst = 0.0
    for score, value in now.items():
        if not np.isclose(value, record["scores"][score], rtol=rtol, atol=atol):
            raise ValueError(f"{record['image']} {record['method']}: {score} is {value} now, "
                             f"{record['scores'][score]} in the record")
        worst = max(worst, abs(value - record["scores"][score]))
    return worst


# --- agreement with the truth -----------------------------------------------------------------------------------

def _signs(a: np.ndarray) -> np.ndarray:
    """sign(a_i - a_j) of every pair i < j of each row of ``a`` [B, M] -> [B, M(M-1)/2] (by
    comparison, so infinite values compare as extremes)."""
    i, j = np.triu_indices(a.shape[1], 1)
    return (a[:, i] > a[:, j]).astype(np.int8) - (a[:, i] < a[:, j]).astype(np.int8)


def _rows(a, b, name: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.atleast_2d(np.asarray(a, dtype=np.float64)), np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(f"{name} needs two vectors (or rows) of one length >= 2, got {list(a.shape)} and {list(b.shape)}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError(f"{name}: the scores contain NaN")
    return a, b


def kendall_rows(a, b) -> np.ndarray:
    """Kendall's tau-b (Kendall 1945) of each row pair of ``a``, ``b`` [B, M] -> [B]: over the
    pairs i < j, sum sign(a_i - a_j) sign(b_i - b_j) / sqrt(n_a n_b), n_a (n_b) the pairs not
    tied in a (b), so ties count as in ``scipy.stats.kendalltau``; 0.0 where either row is
    constant (the convention of :func:`xai_lab.metrics.spearman`)."""
    a, b = _rows(a, b, "kendall_tau")
    sa, sb = _signs(a), _signs(b)
    denominator = np.sqrt(np.abs(sa).sum(1, dtype=np.float64) * np.abs(sb).sum(1, dtype=np.float64))
    concordance = (sa.astype(np.int64) * sb).sum(1)
    return np.where(denominator > 0, concordance / np.where(denominator > 0, denominator, 1.0), 0.0)


def spearman_rows(a, b) -> np.ndarray:
    """Spearman's rho of each row pair of ``a``, ``b`` [B, M] -> [B]: the Pearson correlation of
    the average ranks, 0.0 where either row is constant; the convention of
    :func:`xai_lab.metrics.spearman` (equal to it and to ``scipy.stats.spearmanr``, tested),
    for many rows at once. The ranks make infinite scores comparable."""
    from scipy.stats import rankdata

    a, b = _rows(a, b, "spearman_rho")
    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    scale = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    return np.clip(np.where(scale > 0, (ra * rb).sum(1) / np.where(scale > 0, scale, 1.0), 0.0), -1.0, 1.0)


def kendall_tau(a, b) -> float:
    """Kendall's tau-b of two score vectors (:func:`kendall_rows`)."""
    return float(kendall_rows(a, b)[0])


def spearman_rho(a, b) -> float:
    """Spearman's rho of two score vectors (:func:`spearman_rows`)."""
    return float(spearman_rows(a, b)[0])


#: The rank correlations of the method rankings: {name: f(rows a [B, M], rows b [B, M]) -> [B]}.
CORRELATIONS: dict[str, Callable] = {"spearman": spearman_rows, "kendall": kendall_rows}


def _finite_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per resample and method the weighted mean over images of the finite values:
    ``values`` [N, M], ``weights`` [B, N] -> [B, M] (NaN where a method has no finite value)."""
    finite = np.isfinite(values)
    total = weights @ np.where(finite, values, 0.0)
    count = weights @ finite.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.where(count > 0, count, 1.0), np.nan)


def _agreement_statistic(correlation: Callable) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A bootstrap statistic of values [N, M, 2] (truth, goodness): per resample, the methods'
    means of each and their rank correlation; NaN where a method has no finite mean."""
    def statistic(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
        truth, goodness = _finite_means(values[..., 0], weights), _finite_means(values[..., 1], weights)
        defined = ~(np.isnan(truth).any(1) | np.isnan(goodness).any(1))
        out = np.full(len(weights), np.nan)
        if defined.any():
            out[defined] = correlation(truth[defined], goodness[defined])
        return out
    return statistic


@dataclass(frozen=True)
class MetricTrust:
    """How a metric ranks the methods against the truth: ``spearman`` and ``kendall`` (rank
    correlations of its method means, turned by ``better``, with the truth's, each an
    :class:`~xai_lab.stats.Interval` over images), the metric's ``means`` per method, its
    ``order`` (best first) and the truth's ``truth_order``."""

    metric: str
    label: str
    better: Direction
    spearman: Interval
    kendall: Interval
    means: Mapping[str, float]
    order: tuple[str, ...]
    truth_order: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"metric": self.metric, "label": self.label, "better": self.better.value,
                "spearman": self.spearman.as_dict(), "kendall": self.kendall.as_dict(), "means": dict(self.means),
                "order": list(self.order), "truth_order": list(self.truth_order)}

    @classmethod
    def from_dict(cls, d: Mapping) -> MetricTrust:
        """The inverse of :meth:`as_dict` (a result read back from a benchmark's summary.json)."""
        return cls(d["metric"], d["label"], Direction(d["better"]), Interval(**d["spearman"]), Interval(**d["kendall"]),
                   dict(d["means"]), tuple(d["order"]), tuple(d["truth_order"]))


def _order(means: np.ndarray, methods: Sequence[str], better: Direction) -> tuple[str, ...]:
    """Methods best first by their means (NaN last, ties by name)."""
    return tuple(sorted(methods, key=lambda m: (bool(np.isnan(means[methods.index(m)])),
                                                better.sort_key(float(means[methods.index(m)])), m)))


def truth_intervals(scores: TrustScores, level: float = LEVEL, resamples: int = 2000,
                    seed: int = 0) -> dict[str, Interval]:
    """Each method's mean relevance mass on the mark with its bootstrap interval over patients,
    best first: the ground-truth ranking."""
    means = _finite_means(scores.truth, np.ones((1, len(scores.image_ids))))[0]
    order = _order(means, list(scores.methods), Direction.HIGHER)
    return {m: bootstrap(scores.truth[:, scores.methods.index(m)], scores.clusters, level, resamples, seed)
            for m in order}


def trust(scores: TrustScores, level: float = LEVEL, resamples: int = 2000, seed: int = 0) -> dict[str, MetricTrust]:
    """One :class:`MetricTrust` per metric of ``scores`` (see the module docstring): the
    Spearman and Kendall correlations between the metric's method ranking and the truth's, each
    with :func:`xai_lab.stats.bootstrap` over the images, whole clusters (patients) resampled;
    the same resamples for every metric (they depend only on ``seed`` and the clusters)."""
    methods = list(scores.methods)
    ones = np.ones((1, len(scores.image_ids)))
    truth_order = _order(_finite_means(scores.truth, ones)[0], methods, Direction.HIGHER)
    out = {}
    for name, values in scores.values.items():
        better = scores.better[name]
        goodness = values if better is Direction.HIGHER else -values
        stacked = np.stack([scores.truth, goodness], axis=-1)
        intervals = {kind: bootstrap(stacked, scores.clusters, level, resamples, seed, _agreement_statistic(fn))
                     for kind, fn in CORRELATIONS.items()}
        means = _finite_means(values, ones)[0]
        out[name] = MetricTrust(name, METRICS[name].label if name in METRICS else name, better, intervals["spearman"],
                                intervals["kendall"], dict(zip(methods, means.tolist())), _order(means, methods, better),
                                truth_order)
    return out


# --- figures -------------------------------------------------------------------------------------------------

def plot_trust(results: Mapping[str, MetricTrust], ax=None, order: Sequence[str] | None = None):
    """Grouped bars, one group per metric of :func:`trust` (``order``, default: by Spearman's
    rho, highest first), one bar each for Spearman's rho and Kendall's tau with their bootstrap
    intervals (an interval that is unbounded, from a single patient, is drawn to [-1, 1]), on
    [-1, 1] with a line at 0 (no relation to the truth). Returns the axes."""
    from .shortcut import plot_interval_bars

    if not results:
        raise ValueError("no metrics to plot")
    order = list(order) if order is not None else sorted(results, key=lambda k: (-results[k].spearman.value, k))
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(order)), 3.6))

    def shown(i: Interval) -> Interval:
        return Interval(i.value, max(i.low, -1.0), min(i.high, 1.0), i.n, i.level)

    intervals = {"Spearman's rho": {k: shown(results[k].spearman) for k in order},
                 "Kendall's tau": {k: shown(results[k].kendall) for k in order}}
    ax = plot_interval_bars(intervals, ax, "rank correlation with the truth", reference=0.0, reference_style="-",
                            tick_labels=[results[k].label for k in order], rotate=True)
    ax.set_ylim(-1.05, 1.05)
    ax.legend(fontsize=8, loc="lower left")
    return ax


def plot_ranking(scores: TrustScores, metric: str, ax=None):
    """Each method's mean relevance mass on the mark (x, the truth) against its mean ``metric``
    score (y), the points labeled with the method names; the axis title says which way the
    metric is better. Returns the axes."""
    import matplotlib.pyplot as plt

    if metric not in scores.values:
        raise ValueError(f"no scores of {metric!r}; scored: {list(scores.values)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.4))
    ones = np.ones((1, len(scores.image_ids)))
    truth, means = _finite_means(scores.truth, ones)[0], _finite_means(scores.values[metric], ones)[0]
    ax.scatter(truth, means, s=18)
    for name, t, s in zip(scores.methods, truth, means):
        ax.annotate(name, (t, s), fontsize=7, xytext=(3, 2), textcoords="offset points")
    ax.set_xlabel("relevance mass on the mark (truth, higher is better)")
    label = METRICS[metric].label if metric in METRICS else metric
    ax.set_ylabel(f"{label} ({scores.better[metric].value} is better)")
    return ax


__all__ = ["CORRELATIONS", "DEFAULT_MARK", "DEFAULT_METHODS", "DEFAULT_METRICS", "DEFAULT_SETTINGS", "METRICS",
           "Metric", "MetricInput", "MetricTrust", "QUICK_SETTINGS", "Settings", "TRUTH", "TrustScores",
           "check_metrics", "kendall_rows", "kendall_tau", "per_image_scores", "recompute", "plot_ranking",
           "plot_trust", "score_image", "spearman_rho", "spearman_rows", "truth_intervals", "trust"]
