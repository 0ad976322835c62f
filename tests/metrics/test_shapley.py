import itertools

import numpy as np
import pytest
import torch
from torch import nn

from xai_lab.metrics.shapley import (
    coalition_images,
    coalitions,
    exact_shapley,
    exact_superpixel_shapley,
    shapley_values,
    superpixel_means,
    superpixel_sums,
)
from xai_lab.ops import CPU_FORWARD_BATCH


def test_coalitions_are_numbered_by_bitmask():
    c = coalitions(3)
    assert c.shape == (8, 3)
    assert c[0].tolist() == [False, False, False] and c[-1].tolist() == [True, True, True]
    assert c[0b101].tolist() == [True, False, True]


def test_two_players_by_hand():
    # v(empty) = 0, v({0}) = 1, v({1}) = 2, v({0, 1}) = 5
    # phi_0 = 1/2 (1 - 0) + 1/2 (5 - 2) = 2, phi_1 = 1/2 (2 - 0) + 1/2 (5 - 1) = 3
    assert shapley_values([0.0, 1.0, 2.0, 5.0]).tolist() == pytest.approx([2.0, 3.0])


def test_three_players_by_hand():
    # unanimity game of players 0 and 1: v(S) = 1 iff {0, 1} is in S; player 2 is a dummy
    v = [1.0 if s & 0b11 == 0b11 else 0.0 for s in range(8)]
    assert shapley_values(v).tolist() == pytest.approx([0.5, 0.5, 0.0])
    # majority game: v(S) = 1 iff |S| >= 2; by symmetry each player gets 1/3
    v = [1.0 if bin(s).count("1") >= 2 else 0.0 for s in range(8)]
    assert shapley_values(v).tolist() == pytest.approx([1 / 3] * 3)
    # weights for M = 3: |S| = 0 -> 2!/3! = 1/3, |S| = 1 -> 1/6, |S| = 2 -> 1/3.
    # v = 10 * [0 in S] + 6 * [0 and 2 in S]: phi_0 = 10 + 3, phi_2 = 3, phi_1 = 0
    v = [10.0 * (s & 1) + 6.0 * (s & 0b101 == 0b101) for s in range(8)]
    assert shapley_values(v).tolist() == pytest.approx([13.0, 0.0, 3.0])


def test_matches_the_average_over_all_orders():
    rng = np.random.default_rng(0)
    v = rng.normal(size=16)
    v[0] = 0.0
    by_order = np.zeros(4)
    orders = list(itertools.permutations(range(4)))
    for order in orders:
        s = 0
        for i in order:
            by_order[i] += v[s | 1 << i] - v[s]
            s |= 1 << i
    assert shapley_values(v).numpy() == pytest.approx(by_order / len(orders))


def toy_game(members: torch.Tensor) -> torch.Tensor:
    """Players 1 and 2 symmetric, player 4 a dummy, interactions between 0, 1 and 3."""
    m = members.double()
    return 2 * m[:, 0] + m[:, 1] + m[:, 2] + 3 * m[:, 0] * m[:, 3] - m[:, 1] * m[:, 3] - m[:, 2] * m[:, 3] + 0.5


def test_axioms_on_a_toy_game():
    result = exact_shapley(toy_game, 5, batch_size=7)
    phi = result.values
    assert result.payoffs.shape == (32,)
    assert float(phi.sum()) == pytest.approx(result.gap)                # efficiency
    assert result.gap == pytest.approx(float(toy_game(torch.ones(1, 5, dtype=torch.bool)) - 0.5))
    assert float(phi[1]) == pytest.approx(float(phi[2]))                 # symmetry
    assert float(phi[4]) == pytest.approx(0.0, abs=1e-12)                # dummy
    assert float(phi[0]) == pytest.approx(2 + 1.5)                       # own effect + half the pair


def test_linearity():
    a, b = np.random.default_rng(1).normal(size=(2, 32))
    assert shapley_values(a + 2 * b).numpy() == pytest.approx((shapley_values(a) + 2 * shapley_values(b)).numpy())


def test_bad_games_are_rejected():
    with pytest.raises(ValueError):
        shapley_values([1.0, 2.0, 3.0])
    with pytest.raises(ValueError):
        coalitions(17)
    with pytest.raises(ValueError):
        exact_shapley(lambda m: torch.zeros(1), 3)


def quadrants(h=4, w=4):
    seg = torch.zeros(h, w, dtype=torch.long)
    seg[: h // 2, w // 2:], seg[h // 2:, : w // 2], seg[h // 2:, w // 2:] = 1, 2, 3
    return seg


def test_superpixel_means_and_sums():
    seg = quadrants()
    x = torch.arange(48.0).view(1, 3, 4, 4)
    flat = superpixel_means(x, seg)
    assert flat.shape == x.shape
    for k in range(4):
        region = x[0][:, seg == k]
        assert torch.allclose(flat[0][:, seg == k], region.mean(1, keepdim=True).expand_as(region))
    sums = superpixel_sums(x[0], seg)
    assert sums.tolist() == pytest.approx([float(x[0][:, seg == k].sum()) for k in range(4)])
    with pytest.raises(ValueError):
        superpixel_sums(x[0], seg * 2)  # labels 0, 2, 4, 6: not 0..M-1


def test_coalition_images_keep_members_and_fill_the_rest():
    seg = quadrants()
    x, base = torch.randn(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    members = torch.tensor([[True, False, False, True], [False] * 4])
    images = coalition_images(x, seg, members, base)
    assert images.shape == (2, 3, 4, 4)
    keep = (seg == 0) | (seg == 3)
    assert torch.equal(images[0][:, keep], x[0][:, keep]) and not images[0][:, ~keep].any()
    assert not images[1].any()
    assert torch.allclose(coalition_images(x, seg, members[1:]), superpixel_means(x, seg))
    with pytest.raises(ValueError):
        coalition_images(x, seg, torch.ones(1, 3, dtype=torch.bool))


def test_a_linear_model_gets_its_own_contributions():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    x, base = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    seg = quadrants()
    result = exact_superpixel_shapley(model, x, seg, target=1, baseline=base, output="logit", batch_size=5)
    contribution = (model[1].weight[1].view(3, 4, 4) * (x - base)[0]).detach()
    assert result.values.numpy() == pytest.approx(superpixel_sums(contribution, seg).numpy(), abs=1e-5)
    assert float(result.payoffs[-1]) == pytest.approx(float(model(x)[0, 1].detach()), abs=1e-5)
    assert float(result.payoffs[0]) == pytest.approx(float(model(base)[0, 1].detach()), abs=1e-5)


def test_the_default_batches_are_small_and_do_not_change_the_values():
    """CPU_FORWARD_BATCH coalitions a pass by default on a CPU; the values of any batch size agree."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    x = torch.randn(1, 3, 8, 8)
    seg = torch.arange(64).view(8, 8) % 6  # six players: 64 coalitions
    sizes = []
    hook = model.register_forward_pre_hook(lambda module, inputs: sizes.append(len(inputs[0])))
    try:
        default = exact_superpixel_shapley(model, x, seg, target=2)
    finally:
        hook.remove()
    assert max(sizes) == CPU_FORWARD_BATCH and sum(sizes) == 64  # every coalition once
    for batch_size in (5, 64):
        other = exact_superpixel_shapley(model, x, seg, target=2, batch_size=batch_size)
        assert torch.allclose(other.values, default.values, atol=1e-6)


def test_probabilities_on_a_conv_net_are_efficient(tiny):
    model = tiny.train()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    seg = quadrants(8, 8)
    result = exact_superpixel_shapley(model, x, seg)
    with torch.no_grad():
        p_full, p_empty = torch.softmax(model(torch.cat([x, superpixel_means(x, seg)])), 1)
    predicted = int(p_full.argmax())
    assert float(result.payoffs[-1]) == pytest.approx(float(p_full[predicted]), abs=1e-6)
    assert float(result.payoffs[0]) == pytest.approx(float(p_empty[predicted]), abs=1e-6)
    assert float(result.values.sum()) == pytest.approx(result.gap, abs=1e-9)
    assert model.training  # the mode is restored


def test_checks_of_the_image_and_options():
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    with pytest.raises(ValueError):
        exact_superpixel_shapley(model, torch.randn(2, 3, 4, 4), quadrants())
    with pytest.raises(ValueError):
        exact_superpixel_shapley(model, torch.randn(1, 3, 4, 4), quadrants(), output="score")
    with pytest.raises(ValueError):
        exact_superpixel_shapley(model, torch.randn(1, 3, 4, 4), quadrants(2, 2))
