"""Shared fixtures: the real EfficientNet-Lite0 (loaded once), skimage images, toy networks."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import xai_lab


@pytest.fixture(scope="session")
def lite0():
    return xai_lab.load_model("efficientnet_lite0")


@pytest.fixture(scope="session")
def resnet18():
    torch.manual_seed(0)
    return xai_lab.load_model("resnet18", weights=None)


@pytest.fixture(scope="session")
def coffee_chelsea(lite0):
    """coffee and chelsea from scikit-image, preprocessed for EfficientNet-Lite0: [2, 3, 224, 224]."""
    from skimage import data

    return torch.stack([lite0.preprocess(data.coffee()), lite0.preprocess(data.chelsea())])


class TinyConvNet(nn.Module):
    """conv(3->4, 3x3) -> ReLU -> conv(4->3) -> ReLU [feature map] -> global average pool -> linear(3->5)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 3, 3, padding=1)
        self.act2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(3, 5)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.act2(self.conv2(self.act1(self.conv1(x)))))))


class RegionMean(torch.nn.Module):
    """Logits [mean of the image over an 8-pixel region (rows 2-3, columns 2-5), 0]: a toy classifier
    whose answer is known for any removal of pixels."""

    def __init__(self):
        super().__init__()
        self.mask = torch.zeros(1, 1, 8, 8)
        self.mask[..., 2:4, 2:6] = 1
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        score = (x * self.mask).sum((1, 2, 3)) / (self.mask.sum() * x.shape[1])
        return torch.stack([score, torch.zeros_like(score) + self.dummy], 1)


@pytest.fixture
def tiny():
    return TinyConvNet().eval()


@pytest.fixture
def tiny_input():
    return torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="session")
def imagenet_records():
    """The 1000 ImageNet sample records; skipped (with the reason) where the data is unavailable."""
    from xai_lab.data import DataError, imagenet_samples

    try:
        return imagenet_samples()
    except DataError as exc:
        pytest.skip(f"ImageNet samples unavailable: {exc}")


@pytest.fixture(scope="session")
def msld_one_image_patients():
    """The first 8 Monkeypox and 8 Others MSLD patients that have a single image, one record each
    (a split with val = test = 0.25 gives 4 + 4 training, 2 + 2 validation and 2 + 2 test
    patients); skipped where the data variable is not set."""
    import os

    from xai_lab import data

    if not os.environ.get(data.DATA_ENV):
        pytest.skip(f"{data.DATA_ENV} is not set (CI sets it to ../shared/data)")
    per_patient = {}
    for rec in data.msld():
        per_patient.setdefault(rec.patient_id, []).append(rec)
    single = [recs[0] for _, recs in sorted(per_patient.items()) if len(recs) == 1]
    return [r for r in single if r.label == "Monkeypox"][:8] + [r for r in single if r.label == "Others"][:8]
