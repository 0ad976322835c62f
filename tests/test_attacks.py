import pytest
import torch

from xai_lab import attacks


def _valid_and_within(clf, x, result, eps):
    pixels = clf.to_pixels(result.adversarial)
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6
    assert result.linf.max() <= eps + 1e-3
    assert torch.allclose(clf.to_pixels(x) * 255 + result.perturbation, pixels * 255, atol=1e-3)


def test_fgsm_respects_the_budget_and_changes_the_prediction(lite0, coffee_chelsea):
    for eps in (1, 4):
        r = attacks.fgsm(lite0, coffee_chelsea, eps=eps)
        _valid_and_within(lite0, coffee_chelsea, r, eps)
        assert (r.perturbation.abs().flatten(1).amax(1) > eps * 0.5).all()
    assert attacks.fgsm(lite0, coffee_chelsea, eps=8).success.any()


def test_pgd_untargeted_and_psnr(lite0, coffee_chelsea):
    r = attacks.pgd(lite0, coffee_chelsea, eps=2, steps=5)
    _valid_and_within(lite0, coffee_chelsea, r, 2)
    assert r.success.all() and (r.prediction != r.original_prediction).all()
    assert (r.psnr() > 40).all()


def test_targeted_pgd_reaches_its_target_on_most_sample_images(lite0, imagenet_records):
    records = imagenet_records[::50][:20]
    x = torch.stack([lite0.preprocess(r.path) for r in records])
    target = torch.full((20,), lite0.categories.index("toaster"))
    r = attacks.pgd(lite0, x, eps=8, steps=10, target=target, seed=0)
    _valid_and_within(lite0, x, r, 8)
    assert r.success.float().mean() >= 0.8
    a = attacks.pgd(lite0, x[:2], eps=8, steps=2, target=target[:2], seed=1)
    b = attacks.pgd(lite0, x[:2], eps=8, steps=2, target=target[:2], seed=1)
    assert torch.equal(a.adversarial, b.adversarial)


def test_attacks_need_a_classifier(tiny, tiny_input):
    with pytest.raises(TypeError, match="Classifier"):
        attacks.fgsm(tiny, tiny_input)
