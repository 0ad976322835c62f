"""Tables the chapters share, as pandas DataFrames: what explanations cost, how much methods
agree (every pair, and the pairs ranked), and how far maps are from each other up to scale.

pandas is imported inside each function: the book depends on it, the package does not (install
it with the package's `tables` extra: `pip install xai_lab[tables]`).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from .metrics.agreement import agreement_matrix

COST_COLUMNS = ("images", "forward passes", "backward passes", "seconds")


def cost_table(explanations: Mapping[str, object]):
    """What each explanation cost, one row per entry of ``explanations`` (name -> Explanation),
    in their order: ``images`` (how many the call explained), ``forward passes`` and ``backward
    passes`` per image (model evaluations, as the Explanation counts them; methods asked for
    together that share one pass each report it) and ``seconds``, the wall time of the call
    for all its images. The index is named ``method``."""
    import pandas as pd

    rows = [(len(e), e.forward_passes, e.backward_passes, float(e.seconds)) for e in explanations.values()]
    return pd.DataFrame(rows, index=pd.Index(list(explanations), name="method"), columns=list(COST_COLUMNS))


def agreement_table(explanations: Mapping[str, object], measure: str | Callable = "spearman"):
    """:func:`~xai_lab.metrics.agreement_matrix` with the methods' names as rows and columns:
    entry (a, b) is the agreement of a's and b's maps (``measure``, default the Spearman rank
    correlation) averaged over the images."""
    import pandas as pd

    names = list(explanations)
    return pd.DataFrame(agreement_matrix(explanations, measure).numpy(), index=names, columns=names)


def ranked_pairs(table):
    """Each pair of a square table (e.g. :func:`agreement_table`) once, highest value first: a
    Series indexed by (row, column) with the row before the column in the table's order; the
    diagonal (a method with itself) is left out."""
    if list(table.index) != list(table.columns):
        raise ValueError("ranked_pairs needs a square table with the same names as rows and columns")
    order = {name: i for i, name in enumerate(table.index)}
    values = table.stack()
    return values[[order[a] < order[b] for a, b in values.index]].sort_values(ascending=False, kind="stable")


def max_difference_up_to_scale(maps: Mapping[str, torch.Tensor], references: Sequence[str]):
    """How far each map is from each reference map once both are divided by their largest
    magnitude: ``max |m / max|m| - r / max|r||`` over images and positions, the maxima in the
    fractions taken per image. 0 means the two maps are one map up to a positive factor per image (an
    all-zero map stays zero). ``maps``: name -> maps [N, h, w] of the same images, e.g.
    ``layer_map`` of several explanations; ``references``: names among them (the columns).
    Rows in the order of ``maps``."""
    import pandas as pd

    unknown = [name for name in references if name not in maps]
    if unknown:
        raise ValueError(f"references {unknown} are not among the maps {list(maps)}")
    scaled = {}
    for name, m in maps.items():
        m = torch.as_tensor(m).detach().double()
        peak = m.abs().flatten(1).amax(1).view(-1, *[1] * (m.dim() - 1))
        scaled[name] = m / torch.where(peak > 0, peak, torch.ones_like(peak))
    shapes = {tuple(m.shape) for m in scaled.values()}
    if len(shapes) != 1:
        raise ValueError(f"the maps must have one shape, got {sorted(shapes)}")
    return pd.DataFrame({ref: {name: float((m - scaled[ref]).abs().max()) for name, m in scaled.items()}
                         for ref in references})


PERTURBATION_MEASURES = ("afoc", "kl", "pcuo", "pcuo_runner_up")


def perturbation_table(model, x: torch.Tensor, maps: Mapping[str, object], target=None,
                       baselines: Sequence = ("black", "mean"), orders: Sequence[str] = ("morf", "lerf"),
                       fractions: Sequence[float] = (0.0, 0.01, 0.03, 0.05, 0.1, 0.2, 0.3)):
    """:func:`~xai_lab.metrics.pixel_perturbation` of every map over every baseline and order, as
    one tidy table: rows indexed by (``method``, ``baseline``, ``order``, ``fraction``) in the
    order given, columns :data:`PERTURBATION_MEASURES` (AFOC = |p_k - p| / p, KL(P_k || P),
    PCUO = |z_k - z| / |z| and PCUO over the runner-up classes; Srinivas & Fleuret 2019 and the
    FullGrad reproducibility study), each the mean over the images. ``maps``: name -> an
    Explanation or saliency [N, H, W] of the images ``x``; ``fraction`` is the fraction of pixels
    replaced, as given. Select with ``.xs``, e.g. ``table.xs(0.1, level="fraction")``."""
    import pandas as pd

    from .metrics.perturbation import pixel_perturbation

    rows, index = [], []
    for name, m in maps.items():
        saliency = m.saliency if hasattr(m, "saliency") else m
        for baseline in baselines:
            for order in orders:
                scores = pixel_perturbation(model, x, saliency, target, order=order, baseline=baseline,
                                            fractions=fractions)
                for j, fraction in enumerate(fractions):
                    rows.append([float(scores[k][:, j].mean()) for k in PERTURBATION_MEASURES])
                    index.append((name, baseline if isinstance(baseline, str) else float(baseline), order,
                                  float(fraction)))
    names = ["method", "baseline", "order", "fraction"]
    return pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=names), columns=list(PERTURBATION_MEASURES))
