import pytest
import torch

from xai_lab.metrics import pointing_game, relevance_mass


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
