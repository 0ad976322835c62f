"""Adversarial examples under an L-infinity budget: FGSM (Goodfellow et al. 2015) and PGD
(Madry et al. 2018), untargeted or targeted.

Budgets are given in pixel units of 0..255 and converted through the classifier's input
scaling, so ``eps=8`` means "no pixel channel moves by more than 8/255", whatever the model's
normalization. Adversarial images always stay valid (pixels in [0, 1]).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .models import Classifier
from .ops import check_input, eval_mode
from .targets import resolve_targets


@dataclass
class AttackResult:
    adversarial: torch.Tensor     # [N, 3, H, W] model input
    perturbation: torch.Tensor    # [N, 3, H, W] in pixel units of 0..255 (adversarial - original)
    prediction: torch.Tensor      # [N] class predicted for the adversarial image
    original_prediction: torch.Tensor
    success: torch.Tensor         # [N] bool: target reached (targeted) or label left (untargeted)

    @property
    def linf(self) -> torch.Tensor:
        """Largest change of any pixel channel, per image, in 0..255 units."""
        return self.perturbation.abs().flatten(1).amax(1)

    def psnr(self) -> torch.Tensor:
        """Peak signal-to-noise ratio of the adversarial image against the original, in dB."""
        mse = (self.perturbation / 255).pow(2).flatten(1).mean(1)
        return 10 * torch.log10(1 / mse.clamp_min(1e-20))


def _setup(classifier: Classifier, x, label, target):
    if not isinstance(classifier, Classifier):
        raise TypeError("attacks need a Classifier (its input scaling converts eps to model units)")
    model = classifier.model
    x = check_input(x).to(classifier.device)
    with torch.no_grad(), eval_mode(model):
        logits = model(x)
    original = logits.argmax(1)
    labels = resolve_targets(label, logits)
    targets = None if target is None else resolve_targets(target, logits)
    return model, x, original, labels, targets


def _step_direction(model, x_adv, labels, targets) -> torch.Tensor:
    """Sign of the gradient that raises the loss of ``labels`` (untargeted) or lowers that of
    ``targets`` (targeted), in model-input units."""
    x_adv = x_adv.detach().requires_grad_(True)
    logits = model(x_adv)
    loss = -F.cross_entropy(logits, targets) if targets is not None else F.cross_entropy(logits, labels)
    (grad,) = torch.autograd.grad(loss, x_adv)
    return grad.sign()


def _project(classifier: Classifier, x, x_adv, eps: float) -> torch.Tensor:
    """Clip x_adv to the eps-ball around x (pixel units) and to valid pixels [0, 1]."""
    p, p_adv = classifier.to_pixels(x), classifier.to_pixels(x_adv)
    p_adv = torch.max(torch.min(p_adv, p + eps / 255), p - eps / 255).clamp(0, 1)
    return classifier.from_pixels(p_adv)


def _finish(classifier, model, x, x_adv, original, labels, targets) -> AttackResult:
    with torch.no_grad(), eval_mode(model):
        prediction = model(x_adv).argmax(1)
    success = prediction == targets if targets is not None else prediction != labels
    perturbation = (classifier.to_pixels(x_adv) - classifier.to_pixels(x)) * 255
    return AttackResult(x_adv.detach(), perturbation.detach(), prediction, original, success)


def fgsm(classifier: Classifier, x, eps: float = 2.0, label=None, target=None) -> AttackResult:
    """Fast gradient sign method: one step of size ``eps`` (0..255 units) along the sign of the
    input gradient of the loss. Untargeted (``target=None``): raise the loss of ``label``
    (default: the predicted class); targeted: lower the loss of ``target``."""
    model, x, original, labels, targets = _setup(classifier, x, label, target)
    with eval_mode(model):
        direction = _step_direction(model, x, labels, targets)
    step = (eps / 255) / torch.tensor(classifier.std, device=x.device).view(1, 3, 1, 1)
    x_adv = _project(classifier, x, x + step * direction, eps)
    return _finish(classifier, model, x, x_adv, original, labels, targets)


def pgd(classifier: Classifier, x, eps: float = 8.0, steps: int = 10, step_size: float | None = None,
        label=None, target=None, random_start: bool = True, seed: int = 0) -> AttackResult:
    """Projected gradient descent: ``steps`` signed-gradient steps of ``step_size`` (0..255 units,
    default 2.5 * eps / steps, as Madry et al.), each followed by projection onto the eps-ball
    and valid pixels; optional uniform random start in the ball (seeded)."""
    model, x, original, labels, targets = _setup(classifier, x, label, target)
    step_size = 2.5 * eps / steps if step_size is None else step_size
    scale = torch.tensor(classifier.std, device=x.device).view(1, 3, 1, 1)
    x_adv = x.clone()
    if random_start:
        g = torch.Generator(device="cpu").manual_seed(seed)
        noise = (torch.rand(x.shape, generator=g) * 2 - 1).to(x.device) * (eps / 255) / scale
        x_adv = _project(classifier, x, x + noise, eps)
    with eval_mode(model):
        for _ in range(steps):
            direction = _step_direction(model, x_adv, labels, targets)
            x_adv = _project(classifier, x, x_adv + (step_size / 255) / scale * direction, eps)
    return _finish(classifier, model, x, x_adv, original, labels, targets)
