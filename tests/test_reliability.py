"""Reliability: one model shared by threads, random bad inputs (shapes, dtypes, options, image
files, command lines), float64 inputs and class labels as targets.

Every call either returns finite maps of the right shape or raises one of the package's
documented errors (TypeError, ValueError, which includes ``xai_lab.data.ImageError``,
``xai_lab.data.DataError``, and FileNotFoundError for a missing file); no hook stays on the
model and its parameters and gradient flags are unchanged.
"""
from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import xai_lab
from xai_lab import cli
from xai_lab.capture import hook_count
from xai_lab.data import DataError, ImageError, load_image
from xai_lab.models import Classifier
from xai_lab.registry import method_spec

DOCUMENTED_ERRORS = (TypeError, ValueError, DataError, FileNotFoundError)
CATEGORIES = ["tabby", "tiger", "espresso", "tench", "goldfish"]


class ToyNet(nn.Module):
    """conv(3->6) -> ReLU (in place) -> conv(6->4) -> ReLU6 [feature map] -> average pool -> linear(4->5)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(6, 4, 3, padding=1)
        self.act2 = nn.ReLU6()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4, 5)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.act2(self.conv2(self.act1(self.conv1(x)))))))


def toy_classifier(seed: int = 0) -> Classifier:
    return Classifier(name="toy", model=ToyNet(seed).eval(), categories=list(CATEGORIES), default_layer="act2",
                      mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), head="fc")


def _state(model: nn.Module) -> dict:
    """Parameters, buffers and gradient flags, copied."""
    return {"tensors": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "flags": {k: p.requires_grad for k, p in model.named_parameters()}}


def _assert_unchanged(model: nn.Module, before: dict) -> None:
    assert hook_count(model) == 0
    after = _state(model)
    assert after["flags"] == before["flags"]
    for name, tensor in before["tensors"].items():
        assert torch.equal(after["tensors"][name], tensor), f"{name} changed"


# --- (a) one model, several threads, different methods at once ---

THREADED_METHODS = ["guided_backprop", "deconvnet", "deep_shap", "saliency", "input_x_gradient", "gradcam",
                    "ablationcam", "fullgrad", "integrated_gradients"]
FAST_OPTIONS = {"integrated_gradients": {"steps": 8}}


def _explain(classifier, x, name):
    return xai_lab.explain(classifier, x, method=name, target="tabby" if name == "gradcam" else None, seed=0,
                           **FAST_OPTIONS.get(name, {})).saliency


def _concurrently(jobs: list) -> list:
    """Run the callables in ``jobs`` each in its own thread, all released at once; their results in order."""
    barrier = threading.Barrier(len(jobs))

    def run(job):
        barrier.wait()
        return job()

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return [f.result() for f in [pool.submit(run, job) for job in jobs]]


def _check_threads_match_single_thread(classifier, x, names):
    model = classifier.model
    before = _state(model)
    alone = {name: _explain(classifier, x, name) for name in names}
    jobs = [name for name in names for _ in range(2)]  # each method in two threads at once
    random.Random(0).shuffle(jobs)
    together = _concurrently([lambda name=name: _explain(classifier, x, name) for name in jobs])
    for name, saliency in zip(jobs, together):
        assert torch.equal(saliency, alone[name]), (
            f"{name}: max difference {(saliency - alone[name]).abs().max():.3g} with other threads running")
    _assert_unchanged(model, before)


def test_threads_sharing_a_toy_model_get_their_single_threaded_maps():
    classifier = toy_classifier()
    classifier.model.conv1.weight.requires_grad_(False)  # a partly frozen model keeps its flags
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    _check_threads_match_single_thread(classifier, x, THREADED_METHODS)


def test_threads_sharing_efficientnet_lite0_get_their_single_threaded_maps(lite0):
    from skimage import data

    x = torch.stack([lite0.preprocess(Image.fromarray(data.chelsea()).resize((64, 64)))])
    _check_threads_match_single_thread(lite0, x, THREADED_METHODS)


class Rendezvous(nn.Module):
    """Identity; each time the thread ``holder`` runs it, it lets another thread take a turn
    (``arrived``) and waits until that thread is done (``resume``): so the other thread uses the
    model at every forward pass of an explanation, while its hooks and settings are in place."""

    def __init__(self):
        super().__init__()
        self.holder = None
        self.arrived, self.resume = threading.Semaphore(0), threading.Semaphore(0)
        self.finished = threading.Event()

    def forward(self, x):
        if threading.get_ident() == self.holder:
            self.arrived.release()
            assert self.resume.acquire(timeout=20)
        return x


def _plain_use(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """What a user does without xai_lab: logits, input gradient and one weight gradient of class 0."""
    x = x.clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        logits = model(x)
        logits[:, 0].sum().backward()
    weight_grad = model[1].conv2.weight.grad
    return logits.detach(), x.grad.detach(), None if weight_grad is None else weight_grad.clone()


FROZEN_PARAMETERS = ("the method sets requires_grad=False on every parameter during its passes "
                     "(context._parameters_frozen), so a concurrent plain backward gets no weight gradient")
CAPTUM_HOOKS = ("captum's DeepLiftShap registers hooks that act in every thread: a concurrent plain forward "
                "raises IndexError inside captum's hook")
EXPECTED_TO_DISTURB = {"gradcam": FROZEN_PARAMETERS, "deep_shap": CAPTUM_HOOKS}


@pytest.mark.parametrize("method", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=EXPECTED_TO_DISTURB[name]))
    if name in EXPECTED_TO_DISTURB else name for name in THREADED_METHODS])
def test_a_plain_forward_and_backward_in_another_thread_is_not_affected(method):
    rendezvous = Rendezvous()
    model = nn.Sequential(rendezvous, ToyNet()).eval()
    classifier = Classifier(name="toy", model=model, categories=list(CATEGORIES), default_layer="1.act2",
                            mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    expected = _plain_use(model, x)
    model.zero_grad(set_to_none=True)

    def explaining():
        rendezvous.holder = threading.get_ident()
        try:
            return xai_lab.explain(classifier, x, method=method, seed=0, **FAST_OPTIONS.get(method, {}))
        finally:
            rendezvous.finished.set()
            rendezvous.arrived.release()

    def plain():
        seen = []
        while True:
            assert rendezvous.arrived.acquire(timeout=20)
            if rendezvous.finished.is_set():
                return seen
            try:
                seen.append(_plain_use(model, x))
            except Exception as exc:  # reported below, after the explanation has finished
                seen.append(exc)
            finally:
                rendezvous.resume.release()

    _, during = _concurrently([explaining, plain])
    assert during, "the explanation ran no forward pass"
    for turn, results in enumerate(during):
        assert not isinstance(results, Exception), f"pass {turn} of {method}: {type(results).__name__}: {results}"
        for name, got, want in zip(["logits", "input gradient", "weight gradient"], results, expected):
            assert got is not None, f"no {name} at forward pass {turn} of {method} in another thread"
            assert torch.allclose(got, want, rtol=1e-5, atol=1e-6), f"{name} changed at pass {turn} of {method}"
    assert hook_count(model) == 0
