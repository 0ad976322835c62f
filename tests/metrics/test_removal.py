"""The ROAR removal by hand on tiny arrays: exact counts, seeded ties, fills, clear errors."""
import pytest
import torch

from xai_lab.metrics.removal import removal_mask, removal_order, remove_top_fraction, removed_count

# 3 x 3 map with distinct values: order of removal 4 (0.9), 8 (0.8), 0 (0.7), 2 (0.6), ...
MAP3 = torch.tensor([[0.7, 0.1, 0.6],
                     [0.2, 0.9, 0.3],
                     [0.5, 0.4, 0.8]])


def image3():
    """Channel c holds c * 10 + pixel index: channel means 4, 14, 24."""
    return torch.stack([torch.arange(9.0).view(3, 3) + 10 * c for c in range(3)])


def test_removed_count_rounds_half_up():
    assert [removed_count(f, 3, 3) for f in (0, 0.1, 0.5, 1 / 3, 0.95, 1)] == [0, 1, 5, 3, 9, 9]
    assert removed_count(0.5, 3, 3) == 5          # 4.5 -> 5 (Python's round would give 4)
    assert removed_count(0.1, 224, 224) == 5018   # 5017.6


def test_remove_top_fraction_by_hand_on_3x3():
    x = image3()
    out = remove_top_fraction(x, MAP3, 0.3, tie_seed=None)   # round(2.7) = 3 pixels: indices 4, 8, 0
    expected = x.clone()
    for c, mean in enumerate((4.0, 14.0, 24.0)):
        expected[c].view(-1)[[4, 8, 0]] = mean
    assert torch.equal(out, expected)
    assert torch.equal(x, image3())                           # the input is not edited
    assert torch.equal(removal_mask(MAP3, 0.3, tie_seed=None),
                       torch.tensor([[True, False, False], [False, True, False], [False, False, True]]))


def test_fraction_zero_changes_nothing_and_one_removes_everything():
    x = image3()
    assert torch.equal(remove_top_fraction(x, MAP3, 0.0), x)
    everything = remove_top_fraction(x, MAP3, 1.0)
    assert torch.equal(everything, torch.tensor([4.0, 14.0, 24.0]).view(3, 1, 1).expand(3, 3, 3))


def test_fill_by_number_and_per_channel():
    x = image3()
    out = remove_top_fraction(x, MAP3, 1 / 9, fill=-1.0, tie_seed=None)
    assert out[:, 1, 1].tolist() == [-1.0, -1.0, -1.0] and (out != x).sum() == 3
    out = remove_top_fraction(x, MAP3, 2 / 9, fill=[1.0, 2.0, 3.0], tie_seed=None)
    assert out[:, 1, 1].tolist() == [1.0, 2.0, 3.0] and out[:, 2, 2].tolist() == [1.0, 2.0, 3.0]
    assert (out != x).sum() == 6


def test_ties_by_pixel_index_or_by_a_seeded_permutation_on_4x4():
    flat = torch.zeros(16)
    flat[[5, 10]] = 1.0                                        # two hot pixels, fourteen tied zeros
    saliency = flat.view(4, 4)
    assert removal_order(saliency, tie_seed=None).tolist() == [5, 10, 0, 1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14, 15]
    seeded = removal_order(saliency, tie_seed=3)
    assert seeded[:2].tolist() in ([5, 10], [10, 5]) and sorted(seeded.tolist()) == list(range(16))
    assert torch.equal(seeded, removal_order(saliency, tie_seed=3))
    # the tied zeros follow the seeded permutation, not the pixel order
    permutation = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    assert seeded[2:].tolist() == [int(i) for i in permutation if int(i) not in (5, 10)]
    # exactly round(fraction * 16) pixels for every fraction, nested as the fraction grows
    masks = [removal_mask(saliency, k / 10, tie_seed=3) for k in range(11)]
    assert [int(m.sum()) for m in masks] == [removed_count(k / 10, 4, 4) for k in range(11)]
    assert all(bool((a <= b).all()) for a, b in zip(masks, masks[1:]))
    assert masks[2][1, 1] and masks[2][2, 2] and int(masks[2].sum()) == 3


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan"), "half", True])
def test_fraction_outside_zero_one_is_refused(fraction):
    with pytest.raises(ValueError, match="fraction must be a number in \\[0, 1\\]"):
        remove_top_fraction(image3(), MAP3, fraction)


def test_bad_shapes_and_fills_are_refused():
    with pytest.raises(ValueError, match="does not match the image's size"):
        remove_top_fraction(image3(), torch.zeros(4, 4), 0.5)
    with pytest.raises(ValueError, match="one image"):
        remove_top_fraction(torch.zeros(3, 3), MAP3, 0.5)
    with pytest.raises(ValueError, match="fill"):
        remove_top_fraction(image3(), MAP3, 0.5, fill="black")
    with pytest.raises(ValueError, match="2 values for 3 channels"):
        remove_top_fraction(image3(), MAP3, 0.5, fill=[1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        removal_order(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="one map"):
        removal_order(torch.zeros(2, 3, 3))
