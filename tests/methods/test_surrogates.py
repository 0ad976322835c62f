import numpy as np
import pytest
import torch
from torch import nn

import xai_lab
from xai_lab.methods.surrogates import lime_distances, lime_kernel, segment
from xai_lab.metrics.shapley import coalition_images

SLIC = {"n_segments": 9, "compactness": 100, "sigma": 0}


class TextureVotes(nn.Module):
    """Two classes: 20 * [sum over ``regions`` of std(x in region) / std(x0 in region), need - 0.5].
    Hiding a region's superpixel (mean color) removes its texture: class 0 iff at least ``need``
    regions are kept; nothing outside the regions matters."""

    def __init__(self, regions, x0, need=1):
        super().__init__()
        self.regions, self.need = regions, need
        self.reference = nn.Parameter(torch.stack([x0[..., r].std() for r in regions]))

    def forward(self, x):
        score = (torch.stack([x[..., r].flatten(1).std(dim=1) for r in self.regions], 1) / self.reference).sum(1)
        return 20 * torch.stack([score, torch.full_like(score, self.need - 0.5)], dim=1)


@pytest.fixture
def noise():
    """A 24 x 24 noise image spanning exactly [0, 1] and its (nearly square) slic superpixels."""
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    x[0, :, 0, 0], x[0, :, 0, 1] = 0.0, 1.0
    segments = torch.as_tensor(segment(x[0].permute(1, 2, 0).numpy(), "slic", SLIC))
    assert len({int(segments[4, 4]), int(segments[12, 12]), int(segments[20, 20])}) == 3
    return x, segments


def test_segment_labels_are_contiguous_from_zero():
    image = np.random.default_rng(0).random((20, 20, 3))
    for method, kwargs in [("slic", {"n_segments": 6}), ("quickshift", {}), ("felzenszwalb", {"scale": 10})]:
        labels = segment(image, method, kwargs, seed=1)
        assert labels.shape == (20, 20)
        assert np.array_equal(np.unique(labels), np.arange(labels.max() + 1)), method
    with pytest.raises(ValueError, match="segmentation"):
        segment(image, "watershed")


def test_lime_kernel_by_hand():
    # sqrt(exp(-d^2 / w^2)): 1 at d = 0; exp(-1/2) = 0.60653 at d = w; exp(-2) = 0.13534 at d = 2w
    assert np.allclose(lime_kernel([0.0, 0.25, 0.5]), [1.0, 0.60653066, 0.13533528])
    assert np.allclose(lime_kernel([0.5], width=0.5), [0.60653066])
    with pytest.raises(ValueError, match="width"):
        lime_kernel([0.1], width=0)


def test_lime_distances_by_hand():
    from sklearn.metrics import pairwise_distances

    z = np.array([[1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    # 1 - sqrt(k / 4): all kept 0, one kept 1/2, two kept 1 - sqrt(1/2), none kept 1
    assert np.allclose(lime_distances(z), [0.0, 0.5, 0.29289322, 1.0])
    assert np.allclose(lime_distances(z), pairwise_distances(z, z[:1], metric="cosine").ravel())
    with pytest.raises(ValueError, match="0/1"):
        lime_distances(np.array([[0.5, 1.0]]))


def test_lime_returns_what_it_fits_on(noise):
    """extras hold the samples, the model's outputs on them and their kernel weights; the ridge
    fit on them gives LIME's weights and R^2."""
    pytest.importorskip("lime")
    from sklearn.linear_model import Ridge

    x, segments = noise
    model = TextureVotes([segments == int(segments[12, 12])], x)
    e = xai_lab.explain(model, x, method="lime", segmentation="slic", segmentation_kwargs=SLIC, num_samples=40,
                        batch_size=16, seed=0, progress=False)
    z, y, pi = (e.extras[key][0] for key in ("samples", "outputs", "kernel_weights"))
    K = int(segments.max()) + 1
    assert z.shape == (40, K) and y.shape == pi.shape == (40,)
    assert np.isin(z, (0, 1)).all() and z[0].all() and 0 < z.mean() < 1
    expected = torch.softmax(model(coalition_images(x, segments, torch.as_tensor(z, dtype=torch.bool))), dim=1)[:, 0]
    assert np.allclose(y, expected.detach().numpy(), atol=1e-5)  # hidden superpixels at their mean
    assert np.allclose(pi, lime_kernel(lime_distances(z))) and pi[0] == 1.0
    surrogate = Ridge(alpha=1.0).fit(z, y, sample_weight=pi)
    assert np.allclose(surrogate.coef_, [e.extras["weights"][0][k] for k in range(K)], atol=1e-8)
    assert abs(surrogate.score(z, y, sample_weight=pi) - e.extras["score"][0]) < 1e-8


def test_lime_gives_the_largest_weight_to_the_region(noise):
    pytest.importorskip("lime")
    x, segments = noise
    chosen = int(segments[12, 12])
    region = segments == chosen
    model = TextureVotes([region], x)
    e = xai_lab.explain(model, x, method="lime", segmentation="slic", segmentation_kwargs=SLIC, num_samples=200,
                        seed=0, progress=False)
    assert e.target.tolist() == [0]
    assert e.forward_passes == 200 + 1  # the samples (the first is x itself) + resolving target=None
    weights = e.extras["weights"][0]
    assert max(weights, key=weights.get) == chosen
    others = [abs(w) for k, w in weights.items() if k != chosen]
    assert weights[chosen] > 0.3 and max(others) < 0.1 * weights[chosen]
    assert e.extras["score"][0] > 0.9
    assert torch.equal(e.extras["segments"][0] == chosen, region)
    assert torch.allclose(e.saliency[0][region], torch.tensor(weights[chosen], dtype=torch.float32))


def test_lime_same_seed_same_result(tiny):
    pytest.importorskip("lime")
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    kw = dict(method="lime", num_samples=60, batch_size=25, segmentation_kwargs={"kernel_size": 2, "max_dist": 6},
              progress=False)
    a = xai_lab.explain(tiny, x, seed=11, **kw)
    b = xai_lab.explain(tiny, x, seed=11, **kw)
    c = xai_lab.explain(tiny, x, seed=12, **kw)
    assert torch.equal(a.saliency, b.saliency) and a.extras["weights"] == b.extras["weights"]
    assert torch.equal(a.extras["segments"], b.extras["segments"])
    assert a.extras["weights"] != c.extras["weights"]
    state = np.random.get_state()[1].copy()
    xai_lab.explain(tiny, x, seed=11, **kw)
    assert np.array_equal(state, np.random.get_state()[1])  # global generators are left as found


def test_lime_equals_lime_called_directly_on_lite0(lite0, coffee_chelsea):
    """Same seed and segmentation: the weights and R^2 equal LimeImageExplainer's on pixels in [0, 1]."""
    lime_image = pytest.importorskip("lime.lime_image")
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    x = torch.nn.functional.interpolate(coffee_chelsea[1:], size=48, mode="bilinear", align_corners=False)
    kwargs = {"n_segments": 12, "compactness": 10, "sigma": 0.5, "start_label": 0}
    ours = xai_lab.explain(lite0, x, method="lime", target=281, segmentation="slic", segmentation_kwargs=kwargs,
                           num_samples=30, batch_size=15, seed=0, progress=False)
    image = (x[0] * 0.5 + 0.5).permute(1, 2, 0).numpy()

    def predict(batch):
        return lite0.predict_proba(lite0.from_pixels(torch.as_tensor(batch).permute(0, 3, 1, 2))).double().numpy()

    ref = lime_image.LimeImageExplainer(random_state=ours.extras["seeds"][0]).explain_instance(
        image, predict, labels=(281,), top_labels=None, num_samples=30, batch_size=15,
        segmentation_fn=SegmentationAlgorithm("slic", **kwargs))
    assert np.array_equal(ref.segments, ours.extras["segments"][0].numpy())
    expected = dict(ref.local_exp[281])
    assert expected.keys() == ours.extras["weights"][0].keys()
    for k, w in expected.items():
        assert abs(ours.extras["weights"][0][k] - w) < 1e-5
    assert abs(ours.extras["score"][0] - ref.score) < 1e-5


def test_anchor_is_the_region_superpixel(noise):
    pytest.importorskip("alibi")
    x, segments = noise
    chosen = int(segments[12, 12])
    region = segments == chosen
    e = xai_lab.explain(TextureVotes([region], x), x, method="anchors", segmentation_kwargs=SLIC, seed=0,
                        progress=False)
    assert e.extras["anchor"] == [[chosen]]
    assert e.extras["precision"][0] == 1.0
    assert 0.3 < e.extras["coverage"][0] < 0.7  # the anchor holds when its superpixel is kept: p = 0.5
    assert torch.equal(e.saliency[0], region.float())


def test_anchors_same_seed_same_result(noise):
    """Class 0 needs 2 of 3 textured superpixels: every pair is an anchor of precision 1 and
    coverage 1/4, so which pair the sampled search returns is up to the seed."""
    pytest.importorskip("alibi")
    x, segments = noise
    ids = [int(segments[4, 4]), int(segments[12, 12]), int(segments[20, 20])]
    model = TextureVotes([segments == k for k in ids], x, need=2)
    kw = dict(method="anchors", segmentation_kwargs=SLIC, batch_size=50, progress=False)
    runs = [xai_lab.explain(model, x, seed=seed, **kw) for seed in (3, 3, 0)]
    assert torch.equal(runs[0].saliency, runs[1].saliency)
    assert all(runs[0].extras[k] == runs[1].extras[k] for k in ("anchor", "precision", "coverage", "seeds"))
    for e in runs:
        assert len(e.extras["anchor"][0]) == 2 and set(e.extras["anchor"][0]) <= set(ids)
        assert e.extras["precision"][0] == 1.0
    assert len({tuple(sorted(e.extras["anchor"][0])) for e in runs}) > 1


def test_anchors_model_batches_do_not_change_the_search(noise):
    """The search's samples reach the model in passes of at most model_batch_size images; the
    anchor, its precision and coverage and the number of passes are those of one pass per round."""
    pytest.importorskip("alibi")
    x, segments = noise
    ids = [int(segments[4, 4]), int(segments[12, 12]), int(segments[20, 20])]
    model = TextureVotes([segments == k for k in ids], x, need=2)
    sizes = []
    hook = model.register_forward_pre_hook(lambda module, inputs: sizes.append(len(inputs[0])))
    kw = dict(method="anchors", segmentation_kwargs=SLIC, batch_size=50, seed=3, progress=False)
    try:
        whole = xai_lab.explain(model, x, model_batch_size=50, **kw)
        largest_whole, sizes[:] = max(sizes), []
        pieces = xai_lab.explain(model, x, model_batch_size=7, **kw)
    finally:
        hook.remove()
    assert largest_whole == 50 and max(sizes) == 7
    assert all(whole.extras[k] == pieces.extras[k] for k in ("anchor", "precision", "coverage", "seeds"))
    assert whole.forward_passes == pieces.forward_passes and torch.equal(whole.saliency, pieces.saliency)


def test_anchors_search_bound(noise):
    """Class 0 needs 2 of 3 textured superpixels: bounded to anchors of one superpixel, the search
    stops there and returns its best single superpixel, below the precision threshold."""
    pytest.importorskip("alibi")
    x, segments = noise
    ids = [int(segments[4, 4]), int(segments[12, 12]), int(segments[20, 20])]
    model = TextureVotes([segments == k for k in ids], x, need=2)
    e = xai_lab.explain(model, x, method="anchors", segmentation_kwargs=SLIC, batch_size=50, max_anchor_size=1,
                        seed=0, progress=False)
    assert len(e.extras["anchor"][0]) == 1 and e.extras["precision"][0] < 0.95


def test_anchors_with_superimposed_hiding(noise):
    """Class 0 iff the chosen superpixel has texture. Flat hiding and a gray background remove it:
    the anchor is that superpixel. A noise background puts texture back wherever it hides: the
    decision holds without any superpixel kept, so the anchor is empty. A pool of both: one drawn
    per sample, so the empty rule keeps the decision only about 3/4 of the time, and the
    anchor is the superpixel again; anchor_precision agrees under the same hiding."""
    pytest.importorskip("alibi")
    from xai_lab.metrics.anchors import anchor_precision

    x, segments = noise
    chosen = int(segments[12, 12])
    model = TextureVotes([segments == chosen], x)
    textured = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    gray = torch.full_like(x, 0.5)
    kw = dict(method="anchors", segmentation_kwargs=SLIC, batch_size=50, seed=0, progress=False)
    flat, on_gray, on_noise = (xai_lab.explain(model, x, background_images=b, **kw) for b in (None, gray, textured))
    assert flat.extras["anchor"] == on_gray.extras["anchor"] == [[chosen]]
    assert on_noise.extras["anchor"] == [[]] and on_noise.extras["precision"] == [1.0]
    assert not on_noise.saliency.any()
    pool = torch.cat([textured, gray])
    runs = [xai_lab.explain(model, x, background_images=pool, **kw) for _ in range(2)]
    assert runs[0].extras["anchor"] == [[chosen]] and runs[0].extras["precision"] == [1.0]
    assert all(runs[0].extras[k] == runs[1].extras[k] for k in ("anchor", "precision", "coverage", "seeds"))
    assert anchor_precision(model, x, segments, [chosen], samples=50, background_images=pool) == 1.0
    assert 0.6 < anchor_precision(model, x, segments, [], samples=200, background_images=pool) < 0.9
    assert anchor_precision(model, x, segments, [], samples=50, background_images=textured) == 1.0


def test_anchors_checks_its_backgrounds(noise):
    """With a Classifier the backgrounds are pixels in [0, 1]; with a bare model, model input."""
    from xai_lab.methods.surrogates import check_background_images
    from xai_lab.models import Classifier

    x, segments = noise
    model = TextureVotes([segments == int(segments[12, 12])], x)
    classifier = Classifier("texture", model, ["texture", "flat"], "", (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(ValueError, match=r"background_images must be pixels in \[0, 1\]"):
        xai_lab.explain(classifier, x, method="anchors", background_images=x + 1)
    assert torch.equal(check_background_images(x + 1, x, pixels=False), x + 1)
    for bad, error in [(x[..., :12], ValueError), (x[0], ValueError), (x * float("inf"), ValueError),
                       ("noise", TypeError), ((x > 0.5).long(), TypeError)]:
        with pytest.raises(error, match="background_images"):
            xai_lab.explain(model, x, method="anchors", background_images=bad)
