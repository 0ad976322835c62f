"""Every registered method against the least work it needs (its floor) and against the peers that
implement it: time and peak memory at batch 1 and 16, interleaved in one process (issue 17).

    python benchmarks/speed.py [--methods gradcam,rise] [--batch-sizes 1,16] [--device cpu|cuda]
        [--repeats 3] [--warmup 1] [--budget 10] [--threads N] [--quick] [--out benchmarks/results/speed-v1/]

Per method and batch size the candidates are: ours (``xai_lab.explain`` with explicit targets),
the method's floor and every peer (captum, pytorch-grad-cam, torchcam, lime, alibi) called with
the same settings on the same model and input. They are timed in alternation (``_timing.py``:
every candidate warmed up, then the timed rounds, each round rotating who goes first; the
median), so a burst of load slows all of them alike. Rounds: ``--repeats``, or as many as fit in
``--budget`` seconds where calls are cheap (a median of three calls of 40 ms carries the noise of
a few milliseconds: 20 % and more on a quiet machine; up to 200 rounds). Then each candidate runs once more alone
for its peak memory (:func:`peak_memory`).

The floor of every registered method is written once, in :data:`FLOORS`: a callable that does
exactly the least work the method needs on the same model, input and settings, and nothing else
(no map arithmetic, no upsampling). Gradient CAMs: a forward pass whose graph starts at the
layer (parameters not requiring gradients, the layer's output made to require one) and a
backward pass from the target scores to the layer only; input-gradient methods: forward +
backward to the input; SmoothGrad / integrated gradients / GradientSHAP: the same for their
n copies, as many copies per pass as ours; perturbation methods: their number of perturbed
images through the model without gradients, as many per pass as ours (a prepared batch of
perturbed images passed as often as needed: the cost of a pass does not depend on the pixel
values; on a CPU ours sends 4 images a pass by default, which is the cheapest there: see
``xai_lab.ops.CPU_FORWARD_BATCH``, and the floor and the peers get the same); FullGrad: forward +
backward to the input and to the output of every module with a bias. :data:`WHY_NOT` says, for
the methods that cannot meet the issue's targets (<= 1.15x the floor, <= 1.0x the fastest peer,
peak memory no higher than the best peer's) by construction, why; it holds no measured reason.

Peak memory (:func:`peak_memory`): on CPU, the rise of the resident set during one call. Before
the call the garbage is collected, glibc returns freed heap pages (``malloc_trim(0)``) and the
kernel's high-water mark is reset to the current resident size (writing 5 to
``/proc/self/clear_refs``); after it, ``VmHWM - VmRSS before`` from ``/proc/self/status`` is the
peak increase, exact to the page and free of sampling. Where the reset is refused, a thread
samples ``VmRSS`` every millisecond instead (``method`` in the JSON says which; a spike shorter
than that can be missed). Limits: memory the allocator kept from an earlier candidate and reused
without returning it to the kernel does not count (``malloc_trim`` narrows this, it cannot free
fragmented pages); pages first touched by a candidate (lazily loaded libraries, caches the
library fills on first call) do count, so the measurement runs after the timing's warm-up; the
resident set includes the other threads of the process. On CUDA: ``torch.cuda.max_memory_allocated``
minus the memory allocated before the call (after ``reset_peak_memory_stats``): tensors only,
not the caching allocator's reserve or the CUDA context.

Memory layout: every candidate gets the same input tensor, NCHW-contiguous by default, and the
floors keep its layout (``--channels-last`` makes both channels-last). The layout alone can
change the cost of a pass a lot (torch's CPU convolutions run faster on channels-last input for
EfficientNet-Lite0 on an x86 CPU, seen on a loaded machine: measure it quietly). Methods that turn numpy
images [B, H, W, 3] into model input by ``permute`` (``lime``, ``anchors``) pass channels-last
tensors whatever the input's layout, so with NCHW input their floor can take longer than they
do; compare such rows with a ``--channels-last`` run.

Output under ``--out`` (a versioned folder): ``speed.json`` (command, commit, packages, machine,
load average at start and end, settings, one row per method and batch size) and ``speed.csv``
(one line per method, batch size and candidate). ``--quick`` runs tiny settings on 64x64 inputs
(tests, smoke runs): its numbers mean nothing.
"""
from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # the peers' progress bars

import argparse  # noqa: E402
import contextlib  # noqa: E402
import csv  # noqa: E402
import ctypes  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import REPO, add_common, check_device, environment, positive_int, set_threads  # noqa: E402
from _timing import Candidate, time_interleaved  # noqa: E402

import xai_lab  # noqa: E402
from xai_lab.ops import forward_batch_size  # noqa: E402
from xai_lab.registry import method_spec  # noqa: E402

LAYER = "features"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "speed-v1"
TARGETS = {"ours_over_floor": 1.15, "ours_over_fastest_peer": 1.0, "ours_memory_over_best_peer": 1.0}


# --- settings: ours' options per method (the peers and floors take theirs from these) ----------

FULL = {
    "integrated_gradients": {"steps": 16, "baseline": 0.0, "batch_size": 16},
    "smoothgrad": {"n_samples": 8, "noise": 0.15, "batch_size": 8},
    "gradient_shap": {"n_samples": 16, "batch_size": 16},
    "smoothgradcampp": {"n_samples": 8, "sigma": 0.3, "batch_size": 8},
    "scorecam": {"batch_size": 32, "score": "probability"},
    "ablationcam": {"batch_size": 32},
    "rise": {"n_masks": 1000, "cells": 7, "p": 0.5, "batch_size": 100},
    "occlusion": {"window": 32, "stride": 16, "baseline": "zero", "output": "probability", "batch_size": 64},
    "lime": {"num_samples": 1000, "batch_size": 100},
    "anchors": {"threshold": 0.95, "batch_size": 100, "model_batch_size": 16, "max_anchor_size": 5},
}
#: The options that set how many images ours sends forward per pass (ours' defaults there are None:
#: :func:`xai_lab.ops.forward_batch_size`). FULL holds ours' defaults on a GPU; on a CPU every one of
#: them is ``CPU_FORWARD_BATCH`` (:func:`full_settings`), for ours, its floor and the peers alike.
FORWARD_BATCH_OPTIONS = {"scorecam": "batch_size", "rise": "batch_size", "occlusion": "batch_size", "lime": "batch_size",
                         "anchors": "model_batch_size"}
QUICK = {
    "integrated_gradients": {"steps": 2, "baseline": 0.0, "batch_size": 2},
    "smoothgrad": {"n_samples": 2, "noise": 0.15, "batch_size": 2},
    "gradient_shap": {"n_samples": 2, "batch_size": 2},
    "smoothgradcampp": {"n_samples": 2, "sigma": 0.3, "batch_size": 2},
    "scorecam": {"batch_size": 64, "score": "probability"},
    "ablationcam": {"batch_size": 64},
    "rise": {"n_masks": 8, "cells": 4, "p": 0.5, "batch_size": 8},
    "occlusion": {"window": 32, "stride": 32, "baseline": "zero", "output": "probability", "batch_size": 8},
    "lime": {"num_samples": 10, "batch_size": 10},
    "anchors": {"threshold": 0.6, "batch_size": 10, "model_batch_size": 10, "max_anchor_size": 1},
}
SIDE = {False: 224, True: 64}   # input side, full and --quick


def full_settings(method: str, device: str) -> dict:
    """Ours' options of ``method`` in a full run on ``device``: FULL, with the images per forward pass
    that ours picks there by default (``FORWARD_BATCH_OPTIONS``)."""
    options = dict(FULL.get(method, {}))
    if method in FORWARD_BATCH_OPTIONS:
        name = FORWARD_BATCH_OPTIONS[method]
        options[name] = forward_batch_size(None, device, accelerator=options[name])
    return options


@dataclass
class Bench:
    """One method at one batch size: the classifier, input [N, 3, H, W], targets and ours' options."""

    clf: object
    x: torch.Tensor
    targets: list[int]
    options: dict
    device: str = "cpu"

    @property
    def model(self) -> torch.nn.Module:
        return self.clf.model

    @property
    def layer(self) -> torch.nn.Module:
        return dict(self.model.named_modules())[LAYER]

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def index(self) -> torch.Tensor:
        return torch.tensor(self.targets, device=self.x.device).view(-1, 1)

    def o(self, name):
        """Ours' option ``name`` (set in FULL / QUICK for every method whose floor or peers use it)."""
        return self.options[name]


# --- peak memory --------------------------------------------------------------------------------

_STATUS = re.compile(r"^(VmRSS|VmHWM):\s+(\d+) kB", re.M)


def _status() -> dict[str, int]:
    """VmRSS and VmHWM of this process in bytes."""
    with open("/proc/self/status") as fh:
        return {k: int(v) * 1024 for k, v in _STATUS.findall(fh.read())}


def _trim() -> None:
    """Collect garbage and let glibc give freed heap pages back to the kernel."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_high_water_mark() -> bool:
    """Reset VmHWM to the current VmRSS; False where the kernel refuses it."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_memory(fn: Callable[[], object], device="cpu", sample_seconds: float = 0.001) -> dict:
    """``{"bytes", "method"}``: the peak memory one call of ``fn()`` adds (see the module
    docstring for how and its limits). ``fn`` may be a :class:`Candidate`: its before/after run
    outside the measurement."""
    candidate = fn if isinstance(fn, Candidate) else Candidate(fn)
    if candidate.before is not None:
        candidate.before()
    try:
        if torch.device(device).type == "cuda":
            _trim()
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            candidate.run()
            torch.cuda.synchronize(device)
            return {"bytes": torch.cuda.max_memory_allocated(device) - base, "method": "cuda max_memory_allocated"}
        _trim()
        if _reset_high_water_mark():
            base = _status()["VmRSS"]
            candidate.run()
            return {"bytes": max(0, _status()["VmHWM"] - base), "method": "VmHWM reset by clear_refs"}
        base = _status()["VmRSS"]
        peak, done = [base], threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], _status()["VmRSS"])
                time.sleep(sample_seconds)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            candidate.run()
        finally:
            done.set()
            thread.join()
        peak[0] = max(peak[0], _status()["VmRSS"])
        return {"bytes": peak[0] - base, "method": f"VmRSS sampled every {sample_seconds * 1000:g} ms"}
    finally:
        if candidate.after is not None:
            candidate.after()


# --- floors -------------------------------------------------------------------------------------

def _frozen(model: torch.nn.Module):
    """before/after that switch the parameters' gradients off and back (untimed: set once by a user)."""
    saved = {}

    def before():
        saved.update({p: p.requires_grad for p in model.parameters()})
        for p in model.parameters():
            p.requires_grad_(False)

    def after():
        for p, flag in saved.items():
            p.requires_grad_(flag)
        saved.clear()

    return before, after


def _same_layout(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``t`` in ``x``'s memory layout (channels-last where ``x`` is, see ``--channels-last``)."""
    last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return t.contiguous(memory_format=torch.channels_last if last else torch.contiguous_format)


def _copies(b: Bench, per_pass: int) -> torch.Tensor:
    """``per_pass`` copies of the batch, copy-major: [per_pass * N, 3, H, W], in its layout."""
    return _same_layout(b.x.repeat(per_pass, 1, 1, 1), b.x)


def grad_floor(b: Bench, to: tuple[str, ...], copies: int = 1, per_pass: int = 1) -> Candidate:
    """Forward + one backward of the summed target scores of ``copies`` copies of the batch,
    ``per_pass`` copies a pass, to: ``"layer"`` (the graph starts at the layer's output unless
    the input is also asked for), ``"input"``, ``"biases"`` (the output of every module with a
    bias), ``"clamps"`` (the output of every clamping activation, ReLU6 and Hardtanh).
    ``("layer", "input")``: one backward to the layer, then one to the input (two
    different backward rules, as Guided Grad-CAM needs)."""
    model, layer = b.model, b.layer
    xs, index = _copies(b, per_pass), b.index.repeat(per_pass, 1)
    before_frozen, after_frozen = _frozen(model)
    recorded = [m for m in model.modules()
                if ("biases" in to and isinstance(getattr(m, "bias", None), torch.nn.Parameter))
                or ("clamps" in to and isinstance(m, torch.nn.Hardtanh))]
    state = {}

    def layer_hook(module, inputs, output):
        if "input" in to:
            state["A"] = output
            return None
        state["A"] = output.detach().requires_grad_(True)
        return state["A"]

    def record_hook(module, inputs, output):
        state["recorded"].append(output)

    def before():
        before_frozen()
        state["handles"] = [layer.register_forward_hook(layer_hook)] if "layer" in to else []
        state["handles"] += [m.register_forward_hook(record_hook) for m in recorded]

    def after():
        for h in state.pop("handles"):
            h.remove()
        state.clear()
        after_frozen()

    def run():
        for start in range(0, copies, per_pass):
            k = min(per_pass, copies - start) * b.n
            inputs = xs[:k].detach().requires_grad_("input" in to)
            state["recorded"] = []
            score = model(inputs).gather(1, index[:k]).sum()
            if to == ("layer", "input"):
                torch.autograd.grad(score, state["A"], retain_graph=True)
                torch.autograd.grad(score, inputs)
            else:
                wanted = ([state["A"]] if "layer" in to else []) + ([inputs] if "input" in to else []) \
                    + state["recorded"]
                torch.autograd.grad(score, wanted)

    return Candidate(run, before, after)


def forward_floor(b: Bench, images: int, per_pass: int, clean: bool = False) -> Candidate:
    """``images`` perturbed images through the model without gradients, ``per_pass`` a pass
    (a batch of half-darkened copies built before, passed as often as needed), after one clean
    pass of the batch when ``clean``."""
    model = b.model
    per_pass = max(1, min(per_pass, images))
    reps = -(-per_pass // b.n)
    chunk = _same_layout(b.x.repeat(reps, 1, 1, 1)[:per_pass] * 0.5, b.x)

    @torch.no_grad()
    def run():
        if clean:
            model(b.x)
        for start in range(0, images, per_pass):
            model(chunk[:min(per_pass, images - start)])

    return Candidate(run)


def ablation_floor(b: Bench) -> Candidate:
    """One clean pass recording the layer, then per image ``K / batch_size`` passes of the part
    after the layer on ``batch_size`` copies of its activations, channel j zeroed in copy j (the
    ablation is the method's own work; Ablation-CAM with tail_only:
    one image goes in, the layer's forward returns the copies without computing, the copies
    start at the layer)."""
    model, layer, bs = b.model, b.layer, b.o("batch_size")
    state = {}

    def record(module, inputs, output):
        state["A"] = output

    def copies(*args, **kwargs):  # the ablation itself: k copies, channel start + j zeroed in copy j
        i, start, k = state["i"], state["start"], state["k"]
        ablated = state["A"][i:i + 1].expand(k, *state["A"].shape[1:]).clone()
        ablated[torch.arange(k), torch.arange(start, start + k)] = 0
        return ablated

    @torch.no_grad()
    def run():
        h = layer.register_forward_hook(record)
        try:
            model(b.x)
        finally:
            h.remove()
        channels = state["A"].shape[1]
        layer.forward = copies
        try:
            for i in range(b.n):
                for start in range(0, channels, bs):
                    state.update(i=i, start=start, k=min(bs, channels - start))
                    model(b.x[i:i + 1])
        finally:
            del layer.forward
        state.clear()

    return Candidate(run)


def _channels(b: Bench) -> int:
    found = {}
    h = b.layer.register_forward_hook(lambda m, i, o: found.__setitem__("k", o.shape[1]))
    try:
        with torch.no_grad():
            b.model(b.x[:1])
    finally:
        h.remove()
    return found["k"]


def _ours_images(b: Bench, method: str) -> int:
    """The model images ours passes for a method whose count the samples decide (anchors)."""
    e = _explain(b, method)
    return e.forward_passes * b.n


def sobel_floor(b: Bench) -> Candidate:
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], device=b.x.device)
    kernel = torch.stack([kx, kx.T])[:, None]

    def run():
        g = torch.nn.functional.conv2d(torch.nn.functional.pad(b.x.mean(1, keepdim=True), (1, 1, 1, 1),
                                                               mode="replicate"), kernel)
        return g.pow(2).sum(1).sqrt()

    return Candidate(run)


def random_floor(b: Bench) -> Candidate:
    generator = torch.Generator(device=b.x.device).manual_seed(0)
    shape = (b.n, *b.x.shape[-2:])
    return Candidate(lambda: torch.rand(shape, generator=generator, device=b.x.device))


@dataclass(frozen=True)
class Floor:
    """The least work a method needs: ``text`` says it, ``make(bench)`` builds the callable."""

    text: str
    make: Callable[[Bench], Candidate]


_LAYER = Floor("forward whose graph starts at the layer + backward to the layer",
               lambda b: grad_floor(b, ("layer",)))
_INPUT = Floor("forward + backward to the input", lambda b: grad_floor(b, ("input",)))
_FORWARD = Floor("forward without gradients", lambda b: forward_floor(b, 0, 1, clean=True))
_FULLGRAD = Floor("forward + backward to the input and to the output of every module with a bias and of every "
                  "clamping activation (ReLU6: its implicit bias)", lambda b: grad_floor(b, ("input", "biases", "clamps")))


def _n_copies(steps: str, kind: tuple[str, ...]) -> Callable[[Bench], Candidate]:
    return lambda b: grad_floor(b, kind, copies=b.o(steps), per_pass=b.o("batch_size"))


#: The floor of every registered method (tests/benchmarks/test_speed_cli.py fails for a method without one).
FLOORS: dict[str, Floor] = {
    "saliency": _INPUT,
    "input_x_gradient": _INPUT,
    "guided_backprop": _INPUT,
    "deconvnet": _INPUT,
    "lrp": _INPUT,
    "integrated_gradients": Floor("forward + backward to the input of `steps` copies, `batch_size` copies a pass",
                                  _n_copies("steps", ("input",))),
    "smoothgrad": Floor("forward + backward to the input of `n_samples` noisy copies, `batch_size` copies a pass",
                        _n_copies("n_samples", ("input",))),
    "gradient_shap": Floor("forward + backward to the input of `n_samples` copies, `batch_size` copies a pass",
                           _n_copies("n_samples", ("input",))),
    "deep_shap": Floor("forward + backward to the input of the batch and its 6 default baselines together "
                       "(2 x 6 images per image, one pass)",
                       lambda b: grad_floor(b, ("input",), copies=12, per_pass=12)),
    "fullgrad": _FULLGRAD,
    "simple_fullgrad": _FULLGRAD,
    "cam": _FORWARD,
    "eigencam": _FORWARD,
    "gradcam": _LAYER,
    "gradcampp": _LAYER,
    "xgradcam": _LAYER,
    "hirescam": _LAYER,
    "layercam": _LAYER,
    "guided_gradcam": Floor("forward from the input + backward to the layer + backward to the input",
                            lambda b: grad_floor(b, ("layer", "input"))),
    "smoothgradcampp": Floor("forward whose graph starts at the layer + backward to the layer, for `n_samples` "
                             "noisy copies, `batch_size` copies a pass", _n_copies("n_samples", ("layer",))),
    "scorecam": Floor("a clean forward, then K x N masked images (K channels of the layer) without gradients, "
                      "`batch_size` a pass",
                      lambda b: forward_floor(b, _channels(b) * b.n, b.o("batch_size"), clean=True)),
    "ablationcam": Floor("a clean forward, then per image K ablated copies through the part after the layer, "
                         "`batch_size` a pass", ablation_floor),
    "rise": Floor("`n_masks` x N masked images without gradients, max(1, batch_size // N) masks of the N images "
                  "a pass", lambda b: forward_floor(b, b.o("n_masks") * b.n, max(1, b.o("batch_size") // b.n) * b.n)),
    "occlusion": Floor("a clean forward, then one occluded image per window position and image without gradients, "
                       "max(1, batch_size // N) positions of the N images a pass",
                       lambda b: forward_floor(b, _windows(b) * b.n, max(1, b.o("batch_size") // b.n) * b.n,
                                               clean=True)),
    "lime": Floor("`num_samples` perturbed images per image without gradients, `batch_size` a pass",
                  lambda b: forward_floor(b, b.o("num_samples") * b.n, b.o("batch_size"))),
    "anchors": Floor("as many perturbed images as ours passed (the sampling decides how many) without gradients, "
                     "`model_batch_size` a pass",
                     lambda b: forward_floor(b, _ours_images(b, "anchors"), b.o("model_batch_size"))),
    "random": Floor("N x H x W uniform random numbers", random_floor),
    "sobel": Floor("two 3x3 convolutions of the channel mean and the magnitude", sobel_floor),
}


def _windows(b: Bench) -> int:
    """Occlusion's window positions per image at ours' settings (from ours' own count of them)."""
    rows, cols = _explain(b, "occlusion").extras["windows"]
    return int(rows) * int(cols)


#: Why a method cannot meet the targets, by construction only (never from a measurement).
WHY_NOT: dict[str, str] = {
    "lime": "ours calls lime's own LimeImageExplainer.explain_instance (with the same segmentation, samples and "
            "batches as the peer) and adds its bookkeeping, so it cannot be faster than the peer, only tie",
    "anchors": "ours calls alibi's own AnchorImage.explain and adds its bookkeeping, so it cannot be faster than "
               "the peer; the sampling is sequential (each round's samples depend on the precision estimated so "
               "far), so its passes cannot be merged into large batches",
    "deep_shap": "ours calls captum's DeepLiftShap with DeepLIFT's rescale rule extended to ReLU6: at every "
                 "activation it keeps the input and the output and computes a ratio per element, work that the "
                 "floor (a plain gradient of the batch and its baselines) and the peer (captum passes the plain "
                 "gradient through ReLU6, which it does not list, so its attributions are not complete on this "
                 "model) do not do; ours also adds two no-grad forwards for the completeness gap",
    "fullgrad": "the map is made of every bias part of the network: for each batch norm and each ReLU6 the "
                "gradient at its output times its bias, then that part's absolute value, its minimum and maximum per "
                "image and its channel sum, elementwise passes over every activation of the network (with the "
                "signed channel sums kept for the completeness check); the floor, forward + backward to the same "
                "outputs, stops before them. The peer does the same and resizes every channel with cv2",
    "simple_fullgrad": "as fullgrad: the map rescales and sums the gradient at every batch norm and ReLU6 output "
                       "(and the bias parts are kept for the completeness check), elementwise passes over every "
                       "activation of the network that the floor, forward + backward to the same outputs, does not do",
    "lrp": "LRP's rules are not the gradient: under epsilon-plus-flat every convolution but the first (z-plus) "
           "and the first (flat) evaluates its layer again with modified weights in the backward pass, and each "
           "batch norm is folded into copies of the weights; the floor, a plain gradient, does none of this",
    "random": "the floor is a few microseconds of arithmetic; explain()'s fixed per-call work (checks, context, "
              "seeded generator, copy to CPU) is of the same order, so the ratio measures that fixed cost",
    "sobel": "the floor is two 3x3 convolutions of one channel; explain()'s fixed per-call work (checks, context, "
             "copy to CPU) is of the same order, so the ratio measures that fixed cost",
}


# --- peers --------------------------------------------------------------------------------------

@dataclass
class Peer:
    make: Callable[[Bench], Candidate]
    max_batch: int | None = None
    note: str = ""


def captum_peer(cls_name: str, layer: bool = False, upsample: bool = False, wrap: str | None = None,
                no_grad: bool = False, note: str = "", **attribute_kwargs) -> Peer:
    """A captum attribution object built outside the timed call; ``attribute`` is timed.
    Callable values of ``attribute_kwargs`` are called with the bench."""

    def make(b: Bench) -> Candidate:
        import captum.attr as ca

        x = b.x.clone()
        explainer = getattr(ca, cls_name)(b.model, b.layer) if layer else getattr(ca, cls_name)(b.model)
        if wrap is not None:
            explainer = getattr(ca, wrap)(explainer)
        kwargs = {key: (value(b) if callable(value) else value) for key, value in attribute_kwargs.items()}

        def run():
            with torch.no_grad() if no_grad else contextlib.nullcontext():
                out = explainer.attribute(x, target=b.targets, **kwargs)
            return ca.LayerAttribution.interpolate(out, tuple(x.shape[-2:]), "bilinear") if upsample else out

        return Candidate(run)

    return Peer(make, note=note)


def captum_forward_peer(cls_name: str, note: str = "", **attribute_kwargs) -> Peer:
    """captum's perturbation attributions on softmax(model) (ours measures the probability)."""

    def make(b: Bench) -> Candidate:
        import captum.attr as ca

        explainer = getattr(ca, cls_name)(lambda inputs: torch.softmax(b.model(inputs), dim=1))
        kwargs = {key: (value(b) if callable(value) else value) for key, value in attribute_kwargs.items()}

        @torch.no_grad()
        def run():
            return explainer.attribute(b.x, target=b.targets, **kwargs)

        return Candidate(run)

    return Peer(make, note=note)


def grad_cam_peer(cls_name: str, use_layer: bool = True, batch_size: bool = False, max_batch: int | None = None,
                  note: str = "") -> Peer:
    """A pytorch_grad_cam CAM object, constructed untimed before each call and its hooks released
    untimed after it (so they never slow the other candidates); the call is timed."""

    def make(b: Bench) -> Candidate:
        import pytorch_grad_cam
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        x = b.x.clone()
        targets = [ClassifierOutputTarget(c) for c in b.targets]
        state = {}

        def before():
            cam = getattr(pytorch_grad_cam, cls_name)(model=b.model, target_layers=[b.layer] if use_layer else [])
            if batch_size:
                cam.batch_size = b.o("batch_size")
            state["cam"] = cam

        def after():
            state.pop("cam").activations_and_grads.release()

        return Candidate(lambda: state["cam"](input_tensor=x, targets=targets), before, after)

    return Peer(make, max_batch, note)


def torchcam_peer(cls_name: str, scores: bool = True, **kwargs) -> Peer:
    """A torchcam extractor, constructed untimed before each call and its hooks removed after;
    the model's forward (with grad when the extractor backpropagates) and the extractor call
    are timed. Callable values of ``kwargs`` are called with the bench."""

    def make(b: Bench) -> Candidate:
        from torchcam import methods as tcm

        x = b.x.clone()
        state = {}
        options = {key: (value(b) if callable(value) else value) for key, value in kwargs.items()}

        def before():
            state["ex"] = getattr(tcm, cls_name)(b.model, target_layer=LAYER, **options)

        def run():
            if scores:
                return state["ex"](class_idx=b.targets, scores=b.model(x))
            with torch.no_grad():
                b.model(x)
            return state["ex"](class_idx=b.targets)

        def after():
            state.pop("ex").remove_hooks()

        return Candidate(run, before, after)

    return Peer(make)


def _pixels(b: Bench) -> list[np.ndarray]:
    return [b.clf.to_pixels(img).permute(1, 2, 0).cpu().numpy().astype(np.float64) for img in b.x]


def lime_peer() -> Peer:
    """lime's LimeImageExplainer.explain_instance per image, with ours' segmentation (quickshift
    4/200/0.2, lime's default), samples, batch size and the one target label."""

    def make(b: Bench) -> Candidate:
        from lime.lime_image import LimeImageExplainer
        from lime.wrappers.scikit_image import SegmentationAlgorithm

        images = _pixels(b)
        segmenter = SegmentationAlgorithm("quickshift", kernel_size=4, max_dist=200, ratio=0.2, random_seed=0)

        @torch.no_grad()
        def classifier_fn(batch: np.ndarray) -> np.ndarray:
            t = torch.as_tensor(batch, dtype=torch.float32, device=b.x.device).permute(0, 3, 1, 2)
            return torch.softmax(b.model(b.clf.from_pixels(t)), dim=1).double().cpu().numpy()

        def run():
            with contextlib.redirect_stderr(open(os.devnull, "w")):
                for image, target in zip(images, b.targets):
                    LimeImageExplainer(random_state=0).explain_instance(
                        image, classifier_fn, labels=(target,), top_labels=None, num_samples=b.o("num_samples"),
                        batch_size=b.o("batch_size"), segmentation_fn=segmenter)

        return Candidate(run)

    return Peer(make)


def alibi_peer() -> Peer:
    """alibi's AnchorImage.explain per image: slic with 10 segments (its and ours' default), the
    same threshold, p_sample (0.5), sample batch, model batch and largest anchor."""

    def make(b: Bench) -> Candidate:
        from alibi.explainers import AnchorImage

        images = [img.astype(np.float32) for img in _pixels(b)]

        def predictor(target):
            @torch.no_grad()
            def predict(batch: np.ndarray) -> np.ndarray:
                out = []
                for i in range(0, len(batch), b.o("model_batch_size")):
                    t = torch.as_tensor(batch[i:i + b.o("model_batch_size")], dtype=torch.float32,
                                        device=b.x.device).permute(0, 3, 1, 2)
                    out.append(b.model(b.clf.from_pixels(t)).argmax(1) == target)
                return torch.cat(out).long().cpu().numpy()

            return predict

        def run():
            for image, target in zip(images, b.targets):
                AnchorImage(predictor(target), image.shape, segmentation_fn="slic",
                            segmentation_kwargs={"n_segments": 10}, seed=0).explain(
                    image, threshold=b.o("threshold"), p_sample=0.5, batch_size=b.o("batch_size"),
                    max_anchor_size=b.o("max_anchor_size"))

        return Candidate(run)

    return Peer(make)


def zennit_peer() -> Peer:
    """zennit's EpsilonPlusFlat composite (ours' default rule) with its batch-norm canonizer, R = y_c
    at the output. The composite and canonizer are put on the model untimed before each call and
    taken off after it; the forward and backward pass are timed."""

    def make(b: Bench) -> Candidate:
        from zennit.attribution import Gradient
        from zennit.canonizers import SequentialMergeBatchNorm
        from zennit.composites import EpsilonPlusFlat

        x = b.x.clone()
        onehot = torch.nn.functional.one_hot(torch.tensor(b.targets, device=x.device), 1000).to(x.dtype)
        state = {}

        def before():
            state["attributor"] = Gradient(b.model, EpsilonPlusFlat(canonizers=[SequentialMergeBatchNorm()]))
            state["attributor"].__enter__()

        def run():
            return state["attributor"](x, lambda out: onehot * out)[1]

        def after():
            state.pop("attributor").__exit__(None, None, None)

        return Candidate(run, before, after)

    return Peer(make, note="zennit splits EfficientNet-Lite0's functional residual sums by their gradient "
                           "(it has no canonizer for them); the work per pass is the same")


RELU_ONLY = ("captum overrides the backward of nn.ReLU modules only; EfficientNet-Lite0's rectifiers are "
             "nn.ReLU6 (a Hardtanh), so captum computes the plain gradient here")


def _noise_std(b: Bench) -> float:
    """captum's stdevs is one number: noise * (max - min) of the whole batch (ours uses each
    image's range; the cost is the same)."""
    return float(b.o("noise") * (b.x.max() - b.x.min()))


def _captum_baselines(b: Bench) -> torch.Tensor:
    """Six baselines for captum's GradientShap / DeepLiftShap (ours draws six per image by default)."""
    return torch.zeros(6, *b.x.shape[1:], device=b.x.device) + torch.linspace(-1, 1, 6, device=b.x.device
                                                                              ).view(6, 1, 1, 1)


PEERS: dict[str, dict[str, Peer]] = {
    "saliency": {"captum.Saliency": captum_peer("Saliency", abs=True)},
    "input_x_gradient": {"captum.InputXGradient": captum_peer("InputXGradient")},
    "integrated_gradients": {"captum.IntegratedGradients": captum_peer(
        "IntegratedGradients", baselines=0.0, method="gausslegendre", n_steps=lambda b: b.o("steps"),
        internal_batch_size=lambda b: b.o("batch_size") * b.n)},
    "smoothgrad": {"captum.NoiseTunnel(Saliency)": captum_peer(
        "Saliency", wrap="NoiseTunnel", nt_type="smoothgrad", nt_samples=lambda b: b.o("n_samples"),
        nt_samples_batch_size=lambda b: b.o("batch_size"), stdevs=_noise_std, abs=True)},
    "gradient_shap": {"captum.GradientShap": captum_peer(
        "GradientShap", baselines=_captum_baselines, n_samples=lambda b: b.o("n_samples"),
        note="captum draws all n_samples copies in one pass (no batch option)")},
    "deep_shap": {"captum.DeepLiftShap": captum_peer("DeepLiftShap", baselines=_captum_baselines)},
    "guided_backprop": {"captum.GuidedBackprop": captum_peer("GuidedBackprop", note=RELU_ONLY)},
    "deconvnet": {"captum.Deconvolution": captum_peer("Deconvolution", note=RELU_ONLY)},
    "lrp": {"zennit.EpsilonPlusFlat": zennit_peer()},
    "cam": {"torchcam.CAM": torchcam_peer("CAM", scores=False, fc_layer="classifier")},
    "gradcam": {"captum.LayerGradCam": captum_peer("LayerGradCam", layer=True, upsample=True, relu_attributions=True),
                "pytorch_grad_cam.GradCAM": grad_cam_peer("GradCAM"),
                "torchcam.GradCAM": torchcam_peer("GradCAM")},
    "gradcampp": {"pytorch_grad_cam.GradCAMPlusPlus": grad_cam_peer("GradCAMPlusPlus"),
                  "torchcam.GradCAMpp": torchcam_peer("GradCAMpp")},
    "xgradcam": {"pytorch_grad_cam.XGradCAM": grad_cam_peer("XGradCAM"),
                 "torchcam.XGradCAM": torchcam_peer("XGradCAM")},
    "hirescam": {"pytorch_grad_cam.HiResCAM": grad_cam_peer("HiResCAM")},
    "layercam": {"pytorch_grad_cam.LayerCAM": grad_cam_peer("LayerCAM"),
                 "torchcam.LayerCAM": torchcam_peer("LayerCAM")},
    "guided_gradcam": {"captum.GuidedGradCam": captum_peer("GuidedGradCam", layer=True, note=RELU_ONLY)},
    "smoothgradcampp": {"torchcam.SmoothGradCAMpp": torchcam_peer(
        "SmoothGradCAMpp", num_samples=lambda b: b.o("n_samples"), std=lambda b: b.o("sigma"))},
    "scorecam": {"pytorch_grad_cam.ScoreCAM": grad_cam_peer("ScoreCAM", batch_size=True),
                 "torchcam.ScoreCAM": torchcam_peer("ScoreCAM", scores=False, batch_size=lambda b: b.o("batch_size"))},
    "ablationcam": {"pytorch_grad_cam.AblationCAM": grad_cam_peer("AblationCAM", batch_size=True)},
    "eigencam": {"pytorch_grad_cam.EigenCAM": grad_cam_peer("EigenCAM")},
    "fullgrad": {"pytorch_grad_cam.FullGrad": grad_cam_peer(
        "FullGrad", use_layer=False, max_batch=1,
        note="batch 1 only: it resizes every bias-gradient channel to the input size with cv2 "
             "(gigabytes at batch 16)")},
    "simple_fullgrad": {"pytorch_grad_cam.FullGrad": grad_cam_peer(
        "FullGrad", use_layer=False, max_batch=1, note="the full FullGrad (grad-cam has no simple variant); "
                                                       "batch 1 only")},
    "occlusion": {"captum.Occlusion": captum_forward_peer(
        "Occlusion", baselines=0.0, sliding_window_shapes=lambda b: (3, b.o("window"), b.o("window")),
        strides=lambda b: (3, b.o("stride"), b.o("stride")),
        perturbations_per_eval=lambda b: max(1, b.o("batch_size") // b.n))},
    "lime": {"lime.LimeImageExplainer": lime_peer()},
    "anchors": {"alibi.AnchorImage": alibi_peer()},
    "rise": {},
    "random": {},
    "sobel": {},
}


# --- running ------------------------------------------------------------------------------------

def _explain(b: Bench, method: str):
    with contextlib.redirect_stderr(open(os.devnull, "w")):
        return xai_lab.explain(b.clf, b.x, method=method, target=b.targets, seed=0, progress=False, **b.options)


def make_input(clf, n: int, side: int, device, channels_last: bool = False) -> torch.Tensor:
    """scikit-image's coffee and chelsea alternating, preprocessed, at ``side`` x ``side``,
    channels-last in memory with ``channels_last``."""
    from skimage import data

    pair = torch.stack([clf.preprocess(data.coffee()), clf.preprocess(data.chelsea())])
    if side != pair.shape[-1]:
        pair = torch.nn.functional.interpolate(pair, size=(side, side), mode="bilinear", align_corners=False)
    x = pair.repeat((n + 1) // 2, 1, 1, 1)[:n].to(device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _guarded(name: str, candidate: Candidate, failed: dict) -> Candidate:
    """A failing candidate is recorded and skipped afterwards; the others go on."""

    def safe(step, always: bool = False):
        if step is None:
            return None

        def call():
            if name in failed and not always:
                return None
            try:
                return step()
            except Exception as exc:  # recorded in the row, never hidden
                failed.setdefault(name, f"{type(exc).__name__}: {exc}")
                return None

        return call

    return Candidate(safe(candidate.run), safe(candidate.before), safe(candidate.after, always=True))


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def run_method(name: str, b: Bench, repeats: int, warmup: int, budget: float = 0.0) -> dict:
    """One row: ours, the floor and the peers of one method at one batch size."""
    candidates = {"ours": Candidate(lambda: _explain(b, name)), "floor": FLOORS[name].make(b)}
    skipped, notes = {}, {}
    for peer_name, peer in PEERS[name].items():
        if peer.max_batch is not None and b.n > peer.max_batch:
            skipped[peer_name] = peer.note or f"batch sizes up to {peer.max_batch} only"
            continue
        try:
            candidates[peer_name] = peer.make(b)
        except Exception as exc:  # a peer that cannot be built is reported, the rest are timed
            skipped[peer_name] = f"error: {type(exc).__name__}: {exc}"
            continue
        if peer.note:
            notes[peer_name] = peer.note
    failed: dict[str, str] = {}
    guarded = {k: _guarded(k, c, failed) for k, c in candidates.items()}
    with contextlib.redirect_stdout(sys.stderr):
        timings = time_interleaved(guarded, repeats=repeats, warmup=warmup, device=b.device,
                                   budget_seconds=budget)
        memory = {k: peak_memory(c, b.device) for k, c in guarded.items() if k not in failed}
    for role in ("ours", "floor"):
        if role in failed:
            raise RuntimeError(f"{role} failed: {failed[role]}")
    seconds = {k: timings[k].median for k in candidates if k not in failed}
    mb = {k: round(m["bytes"] / 2**20, 1) for k, m in memory.items()}
    peers = {}
    for peer_name in candidates:
        if peer_name in ("ours", "floor"):
            continue
        if peer_name in failed:
            skipped[peer_name] = f"error: {failed[peer_name]}"
            continue
        peers[peer_name] = {"seconds": round(seconds[peer_name], 5),
                            "ours_over_peer": _ratio(seconds["ours"], seconds[peer_name]),
                            "peak_memory_mb": mb[peer_name],
                            "times_s": timings[peer_name].as_dict(5)["times_s"]}
        if peer_name in notes:
            peers[peer_name]["note"] = notes[peer_name]
    fastest = min(peers, key=lambda p: peers[p]["seconds"], default=None)
    leanest = min(peers, key=lambda p: peers[p]["peak_memory_mb"], default=None)
    row = {
        "method": name, "batch": b.n, "family": method_spec(name).family,
        "ours_seconds": round(seconds["ours"], 5), "floor_seconds": round(seconds["floor"], 5),
        "ours_over_floor": _ratio(seconds["ours"], seconds["floor"]),
        "peers": peers, "fastest_peer": fastest,
        "ours_over_fastest_peer": _ratio(seconds["ours"], seconds[fastest]) if fastest else None,
        "peak_memory_mb": {"ours": mb["ours"], "floor": mb["floor"],
                           **{p: e["peak_memory_mb"] for p, e in peers.items()}},
        "best_memory_peer": leanest,
        "ours_memory_over_best_peer": _ratio(mb["ours"], mb[leanest]) if leanest else None,
        "memory_method": memory["ours"]["method"],
        "floor": FLOORS[name].text, "settings": dict(b.options),
        "times_s": {k: timings[k].as_dict(5)["times_s"] for k in ("ours", "floor")},
        "why_not": WHY_NOT.get(name),
    }
    if skipped:
        row["peers_not_timed"] = skipped
    return row


def write_csv(path: Path, rows: list[dict]) -> None:
    """One line per method, batch size and candidate."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "batch", "candidate", "seconds", "ours_over_candidate", "peak_memory_mb", "why_not"])
        for r in rows:
            w.writerow([r["method"], r["batch"], "ours", r["ours_seconds"], 1.0, r["peak_memory_mb"]["ours"],
                        r["why_not"] or ""])
            w.writerow([r["method"], r["batch"], "floor", r["floor_seconds"], r["ours_over_floor"],
                        r["peak_memory_mb"]["floor"], ""])
            for p, e in r["peers"].items():
                w.writerow([r["method"], r["batch"], p, e["seconds"], e["ours_over_peer"], e["peak_memory_mb"], ""])


def summary(rows: list[dict]) -> str:
    head = ("method", "batch", "ours s", "x floor", "x fastest peer", "ours MB", "best peer MB")
    lines = [head]
    for r in rows:
        best = r["peak_memory_mb"].get(r["best_memory_peer"]) if r["best_memory_peer"] else None
        lines.append((r["method"], str(r["batch"]), f"{r['ours_seconds']:.4f}", f"{r['ours_over_floor']}",
                      f"{r['ours_over_fastest_peer'] if r['fastest_peer'] else '-'}", f"{r['peak_memory_mb']['ours']}",
                      "-" if best is None else f"{best}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines)


def parse_list(parser, text: str, what: str, choices=None, kind=str) -> list:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        parser.error(f"--{what}: give at least one value")
    if kind is int:
        try:
            items = [positive_int(t) for t in items]
        except argparse.ArgumentTypeError as e:
            parser.error(f"--{what}: {e}")
    if choices is not None:
        unknown = [t for t in items if t not in choices]
        if unknown:
            parser.error(f"--{what}: unknown {', '.join(unknown)}; choose from {', '.join(choices)}")
    return list(dict.fromkeys(items))


def read_earlier(parser, args) -> dict | None:
    """The report already in ``--out`` for ``--append``, or None where there is none yet."""
    path = args.out / "speed.json"
    if not path.exists():
        return None
    earlier = json.loads(path.read_text())
    now = {"device": args.device, "threads": torch.get_num_threads(), "repeats": args.repeats, "warmup": args.warmup,
           "budget_seconds": args.budget, "quick": args.quick,
           "memory_format": "channels_last" if args.channels_last else "contiguous (NCHW)"}
    earlier.setdefault("budget_seconds", 0.0)  # runs from before --budget timed exactly --repeats rounds
    differ = [f"{k} {earlier.get(k)!r} there, {v!r} here" for k, v in now.items() if earlier.get(k) != v]
    if differ:
        parser.error(f"--append: {path} was measured otherwise: {'; '.join(differ)}")
    return earlier


def merge_reports(earlier: dict, new: dict) -> dict:
    """``new``'s rows and errors added to ``earlier``'s (a row of the same method and batch replaced);
    the environment is the newest run's, every run's command, commit and load kept in ``runs``."""
    key = lambda r: (r["method"], r["batch"])  # noqa: E731
    fresh = {key(r) for r in new["rows"]}
    rows = [r for r in earlier["rows"] if key(r) not in fresh] + new["rows"]
    order = {m: i for i, m in enumerate(xai_lab.methods())}
    rows.sort(key=lambda r: (r["batch"], order.get(r["method"], len(order))))
    errors = {k: v for k, v in earlier.get("errors", {}).items()
              if tuple(k.rsplit("@", 1)) not in {(m, str(n)) for m, n in fresh}}
    errors.update(new["errors"])
    merged = {**new, "rows": rows, "errors": errors,
              "batch_sizes": sorted(set(earlier["batch_sizes"]) | set(new["batch_sizes"])),
              "runs": earlier.get("runs", [{k: earlier.get(k) for k in ("command", "commit", "load_average_1_5_15",
                                                                        "total_seconds")}]) + new["runs"],
              "total_seconds": round(earlier.get("total_seconds", 0) + new["total_seconds"], 1)}
    merged["command"] = " && ".join(r["command"] for r in merged["runs"])
    return merged


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common(parser, out=(DEFAULT_OUT, "folder for speed.json and speed.csv (a versioned results folder)"),
               seed_help=None)
    parser.add_argument("--methods", default="all", help="comma-separated registered methods (default: all)")
    parser.add_argument("--batch-sizes", default="1,16", help="comma-separated batch sizes (default: 1,16)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed rounds (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls of each candidate first")
    parser.add_argument("--budget", type=float, default=10.0,
                        help="seconds of timed rounds per method and batch size: where one round (every candidate "
                             "once, estimated from the warm-up) is cheap, as many rounds as fit, up to 200 (at least "
                             "--repeats; 0: exactly --repeats)")
    parser.add_argument("--channels-last", action="store_true",
                        help="the input (of every candidate) and the floors' batches channels-last in memory")
    parser.add_argument("--quick", action="store_true", help="tiny settings on 64x64 inputs (tests; numbers mean "
                                                             "nothing)")
    parser.add_argument("--append", action="store_true",
                        help="add this run's rows to the speed.json already in --out (same device, threads, layout, "
                             "repeats and settings kind); a row of the same method and batch size is replaced")
    args = parser.parse_args(argv)
    registered = xai_lab.methods()
    methods = registered if args.methods == "all" else parse_list(parser, args.methods, "methods", registered)
    batch_sizes = parse_list(parser, args.batch_sizes, "batch-sizes", kind=int)
    if args.warmup < 0:
        parser.error(f"--warmup: must be at least 0, got {args.warmup}")
    if args.budget < 0:
        parser.error(f"--budget: must be at least 0, got {args.budget}")
    check_device(parser, args.device)
    missing = [m for m in methods if m not in FLOORS]
    if missing:
        parser.error(f"no floor for {', '.join(missing)}: add it to FLOORS in benchmarks/speed.py")

    threads = set_threads(args.threads)
    earlier = read_earlier(parser, args) if args.append else None
    start_load = os.getloadavg()
    start = time.perf_counter()
    settings = {m: dict(QUICK.get(m, {})) if args.quick else full_settings(m, args.device) for m in methods}
    clf = xai_lab.load_model()
    clf.model.to(args.device)
    rows, errors = [], {}
    command = " ".join(["python", "benchmarks/speed.py", *(sys.argv[1:] if argv is None else argv)])

    def save(finished: bool) -> dict:
        """speed.json and speed.csv as they stand: written after every method, so that a killed run keeps
        the rows it finished (``"finished": false`` until the last)."""
        load = {"start": [round(v, 2) for v in start_load], "end": [round(v, 2) for v in os.getloadavg()]}
        report = {
            "command": command,
            **environment(),
            "load_average_1_5_15": load,
            "device": args.device, "threads": threads, "repeats": args.repeats, "warmup": args.warmup,
            "budget_seconds": args.budget, "quick": args.quick, "batch_sizes": batch_sizes,
            "memory_format": "channels_last" if args.channels_last else "contiguous (NCHW)",
            "model": f"efficientnet_lite0 (ImageNet weights), input 3x{SIDE[args.quick]}x{SIDE[args.quick]}, "
                     f"layer '{LAYER}' for layer methods",
            "input": "scikit-image coffee and chelsea alternating; targets: the predicted classes, passed to every "
                     "candidate",
            "targets": TARGETS,
            "notes": ["seconds: median of the interleaved rounds; a ratio > 1 means ours is slower or larger",
                      "peak_memory_mb: the rise of the resident set (CPU; VmHWM reset before each call) or of "
                      "torch's allocated memory (CUDA) during one call of the candidate, after its timing; how and "
                      "its limits: the docstring of benchmarks/speed.py",
                      "ours: xai_lab.explain(clf, x, method, target=[...], seed=0), upsampling and copy to CPU "
                      "included; peers: objects built outside the timed call, hooks released after it"],
            "rows": list(rows), "errors": dict(errors),
            "total_seconds": round(time.perf_counter() - start, 1),
        }
        report["runs"] = [{"command": command, "commit": report["commit"], "load_average_1_5_15": load,
                           "methods": methods, "batch_sizes": batch_sizes, "total_seconds": report["total_seconds"],
                           "finished": finished}]
        if earlier is not None:
            report = merge_reports(earlier, report)
        report["finished"] = all(run.get("finished", True) for run in report["runs"])
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "speed.json").write_text(json.dumps(report, indent=1) + "\n")
        write_csv(args.out / "speed.csv", report["rows"])
        return report

    for n in batch_sizes:
        x = make_input(clf, n, SIDE[args.quick], args.device, args.channels_last)
        with torch.no_grad():
            targets = clf.model(x).argmax(1).tolist()
        for m in methods:
            print(f"[{time.perf_counter() - start:7.1f}s] {m} batch {n}", file=sys.stderr, flush=True)
            try:
                rows.append(run_method(m, Bench(clf, x, targets, settings[m], args.device), args.repeats,
                                       args.warmup, args.budget))
            except Exception as exc:  # one method failing is reported, the others go on
                errors[f"{m}@{n}"] = f"{type(exc).__name__}: {exc}"
            save(finished=False)
    report = save(finished=True)
    rows = report["rows"]
    print(summary(rows))
    if errors:
        print(json.dumps(errors, indent=1), file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
