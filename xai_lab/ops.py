"""Tensor helpers used across the package, written once: input checks, the eval-mode guard,
map upsampling and scaling, blurring, and the one vocabulary for a baseline image."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: The baseline names accepted everywhere a baseline is asked for (methods and metrics).
BASELINES = ("black", "zero", "mean", "blur")

#: Images per forward pass that a perturbation method or metric sends through the model on a CPU
#: when its ``batch_size`` is left as None. Small batches are cheapest on a CPU: the activations
#: of a large batch fall out of the caches. EfficientNet-Lite0 at 224 x 224, per image
#: (``python benchmarks/forward_batch.py``, ``benchmarks/results/forward-batch-v1/``): one thread
#: 30 ms at batch 1, 38 at 4, 62 at 16, 108 at 64; two threads 21, 16 at 4, 22 at 16, 37 at 64.
#: A GPU is the other way round: there the method's own (larger) default applies.
CPU_FORWARD_BATCH = 4


def check_input(x) -> torch.Tensor:
    """A preprocessed tensor [N, 3, H, W] or [3, H, W] -> float [N, 3, H, W]; clear errors otherwise."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a preprocessed tensor [N, 3, H, W] or [3, H, W] (see classifier.preprocess), "
                        f"not {type(x).__name__}")
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4:
        raise ValueError(f"x must have shape [N, 3, H, W] or [3, H, W], got {list(x.shape)}")
    if x.shape[1] != 3:
        raise ValueError(f"x must have 3 color channels in dimension 1, got shape {list(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("x holds no images")
    if x.shape[2] < 2 or x.shape[3] < 2:
        raise ValueError(f"x must be at least 2x2 pixels, got shape {list(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a float tensor (preprocessed), got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values")
    return x


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's first floating parameter or buffer (float32 if none)."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.float32


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (the CPU for a module with neither)."""
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Evaluate in eval mode (dropout off, batch-norm running statistics); restore the mode after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def normalize_per_image(maps: torch.Tensor) -> torch.Tensor:
    """Min-max scale each map of [N, ...] to [0, 1]; constant maps become zeros (never NaN)."""
    flat = maps.reshape(maps.shape[0], -1)
    low = flat.min(dim=1, keepdim=True).values
    span = flat.max(dim=1, keepdim=True).values - low
    scaled = torch.where(span > 0, (flat - low) / span.clamp_min(torch.finfo(flat.dtype).tiny), torch.zeros_like(flat))
    return scaled.reshape(maps.shape)


def upsample(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of [N, h, w] maps to ``size`` (half-pixel centers, as cv2 and PIL do)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


def gaussian_blur(x: torch.Tensor, sigma: float = 5.0) -> torch.Tensor:
    """Separable Gaussian blur of [N, C, H, W]: kernel exp(-t^2 / 2 sigma^2) normalized, radius
    3 sigma (at least 1, at most what the image size allows), reflect padding."""
    from torchvision.transforms.functional import gaussian_blur as tv_blur

    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    radius = max(1, int(3 * sigma))
    size = min(2 * radius + 1, 2 * (min(x.shape[-2:]) // 2) - 1)
    return tv_blur(x, kernel_size=[size, size], sigma=[sigma, sigma])


def baseline_image(x: torch.Tensor, baseline: str | float | torch.Tensor, classifier=None,
                   sigma: float = 5.0) -> torch.Tensor:
    """What removed or occluded pixels become, in model-input units, shaped like ``x``:

    * ``"black"``: pixel 0 under the classifier's input scaling (-1 for EfficientNet-Lite0, not 0);
    * ``"zero"``: 0 in model-input units (the ImageNet mean color for mean/std-scaled models);
    * ``"mean"``: each image's per-channel mean;
    * ``"blur"``: a blurred copy (Gaussian, std ``sigma`` pixels);
    * a number (in model-input units) or a tensor broadcastable to ``x``."""
    if isinstance(baseline, (list, tuple)):
        baseline = torch.as_tensor(baseline, dtype=x.dtype)
    if isinstance(baseline, torch.Tensor):
        if not baseline.is_floating_point() and baseline.dtype == torch.bool:
            raise TypeError("a baseline tensor must hold numbers, not booleans")
        if not torch.isfinite(baseline).all():
            raise ValueError("the baseline contains NaN or infinite values")
        try:
            return baseline.to(x).expand_as(x)
        except RuntimeError:
            raise ValueError(f"a baseline tensor must broadcast to the input's shape {list(x.shape)}, "
                             f"got {list(baseline.shape)}") from None
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        if baseline != baseline or abs(baseline) == float("inf"):
            raise ValueError(f"a baseline number must be finite, got {baseline}")
        return torch.full_like(x, float(baseline))
    if baseline == "black":
        if classifier is None:
            raise ValueError("baseline='black' needs a Classifier (to know the input scaling); pass a number instead")
        return classifier.from_pixels(torch.zeros_like(x))
    if baseline == "zero":
        return torch.zeros_like(x)
    if baseline == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    if baseline == "blur":
        return gaussian_blur(x, sigma)
    raise ValueError(f"Unknown baseline {baseline!r}: use one of {', '.join(BASELINES)}, a number or a tensor")


def forward_batch_size(batch_size: int | None, device: torch.device | str, accelerator: int) -> int:
    """How many images go through the model per forward pass: ``batch_size`` when given (checked:
    a whole number >= 1); else :data:`CPU_FORWARD_BATCH` on a CPU and ``accelerator`` (the caller's
    default for a GPU) on any other device. The results do not depend on it beyond float rounding."""
    if batch_size is not None:
        check_positive("batch_size", batch_size, integer=True)
        return batch_size
    return CPU_FORWARD_BATCH if torch.device(device).type == "cpu" else accelerator


def copies_fitting(images_per_pass: int, n_images: int) -> int:
    """How many copies of a batch of ``n_images`` (masked, noisy or scaled copies) fit in a
    forward pass of ``images_per_pass`` images: ``images_per_pass // n_images``, at least one."""
    return max(1, images_per_pass // n_images)


def copies_per_pass(batch_size: int | None, n_images: int, device: torch.device | str, accelerator: int) -> int:
    """How many copies of a batch of ``n_images`` (noisy, scaled or interpolated copies of the
    gradient methods) go through the model per forward and backward pass: ``batch_size`` when
    given (checked); else, on a CPU, as many as keep a pass near :data:`CPU_FORWARD_BATCH` images
    (at least one), and ``accelerator`` copies on any other device. A forward + backward pass to
    the input of EfficientNet-Lite0 on one thread costs 72 ms per image alone, 59 at 4, 73 at 16,
    197 at 64 (``benchmarks/results/forward-batch-v1/forward_backward.json``)."""
    if batch_size is None and torch.device(device).type == "cpu":
        return copies_fitting(CPU_FORWARD_BATCH, n_images)
    return forward_batch_size(batch_size, device, accelerator)


def check_positive(name: str, value, integer: bool = False, allow_zero: bool = False) -> None:
    """Refuse an option outside its range with a message naming it: ``value`` must be a number
    > 0 (>= 0 with ``allow_zero``), a whole number when ``integer``."""
    kind = "a whole number" if integer else "a number"
    bound = ">= 0" if allow_zero else "> 0"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise TypeError(f"{name} must be {kind} {bound}, got {value!r}")
    if not (value >= 0 if allow_zero else value > 0) or value != value or value == float("inf"):
        raise ValueError(f"{name} must be a finite {kind[2:]} {bound}, got {value!r}")


def check_fraction(name: str, value, open_low: bool = False, open_high: bool = False) -> None:
    """Refuse ``value`` outside [0, 1] (open at either end on request), naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in [0, 1], got {value!r}")
    low_ok = value > 0 if open_low else value >= 0
    high_ok = value < 1 if open_high else value <= 1
    if not (low_ok and high_ok):
        interval = f"{'(' if open_low else '['}0, 1{')' if open_high else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
