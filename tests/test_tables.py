import pandas as pd
import pytest
import torch

from xai_lab import tables
from xai_lab.explain import Explanation


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
