import pandas as pd
import pytest
import torch

from xai_lab import tables
from xai_lab.explain import Explanation

from .conftest import RegionMean


def _explanation(saliency, forward=0, backward=0, seconds=0.0):
    return Explanation(saliency=saliency, target=torch.zeros(len(saliency), dtype=torch.long), method="m",
                       forward_passes=forward, backward_passes=backward, seconds=seconds)


def test_cost_table_has_one_row_per_explanation_in_order():
    runs = {"b": _explanation(torch.rand(2, 4, 4), 1, 1, 0.25), "a": _explanation(torch.rand(1, 4, 4), 170, 0, 3.5)}
    cost = tables.cost_table(runs)
    assert list(cost.index) == ["b", "a"] and cost.index.name == "method"
    assert list(cost.columns) == list(tables.COST_COLUMNS)
    assert cost.loc["a"].tolist() == [1, 170, 0, 3.5] and cost.loc["b", "images"] == 2
    assert cost["forward passes"].dtype.kind == "i"


def test_agreement_table_and_its_pairs_ranked():
    base = torch.arange(16.0).view(1, 4, 4)
    maps = {"up": base, "same": 2 * base, "down": -base, "flat": torch.ones(1, 4, 4)}
    table = tables.agreement_table(maps)
    assert list(table.index) == list(table.columns) == list(maps)
    assert table.loc["up", "same"] == pytest.approx(1.0) and table.loc["up", "down"] == pytest.approx(-1.0)
    pairs = tables.ranked_pairs(table)
    assert len(pairs) == 4 * 3 // 2  # each pair once, no diagonal
    assert pairs.index[0] == ("up", "same") and set(pairs.index[-2:]) == {("up", "down"), ("same", "down")}
    assert pairs.is_monotonic_decreasing
    with pytest.raises(ValueError, match="square"):
        tables.ranked_pairs(pd.DataFrame([[1.0]], index=["a"], columns=["b"]))


def test_max_difference_up_to_scale_by_hand():
    a = torch.tensor([[[0.0, 1.0], [2.0, 4.0]], [[1.0, 1.0], [0.0, 2.0]]])
    maps = {"a": a, "3a": 3 * a, "other": torch.tensor([[[4.0, 0.0], [2.0, 4.0]], [[1.0, 1.0], [0.0, 2.0]]]),
            "zero": torch.zeros(2, 2, 2)}
    gaps = tables.max_difference_up_to_scale(maps, ["a"])
    assert list(gaps.index) == ["a", "3a", "other", "zero"] and list(gaps.columns) == ["a"]
    assert gaps.loc["3a", "a"] == pytest.approx(0.0, abs=1e-12)
    assert gaps.loc["other", "a"] == pytest.approx(1.0)  # first image, top left: 4/4 - 0/4
    assert gaps.loc["zero", "a"] == pytest.approx(1.0)  # all zero stays zero; a's peak is 1 after scaling
    with pytest.raises(ValueError, match="not among the maps"):
        tables.max_difference_up_to_scale(maps, ["b"])
    with pytest.raises(ValueError, match="one shape"):
        tables.max_difference_up_to_scale({"a": a, "b": torch.ones(1, 2, 2)}, ["a"])


def test_perturbation_table_is_tidy_and_holds_the_means_by_hand():
    model, x = RegionMean(), torch.ones(2, 3, 8, 8)
    region_first = model.mask[0].expand(2, 8, 8) + torch.linspace(0, 1e-3, 64).view(1, 8, 8)
    maps = {"region": region_first, "reverse": _explanation(-region_first)}
    table = tables.perturbation_table(model, x, maps, target=0, baselines=(0.0, 1.0), fractions=(0.0, 4 / 64))
    assert table.index.names == ["method", "baseline", "order", "fraction"]
    assert list(table.columns) == list(tables.PERTURBATION_MEASURES) and len(table) == 2 * 2 * 2 * 2
    assert table.index[0] == ("region", 0.0, "morf", 0.0) and table.index[-1] == ("reverse", 1.0, "lerf", 4 / 64)
    assert (table.xs(0.0, level="fraction")[["afoc", "pcuo"]] == 0).all().all()
    # removing half the region (4 of its 8 pixels) to 0 halves the logit 1 -> 0.5
    row = table.loc[("region", 0.0, "morf", 4 / 64)]
    p, p_k = torch.sigmoid(torch.tensor(1.0)), torch.sigmoid(torch.tensor(0.5))
    assert row["pcuo"] == pytest.approx(0.5) and row["afoc"] == pytest.approx(float((p - p_k) / p))
    assert table.loc[("reverse", 0.0, "lerf", 4 / 64), "pcuo"] == pytest.approx(0.5)  # the same pixels, ranked last
    assert table.loc[("region", 0.0, "lerf", 4 / 64), "afoc"] == 0  # the pixels outside the region do not count
    assert (table.xs(1.0, level="baseline")["afoc"] == 0).all()  # a baseline equal to the image changes nothing
