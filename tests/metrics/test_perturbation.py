import math

import pytest
import torch
from torch import nn

from xai_lab.metrics import deletion_auc, insertion_auc, pixel_perturbation
from xai_lab.metrics.perturbation import baseline_image, perturbed_batch, ranking


class RegionMean(nn.Module):
    """Logits [mean of the image over region R (all channels), 0]."""

    def __init__(self, h=8, w=8):
        super().__init__()
        self.mask = torch.zeros(1, 1, h, w)
        self.mask[..., 2:4, 2:6] = 1  # 8 pixels
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        score = (x * self.mask).sum((1, 2, 3)) / (self.mask.sum() * x.shape[1])
        return torch.stack([score, torch.zeros_like(score) + self.dummy], 1)


@pytest.fixture
def setup():
    model = RegionMean()
    x = torch.ones(1, 3, 8, 8)
    perfect = model.mask[0].clone() + torch.linspace(0, 1e-3, 64).view(1, 8, 8)  # R first, then the rest
    return model, x, perfect


def test_exact_values_when_half_the_region_is_removed(setup):
    model, x, perfect = setup
    out = pixel_perturbation(model, x, perfect, target=0, baseline=0.0, fractions=[0.0, 4 / 64])
    p0 = math.exp(1) / (math.exp(1) + 1)
    p1 = math.exp(0.5) / (math.exp(0.5) + 1)
    assert out["afoc"][0, 0] == 0 and out["kl"][0, 0].abs() < 1e-7 and out["pcuo"][0, 0] == 0
    assert out["afoc"][0, 1].item() == pytest.approx(abs(p1 - p0) / p0, rel=1e-5)
    assert out["pcuo"][0, 1].item() == pytest.approx(0.5, rel=1e-5)
    kl = p1 * math.log(p1 / p0) + (1 - p1) * math.log((1 - p1) / (1 - p0))
    assert out["kl"][0, 1].item() == pytest.approx(kl, rel=1e-4)


def test_morf_drop_is_largest_for_the_perfect_map_and_lerf_stays_flat(setup):
    model, x, perfect = setup
    rand = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0))
    fr = [0.0, 0.125, 0.25, 0.5, 0.75]
    m_perfect = pixel_perturbation(model, x, perfect, target=0, baseline=0.0, fractions=fr, order="morf")
    m_random = pixel_perturbation(model, x, rand, target=0, baseline=0.0, fractions=fr, order="morf")
    assert m_perfect["afoc"][0, 1] > m_random["afoc"][0, 1]
    l_perfect = pixel_perturbation(model, x, perfect, target=0, baseline=0.0, fractions=fr, order="lerf")
    l_random = pixel_perturbation(model, x, rand, target=0, baseline=0.0, fractions=fr, order="lerf")
    assert torch.all(l_perfect["afoc"][0, :5] == 0)          # 56 irrelevant pixels go first
    assert l_random["afoc"][0, 1:].max() > 0


def test_deletion_and_insertion_rank_the_perfect_map_first(setup):
    model, x, perfect = setup
    rand = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0))
    d_p = deletion_auc(model, x, perfect, target=0, baseline=0.0, step=2)["auc"]
    d_r = deletion_auc(model, x, rand, target=0, baseline=0.0, step=2)["auc"]
    i_p = insertion_auc(model, x, perfect, target=0, start=0.0, step=2)["auc"]
    i_r = insertion_auc(model, x, rand, target=0, start=0.0, step=2)["auc"]
    assert d_p < d_r and i_p > i_r
    curve = deletion_auc(model, x, perfect, target=0, baseline=0.0, step=2)
    assert curve["fractions"][0] == 0 and curve["fractions"][-1] == 1
    assert curve["curve"][0, -1].item() == pytest.approx(0.5)  # everything deleted: logits [0, 0]


def test_baselines(lite0):
    x = torch.zeros(2, 3, 16, 16)
    x[:, 0] = 0.5
    assert torch.allclose(baseline_image(x, "black", lite0), torch.full_like(x, -1.0))
    assert torch.allclose(baseline_image(x, "mean", None)[:, 0], torch.full((2, 16, 16), 0.5))
    assert baseline_image(x, "blur", None).shape == x.shape
    with pytest.raises(ValueError, match="Classifier"):
        baseline_image(x, "black", None)
    with pytest.raises(ValueError, match="Unknown baseline"):
        baseline_image(x, "white", None)


def test_ranking_and_batch_helpers():
    s = torch.tensor([[[0.1, 0.9], [0.5, 0.2]]])
    assert ranking(s, "morf").tolist() == [[1, 2, 3, 0]]
    assert ranking(s, "lerf").tolist() == [[0, 3, 2, 1]]
    batch = perturbed_batch(torch.ones(1, 2, 2), torch.zeros(1, 2, 2), ranking(s, "morf")[0], [0, 1, 4])
    assert batch[0].sum() == 4 and batch[1, 0, 0, 1] == 0 and batch[1].sum() == 3 and batch[2].sum() == 0


def test_bad_saliency_shape(setup):
    model, x, _ = setup
    with pytest.raises(ValueError, match="saliency must be"):
        pixel_perturbation(model, x, torch.zeros(1, 4, 4), target=0, baseline=0.0)


class Linear13(nn.Module):
    """13 classes, logits = W vec(x) + b with fixed random W, b: the runner-up classes and their
    clean logits (both signs) are known."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.weight = nn.Parameter(torch.randn(13, 3 * 4 * 4, generator=g))
        self.bias = nn.Parameter(torch.randn(13, generator=g))

    def forward(self, x):
        return x.flatten(1) @ self.weight.T + self.bias


def test_pcuo_over_the_runner_up_classes_by_hand():
    torch.manual_seed(0)
    model = Linear13()
    x = torch.rand(2, 3, 4, 4)
    saliency = torch.rand(2, 4, 4)
    out = pixel_perturbation(model, x, saliency, target=[0, 5], order="morf", baseline=0.0, fractions=[0.0, 0.25, 0.5])
    with torch.no_grad():
        for i, t in enumerate((0, 5)):
            clean = model(x[i:i + 1])[0]
            runners = [int(c) for c in clean.argsort(descending=True) if int(c) != t][:10]
            assert out["runner_up_classes"][i].tolist() == runners
            order = saliency[i].flatten().argsort(descending=True)
            for j, count in enumerate((0, 4, 8)):
                xk = x[i].clone().view(3, -1)
                xk[:, order[:count]] = 0.0
                zk = model(xk.view(1, 3, 4, 4))[0]
                by_hand = sum(abs(float(zk[c] - clean[c])) / abs(float(clean[c])) for c in runners) / 10
                assert out["pcuo_runner_up"][i, j].item() == pytest.approx(by_hand, rel=1e-5, abs=1e-6)
                assert out["pcuo"][i, j].item() == pytest.approx(abs(float(zk[t] - clean[t])) / abs(float(clean[t])),
                                                                rel=1e-5, abs=1e-6)


def test_runner_up_count_is_capped_by_the_classes_and_checked(setup):
    model, x, perfect = setup                                 # two classes: one runner-up, clean logit 0
    out = pixel_perturbation(model, x, perfect, target=0, baseline=0.0, fractions=[0.0, 0.5])
    assert out["runner_up_classes"].tolist() == [[1]]
    assert torch.isnan(out["pcuo_runner_up"]).all()           # 0 / 0: undefined, not silently 0
    wide = pixel_perturbation(Linear13(), torch.rand(1, 3, 4, 4), torch.rand(1, 4, 4), target=2, runner_up=20,
                              baseline=0.0, fractions=[0.0, 0.5])
    assert wide["runner_up_classes"].shape == (1, 12) and 2 not in wide["runner_up_classes"][0].tolist()
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="runner_up"):
            pixel_perturbation(model, x, perfect, target=0, baseline=0.0, runner_up=bad)


def test_kl_is_the_same_whichever_class_the_map_explains():
    model = Linear13()
    x = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    saliency = torch.rand(1, 4, 4, generator=torch.Generator().manual_seed(2))
    a = pixel_perturbation(model, x, saliency, target=0, baseline=0.0, fractions=[0.25, 0.5])
    b = pixel_perturbation(model, x, saliency, target=7, baseline=0.0, fractions=[0.25, 0.5])
    assert torch.equal(a["kl"], b["kl"]) and not torch.allclose(a["afoc"], b["afoc"])
