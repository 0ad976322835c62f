import math

import numpy as np
import pytest
import torch

from xai_lab.metrics import complexity, sparseness


def test_gini_of_one_hot_and_constant_maps():
    one_hot = torch.zeros(4, 5)
    one_hot[2, 3] = 7.0
    assert sparseness(one_hot).item() == pytest.approx(1 - 1 / 20)
    assert sparseness(torch.full((4, 5), -3.0)).item() == pytest.approx(0.0, abs=1e-12)


def test_gini_by_hand_on_three_values():
    # |v| sorted: 1, 2, 3; G = ((2-3-1)*1 + (4-3-1)*2 + (6-3-1)*3) / (3 * 6) = (-2 + 0 + 6) / 18
    v = torch.tensor([[3.0, -1.0, 2.0]])
    assert sparseness(v).item() == pytest.approx(4 / 18)
    assert sparseness(v * 10).item() == pytest.approx(4 / 18)  # scale-free


def test_entropy_of_one_hot_constant_and_two_valued_maps():
    one_hot = torch.zeros(1, 4, 4)
    one_hot[0, 1, 1] = -2.0
    assert complexity(one_hot).item() == pytest.approx(0.0, abs=1e-12)
    assert complexity(torch.ones(4, 4)).item() == pytest.approx(math.log(16))
    p = torch.tensor([[1.0, 3.0]])  # P = 1/4, 3/4
    assert complexity(p).item() == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))


def test_directions_and_zero_maps():
    assert sparseness.higher_is_better is True and complexity.higher_is_better is False
    zero = torch.zeros(2, 3, 3)
    assert torch.isnan(sparseness(zero)).all() and torch.isnan(complexity(zero)).all()


def test_bad_maps():
    with pytest.raises(ValueError, match="saliency"):
        sparseness(torch.zeros(2, 3, 3, 3))
    with pytest.raises(ValueError, match="NaN"):
        complexity(torch.tensor([[1.0, float("nan")]]))


@pytest.fixture
def maps():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(4, 32, 32, generator=g)
    a[1] = a[1].clamp(min=0)  # many exact zeros
    a[2] = torch.zeros(32, 32)
    a[2, 5, 7] = 1.0          # one-hot
    return a


def _quantus(metric_class, maps):
    quantus = pytest.importorskip("quantus")
    x = np.zeros((len(maps), 3, 32, 32), dtype=np.float32)
    metric = getattr(quantus, metric_class)(disable_warnings=True)
    return np.asarray(metric(model=None, x_batch=x, y_batch=np.zeros(len(maps), dtype=int),
                             a_batch=maps[:, None].double().numpy(), channel_first=True))


def test_sparseness_agrees_with_quantus(maps):
    """Quantus adds 1e-7 to every |a| after dividing the batch by its largest |a|, which scales
    the Gini index by S / (S + n 1e-7) (S the sum of the normalized |a|); with that factor the
    two agree to 1e-9, without it they differ by up to n 1e-7 / S."""
    theirs = _quantus("Sparseness", maps)
    ours = sparseness(maps).numpy()
    s = (maps.abs() / maps.abs().max()).flatten(1).double().sum(1).numpy()
    n = 32 * 32
    np.testing.assert_allclose(theirs, ours * s / (s + n * 1e-7), rtol=0, atol=1e-9)
    rel = np.abs(theirs - ours) / ours
    assert rel.max() <= (n * 1e-7 / s).max() + 1e-9
    assert rel.max() > 1e-6  # the offset shows on the one-hot map


def test_complexity_agrees_with_quantus(maps):
    """Same entropy; Quantus' 1e-12 inside the logarithm moves it by less than 1e-8."""
    np.testing.assert_allclose(_quantus("Complexity", maps), complexity(maps).numpy(), rtol=0, atol=1e-8)
