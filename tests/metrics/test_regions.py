import math

import pytest
import torch

from xai_lab.metrics import top_mass_share as exported
from xai_lab.metrics.regions import mask_iou, random_region_iou, top_fraction_mask, top_mass_share


def test_top_fraction_of_a_small_map_by_hand():
    m = torch.tensor([[0.1, 0.9], [0.5, 0.3]])
    assert top_fraction_mask(m, 0.5).tolist() == [[False, True], [True, False]]
    assert top_fraction_mask(m, 0.25).tolist() == [[False, True], [False, False]]
    assert not top_fraction_mask(m, 0.0).any()
    assert top_fraction_mask(m, 1.0).all()


def test_count_rounds_half_up_per_map():
    maps = torch.rand(3, 3, 3, generator=torch.Generator().manual_seed(0))
    # 0.5 * 9 = 4.5 -> 5 pixels (Python's round would give 4)
    assert top_fraction_mask(maps, 0.5).flatten(1).sum(1).tolist() == [5, 5, 5]


def test_batch_and_channel_axis_and_single_map_agree():
    maps = torch.rand(2, 5, 5, generator=torch.Generator().manual_seed(1))
    batch = top_fraction_mask(maps, 0.2)
    assert batch.shape == (2, 5, 5)
    assert torch.equal(top_fraction_mask(maps[:, None], 0.2), batch)
    assert torch.equal(top_fraction_mask(maps[1], 0.2), batch[1])


def test_ties_take_exactly_k_pixels_in_a_fixed_order():
    flat = torch.zeros(10, 10)  # all tied: a quantile threshold would take every pixel
    a = top_fraction_mask(flat, 0.2)
    assert int(a.sum()) == 20
    assert torch.equal(a, top_fraction_mask(flat, 0.2))  # deterministic
    assert not torch.equal(a, top_fraction_mask(flat, 0.2, tie_seed=1))
    by_index = top_fraction_mask(flat, 0.2, tie_seed=None)
    assert by_index[:2].all() and not by_index[2:].any()  # row-major: the first 20 pixels


def test_ties_only_break_among_equal_values():
    m = torch.zeros(4, 4)
    m[0, 0], m[3, 3] = 2.0, 1.0
    mask = top_fraction_mask(m, 3 / 16)  # both peaks, then one tied zero
    assert mask[0, 0] and mask[3, 3] and int(mask.sum()) == 3


def test_signed_values_rank_as_they_are():
    m = torch.tensor([[-5.0, 1.0], [0.0, 2.0]])
    assert top_fraction_mask(m, 0.25).tolist() == [[False, False], [False, True]]
    assert top_fraction_mask(m.abs(), 0.25).tolist() == [[True, False], [False, False]]


@pytest.mark.parametrize("bad", [-0.1, 1.5, True, "0.2"])
def test_fraction_is_checked(bad):
    with pytest.raises(ValueError):
        top_fraction_mask(torch.rand(4, 4), bad)


def test_bad_maps_are_rejected():
    with pytest.raises(ValueError):
        top_fraction_mask(torch.rand(4), 0.5)
    with pytest.raises(ValueError):
        top_fraction_mask(torch.tensor([[0.0, float("nan")]]), 0.5)


def test_iou_by_hand():
    a = torch.tensor([[True, True], [False, False]])
    b = torch.tensor([[True, False], [True, False]])
    assert float(mask_iou(a, b)) == pytest.approx(1 / 3)
    assert float(mask_iou(a, a)) == 1.0
    assert float(mask_iou(a, ~a)) == 0.0
    empty = torch.zeros(2, 2, dtype=torch.bool)
    assert float(mask_iou(empty, empty)) == 1.0
    assert mask_iou(torch.stack([a, a]), torch.stack([b, a])).tolist() == pytest.approx([1 / 3, 1.0])


def test_iou_checks_its_masks():
    with pytest.raises(TypeError):
        mask_iou(torch.ones(2, 2), torch.ones(2, 2))
    with pytest.raises(ValueError):
        mask_iou(torch.ones(2, 2, dtype=torch.bool), torch.ones(3, 3, dtype=torch.bool))


def test_random_region_iou_matches_random_maps():
    maps = torch.rand(2000, 20, 20, generator=torch.Generator().manual_seed(0))
    a, b = top_fraction_mask(maps[:1000], 0.2), top_fraction_mask(maps[1000:], 0.2)
    assert float(mask_iou(a, b).mean()) == pytest.approx(random_region_iou(0.2), abs=0.01)
    assert random_region_iou(0.2) == pytest.approx(0.04 / 0.36)
    assert random_region_iou(1.0) == 1.0


def test_top_mass_share_by_hand():
    m = torch.tensor([[4.0, 3.0], [2.0, 1.0]])  # mass 10
    assert float(top_mass_share(m, 0.25)) == pytest.approx(0.4)  # the top pixel: 4 / 10
    assert float(top_mass_share(m, 0.5)) == pytest.approx(0.7)  # (4 + 3) / 10
    assert float(top_mass_share(m, 1.0)) == 1.0
    assert float(top_mass_share(m, 0.0)) == 0.0
    assert float(top_mass_share(m * 7, 0.5)) == pytest.approx(0.7)  # the scale does not matter
    assert exported is top_mass_share


def test_top_mass_share_counts_only_positive_mass():
    m = torch.tensor([[-5.0, 1.0], [0.0, 3.0]])  # positive mass 4; -5 is not mass
    assert float(top_mass_share(m, 0.25)) == pytest.approx(0.75)
    assert float(top_mass_share(m, 0.5)) == 1.0
    assert float(top_mass_share(torch.full((3, 3), 2.0), 1 / 9)) == pytest.approx(1 / 9)  # a flat map


def test_top_mass_share_needs_no_tie_rule():
    m = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    assert float(top_mass_share(m, 0.5)) == pytest.approx(0.75)  # 2 and either of the tied 1s
    tied = torch.zeros(10, 10)
    tied[:5] = 1.0  # 50 equal pixels; the top 20 take 20 of them whichever tie order is used
    assert float(top_mass_share(tied, 0.2)) == pytest.approx(0.4)
    for seed in (None, 0, 1):
        mask = top_fraction_mask(tied, 0.2, tie_seed=seed)
        assert float((tied * mask).sum() / tied.sum()) == pytest.approx(0.4)


def test_top_mass_share_agrees_with_the_top_fraction_mask():
    maps = torch.randn(4, 7, 9, generator=torch.Generator().manual_seed(2))
    for fraction in (0.05, 0.3, 0.5):  # 0.5 * 63 = 31.5 -> 32 pixels, halves rounded up as for the mask
        masks = top_fraction_mask(maps, fraction)
        expected = (maps.clamp_min(0) * masks).flatten(1).sum(1) / maps.clamp_min(0).flatten(1).sum(1)
        assert top_mass_share(maps, fraction).tolist() == pytest.approx(expected.tolist())


def test_top_mass_share_shapes_and_empty_maps():
    maps = torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(3))
    maps[1] = -maps[1]  # no positive mass: nothing to share
    share = top_mass_share(maps, 0.2)
    assert share.shape == (3,) and share.dtype == torch.float64
    assert math.isnan(share[1]) and not share[[0, 2]].isnan().any()
    assert torch.allclose(top_mass_share(maps[:, None], 0.2), share, equal_nan=True)  # a channel axis of 1
    assert top_mass_share(maps[0], 0.2).dim() == 0 and float(top_mass_share(maps[0], 0.2)) == pytest.approx(float(share[0]))


@pytest.mark.parametrize("bad", [-0.1, 1.5, True, "0.2", None])
def test_top_mass_share_checks_the_fraction(bad):
    with pytest.raises(ValueError):
        top_mass_share(torch.rand(4, 4), bad)


def test_top_mass_share_checks_the_maps():
    with pytest.raises(ValueError):
        top_mass_share(torch.rand(4), 0.5)
    with pytest.raises(ValueError):
        top_mass_share(torch.tensor([[1.0, float("inf")]]), 0.5)
    with pytest.raises(TypeError):
        top_mass_share(torch.ones(2, 2, dtype=torch.bool), 0.5)
