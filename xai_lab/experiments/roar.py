"""Remove And Retrain (ROAR, Hooker et al. 2019) on the MSLD monkeypox classifier.

A saliency method claims that the pixels it ranks first carry the evidence for the class. ROAR
tests the claim: replace the top k % of each image's pixels (training AND test images) by an
uninformative value, retrain the classifier on the edited training images and measure its test
accuracy. The method whose removal lowers that accuracy most found the most informative pixels;
a method that does no better than ``random`` removal found nothing the retrained model needs.
Without retraining (the original classifier on edited test images) the drop mixes two effects:
lost information and images unlike any the model was trained on (distribution shift); the
retrained model has seen images with holes, so only the lost information remains.

Protocol here (:func:`roar`), and where it differs from the paper:

* maps: computed once per image and method by the clean classifier
  (``load_model("msld_efficientnet_lite0")``) on the un-augmented image, for the image's TRUE
  label (the ROAR convention: the evidence for the correct class, known for train and test);
* removal (:func:`xai_lab.metrics.removal.remove_top_fraction`): exactly ``round(k / 100 * H * W)`` pixels (rounded
  half up), most salient first, ties in a fixed seeded random order, replaced by the image's
  per-channel mean (Hooker et al. also fill with a per-channel mean);
* retraining: :func:`xai_lab.models.msld.train` with ``transform=``, i.e. a new logistic head
  on the frozen ImageNet EfficientNet-Lite0 backbone. Hooker et al. retrain the whole network
  from scratch; a frozen backbone cannot learn new filters for images with holes, only reweigh
  the features it has, so the retrained curve here removes less of the distribution shift than
  theirs would, and the gap to the no-retraining curve is a lower bound of the shift's effect;
* evaluation: accuracy, balanced accuracy and ROC AUC on the edited test images, each with a
  95 % percentile bootstrap over test patients (:func:`xai_lab.models.msld.scores`, the same
  seed for every row, so every row sees the same resampled patients).

Input gradient: ``saliency`` (Simonyan et al. 2014, |d logit / d x| maxed over channels), the map
the FullGrad paper (Srinivas & Fleuret 2019) calls "Input-gradient" in its ROAR experiment.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

import torch
from tqdm import tqdm

from ..metrics.removal import remove_top_fraction, removed_count
from ..stats import LEVEL, Interval, paired_bootstrap

ROAR_METHODS = ("gradcam", "fullgrad", "saliency", "rise", "random")
DEFAULT_KS = (10, 20, 30, 40, 50, 60, 70, 80, 90)
DEFAULT_OPTIONS = {"rise": {"n_masks": 500, "batch_size": 100}}
METRICS = ("accuracy", "balanced_accuracy", "roc_auc")


# ----------------------------------------------------------------------------- maps

def _key(record) -> str:
    return str(record.path)


def method_options(method: str, options: dict | None) -> dict:
    """The options ``method`` runs with: :data:`DEFAULT_OPTIONS` updated by ``options[method]``."""
    chosen = dict(DEFAULT_OPTIONS.get(method, {}))
    chosen.update((options or {}).get(method, {}))
    return chosen


def check_methods(methods: Sequence[str]) -> list[str]:
    """The names as a list; ValueError for an unknown name or a repeated one."""
    from ..registry import method_spec

    names = [methods] if isinstance(methods, str) else list(methods)
    if not names:
        raise ValueError("methods is empty")
    for name in names:
        method_spec(name)   # ValueError with close matches for unknown names
    if len(set(names)) != len(names):
        raise ValueError(f"methods names a method twice: {names}")
    return names


def saliency_maps(classifier, records, methods: Sequence[str] = ROAR_METHODS, seed: int = 0,
                  options: dict | None = None, batch_size: int = 16, progress: bool | None = None) -> dict:
    """``{method: {str(record.path): map [H, W]}}`` for every record, plus ``"_seconds"``
    ``{method: seconds}``. Each map explains the classifier's logit of the record's TRUE label
    on the un-augmented image (``classifier.preprocess(record.path)``). Images go through
    ``explain`` in batches of ``batch_size`` (RISE: all of a batch share its masks), batch b
    with seed ``seed + b``. ``options``: {method: options}, over :data:`DEFAULT_OPTIONS`."""
    from ..explain import explain

    names = check_methods(methods)
    if progress is None:
        progress = sys.stderr.isatty()
    records = list(records)
    targets = [classifier.categories.index(r.label) for r in records]
    maps, seconds = {m: {} for m in names}, {}
    batches = range(0, len(records), batch_size)
    with tqdm(total=len(names) * len(records), desc="ROAR maps", disable=not progress, leave=False) as bar:
        for method in names:
            start = time.perf_counter()
            for b, first in enumerate(batches):
                chunk = records[first:first + batch_size]
                x = torch.stack([classifier.preprocess(r.path) for r in chunk])
                e = explain(classifier, x, method=method, target=targets[first:first + batch_size], seed=seed + b,
                            progress=False, **method_options(method, options))
                for r, m in zip(chunk, e.saliency):
                    maps[method][_key(r)] = m.clone()
                bar.update(len(chunk))
            seconds[method] = time.perf_counter() - start
    maps["_seconds"] = seconds
    return maps


def removal_transform(maps: dict, fraction: float, fill="mean", tie_seed: int | None = 0) -> Callable:
    """``transform(pixels, record)`` for ``msld.train``/``evaluate``: :func:`remove_top_fraction`
    with the record's map from ``maps`` ({str(record.path): map}, one method's entry of
    :func:`saliency_maps`)."""
    removed_count(fraction, 1, 1)  # checks the fraction now, not at the first image

    def transform(pixels: torch.Tensor, record) -> torch.Tensor:
        key = _key(record)
        if key not in maps:
            raise KeyError(f"No saliency map for {key}")
        return remove_top_fraction(pixels, maps[key], fraction, fill, tie_seed)

    return transform


# ----------------------------------------------------------------------------- the experiment

def _check_ks(ks) -> list[float]:
    values = list(ks)
    if not values:
        raise ValueError("ks is empty")
    for k in values:
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not 0 <= k <= 100:
            raise ValueError(f"every k must be a percentage in [0, 100], got {k!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"ks repeats a value: {values}")
    return values


def _flat(prefix: str, result) -> dict:
    """``{prefix}_{metric}``, ``_low`` and ``_high`` of an :class:`~xai_lab.models.msld.Evaluation`
    (flat, for a results row)."""
    out = {}
    for name in METRICS:
        interval = result.metric(name)
        out[f"{prefix}_{name}"] = interval.value
        out[f"{prefix}_{name}_low"], out[f"{prefix}_{name}_high"] = interval.low, interval.high
    return out


def _same_backbone(a, b) -> bool:
    """Whether two EfficientNet-Lite0 networks have identical ``features`` (all but the head)."""
    sa, sb = a.features.state_dict(), b.features.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k].to(sa[k].device)) for k in sa)


@torch.no_grad()
def _test_probabilities(model, classifier, test, settings, transform,
                        shared: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """P(Monkeypox) on the edited test images under the retrained model and under the original
    classifier. When both share the frozen backbone (the MSLD recipe), the pooled features of
    each edited image are computed once and both heads read them (``forward = classifier(pool(
    features(x)))``, dropout off in eval mode); otherwise ``msld.predict`` runs each model."""
    from ..models import msld

    if not shared:
        return (msld.predict(msld.as_classifier(model), test, progress=False, transform=transform),
                msld.predict(classifier, test, progress=False, transform=transform))
    features = msld.pooled_features(model, test, settings, None, 1, transform=transform)
    positive = msld.CATEGORIES.index(msld.POSITIVE)
    head = classifier.model.classifier
    return (torch.softmax(model.classifier(features), 1)[:, positive],
            torch.softmax(head(features.to(next(head.parameters()).device)), 1)[:, positive].cpu())


def subsample_split(split: dict, fraction: float, seed: int = 0) -> dict:
    """A copy of ``split`` ({"train", "val", "test": records}) keeping every test image but only
    ``round(fraction * n)`` (at least 1) of the n training patients of each label, and likewise
    of the validation patients, drawn with ``random.Random(seed)``. Cheaper ROAR runs: fewer
    images to explain and to pass through the backbone, the same test patients."""
    import random

    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
    rng = random.Random(seed)
    out = dict(split)
    for part in ("train", "val"):
        kept = set()
        for label in sorted({r.label for r in split[part]}):
            patients = sorted({r.patient_id for r in split[part] if r.label == label})
            rng.shuffle(patients)
            kept.update(patients[:max(1, round(fraction * len(patients)))])
        out[part] = [r for r in split[part] if r.patient_id in kept]
    return out


def roar(classifier=None, records=None, methods: Sequence[str] = ROAR_METHODS, ks: Sequence[float] = DEFAULT_KS,
         settings=None, maps: dict | None = None, seed: int = 0, options: dict | None = None, fill="mean",
         n_boot: int = 2000, progress: bool | None = None, split: dict | None = None) -> list[dict]:
    """ROAR rows, one per (method, k), in the order of ``methods`` then ``ks`` (percentages).

    ``classifier``: the clean classifier that makes the maps and gives the no-retraining curve
    (default ``load_model("msld_efficientnet_lite0")``). ``records``: all images (default
    ``data.msld()``), split by ``msld.split_records(records, settings)``. ``settings``: the
    retraining's :class:`~xai_lab.models.msld.TrainSettings` (default ``copies=1``: no
    augmentation). ``maps``: :func:`saliency_maps` output to reuse (computed here if None; it
    must cover every record and method). ``seed``: maps, ties and the bootstrap. ``split``: a
    split to use instead of ``msld.split_records(records, settings)`` (``records`` is then
    ignored), e.g. :func:`subsample_split`.

    Each row: ``method``, ``k``, ``removed_pixels`` (per image, at the maps' size), ``retrained_*`` and
    ``not_retrained_*`` for accuracy, balanced_accuracy and roc_auc (value, ``_low``, ``_high``:
    95 % patient bootstrap), ``retrained_probability`` and ``not_retrained_probability``
    (P(Monkeypox) per test image, for paired comparisons), ``val_loss``, ``step`` and
    ``train_seconds`` of the retraining, ``seconds`` with the test scoring, and the image
    counts. ``k = 0`` removes nothing: it is trained once and its row repeated for every method.
    """
    from .. import load_model
    from ..data import msld as msld_records
    from ..models import msld

    names = check_methods(methods)
    k_values = _check_ks(ks)
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    if progress is None:
        progress = sys.stderr.isatty()
    settings = msld.TrainSettings(copies=1) if settings is None else settings
    classifier = load_model(msld.NAME) if classifier is None else classifier
    if split is None:
        split = msld.split_records(msld_records() if records is None else list(records), settings)
    missing_parts = {"train", "val", "test"} - set(split)
    if missing_parts:
        raise ValueError(f"split lacks {sorted(missing_parts)}")
    split = {part: list(split[part]) for part in ("train", "val", "test")}
    records = split["train"] + split["val"] + split["test"]
    test = split["test"]
    if maps is None:
        maps = saliency_maps(classifier, records, names, seed, options, progress=progress)
    for method in names:
        missing = [r for r in records if _key(r) not in maps.get(method, {})]
        if missing:
            raise ValueError(f"maps lacks {len(missing)} image(s) for {method!r}, e.g. {missing[0].path}")
    positive = torch.tensor([r.label == msld.POSITIVE for r in test])
    patients = [r.patient_id for r in test]
    size = next(iter(maps[names[0]].values())).shape
    rows, unchanged, shared = [], None, None
    cells = [(m, k) for m in names for k in k_values]
    with tqdm(total=len(cells), desc="ROAR retraining", disable=not progress) as bar:
        for method, k in cells:
            bar.set_postfix_str(f"{method} k={k}")
            if k == 0 and unchanged is not None:
                rows.append({**unchanged, "method": method})
                bar.update()
                continue
            transform = removal_transform(maps[method], k / 100, fill, seed)
            start = time.perf_counter()
            model, info = msld.train(settings, split, progress=False, transform=transform)
            seconds = time.perf_counter() - start
            if shared is None:
                shared = _same_backbone(model, classifier.model)
            retrained, original = _test_probabilities(model, classifier, test, settings, transform, shared)
            cell_seconds = time.perf_counter() - start
            row = {"method": method, "k": k, "removed_pixels": removed_count(k / 100, *size),
                   **_flat("retrained", msld.scores(positive, retrained, patients, n_boot, seed)),
                   **_flat("not_retrained", msld.scores(positive, original, patients, n_boot, seed)),
                   "retrained_probability": retrained.tolist(), "not_retrained_probability": original.tolist(),
                   "val_loss": info["val_loss"], "step": info["step"], "train_seconds": round(seconds, 2),
                   "seconds": round(cell_seconds, 2),
                   "train_images": len(split["train"]), "val_images": len(split["val"]),
                   "test_images": len(test), "test_patients": len(set(patients))}
            if k == 0:
                unchanged = row
            rows.append(row)
            bar.update()
    return rows


def paired_difference(rows: Sequence[dict], records, a: str, b: str, k: float, curve: str = "retrained",
                      n_boot: int = 2000, seed: int = 0):
    """Test accuracy of method ``a`` minus method ``b`` at ``k`` (``curve``: "retrained" or
    "not_retrained") as an :class:`~xai_lab.stats.Interval`: a 95 % percentile bootstrap over
    test patients that draws the SAME patients for both (:func:`xai_lab.stats.paired_bootstrap`;
    the images are shared), so it is narrower than two separate intervals. ``records``: the test
    records the rows were evaluated on (``msld.split_records(...)["test"]``)."""
    from ..models import msld

    if curve not in ("retrained", "not_retrained"):
        raise ValueError(f"curve must be 'retrained' or 'not_retrained', got {curve!r}")
    found = {(r["method"], r["k"]): r for r in rows}
    for method in (a, b):
        if (method, k) not in found:
            raise ValueError(f"No row for method {method!r} at k={k}")
    probability = [torch.tensor(found[(m, k)][f"{curve}_probability"]) for m in (a, b)]
    if len(probability[0]) != len(records):
        raise ValueError(f"the rows hold {len(probability[0])} test images, records has {len(records)}")
    positive = torch.tensor([r.label == msld.POSITIVE for r in records])
    correct = [((p >= msld.THRESHOLD) == positive).double() for p in probability]
    return paired_bootstrap(correct[0], correct[1], [r.patient_id for r in records], LEVEL, n_boot, seed)


def summarize(rows: Sequence[dict], records, n_boot: int = 2000, seed: int = 0) -> dict:
    """The finding of a ROAR run, per curve ("retrained", "not_retrained"):

    * ``mean_accuracy``: each method's test accuracy averaged over the k > 0 of the run (the
      area under its ROAR curve divided by the k range, for evenly spaced k): lower = its
      removal hurt more;
    * ``most_harmful``: the method with the lowest mean accuracy; ``most_harmful_per_k``: the
      method with the lowest accuracy at each k of ``ks``;
    * ``versus``: for every other method, ``differences``: :func:`paired_difference` (most
      harmful minus other) at each k of ``ks`` (a list in that order, each interval as
      ``{"value", "low", "high", "n", "level"}``), and ``separated_at``: the k where that 95 %
      interval lies below 0.

    ``records``: the test records of the rows; every method needs a row at every k."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    ks = sorted({r["k"] for r in rows if r["k"] > 0})
    if not ks:
        raise ValueError("the rows hold no k > 0")
    found = {(r["method"], r["k"]): r for r in rows}
    missing = [(m, k) for m in methods for k in ks if (m, k) not in found]
    if missing:
        raise ValueError(f"no row for (method, k) = {missing[0]}: every method needs every k")
    out = {"methods": methods, "ks": ks}
    for curve in ("retrained", "not_retrained"):
        accuracy = {m: {k: found[(m, k)][f"{curve}_accuracy"] for k in ks} for m in methods}
        mean = {m: sum(v.values()) / len(v) for m, v in accuracy.items()}
        worst = min(mean, key=mean.get)
        per_k = [min(methods, key=lambda m: accuracy[m][k]) for k in ks]
        versus = {}
        for other in methods:
            if other == worst:
                continue
            diffs = [paired_difference(rows, records, worst, other, k, curve, n_boot, seed) for k in ks]
            versus[other] = {"differences": [d.as_dict() for d in diffs],
                             "separated_at": [k for k, d in zip(ks, diffs) if d.high < 0]}
        out[curve] = {"mean_accuracy": mean, "most_harmful": worst, "most_harmful_per_k": per_k, "versus": versus}
    return out


# ----------------------------------------------------------------------------- reports

def describe(finding: dict, digits: int = 3) -> str:
    """The finding of :func:`summarize` as lines of text: per curve, the methods by mean accuracy
    (lowest first), the most harmful method overall and at each k, and its paired difference
    with every other method at each k (:class:`~xai_lab.stats.Interval` text) with the k where
    that interval lies below 0."""
    lines = []
    for curve in ("retrained", "not_retrained"):
        part = finding[curve]
        ranked = sorted(part["mean_accuracy"].items(), key=lambda item: item[1])
        lines.append(f"{curve}: mean accuracy over k = {finding['ks']}: "
                     + ", ".join(f"{m} {v:.{digits}f}" for m, v in ranked))
        lines.append(f"  removal hurts most: {part['most_harmful']}; lowest at each k: "
                     + ", ".join(f"{k}: {m}" for k, m in zip(finding["ks"], part["most_harmful_per_k"])))
        for other, versus in part["versus"].items():
            where = versus["separated_at"]
            differences = ", ".join(f"k={k} {Interval(**d).format(digits, signed=True)}"
                                    for k, d in zip(finding["ks"], versus["differences"]))
            lines.append(f"  {part['most_harmful']} - {other}: {differences}"
                         + (f"  -> below 0 at k = {where}" if where else "  -> interval contains 0 at every k"))
    return "\n".join(lines)


def plot_curves(rows: Sequence[dict], records, methods: Sequence[str] | None = None, colors: dict | None = None):
    """Two panels of test accuracy against k, "retrained" (ROAR) and "not_retrained", one line
    per method with its 95 % band (the rows' ``*_accuracy_low``/``_high``), ``random`` dashed,
    and a dotted line at the accuracy of always answering the larger class of ``records`` (the
    test records). Returns the figure."""
    import matplotlib.pyplot as plt

    from ..models import msld

    methods = list(methods) if methods is not None else list(dict.fromkeys(r["method"] for r in rows))
    colors = colors or dict(zip(ROAR_METHODS, ["tab:red", "tab:blue", "tab:green", "tab:purple", "black"]))
    majority = max(sum(r.label == c for r in records) / len(records) for c in msld.CATEGORIES)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, curve, title in zip(axes, ("retrained", "not_retrained"), ("ROAR: retrained head", "no retraining")):
        for method in methods:
            part = sorted((r for r in rows if r["method"] == method), key=lambda r: r["k"])
            ks = [r["k"] for r in part]
            ax.plot(ks, [r[f"{curve}_accuracy"] for r in part], marker="o", color=colors.get(method), label=method,
                    ls="--" if method == "random" else "-")
            ax.fill_between(ks, [r[f"{curve}_accuracy_low"] for r in part], [r[f"{curve}_accuracy_high"] for r in part],
                            color=colors.get(method), alpha=0.12)
        ax.axhline(majority, color="gray", lw=0.8, ls=":")
        ax.set(title=title, xlabel="k: % of pixels removed (most salient first)")
    axes[0].set_ylabel("test accuracy (95 % patient bootstrap)")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_removal(images: Sequence[torch.Tensor], maps: dict, ks: Sequence[float], fill="mean", size: float = 1.9):
    """A grid of edited images: one row per (image, k), one column per method of ``maps`` (method
    -> one map per image); each cell the image with its top ``k`` % removed
    (:func:`~xai_lab.metrics.removal.remove_top_fraction` with ``fill``). Returns the figure."""
    import matplotlib.pyplot as plt

    methods = list(maps)
    cases = [(i, k) for i in range(len(images)) for k in ks]
    fig, axes = plt.subplots(len(cases), len(methods), figsize=(size * len(methods), size * len(cases)), squeeze=False)
    for row, (i, k) in enumerate(cases):
        for col, method in enumerate(methods):
            edited = remove_top_fraction(images[i], maps[method][i], k / 100, fill=fill)
            ax = axes[row, col]
            ax.imshow(edited.permute(1, 2, 0).numpy())
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(method, fontsize=9)
            if col == 0:
                ax.set_ylabel(f"{k:g} % removed", fontsize=8)
    fig.tight_layout()
    return fig
