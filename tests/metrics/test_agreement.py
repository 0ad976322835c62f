import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr

from xai_lab.metrics.agreement import agreement_matrix, agreement_per_image, block_coherence, pearson, spearman, ssim


def random_maps(seed, ties):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(2, 16, 16, generator=g)
    if ties:  # few distinct values: many ties, as in a map with a flat zero region or a coarse CAM
        a, b = (a * 2).round().clamp_min(0), (b * 2).round()
    return a, b


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_spearman_and_pearson_match_scipy(seed, ties):
    a, b = random_maps(seed, ties)
    assert spearman(a, b) == pytest.approx(spearmanr(a.flatten(), b.flatten()).statistic, abs=1e-12)
    assert spearman(a, b + 0.5 * a) == pytest.approx(spearmanr(a.flatten(), (b + 0.5 * a).flatten()).statistic,
                                                     abs=1e-12)
    assert pearson(a, b) == pytest.approx(pearsonr(a.flatten(), b.flatten()).statistic, abs=1e-6)


def test_average_ranks_share_ties():
    from scipy.stats import rankdata

    from xai_lab.metrics.agreement import average_ranks

    v = torch.tensor([3.0, 1.0, 3.0, 2.0, 1.0, 3.0])
    assert average_ranks(v).tolist() == rankdata(v.numpy()).tolist() == [5.0, 1.5, 5.0, 3.0, 1.5, 5.0]


def test_spearman_is_rank_invariant_and_signed():
    a, _ = random_maps(0, False)
    assert spearman(a, a.exp()) == pytest.approx(1.0)
    assert spearman(a, -a ** 3) == pytest.approx(-1.0)
    assert pearson(a, 2 * a + 1) == pytest.approx(1.0)


def test_a_constant_map_agrees_with_nothing():
    a, _ = random_maps(1, False)
    for constant in (torch.zeros(16, 16), torch.full((16, 16), 0.1)):
        assert spearman(constant, a) == spearman(a, constant) == spearman(constant, constant) == 0.0
        assert pearson(constant, a) == pearson(constant, constant) == 0.0


def test_bad_maps_are_refused():
    with pytest.raises(ValueError, match="same number"):
        spearman(torch.zeros(4, 4), torch.zeros(5, 5))
    with pytest.raises(ValueError, match="NaN"):
        spearman(torch.tensor([1.0, float("nan")]), torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="at least two"):
        pearson(torch.ones(1), torch.ones(1))


def test_ssim():
    a, b = random_maps(2, False)
    assert ssim(a, 3 * a + 2) == pytest.approx(1.0)  # min-max scaling first
    assert ssim(a, b) < 0.5
    with pytest.raises(ValueError, match="2-d"):
        ssim(a[None], b[None])


def test_agreement_per_image_and_matrix():
    g = torch.Generator().manual_seed(3)
    first, second = torch.randn(2, 3, 12, 12, generator=g)
    per_image = agreement_per_image(first, second)
    assert per_image.shape == (3,)
    assert per_image.tolist() == pytest.approx([spearman(u, v) for u, v in zip(first, second)])
    assert agreement_per_image(first, second, "pearson")[1] == pytest.approx(pearson(first[1], second[1]))
    table = agreement_matrix({"a": first, "b": second, "a again": first.exp(), "flat": torch.zeros(3, 12, 12)})
    assert table.shape == (4, 4) and torch.equal(table, table.T)
    assert table[0, 0] == pytest.approx(1.0) and table[0, 2] == pytest.approx(1.0)
    assert table[0, 1] == pytest.approx(float(per_image.mean()))
    assert (table[3] == 0).all()
    with pytest.raises(ValueError, match="one map per image"):
        agreement_per_image(first, second[:2])
    with pytest.raises(ValueError, match="Unknown measure"):
        agreement_per_image(first, second, "kendall")


def test_agreement_accepts_explanations(tiny, tiny_input):
    import xai_lab

    maps = xai_lab.explain(tiny, tiny_input, method=["gradcam", "xgradcam"], layer="act2", target=1)
    table = agreement_matrix(maps)
    assert table.shape == (2, 2)
    assert table[0, 1] == pytest.approx(float(agreement_per_image(maps["gradcam"], maps["xgradcam"].saliency).mean()))


def test_block_coherence():
    g = torch.Generator().manual_seed(4)
    smooth = torch.nn.functional.interpolate(torch.rand(2, 1, 4, 4, generator=g), size=64, mode="bilinear")[:, 0]
    noise = torch.rand(2, 64, 64, generator=g)
    assert (block_coherence(smooth) > 0.5).all() and (block_coherence(noise).abs() < 0.4).all()
    m = torch.nn.functional.avg_pool2d(noise[:1, None], 8)[0, 0].numpy()
    vertical, horizontal = np.corrcoef(m[1:].ravel(), m[:-1].ravel()), np.corrcoef(m[:, 1:].ravel(), m[:, :-1].ravel())
    expected = (vertical[0, 1] + horizontal[0, 1]) / 2
    assert float(block_coherence(noise)[0]) == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="fewer than two blocks"):
        block_coherence(noise, block=64)
