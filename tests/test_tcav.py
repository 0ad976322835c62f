"""TCAV (xai_lab/tcav.py): CAVs of activations with a known separating direction, directional
derivatives by hand on a toy network, the TCAV score and its t-test, agreement with captum's
TCAV on the same activations, and clear errors for bad input."""
import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from xai_lab import Classifier
from xai_lab.capture import hook_count
from xai_lab.tcav import (
    CAV,
    fit_cav,
    layer_activations,
    layer_gradients,
    sensitivities,
    significance,
    tcav,
    tcav_score,
    tcav_tests,
)

D = 6
AXIS = torch.tensor([0.0, 3.0, 0.0, 4.0, 0.0, 0.0]) / 5  # the unit direction separating the two clouds


def clouds(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two Gaussian clouds in D dimensions, unit variance, their means 4 apart along AXIS."""
    g = torch.Generator().manual_seed(seed)
    concept = torch.randn(n, D, generator=g) + 2 * AXIS
    random = torch.randn(n, D, generator=g) - 2 * AXIS
    return concept, random


@pytest.mark.parametrize("kind", ["sgd", "logistic"])
def test_cav_of_two_clouds_is_the_axis_between_them(kind):
    concept, random = clouds()
    cav = fit_cav(concept, random, kind, seed=0, test_fraction=0.25)
    assert cav.vector.norm() == pytest.approx(1.0, abs=1e-6)
    assert float(cav.vector @ AXIS) > 0.95                       # towards the concept, along the axis
    assert torch.allclose(cav.vector, cav.weights / cav.weights.norm(), atol=1e-6)
    assert cav.accuracy > 0.95                                   # clouds 4 standard deviations apart
    swapped = fit_cav(random, concept, kind, seed=0, test_fraction=0.25)
    assert float(swapped.vector @ AXIS) < -0.95                  # the other set as concept: the opposite way


def test_cav_is_seeded_and_the_callable_classifier_is_used():
    concept, random = clouds(50)
    a, b = (fit_cav(concept, random, "sgd", seed=3, test_fraction=0.2) for _ in range(2))
    assert torch.equal(a.vector, b.vector) and a.accuracy == b.accuracy
    fixed = fit_cav(concept, random, lambda x, y, seed: (np.r_[1.0, np.zeros(D - 1)], 0.0))
    assert torch.equal(fixed.vector, torch.eye(D)[0]) and np.isnan(fixed.accuracy)   # nothing held out


class Quadratic(nn.Module):
    """x [N, 3, H, W] -> mean over pixels m [N, 3] -> layer a = W m + b [N, 4] -> logits
    [||a||^2 / 2, u . a]: grad_a logit 0 = a, grad_a logit 1 = u, known by hand."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.layer = nn.Linear(3, 4)
        self.u = torch.tensor([1.0, -2.0, 0.5, 3.0])
        with torch.no_grad():
            self.layer.weight.copy_(torch.arange(12.0).view(4, 3) / 10 - 0.5)
            self.layer.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))

    def forward(self, x):
        a = self.layer(self.flatten(self.pool(x)))
        return torch.stack([0.5 * (a ** 2).sum(1), a @ self.u], 1)


@pytest.fixture
def quadratic():
    return Classifier("quadratic", Quadratic(), ["square", "linear"], "layer", (0.0,) * 3, (1.0,) * 3)


@pytest.fixture
def images():
    return torch.randn(7, 3, 5, 5, generator=torch.Generator().manual_seed(2))


def test_directional_derivative_by_hand(quadratic, images):
    model = quadratic.model
    a = images.mean((2, 3)) @ model.layer.weight.T + model.layer.bias
    v = torch.tensor([0.5, 0.5, -0.5, 0.5])
    assert torch.allclose(layer_activations(quadratic, images, "layer", batch_size=3), a, atol=1e-6)
    grads = layer_gradients(quadratic, images, "square", "layer", batch_size=3)
    assert torch.allclose(grads, a, atol=1e-6)                                   # d(||a||^2/2)/da = a
    assert torch.allclose(sensitivities(grads, v), (a @ v).double(), atol=1e-6)
    assert torch.allclose(layer_gradients(quadratic, images, 1, "layer"), model.u.expand(7, 4))
    per_image = layer_gradients(quadratic, images, [0, 1, 0, 1, 0, 1, 0], "layer")
    assert torch.allclose(per_image[1::2], model.u.expand(3, 4)) and torch.allclose(per_image[::2], a[::2], atol=1e-6)
    assert hook_count(model) == 0


def test_gradients_equal_autograd_through_the_whole_network(tiny, tiny_input):
    acts = {}
    handle = tiny.conv2.register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    try:
        score = tiny(tiny_input)[:, 3].sum()
        (expected,) = torch.autograd.grad(score, acts["a"])
    finally:
        handle.remove()
    grads = layer_gradients(tiny, tiny_input, 3, "conv2", batch_size=1)
    assert torch.allclose(grads, expected.flatten(1), atol=1e-6)
    assert hook_count(tiny) == 0


def test_tcav_score_and_sensitivities_of_several_cavs():
    assert float(tcav_score(torch.tensor([1.0, -1.0, 2.0, 0.0]))) == 0.5          # 0 is not positive
    grads = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    cavs = [CAV(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0]), 0.0, float("nan")),
            CAV(torch.tensor([0.0, -1.0]), torch.tensor([0.0, -1.0]), 0.0, float("nan"))]
    s = sensitivities(grads, cavs)
    assert s.tolist() == [[1.0, 0.0], [0.0, -1.0], [-1.0, 1.0]]
    assert tcav_score(s).tolist() == pytest.approx([1 / 3, 1 / 3])


def test_significance_is_scipys_t_test_with_bonferroni():
    a, b = [0.9, 0.8, 0.85, 0.95, 0.7], [0.5, 0.4, 0.7, 0.6, 0.3]
    p, significant = significance(a, b)
    assert p == pytest.approx(stats.ttest_ind(a, b).pvalue, rel=1e-12) and significant
    assert significance(a, b, equal_var=False)[0] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert 0.001 < p < 0.01
    assert significance(a, b, alpha=0.005)[1] and not significance(a, b, alpha=0.005, n_tests=2)[1]  # p = 0.0034
    p, significant = significance([1.0, 1.0], [1.0, 1.0])
    assert np.isnan(p) and not significant


class RedDetector(nn.Module):
    """layer = the 48 pixel values of a 3 x 4 x 4 image; with r, g, b its channel means, logit 0 =
    r + g b, logit 1 = 0. The class-0 logit grows with red on every image, while green and blue
    raise it on some images and lower it on others: a red concept must be significant, a blue one
    not."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Identity()

    def forward(self, x):
        r, g, b = self.layer(x).mean((2, 3)).unbind(1)
        score = r + g * b
        return torch.stack([score, torch.zeros_like(score)], 1)


def test_tcav_finds_the_concept_the_toy_network_uses():
    g = torch.Generator().manual_seed(0)
    model = RedDetector().eval()

    def noise(n, shift=(0.0, 0.0, 0.0), spread=0.0):
        per_image = spread * torch.randn(n, 3, 1, 1, generator=g)
        return torch.randn(n, 3, 4, 4, generator=g) + per_image + torch.tensor(shift).view(1, 3, 1, 1)

    randoms = [noise(20) for _ in range(9)]
    concepts = {"red": noise(20, (3.0, 0.0, 0.0)), "blue": noise(20, (0.0, 0.0, 3.0))}
    class_images = noise(40, spread=2.0)
    result = tcav(model, class_images, concepts, randoms, target=0, layer="layer", seed=0)
    red, blue = result["red"], result["blue"]
    assert red.significant and red.p_value < 1e-3 and red.mean > 0.5
    assert red.alpha == pytest.approx(0.025)                                   # two concepts: Bonferroni
    assert not blue.significant
    assert torch.equal(red.random_scores, blue.random_scores) and len(red.random_scores) == 9
    again = tcav(model, class_images, concepts, randoms, target=0, layer="layer", seed=0)
    assert torch.equal(again["red"].scores, red.scores) and again["red"].p_value == red.p_value
    assert hook_count(model) == 0


class FailsAfterTheLayer(nn.Module):
    """A layer, then an error: the hooks must be gone after the exception."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        self.layer(x)
        raise RuntimeError("broken head")


def test_no_hook_is_left_behind_when_the_forward_pass_fails(tiny_input):
    model = FailsAfterTheLayer().eval()
    classifier = Classifier("fails", model, ["a", "b"], "layer", (0.0,) * 3, (1.0,) * 3)   # no pass to count classes
    with pytest.raises(RuntimeError, match="broken head"):
        layer_activations(classifier, tiny_input)
    with pytest.raises(RuntimeError, match="broken head"):
        layer_gradients(classifier, tiny_input, "b")
    assert hook_count(model) == 0 and torch.is_grad_enabled()


# ----------------------------------------------------------------------------- captum

LAYER, TARGET = "conv1", 0   # where the tiny network's TCAV scores vary from one CAV to the next

def captum_setup(tiny, tmp_path, concept_x, random_x, fit):
    """captum's TCAV on `tiny` at conv1 with a captum classifier that fits the CAV with `fit`."""
    from captum.concept import TCAV, Concept
    from captum.concept import Classifier as CaptumClassifier
    from torch.utils.data import DataLoader, TensorDataset

    class Ours(CaptumClassifier):
        def __init__(self):
            self.concept_id = None

        def train_and_eval(self, dataloader, **kwargs):
            xs, ys = zip(*dataloader)
            x, y = torch.cat(xs), torch.cat(ys)
            self.ids = sorted(set(y.tolist()))
            concept_id = int(y[0])                      # captum passes the first concept's rows first
            self.concept_id = concept_id
            self.w = fit(x[y == concept_id], x[y != concept_id]).weights
            return {"accs": torch.tensor(1.0)}

        def weights(self):
            return torch.stack([self.w if i == self.concept_id else -self.w for i in self.ids])

        def classes(self):
            return self.ids

    def concept(i, x):
        return Concept(i, f"set{i}", DataLoader(TensorDataset(x), batch_size=4, collate_fn=lambda b: torch.stack(
            [t[0] for t in b])))

    concepts = [concept(0, concept_x)] + [concept(i + 1, x) for i, x in enumerate(random_x)]
    return TCAV(tiny, [LAYER], classifier=Ours(), save_path=str(tmp_path / "cav")), concepts


def test_agrees_with_captum_on_the_same_activations(tiny, tmp_path):
    from captum.attr import LayerGradientXActivation

    g = torch.Generator().manual_seed(5)
    concept_x = torch.randn(10, 3, 8, 8, generator=g) + 0.5
    random_x = [torch.randn(10, 3, 8, 8, generator=g) for _ in range(4)]
    class_x = torch.randn(9, 3, 8, 8, generator=g)

    def fit(c, r):
        return fit_cav(c, r, "sgd", seed=7)

    captum_tcav, concepts = captum_setup(tiny, tmp_path, concept_x, random_x, fit)
    randoms = concepts[1:]                  # R_1..R_4; the random-vs-random pairs: R_{j+1} against R_j
    sets = [[concepts[0], r] for r in randoms] + [[randoms[(j + 1) % 4], randoms[j]] for j in range(4)]
    result = captum_tcav.interpret(class_x, sets, target=TARGET)

    acts_c = layer_activations(tiny, concept_x, LAYER)
    acts_r = [layer_activations(tiny, x, LAYER) for x in random_x]
    grads = layer_gradients(tiny, class_x, TARGET, LAYER)
    theirs = LayerGradientXActivation(tiny, tiny.conv1, multiply_by_inputs=False).attribute(class_x, target=TARGET)
    assert torch.allclose(grads, theirs.flatten(1), atol=1e-6)
    ours_cavs = [fit(acts_c, a) for a in acts_r] + [fit(acts_r[(j + 1) % 4], acts_r[j]) for j in range(4)]
    for (first, other), cav in zip(sets, ours_cavs):
        key = f"{first.id}-{other.id}"
        stats_ = captum_tcav.cavs[key][LAYER].stats
        assert torch.allclose(stats_["weights"][list(stats_["classes"]).index(first.id)], cav.weights, atol=1e-6)
        s = sensitivities(grads, cav)
        sign_count, magnitude = result[key][LAYER]["sign_count"][0], result[key][LAYER]["magnitude"][0]
        assert float(sign_count) == pytest.approx(float(tcav_score(s)), abs=1e-7)     # equal (captum: float32)
        assert float(magnitude) == pytest.approx(float((s * cav.weights.norm()).mean()), rel=1e-4, abs=1e-6)
    ours = tcav(tiny, class_x, {"c": concept_x}, random_x, target=TARGET, layer=LAYER, test_fraction=0.0, seed=7,
                cav_classifier=lambda x, y, seed: _sgd(x, y, 7))["c"]
    captum_scores = [float(result[f"0-{r.id}"][LAYER]["sign_count"][0]) for r in randoms]
    captum_random = [float(result[f"{randoms[(j + 1) % 4].id}-{randoms[j].id}"][LAYER]["sign_count"][0]) for j in range(4)]
    assert ours.scores.tolist() == pytest.approx(captum_scores, abs=1e-7)
    assert ours.random_scores.tolist() == pytest.approx(captum_random, abs=1e-7)
    assert len(set(captum_scores + captum_random)) > 2                           # scores that vary: a real test
    assert ours.p_value == pytest.approx(stats.ttest_ind(captum_scores, captum_random).pvalue, rel=1e-6)


def _sgd(x, y, seed):
    from sklearn.linear_model import SGDClassifier

    model = SGDClassifier(alpha=0.01, max_iter=1000, tol=1e-3, random_state=seed).fit(x, y)
    return model.coef_[0], model.intercept_[0]


def test_sgd_classifier_is_captums_sklearn_sgd_with_the_same_seed():
    """Our "sgd" CAV equals captum's SkLearnSGDClassifier (its DefaultClassifier's model) given
    the same rows in the same order and the same random_state; captum's default leaves
    random_state unset and splits off a third of the rows with random.shuffle."""
    from captum._utils.models.linear_model.model import SkLearnSGDClassifier
    from torch.utils.data import DataLoader, TensorDataset

    concept, random = clouds(40, seed=1)
    ours = fit_cav(concept, random, "sgd", seed=11)
    lm = SkLearnSGDClassifier(alpha=0.01, max_iter=1000, tol=1e-3, random_state=11)
    x = torch.cat([concept, random]).double()
    y = torch.cat([torch.ones(40), torch.zeros(40)]).long()
    lm.fit(DataLoader(TensorDataset(x, y), batch_size=len(x)))
    assert torch.allclose(lm.representation()[0].float(), ours.weights, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- bad input

def test_bad_inputs_raise_clear_errors(tiny, tiny_input):
    good = torch.randn(4, 3, 8, 8)
    randoms = [torch.randn(4, 3, 8, 8) for _ in range(3)]
    with pytest.raises(ValueError, match="holds no images"):
        tcav(tiny, good, {"empty": torch.zeros(0, 3, 8, 8)}, randoms, target=0, layer="conv2")
    with pytest.raises(ValueError, match="one shape"):
        tcav(tiny, good, {"small": torch.randn(4, 3, 6, 6)}, randoms, target=0, layer="conv2")
    with pytest.raises(ValueError, match="at least 3"):
        tcav(tiny, good, {"c": good}, randoms[:2], target=0, layer="conv2")
    with pytest.raises(ValueError, match="non-empty mapping"):
        tcav(tiny, good, {}, randoms, target=0, layer="conv2")
    with pytest.raises(ValueError, match="target is required"):
        tcav(tiny, good, {"c": good}, randoms, target=None, layer="conv2")
    with pytest.raises(ValueError, match="out of range"):
        layer_gradients(tiny, good, 9, "conv2")
    with pytest.raises(TypeError, match="images must be a tensor"):
        layer_activations(tiny, [good], "conv2")
    with pytest.raises(ValueError, match="Unknown layer"):
        layer_activations(tiny, good, "conv9")
    with pytest.raises(ValueError, match="differ in size"):
        fit_cav(torch.randn(5, 4), torch.randn(5, 3))
    with pytest.raises(ValueError, match="concept activations hold no example"):
        fit_cav(torch.randn(0, 4), torch.randn(5, 4))
    with pytest.raises(ValueError, match="cav_classifier must be"):
        fit_cav(torch.randn(5, 4), torch.randn(5, 4), "svm")
    with pytest.raises(ValueError, match="test_fraction"):
        fit_cav(torch.randn(5, 4), torch.randn(5, 4), test_fraction=1.0)
    with pytest.raises(ValueError, match="agree in D"):
        sensitivities(torch.randn(3, 4), torch.randn(2, 5))
    cav = CAV(torch.ones(4) / 2, torch.ones(4), 0.0, float("nan"))
    with pytest.raises(ValueError, match="same random sets"):
        tcav_tests(torch.randn(3, 4), {"c": [cav] * 3}, [cav] * 2)
    with pytest.raises(ValueError, match="at least one concept"):
        tcav_tests(torch.randn(3, 4), {}, [cav] * 2)
    with pytest.raises(ValueError, match="at least 2 scores"):
        significance([0.5], [0.4, 0.6])
    assert hook_count(tiny) == 0
