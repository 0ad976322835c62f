import pytest
import torch

from xai_lab.explain import explain
from xai_lab.metrics.agreement import spearman
from xai_lab.metrics.layer_sweep import SweepPoint, layer_sweep, sweep_means
from xai_lab.metrics.perturbation import deletion_auc, insertion_auc

from ..conftest import TinyConvNet

ONE_MAP_AT_THE_LAST_LAYER = ("xgradcam", "hirescam")


@pytest.fixture
def images():
    return torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(3))


def test_grad_cam_xgrad_cam_and_hirescam_are_one_map_at_the_pooled_layer_only(images):
    model = TinyConvNet(seed=2).eval()
    points = layer_sweep(model, images, ONE_MAP_AT_THE_LAST_LAYER, ["act1", "act2"], step=16, deletion_baseline=0.0)
    assert [(p.layer, p.method, p.image) for p in points][:4] == [("act1", "gradcam", 0), ("act1", "gradcam", 1),
                                                                  ("act1", "gradcam", 2), ("act1", "xgradcam", 0)]
    assert len(points) == 2 * 3 * 3
    last = {(p.method, p.image): p for p in points if p.layer == "act2"}
    for i in range(3):
        reference = explain(model, images[i:i + 1], method="gradcam", layer="act2").saliency
        assert reference.std() > 0  # a constant map would make the agreement 0 by convention
        for name in ONE_MAP_AT_THE_LAST_LAYER:
            assert last[(name, i)].agreement == pytest.approx(1.0, abs=1e-9)
            other = explain(model, images[i:i + 1], method=name, layer="act2").saliency
            assert torch.allclose(other / other.max(), reference / reference.max(), atol=1e-5)
    earlier = [p.agreement for p in points if p.layer == "act1" and p.method != "gradcam"]
    assert min(earlier) < 0.99  # the gradient varies over positions before conv2


def test_each_point_holds_the_scores_computed_directly(images):
    model = TinyConvNet(seed=2).eval()
    points = layer_sweep(model, images, ["layercam"], ["act1"], step=16, deletion_baseline=0.0)
    e = explain(model, images, method="layercam", layer="act1")
    ref = explain(model, images, method="gradcam", layer="act1")
    deletion = deletion_auc(model, images, e.saliency, e.target, baseline=0.0, step=16)["auc"]
    insertion = insertion_auc(model, images, e.saliency, e.target, start="blur", step=16)["auc"]
    for p in points[3:]:
        assert p.method == "layercam"
        assert p.agreement == pytest.approx(spearman(e.saliency[p.image], ref.saliency[p.image]))
        assert p.deletion_auc == pytest.approx(float(deletion[p.image]))
        assert p.insertion_auc == pytest.approx(float(insertion[p.image]))


def test_sweep_means_average_over_the_images():
    points = [SweepPoint("a", "m", i, agreement=v, deletion_auc=2 * v, insertion_auc=1 - v)
              for i, v in enumerate([0.2, 0.4, 0.9])] + [SweepPoint("b", "m", 0, 1.0, 0.5, 0.5)]
    means = sweep_means(points)
    assert list(means) == [("a", "m"), ("b", "m")]
    assert means[("a", "m")] == pytest.approx({"agreement": 0.5, "deletion_auc": 1.0, "insertion_auc": 0.5,
                                               "images": 3})
    assert points[0].as_dict() == {"layer": "a", "method": "m", "image": 0, "agreement": 0.2,
                                   "deletion_auc": 0.4, "insertion_auc": 0.8}


def test_bad_arguments_are_refused(images):
    model = TinyConvNet().eval()
    with pytest.raises(ValueError, match="at least one layer"):
        layer_sweep(model, images, ["hirescam"], [])
    with pytest.raises(ValueError, match="at least one method"):
        layer_sweep(model, images, [], ["act1"])
    with pytest.raises(ValueError, match=r"batch \[N, 3, H, W\]"):
        layer_sweep(model, images[0], ["hirescam"], ["act1"])
    with pytest.raises(ValueError, match="step"):
        layer_sweep(model, images, ["hirescam"], ["act1"], step=0)
