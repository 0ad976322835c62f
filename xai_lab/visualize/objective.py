"""What feature visualization maximizes: a class logit, or the mean of one channel of a layer."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..capture import LayerRecorder


def objective(model: nn.Module, target) -> Callable[[torch.Tensor], torch.Tensor]:
    """``target``: a class index -> that logit; ``(layer, channel)`` -> mean activation of the
    channel; ``(layer, None)`` -> mean square of the whole layer (DeepDream). Returns
    ``f(model_input) -> [N]`` values to maximize."""
    if isinstance(target, int):
        return lambda x: model(x)[:, target]
    if isinstance(target, tuple) and len(target) == 2:
        layer, channel = target
        recorder = LayerRecorder(model, [layer])
        name = recorder.named[0][0]

        def value(x: torch.Tensor) -> torch.Tensor:
            with recorder:
                model(x)
                act = recorder[name]
            if channel is None:
                return act.pow(2).flatten(1).mean(1)
            if not 0 <= channel < act.shape[1]:
                raise ValueError(f"Layer {name!r} has {act.shape[1]} channels; channel {channel} does not exist")
            return act[:, channel].flatten(1).mean(1)

        return value
    raise TypeError("target must be a class index or a (layer, channel) pair")
