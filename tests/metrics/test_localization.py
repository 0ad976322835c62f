import pytest
import torch

from xai_lab.metrics import bounding_box, box_iou, pointing_game, relevance_mass


def test_relevance_mass_by_hand():
    s = torch.tensor([[[1.0, 3.0], [-2.0, 0.0]]])
    mask = torch.tensor([[True, False], [True, False]])
    assert relevance_mass(s, mask).tolist() == [0.25]          # 1 of 4 positive units; negatives ignored
    assert relevance_mass(torch.full((1, 2, 2), 2.0), mask).tolist() == [0.5]
    assert relevance_mass(-torch.ones(1, 2, 2), mask).tolist() == [0.0]


def test_pointing_game_with_and_without_tolerance():
    s = torch.zeros(1, 5, 5)
    s[0, 0, 0] = 1
    mask = torch.zeros(5, 5, dtype=torch.bool)
    mask[2, 2] = True
    assert pointing_game(s, mask).tolist() == [False]
    assert pointing_game(s, mask, tolerance=2).tolist() == [True]
    assert pointing_game(torch.ones(1, 5, 5), mask).tolist() == [True]   # a tie that includes the mask


def test_errors():
    with pytest.raises(ValueError, match="same"):
        relevance_mass(torch.zeros(2, 3, 3), torch.ones(2, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one pixel"):
        pointing_game(torch.zeros(3, 3), torch.zeros(3, 3, dtype=torch.bool))


def test_bounding_box_boxes_the_largest_region_above_the_threshold():
    s = torch.zeros(8, 10)
    s[1:3, 1:4] = 1.0      # 6 pixels: the largest region
    s[6, 6:8] = 2.0        # 2 pixels: the maximum, a smaller region
    s[4, 8] = 0.1          # below 15 % of the maximum (0.3)
    assert bounding_box(s) == (1, 1, 2, 3)
    s[3, 4] = 0.5          # touches the first region diagonally: 8-connected, the box grows
    assert bounding_box(s) == (1, 1, 3, 4)
    assert bounding_box(s, threshold=0.3) == (1, 1, 2, 3)       # 0.5 < 0.3 * 2 drops the diagonal pixel
    assert bounding_box(s, threshold=0.9) == (6, 6, 1, 2)       # only the maximum's region is left


def test_bounding_box_ties_go_to_the_higher_region_and_bad_maps_are_refused():
    s = torch.zeros(5, 5)
    s[0, 0], s[4, 4] = 0.5, 1.0
    assert bounding_box(s) == (4, 4, 1, 1)
    with pytest.raises(ValueError, match="no positive value"):
        bounding_box(-torch.ones(4, 4))
    with pytest.raises(ValueError, match=r"one map \[H, W\]"):
        bounding_box(torch.ones(1, 4, 4))
    with pytest.raises(ValueError, match="threshold"):
        bounding_box(torch.ones(4, 4), threshold=1.5)


def test_box_iou_by_hand():
    assert box_iou((0, 0, 2, 2), (0, 0, 2, 2)) == 1.0
    assert box_iou((0, 0, 2, 2), (1, 1, 2, 2)) == pytest.approx(1 / 7)   # 1 shared pixel of 4 + 4 - 1
    assert box_iou((0, 0, 2, 2), (5, 5, 1, 1)) == 0.0
    with pytest.raises(ValueError, match="positive sizes"):
        box_iou((0, 0, 0, 2), (0, 0, 1, 1))
