"""Which images a channel responds to: the mean activation of every channel of a layer over a
set of images. Feature Visualization (Olah et al. 2017) recommends showing the data set images
that activate a channel most next to its synthetic image; the same means, standardized over a
data set, pick the channels a photograph excites unusually strongly."""
from __future__ import annotations

import torch

from ..capture import LayerRecorder
from ..models import unwrap
from ..ops import eval_mode


def mean_channel_activations(classifier_or_model, layer: str, x: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """The mean over positions of each channel of ``layer``'s output, per image: [N, C] for the
    model inputs ``x`` [N, 3, H, W], computed ``batch_size`` images at a time without gradients."""
    model, _ = unwrap(classifier_or_model)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = next(model.parameters()).device
    with torch.no_grad(), eval_mode(model), LayerRecorder(model, [layer]) as recorder:
        for batch in x.split(batch_size):
            model(batch.to(device))
    return torch.cat([a.flatten(2).mean(2) for a in recorder.outputs[layer]]).cpu()
