import torch

import xai_lab


def test_random_is_seeded_and_uniform(tiny, tiny_input):
    a = xai_lab.explain(tiny, tiny_input, method="random", seed=3)
    b = xai_lab.explain(tiny, tiny_input, method="random", seed=3)
    c = xai_lab.explain(tiny, tiny_input, method="random", seed=4)
    assert torch.equal(a.saliency, b.saliency) and not torch.equal(a.saliency, c.saliency)
    assert a.saliency.shape == (2, 8, 8) and 0 <= a.saliency.min() and a.saliency.max() < 1
    assert a.backward_passes == 0


def test_sobel_of_a_vertical_step_edge(tiny):
    x = torch.zeros(1, 3, 6, 6)
    x[..., 3:] = 1.0
    e = xai_lab.explain(tiny, x, method="sobel")
    # columns 2 and 3 border the step: |Gx| = 1 + 2 + 1 = 4; elsewhere 0
    expected = torch.zeros(6, 6)
    expected[:, 2:4] = 4.0
    assert torch.allclose(e.saliency[0], expected)
    assert e.backward_passes == 0
