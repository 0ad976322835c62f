"""LRP (xai_lab/methods/lrp.py): values by hand on a two-layer network for every rule, relevance
conservation layer by layer, epsilon -> 0 is gradient x input, zplus is non-negative, equal maps
to zennit's on VGG-like, ResNet and MobileNet-like networks, and the model left as found.

Issue 16 ("LRP equals zennit on two architectures and conserves relevance"):
test_equal_to_zennit_and_conserved_on_two_architectures, on a VGG-like network and ResNet-18."""
from __future__ import annotations

import copy
import itertools

import pytest
import torch
from torch import nn

import xai_lab
from xai_lab.capture import hook_count
from xai_lab.methods.lrp import RULES
from xai_lab.models import Classifier
from xai_lab.targets import Contrast, Probability

EPS = 1e-6  # the stabilizer of every rule (and the default epsilon)


def _s(z: float, eps: float = EPS) -> float:
    """z + eps sign(z), sign(0) = +1."""
    return z + eps if z >= 0 else z - eps


# --- by hand: x (12 values) -> dense(12->3) -> ReLU -> dense(3->2) --------------------------------

class TwoLayers(nn.Module):
    def __init__(self, w1, b1, w2, b2):
        super().__init__()
        self.flatten, self.fc1, self.act, self.fc2 = nn.Flatten(), nn.Linear(12, 3), nn.ReLU(), nn.Linear(3, 2)
        with torch.no_grad():
            for p, v in [(self.fc1.weight, w1), (self.fc1.bias, b1), (self.fc2.weight, w2), (self.fc2.bias, b2)]:
                p.copy_(torch.tensor(v))

    def forward(self, x):
        return self.fc2(self.act(self.fc1(self.flatten(x))))


W1 = [[0.5, -1.0, 0.3, 0.8, -0.2, 0.1, 0.4, -0.3, 0.0, 0.6, -0.8, 0.2],
      [-0.7, 0.4, 0.9, -0.3, 0.6, -0.5, 0.1, 0.2, -0.6, 0.3, 0.5, -0.1],
      [0.2, 0.3, -0.4, 0.5, 0.7, -0.6, -0.2, 0.8, 0.1, -0.4, 0.3, 0.9]]
B1 = [0.1, -0.2, 0.05]
W2 = [[1.0, -0.5, 0.8], [-0.3, 0.9, 0.4]]
B2 = [0.2, -0.1]
X = [1.0, -0.5, 2.0, 0.3, -1.2, 0.8, 0.0, 1.5, -0.7, 0.4, 0.9, -2.0]


def _contributions(a, w, b):
    """z_k and the contributions a_j w_kj, by loops."""
    return [[a[j] * w[k][j] for j in range(len(a))] for k in range(len(w))], [sum(a[j] * w[k][j] for j in range(len(a)))
                                                                             + b[k] for k in range(len(w))]


def _layer_by_hand(rule: str, a, w, b, r_out, low=None, high=None, gamma=0.25):
    """R_j of one dense layer by the rule's formula (module docstring), by loops over j and k."""
    contrib, z = _contributions(a, w, b)
    r_in = [0.0] * len(a)
    for k, j in itertools.product(range(len(w)), range(len(a))):
        if rule == "epsilon":
            share = contrib[k][j] / _s(z[k])
        elif rule in ("zplus", "alpha2beta1"):
            alpha, beta = (1.0, 0.0) if rule == "zplus" else (2.0, 1.0)
            pos = sum(max(c, 0) for c in contrib[k]) + max(b[k], 0)
            neg = sum(min(c, 0) for c in contrib[k]) + min(b[k], 0)
            share = alpha * max(contrib[k][j], 0) / _s(pos) - beta * min(contrib[k][j], 0) / _s(neg)
        elif rule == "gamma":
            favored = max if z[k] > 0 else min
            mod = [c + gamma * favored(c, 0) for c in contrib[k]]
            share = 0.0 if z[k] == 0 else mod[j] / _s(sum(mod) + b[k] + gamma * favored(b[k], 0))
        elif rule == "flat":
            share = 1.0 / _s(len(a))
        elif rule == "box":
            q = [a[i] * w[k][i] - low[i] * max(w[k][i], 0) - high[i] * min(w[k][i], 0) for i in range(len(a))]
            share = q[j] / _s(sum(q))
        r_in[j] += share * r_out[k]
    return r_in, z


def _by_hand(first: str, second: str, target: int, low=None, high=None):
    relu_out = [max(v, 0) for v in _contributions(X, W1, B1)[1]]
    _, z2 = _contributions(relu_out, W2, B2)
    r2 = [z2[k] if k == target else 0.0 for k in range(2)]
    r_hidden, _ = _layer_by_hand(second, relu_out, W2, B2, r2)
    r_x, _ = _layer_by_hand(first, X, W1, B1, r_hidden, low, high)
    return r_x


@pytest.mark.parametrize("rule, first, second", [
    ("epsilon", "epsilon", "epsilon"), ("zplus", "zplus", "zplus"), ("alpha1beta0", "zplus", "zplus"),
    ("alpha2beta1", "alpha2beta1", "alpha2beta1"), ("gamma", "gamma", "gamma"),
    ("epsilon-plus-flat", "flat", "epsilon"),  # dense layers get epsilon, the first one flat
    ("epsilon-plus", "epsilon", "epsilon"), ("epsilon-gamma-box", "box", "epsilon")])
@pytest.mark.parametrize("target", [0, 1])
def test_every_rule_by_hand_on_two_dense_layers(rule, first, second, target):
    model = TwoLayers(W1, B1, W2, B2).eval()
    x = torch.tensor(X).view(1, 3, 2, 2)
    # The box rule's bounds for a bare model: each channel's smallest and largest value in the image.
    low = [min(X[4 * (j // 4):4 * (j // 4) + 4]) for j in range(12)]
    high = [max(X[4 * (j // 4):4 * (j // 4) + 4]) for j in range(12)]
    expected = torch.tensor(_by_hand(first, second, target, low, high)).view(1, 3, 2, 2)
    e = xai_lab.explain(model, x, method="lrp", rule=rule, target=target)
    assert torch.allclose(e.extras["attribution"], expected, rtol=1e-5, atol=1e-6), (e.extras["attribution"], expected)
    assert torch.allclose(e.saliency, expected.sum(1), rtol=1e-5, atol=1e-6)
    assert e.forward_passes == 1 and e.backward_passes == 1


def _relevance_at(model: nn.Module, modules: dict[str, nn.Module], x: torch.Tensor, **options):
    """R = a * c at the input ``a`` of each of ``modules`` (c, the gradient the LRP backward pass
    hands ``a``, recorded by a tensor hook), by name, and the explanation of ``x``."""
    relevance = {}

    def record(name: str):
        def hook(module, inputs, output):
            a = inputs[0]
            a.register_hook(lambda g: relevance.__setitem__(name, a.detach() * g.detach()))
        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in modules.items()]
    try:
        e = xai_lab.explain(model, x, method="lrp", **options)
    finally:
        for h in handles:
            h.remove()
    return relevance, e


def test_the_bias_share_leaks_as_documented():
    """Epsilon with biases: the top layer hands down y_c - b_c (the bias keeps its share b_c / s(y_c) y_c)."""
    model = TwoLayers(W1, B1, W2, B2).eval()
    x = torch.tensor(X).view(1, 3, 2, 2)
    relevance, e = _relevance_at(model, {"hidden": model.fc2}, x, rule="epsilon", target=0, epsilon=1e-9)
    y, handed_down = float(e.extras["score"][0]), float(relevance["hidden"].sum())
    assert handed_down == pytest.approx(y - B2[0], rel=1e-5)
    assert abs(handed_down - y) > 0.1  # the leak is real


# --- conservation, layer by layer ---------------------------------------------------------------

class Residual(nn.Module):
    """conv -> ReLU -> conv -> (+ skip) -> ReLU6 -> max pool -> conv (depthwise) -> ReLU -> average pool -> dense;
    no biases."""

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1, self.act1 = nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.ReLU()
        self.conv2, self.act2 = nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.ReLU6()
        self.pool = nn.MaxPool2d(2)
        self.depthwise, self.act3 = nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False), nn.ReLU()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 4, bias=False))
        with torch.no_grad():  # kernels of both signs: alpha-beta conserves only where an output has both
            self.depthwise.weight.sub_(self.depthwise.weight.mean(dim=(2, 3), keepdim=True))

    def forward(self, x):
        a = self.act1(self.conv1(x))
        b = self.act2(self.conv2(a) + a)
        return self.head(self.act3(self.depthwise(self.pool(b))))


LAYERS = ("conv2", "act2", "pool", "depthwise", "act3", "head.2")  # Residual's modules whose input is recorded


def _residual_case() -> tuple[nn.Module, torch.Tensor, dict[str, nn.Module], int]:
    """Residual, an input that drives some ReLU6 inputs above 6, the modules of LAYERS, the target."""
    model = Residual().eval()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(3)) * 10
    with torch.no_grad():
        pre = model.conv2(model.act1(model.conv1(x))) + model.act1(model.conv1(x))
    assert (pre > 6).any()  # the clamp is active somewhere: ReLU6 passes relevance where the gradient is 0
    modules = dict(model.named_modules())
    return model, x, {name: modules[name] for name in LAYERS}, 2


def _dense_case() -> tuple[nn.Module, torch.Tensor, dict[str, nn.Module], int]:
    """Three dense layers over many inputs with weights of both signs, the two upper ones, the target."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 64, bias=False), nn.ReLU(), nn.Linear(64, 32, bias=False),
                          nn.ReLU(), nn.Linear(32, 3, bias=False)).eval()
    x = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    return model, x, {"dense 2": model[3], "dense 3": model[5]}, 0


CONSERVING = [("residual", rule) for rule in RULES if "alpha2beta1" not in rule] + [
    ("dense", "alpha2beta1"), ("dense", "alpha1beta0")]


@pytest.mark.parametrize("network, rule", CONSERVING)
def test_relevance_is_conserved_layer_by_layer_without_biases(network, rule):
    """The sum of R = a * c at the input of every recorded layer and at the image is the target
    score. Alpha-beta hands down alpha R_k - beta R_k = R_k only where output k has positive and
    negative contributions (a depthwise kernel over zeros may not: Residual), so it is checked on
    dense layers over many inputs with weights of both signs, which do."""
    model, x, modules, target = {"residual": _residual_case, "dense": _dense_case}[network]()
    relevance, e = _relevance_at(model, modules, x, rule=rule, target=target)
    sums = {name: float(r.sum()) for name, r in relevance.items()} | {"input": float(e.extras["attribution"].sum())}
    score = float(e.extras["score"][0])
    assert set(sums) == {*modules, "input"}
    for name, total in sums.items():
        assert total == pytest.approx(score, rel=1e-5), (name, sums, score)


def test_epsilon_to_zero_is_gradient_times_input(tiny, tiny_input):
    """On a ReLU network with biases; its average pool keeps the stabilizer 1e-6 of every pool and sum."""
    x, target = tiny_input, torch.tensor([1, 3])
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(tiny(xg).gather(1, target[:, None]).sum(), xg)
    for eps, close in [(1e-12, True), (1e-2, False)]:
        r = xai_lab.explain(tiny, x, method="lrp", rule="epsilon", epsilon=eps, target=target).extras["attribution"]
        gap = float((r - x * g).abs().max() / (x * g).abs().max())
        assert (gap < 1e-5) == close, (eps, gap)


def test_zplus_relevance_is_not_negative():
    """Without residual sums (a sum hands a negative summand negative relevance, whatever the rule)."""
    model = vgg_like()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        logits = model(x)
    target = logits.argmax(1)
    assert (logits.gather(1, target[:, None]) > 0).all()
    r = xai_lab.explain(model, x, method="lrp", rule="zplus", target=target).extras["attribution"]
    assert (r >= 0).all() and (r > 0).any()
    r = xai_lab.explain(model, x, method="lrp", rule="alpha2beta1", target=target).extras["attribution"]
    assert (r < 0).any()  # alpha-beta with beta > 0 does give negative relevance


# --- zennit -------------------------------------------------------------------------------------

def _randomize_batch_norms(model: nn.Module, generator: torch.Generator, eps: float = 0.0) -> nn.Module:
    """Random running statistics and affine parameters, so that folding matters; ``eps`` of every batch norm."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = eps
                m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=generator) * 1.5 + 0.5)
                m.weight.copy_(1 + torch.randn(m.num_features, generator=generator) * 0.3)
                m.bias.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
    return model.eval()


def vgg_like(eps: float = 0.0) -> nn.Module:
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(2),
        nn.Flatten(), nn.Linear(64, 32), nn.ReLU(inplace=True), nn.Dropout(), nn.Linear(32, 10))
    return _randomize_batch_norms(model, g, eps)


def mobile_like() -> nn.Module:
    """conv-BN-ReLU6, depthwise conv-BN-ReLU6, pointwise conv-BN, average pool, dense: Lite0's pieces."""
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 12, 1, bias=False), nn.BatchNorm2d(12), nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 10))
    model = _randomize_batch_norms(model, g)
    with torch.no_grad():
        model[0].weight.mul_(6)  # the stem's ReLU6 clamps: the pass-through differs from the gradient
    return model


def resnet_like() -> nn.Module:
    import torchvision

    torch.manual_seed(0)
    return _randomize_batch_norms(torchvision.models.resnet18(weights=None, num_classes=10),
                                  torch.Generator().manual_seed(2))


LOW, HIGH = torch.full((1, 3, 1, 1), -2.5), torch.full((1, 3, 1, 1), 2.5)  # a classifier with mean 0.5, std 0.2


def _classifier(model: nn.Module) -> Classifier:
    return Classifier(name="test", model=model, categories=[str(i) for i in range(10)], default_layer="0",
                      mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2))


def _zennit_composite(rule: str, canonizers: list):
    zc = pytest.importorskip("zennit.composites")
    from zennit import rules as zr
    from zennit.types import Convolution

    single = {"epsilon": zr.Epsilon(1e-6), "zplus": zr.ZPlus(), "alpha1beta0": zr.AlphaBeta(1, 0),
              "alpha2beta1": zr.AlphaBeta(2, 1), "gamma": zr.Gamma(0.25)}
    if rule in single:
        return zc.LayerMapComposite(layer_map=zc.layer_map_base() + [(Convolution, single[rule]),
                                                                     (nn.Linear, single[rule])], canonizers=canonizers)
    named = {"epsilon-plus-flat": zc.EpsilonPlusFlat, "epsilon-plus": zc.EpsilonPlus,
             "epsilon-alpha2beta1": zc.EpsilonAlpha2Beta1}
    if rule == "epsilon-gamma-box":
        return zc.EpsilonGammaBox(low=LOW, high=HIGH, canonizers=canonizers)
    return named[rule](canonizers=canonizers)


def zennit_relevance(model: nn.Module, x: torch.Tensor, target: torch.Tensor, rule: str, canonizers: list
                     ) -> torch.Tensor:
    """zennit's relevance of a copy of ``model`` with R = y_c at the output (attr_output = one-hot * logits)."""
    from zennit.attribution import Gradient

    model = copy.deepcopy(model)
    with Gradient(model, _zennit_composite(rule, canonizers)) as attributor:
        _, relevance = attributor(x.clone(), lambda out: nn.functional.one_hot(target, out.shape[1]) * out)
    return relevance


def _canonizers(kind: str) -> list:
    canonizers = pytest.importorskip("zennit.canonizers")
    if kind == "resnet":
        from zennit.torchvision import ResNetCanonizer

        return [ResNetCanonizer()]
    return [canonizers.SequentialMergeBatchNorm()]


ZENNIT_RULES = ["epsilon", "zplus", "alpha1beta0", "alpha2beta1", "gamma", "epsilon-plus-flat", "epsilon-plus",
                "epsilon-alpha2beta1", "epsilon-gamma-box"]


@pytest.fixture(scope="module")
def networks():
    return {"vgg": vgg_like().double(), "resnet": resnet_like().double(), "mobile": mobile_like().double()}


def _without_biases(model: nn.Module, first: nn.Module) -> nn.Module:
    """``model`` with every bias 0 and every batch norm's running mean and shift 0 (its fold into the
    convolution has no bias either), so that LRP conserves relevance; ``first``, the first
    convolution, scaled by 1000 so that the stabilizers' 1e-6 is negligible next to every z (a layer
    keeps about eps / |z| of its relevance; the network without biases is positively homogeneous)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.zero_()
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.zero_()
                m.bias.zero_()
        first.weight.mul_(1000)
    return model


@pytest.fixture(scope="module")
def networks_without_biases(networks):
    vgg, resnet = copy.deepcopy(networks["vgg"]), copy.deepcopy(networks["resnet"])
    return {"vgg": _without_biases(vgg, vgg[0]), "resnet": _without_biases(resnet, resnet.conv1)}


def _ours_and_zennits(model: nn.Module, kind: str, rule: str):
    """Our explanation and zennit's relevance for classes 3 and 7 of two float64 images; the same
    composite, batch norm merged (zennit's canonizers for ``kind``), R = y_c at the output."""
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    target = torch.tensor([3, 7])
    ref = zennit_relevance(model, x, target, rule, _canonizers(kind))
    return xai_lab.explain(_classifier(model), x, method="lrp", rule=rule, target=target), ref


def _assert_equal_maps(ours: torch.Tensor, ref: torch.Tensor) -> None:
    """Equal to 1e-5 of the largest value of zennit's map."""
    assert (ours - ref).abs().max() <= 1e-5 * ref.abs().max(), float((ours - ref).abs().max() / ref.abs().max())


@pytest.mark.parametrize("kind", ["vgg", "resnet", "mobile"])
@pytest.mark.parametrize("rule", ZENNIT_RULES)
def test_equal_to_zennit(networks, kind, rule):
    """Equal maps to 1e-5 of the largest value, in float64 (in float32 the epsilon rule's 1e-6 is
    within rounding of some z, and rounding alone moves those shares), with biases and batch norms.
    Batch norms with eps = 0: see test_zennit_merged_batch_norm_keeps_its_eps."""
    ours, ref = _ours_and_zennits(networks[kind], kind, rule)
    _assert_equal_maps(ours.extras["attribution"], ref)


@pytest.mark.parametrize("kind", ["vgg", "resnet"])
@pytest.mark.parametrize("rule", ZENNIT_RULES)
def test_equal_to_zennit_and_conserved_on_two_architectures(networks_without_biases, kind, rule):
    """Issue 16, on the VGG-like network and ResNet-18 without biases: our map equals zennit's
    (as in test_equal_to_zennit), and each image's map sums to its target score to 1e-5 (relevance
    conserved from the logit to the pixels; with biases, each bias keeps a share)."""
    ours, ref = _ours_and_zennits(networks_without_biases[kind], kind, rule)
    attribution, score = ours.extras["attribution"], ours.extras["score"]
    _assert_equal_maps(attribution, ref)
    assert torch.allclose(attribution.sum(dim=(1, 2, 3)), score, rtol=1e-5, atol=0), (attribution.sum(dim=(1, 2, 3)), score)


def test_zennit_merged_batch_norm_keeps_its_eps():
    """zennit's batch-norm canonizer folds the statistics into the convolution and leaves a batch
    norm with mean 0, variance 1 but the same eps: it divides by sqrt(1 + eps) once more, so the
    canonized model is not the model. Ours folds the whole batch norm: the same map for the model
    with eps and for the same function with eps moved into the running variance, which zennit
    agrees with."""
    with_eps = vgg_like(eps=1e-3).double()
    moved = copy.deepcopy(with_eps)
    for m in moved.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var += m.eps
            m.eps = 0.0
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    target = torch.tensor([3, 7])
    ours = xai_lab.explain(with_eps, x, method="lrp", rule="epsilon", target=target).extras["attribution"]
    ours_moved = xai_lab.explain(moved, x, method="lrp", rule="epsilon", target=target).extras["attribution"]
    assert torch.allclose(ours, ours_moved, rtol=1e-4, atol=1e-6 * float(ours.abs().max()))
    ref_moved = zennit_relevance(moved, x, target, "epsilon", _canonizers("vgg"))
    ref = zennit_relevance(with_eps, x, target, "epsilon", _canonizers("vgg"))
    scale = float(ref_moved.abs().max())
    assert (ours - ref_moved).abs().max() <= 1e-5 * scale
    assert (ours - ref).abs().max() > 1e-3 * scale  # three batch norms, each off by about eps / 2


class PlainResidual(nn.Module):
    """conv -> ReLU -> conv, + skip, ReLU, pool, dense; no biases, no batch norm."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv1, self.relu1 = nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.ReLU()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3, bias=False))

    def forward(self, x):
        a = self.relu1(self.conv1(x))
        out = self.conv2(a)
        out += a
        return self.head(self.relu2(out))


def test_residual_sums_split_by_contribution_where_zennit_needs_a_canonizer():
    """Without a canonizer zennit hands each summand of ``out += a`` the whole relevance (the
    gradient of a sum), so relevance is no longer conserved; ours splits every sum by
    contribution and conserves it. torchvision's ResNet with zennit's ResNetCanonizer: equal
    (test_equal_to_zennit)."""
    model = PlainResidual().eval()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0])
    ours = xai_lab.explain(model, x, method="lrp", rule="epsilon", target=target)
    score = float(ours.extras["score"][0])
    assert float(ours.extras["attribution"].sum()) == pytest.approx(score, rel=1e-4)
    ref = zennit_relevance(model, x, target, "epsilon", [])
    assert abs(float(ref.sum()) - score) > 0.05 * abs(score)


def test_relu6_passes_relevance_where_the_gradient_does_not(networks):
    """mobile_like's stem clamps at 6: its ReLU6 hands its input the relevance of its output, also
    where the input is above 6 and the gradient of the clamp is 0 (zennit's Pass rule does the same:
    test_equal_to_zennit)."""
    model = networks["mobile"]
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    sums, _ = _relevance_at(model, {"into": model[2], "out of": model[3]}, x, rule="zplus", target=1)
    with torch.no_grad():
        clamped = model[1](model[0](x)) > 6
    assert clamped.any() and (sums["out of"][clamped] != 0).any()
    assert torch.allclose(sums["into"], sums["out of"], rtol=1e-5, atol=1e-7)
    assert float(sums["into"].sum()) == pytest.approx(float(sums["out of"].sum()), rel=1e-5)


# --- the model as found -------------------------------------------------------------------------

def _snapshot(model: nn.Module) -> dict:
    return {"state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "flags": {k: p.requires_grad for k, p in model.named_parameters()},
            "inplace": [getattr(m, "inplace", None) for m in model.modules()],
            "training": [m.training for m in model.modules()]}


def _assert_as_found(model: nn.Module, before: dict) -> None:
    after = _snapshot(model)
    assert hook_count(model) == 0
    assert after["flags"] == before["flags"] and after["inplace"] == before["inplace"]
    assert after["training"] == before["training"]
    for name, tensor in before["state"].items():
        assert torch.equal(after["state"][name], tensor), name  # bitwise


@pytest.mark.parametrize("rule", ["epsilon-plus-flat", "epsilon-gamma-box", "alpha2beta1"])
def test_efficientnet_lite0_finite_maps_and_the_model_as_found(lite0, rule):
    from PIL import Image
    from skimage import data

    x = torch.stack([lite0.preprocess(Image.fromarray(img)) for img in (data.coffee(), data.chelsea())])
    x = nn.functional.interpolate(x, size=(64, 64), mode="bilinear", antialias=True)
    lite0.model.train()  # a mode to restore
    before = _snapshot(lite0.model)
    try:
        e = xai_lab.explain(lite0, x, method="lrp", rule=rule)
        assert e.saliency.shape == (2, 64, 64) and torch.isfinite(e.extras["attribution"]).all()
        assert e.extras["attribution"].abs().sum() > 0 and e.forward_passes == 1 and e.backward_passes == 1
        _assert_as_found(lite0.model, before)
        with pytest.raises(ValueError, match="out of range"):
            xai_lab.explain(lite0, x, method="lrp", rule=rule, target=5000)
        _assert_as_found(lite0.model, before)
    finally:
        lite0.model.eval()


def test_an_error_in_the_backward_pass_leaves_the_model_as_found(monkeypatch):
    from xai_lab.methods import lrp as module

    model = vgg_like()
    before = _snapshot(model)

    def broken(layer, a, z, c):
        raise ValueError("broken rule")

    monkeypatch.setattr(module, "flat_rule", broken)
    with pytest.raises(ValueError, match="broken rule"):
        xai_lab.explain(model, torch.randn(1, 3, 16, 16), method="lrp", rule="epsilon-plus-flat", target=0)
    _assert_as_found(model, before)


def test_a_contrast_is_the_difference_of_the_class_maps_and_conserved(tiny, tiny_input):
    options = {"method": "lrp", "rule": "epsilon-plus-flat"}
    a = xai_lab.explain(tiny, tiny_input, target=3, **options).extras["attribution"]
    b = xai_lab.explain(tiny, tiny_input, target=1, **options).extras["attribution"]
    c = xai_lab.explain(tiny, tiny_input, target=Contrast(3, 1), **options)
    assert torch.allclose(c.extras["attribution"], a - b, atol=1e-6)
    with torch.no_grad():
        logits = tiny(tiny_input)
    assert torch.allclose(c.extras["score"], logits[:, 3] - logits[:, 1])
    with pytest.raises(ValueError, match="linear in the logits"):
        xai_lab.explain(tiny, tiny_input, target=Probability(3), **options)
    assert hook_count(tiny) == 0


def test_bad_options_name_themselves(tiny, tiny_input):
    for options, error in [({"rule": "z-plus"}, ValueError), ({"rule": 3}, TypeError), ({"epsilon": 0}, ValueError),
                           ({"epsilon": float("nan")}, ValueError), ({"gamma": -1.0}, ValueError),
                           ({"gamma": "big"}, TypeError)]:
        with pytest.raises(error, match=next(iter(options))):
            xai_lab.explain(tiny, tiny_input, method="lrp", target=0, **options)


def test_a_first_layer_rule_needs_the_input_as_given():
    model = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(200, 2))
    x = torch.randn(1, 3, 6, 6)
    with pytest.raises(ValueError, match="first"):
        xai_lab.explain(model, x, method="lrp", rule="epsilon-plus-flat", target=0)
    assert hook_count(model) == 0
    e = xai_lab.explain(model, x, method="lrp", rule="epsilon-plus", target=0)
    assert torch.isfinite(e.saliency).all()
