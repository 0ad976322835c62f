import pytest
import torch

import xai_lab


@pytest.mark.parametrize("name,layer", [("resnet18", "layer4"), ("vgg16", "features.29")])
def test_random_weights_and_default_layer(name, layer):
    clf = xai_lab.load_model(name, weights=None)
    assert clf.default_layer == layer and len(clf.categories) == 1000
    assert clf.mean == (0.485, 0.456, 0.406)
    with torch.no_grad():
        assert clf.model(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)


def test_missing_weights_say_where_to_put_the_file(monkeypatch, tmp_path):
    import torch.hub

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    import torchvision.models._api as api
    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError, match="checkpoints/resnet18-.*pth"):
        xai_lab.load_model("resnet18")
