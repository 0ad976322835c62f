"""Speed of xai_lab's gradient and CAM methods against captum, grad-cam (pytorch_grad_cam) and
torchcam on EfficientNet-Lite0 at 224x224, and against the bare passes they cannot avoid.

    python benchmarks/speed_gradient_cam.py [--device cpu] [--threads N] [--repeats 3] [--warmup 1]
        [--batch-sizes 1,16] [--methods gradcam,saliency] [--full] [--output FILE]

Prints JSON. Per method and batch size: our median seconds (``xai_lab.explain``, explicit
targets), each peer's median on the same input, layer ("features", 1280x7x7), targets and
settings, and ``ours_over_peer``. Single-pass methods also get the floor, timed in the same
rounds: a bare forward (gradient-free CAMs), forward + ``autograd.grad`` of the summed target
logits down to the recorded ``features`` output only (gradient CAMs), or down to the input
(input-gradient methods), and ``ours_over_floor``. Candidates of one method are timed in
alternation (see ``_timing.py``), so load on a shared machine hits all of them alike.

Expensive methods run with reduced settings, the same for us and every peer, and by default at
batch size 1 only, Score-CAM without warm-up and with one repeat (``--full`` lifts both); all of
it is written to the JSON. A method of the list that ``xai_lab.methods()`` does not know is
listed under ``"missing"``.
"""
from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # the peers' progress bars (grad-cam's Score-/Ablation-CAM)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Callable  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_common, set_threads  # noqa: E402
from _timing import Candidate, environment, time_interleaved  # noqa: E402

import xai_lab  # noqa: E402
from xai_lab.registry import method_spec  # noqa: E402

LAYER = "features"
N_STEPS = 16          # integrated gradients
N_SAMPLES = 8         # smoothgrad, smooth grad-cam++
SMOOTHGRAD_NOISE = 0.15
SGCAMPP_SIGMA = 0.3
MASK_BATCH = 32       # score-cam / ablation-cam copies per forward


@dataclass
class Bench:
    """The input of one timing group."""

    clf: object
    x: torch.Tensor
    targets: list[int]
    layer_name: str

    @property
    def model(self) -> torch.nn.Module:
        return self.clf.model

    @property
    def layer(self) -> torch.nn.Module:
        return dict(self.model.named_modules())[self.layer_name]

    @property
    def n(self) -> int:
        return self.x.shape[0]


@dataclass
class Peer:
    make: Callable[[Bench], Candidate]
    max_batch: int | None = None
    note: str = ""


@dataclass
class Spec:
    """floor: the bare passes a single-pass method is compared with ("forward", "layer",
    "input", "layer+input"), None for multi-pass methods."""

    floor: str | None
    ours: Callable[[Bench], dict] = lambda b: {}
    peers: dict[str, Peer] = field(default_factory=dict)
    max_batch: int | None = None
    warmup: int | None = None
    max_repeats: int | None = None
    settings: dict = field(default_factory=dict)


# --- peers ----------------------------------------------------------------------------------

def captum_peer(cls_name: str, layer: bool = False, upsample: bool = False, wrap: str | None = None,
                note: str = "", **attribute_kwargs) -> Peer:
    """A captum attribution object built outside the timed call; ``attribute`` is timed."""

    def make(b: Bench) -> Candidate:
        import captum.attr as ca

        x = b.x.clone()
        explainer = getattr(ca, cls_name)(b.model, b.layer) if layer else getattr(ca, cls_name)(b.model)
        if wrap is not None:
            explainer = getattr(ca, wrap)(explainer)
        kwargs = {key: (value(b) if callable(value) else value) for key, value in attribute_kwargs.items()}

        def run():
            out = explainer.attribute(x, target=b.targets, **kwargs)
            return ca.LayerAttribution.interpolate(out, tuple(x.shape[-2:]), "bilinear") if upsample else out

        return Candidate(run)

    return Peer(make, note=note)


def grad_cam_peer(cls_name: str, use_layer: bool = True, batch_size: int | None = None,
                  max_batch: int | None = None, note: str = "") -> Peer:
    """A pytorch_grad_cam CAM object, constructed untimed before each timed call and its hooks
    released untimed after it (so they never slow the other candidates); the call with
    ClassifierOutputTarget targets is timed."""

    def make(b: Bench) -> Candidate:
        import pytorch_grad_cam
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        x = b.x.clone()
        targets = [ClassifierOutputTarget(c) for c in b.targets]
        state = {}

        def before():
            cam = getattr(pytorch_grad_cam, cls_name)(model=b.model, target_layers=[b.layer] if use_layer else [])
            if batch_size is not None:
                cam.batch_size = batch_size
            state["cam"] = cam

        def after():
            state.pop("cam").activations_and_grads.release()

        return Candidate(lambda: state["cam"](input_tensor=x, targets=targets), before, after)

    return Peer(make, max_batch, note)


def torchcam_peer(cls_name: str, scores: bool = True, **kwargs) -> Peer:
    """A torchcam extractor, constructed untimed before each call and its hooks removed after;
    the model's forward (with grad when the extractor backpropagates) and the extractor call
    (class indices, normalized 7x7 maps as it returns them) are timed."""

    def make(b: Bench) -> Candidate:
        from torchcam import methods as tcm

        x = b.x.clone()
        state = {}

        def before():
            state["ex"] = getattr(tcm, cls_name)(b.model, target_layer=b.layer_name, **kwargs)

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


RELU_ONLY = ("captum overrides the backward of nn.ReLU modules only; EfficientNet-Lite0's rectifiers are "
             "nn.ReLU6 (a Hardtanh), so captum computes the plain gradient here (ours modifies all 33 ReLU6)")


def _noise_std(b: Bench) -> float:
    """captum's stdevs is one number: SMOOTHGRAD_NOISE * (max - min) of the whole batch (ours
    uses each image's range; the cost is the same)."""
    return float(SMOOTHGRAD_NOISE * (b.x.max() - b.x.min()))


SPECS: dict[str, Spec] = {
    "saliency": Spec("input", peers={"captum.Saliency": captum_peer("Saliency", abs=True)}),
    "input_x_gradient": Spec("input", peers={"captum.InputXGradient": captum_peer("InputXGradient")}),
    "integrated_gradients": Spec(
        None, lambda b: {"steps": N_STEPS, "baseline": 0.0, "batch_size": N_STEPS},
        {"captum.IntegratedGradients": captum_peer(
            "IntegratedGradients", baselines=0.0, n_steps=N_STEPS, method="gausslegendre",
            internal_batch_size=lambda b: N_STEPS * b.n)},
        max_batch=1,
        settings={"n_steps": N_STEPS, "baseline": 0.0, "quadrature": "gauss-legendre",
                  "images_per_forward": "n_steps * N (all steps in one batch, both)",
                  "ours_extra": "2 no-grad forwards for the completeness delta"}),
    "smoothgrad": Spec(
        None, lambda b: {"n_samples": N_SAMPLES, "noise": SMOOTHGRAD_NOISE, "batch_size": N_SAMPLES},
        {"captum.NoiseTunnel(Saliency)": captum_peer(
            "Saliency", wrap="NoiseTunnel", nt_type="smoothgrad", nt_samples=N_SAMPLES,
            nt_samples_batch_size=N_SAMPLES, stdevs=_noise_std, abs=True)},
        max_batch=1,
        settings={"n_samples": N_SAMPLES, "noise": f"{SMOOTHGRAD_NOISE} * (max - min)",
                  "images_per_forward": "n_samples * N (both)"}),
    "guided_backprop": Spec("input", peers={"captum.GuidedBackprop": captum_peer("GuidedBackprop", note=RELU_ONLY)}),
    "deconvnet": Spec("input", peers={"captum.Deconvolution": captum_peer("Deconvolution", note=RELU_ONLY)}),
    "cam": Spec("forward", peers={"torchcam.CAM": torchcam_peer("CAM", scores=False, fc_layer="classifier")}),
    "gradcam": Spec("layer", peers={
        "captum.LayerGradCam": captum_peer("LayerGradCam", layer=True, upsample=True, relu_attributions=True),
        "pytorch_grad_cam.GradCAM": grad_cam_peer("GradCAM"),
        "torchcam.GradCAM": torchcam_peer("GradCAM")}),
    "gradcampp": Spec("layer", peers={
        "pytorch_grad_cam.GradCAMPlusPlus": grad_cam_peer("GradCAMPlusPlus"),
        "torchcam.GradCAMpp": torchcam_peer("GradCAMpp")}),
    "xgradcam": Spec("layer", peers={
        "pytorch_grad_cam.XGradCAM": grad_cam_peer("XGradCAM"),
        "torchcam.XGradCAM": torchcam_peer("XGradCAM")}),
    "hirescam": Spec("layer", peers={"pytorch_grad_cam.HiResCAM": grad_cam_peer("HiResCAM")}),
    "layercam": Spec("layer", peers={
        "pytorch_grad_cam.LayerCAM": grad_cam_peer("LayerCAM"),
        "torchcam.LayerCAM": torchcam_peer("LayerCAM")}),
    "guided_gradcam": Spec("layer+input", peers={
        "captum.GuidedGradCam": captum_peer("GuidedGradCam", layer=True, note=RELU_ONLY)}),
    "smoothgradcampp": Spec(
        None, lambda b: {"n_samples": N_SAMPLES, "sigma": SGCAMPP_SIGMA},
        {"torchcam.SmoothGradCAMpp": torchcam_peer("SmoothGradCAMpp", num_samples=N_SAMPLES, std=SGCAMPP_SIGMA)},
        max_batch=1,
        settings={"n_samples": N_SAMPLES, "sigma": SGCAMPP_SIGMA,
                  "images_per_forward": "ours: 8 noisy copies of the N images at once (default batch_size=8); "
                                        "torchcam: one copy of the N images at a time"}),
    "scorecam": Spec(
        None, lambda b: {"batch_size": MASK_BATCH, "score": "logit"},
        {"pytorch_grad_cam.ScoreCAM": grad_cam_peer("ScoreCAM", batch_size=MASK_BATCH),
         "torchcam.ScoreCAM": torchcam_peer("ScoreCAM", scores=False, batch_size=MASK_BATCH)},
        max_batch=1, warmup=0, max_repeats=1,
        settings={"channels": 1280, "masked_inputs_per_forward": MASK_BATCH, "ours_score": "logit",
                  "warmup_and_repeats": "no warm-up and one timed call each (unless --full): a call is 1280 "
                                        "forward passes, 40 batches, so it warms itself up and varies little"}),
    "ablationcam": Spec(
        None, lambda b: {"batch_size": MASK_BATCH},
        {"pytorch_grad_cam.AblationCAM": grad_cam_peer("AblationCAM", batch_size=MASK_BATCH)},
        max_batch=1,
        settings={"channels": 1280, "ablated_copies_per_forward": MASK_BATCH,
                  "note": "layer 'features' is everything before the pooling: both run only pool + classifier "
                          "on the ablated copies"}),
    "eigencam": Spec("forward", peers={"pytorch_grad_cam.EigenCAM": grad_cam_peer("EigenCAM")}),
    "fullgrad": Spec("input", peers={"pytorch_grad_cam.FullGrad": grad_cam_peer(
        "FullGrad", use_layer=False, max_batch=1,
        note="batch 1 only: it resizes each of the 21008 bias-gradient channels to 224x224 with cv2 "
             "(about 4 GB per layer at batch 16)")}),
    "simple_fullgrad": Spec("input", peers={"pytorch_grad_cam.FullGrad": grad_cam_peer(
        "FullGrad", use_layer=False, max_batch=1,
        note="the full FullGrad (grad-cam has no simple variant); batch 1 only")}),
}


# --- floors ----------------------------------------------------------------------------------

def floor_candidates(b: Bench, kind: str) -> dict[str, Candidate]:
    model, x = b.model, b.x.clone()
    index = torch.tensor(b.targets, device=x.device).view(-1, 1)
    found = {}

    def forward():
        with torch.no_grad():
            model(x)

    def to_layer():
        logits = model(x)
        torch.autograd.grad(logits.gather(1, index).sum(), found["A"])

    def to_input():
        xi = x.detach().requires_grad_(True)
        torch.autograd.grad(model(xi).gather(1, index).sum(), xi)

    def hook_on():
        found["handle"] = b.layer.register_forward_hook(lambda m, i, o: found.__setitem__("A", o))

    def hook_off():
        found.pop("handle").remove()
        found.pop("A", None)

    make = {"forward": lambda: Candidate(forward), "layer": lambda: Candidate(to_layer, hook_on, hook_off),
            "input": lambda: Candidate(to_input)}
    return {f"floor:{part}": make[part]() for part in kind.split("+")}


FLOOR_NAMES = {"forward": "forward (no grad)", "layer": "forward + backward to the 'features' output",
               "input": "forward + backward to the input"}


# --- running ----------------------------------------------------------------------------------

def make_input(clf, n: int, kind: str, device) -> torch.Tensor:
    if kind == "random":
        return torch.randn(n, 3, 224, 224, generator=torch.Generator().manual_seed(0)).to(device)
    from skimage import data

    pair = torch.stack([clf.preprocess(data.coffee()), clf.preprocess(data.chelsea())])
    return pair.repeat((n + 1) // 2, 1, 1, 1)[:n].to(device)


def run_group(name: str, spec: Spec, b: Bench, args) -> dict:
    """Time ours, the floors and the peers of one method at one batch size."""
    record = {}
    last = {}
    options = spec.ours(b)

    def ours():
        last["explanation"] = xai_lab.explain(b.clf, b.x, method=name, target=b.targets, seed=0, progress=False,
                                              **options)

    candidates: dict[str, Candidate] = {"ours": Candidate(ours)}
    if spec.floor is not None:
        candidates.update(floor_candidates(b, spec.floor))
    peer_notes, skipped = {}, {}
    for peer_name, peer in spec.peers.items():
        if peer.max_batch is not None and b.n > peer.max_batch:
            skipped[peer_name] = peer.note or f"batch sizes up to {peer.max_batch} only"
            continue
        try:
            candidates[peer_name] = peer.make(b)
        except Exception as exc:  # a peer that cannot be built is reported, the rest are timed
            skipped[peer_name] = f"error: {type(exc).__name__}: {exc}"
            continue
        if peer.note:
            peer_notes[peer_name] = peer.note

    failed: dict[str, str] = {}

    def guarded(cand_name: str, candidate: Candidate) -> Candidate:
        """A failing candidate is recorded and skipped in the later rounds; the others go on."""

        def safe(step, always: bool = False):
            if step is None:
                return None

            def call():
                if cand_name in failed and not always:
                    return None
                try:
                    return step()
                except Exception as exc:
                    failed.setdefault(cand_name, f"{type(exc).__name__}: {exc}")
                    return None

            return call

        return Candidate(safe(candidate.run), safe(candidate.before), safe(candidate.after, always=True))

    warmup, repeats = args.warmup, args.repeats
    if not args.full:
        warmup = warmup if spec.warmup is None else min(spec.warmup, warmup)
        repeats = repeats if spec.max_repeats is None else min(spec.max_repeats, repeats)
    timings = time_interleaved({k: guarded(k, c) for k, c in candidates.items()}, repeats=repeats,
                               warmup=warmup, device=args.device)
    if "ours" in failed:
        raise RuntimeError(failed["ours"])
    for cand_name, message in failed.items():
        if not cand_name.startswith("floor:"):
            skipped[cand_name] = f"error: {message}"
            del timings[cand_name]
    if any(k.startswith("floor:") for k in failed):
        raise RuntimeError(f"the floor failed: {failed}")

    ours_s = timings["ours"].median
    explanation = last["explanation"]
    record.update(repeats=repeats, warmup=warmup, ours_s=round(ours_s, 4),
                  ours_times_s=timings["ours"].as_dict()["times_s"],
                  ours_passes={"forward": explanation.forward_passes, "backward": explanation.backward_passes})
    if spec.floor is not None:
        parts = spec.floor.split("+")
        floor_s = sum(timings[f"floor:{p}"].median for p in parts)
        record["floor"] = {p: timings[f"floor:{p}"].as_dict() for p in parts}
        record["floor_s"] = round(floor_s, 4)
        record["ours_over_floor"] = round(ours_s / floor_s, 3)
    record["peers"] = {}
    for peer_name in spec.peers:
        if peer_name in timings:
            entry = timings[peer_name].as_dict()
            entry["ours_over_peer"] = round(ours_s / timings[peer_name].median, 3)
            if peer_name in peer_notes:
                entry["note"] = peer_notes[peer_name]
            record["peers"][peer_name] = entry
    if skipped:
        record["peers_not_timed"] = skipped
    return record


def summary_table(results: dict) -> str:
    rows = [("method", "batch", "ours s", "floor s", "ours/floor", "peer", "peer s", "ours/peer")]
    for name, method in results.items():
        for batch, rec in method.get("batch", {}).items():
            peers = list(rec["peers"].items()) or [("-", None)]
            for i, (peer, entry) in enumerate(peers):
                first = i == 0
                rows.append((name if first else "", batch if first else "",
                             f"{rec['ours_s']:.3f}" if first else "",
                             f"{rec['floor_s']:.3f}" if first and "floor_s" in rec else "",
                             f"{rec['ours_over_floor']:.2f}" if first and "ours_over_floor" in rec else "",
                             peer, f"{entry['median_s']:.3f}" if entry else "",
                             f"{entry['ours_over_peer']:.2f}" if entry else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common(parser, seed_help=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--methods", default=",".join(SPECS), help="comma-separated subset of: " + ", ".join(SPECS))
    parser.add_argument("--full", action="store_true",
                        help="no reductions: expensive methods at every batch size, with warm-up and all repeats")
    parser.add_argument("--input", choices=["images", "random"], default="images",
                        help="coffee + chelsea from scikit-image repeated (default) or seeded Gaussian noise")
    parser.add_argument("--output", help="also write the JSON to this file")
    args = parser.parse_args()

    wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in SPECS]
    if unknown:
        parser.error(f"no benchmark for {', '.join(unknown)}; choose from {', '.join(SPECS)}")
    batch_sizes = [int(s) for s in args.batch_sizes.split(",")]
    threads = set_threads(args.threads)
    env = environment()
    registered = set(xai_lab.methods())
    missing = [m for m in wanted if m not in registered]

    start = time.perf_counter()
    clf = xai_lab.load_model()
    clf.model.to(args.device)
    inputs = {n: make_input(clf, n, args.input, args.device) for n in batch_sizes}
    with torch.no_grad():
        targets = {n: clf.model(x).argmax(1).tolist() for n, x in inputs.items()}

    results, errors = {}, {}
    with contextlib.redirect_stdout(sys.stderr):  # anything the libraries print stays out of the JSON
        for name in wanted:
            if name in missing:
                continue
            spec = SPECS[name]
            method = {"family": method_spec(name).family,
                      "floor": " + ".join(FLOOR_NAMES[p] for p in spec.floor.split("+")) if spec.floor else None,
                      "single_pass": spec.floor is not None}
            if spec.settings:
                method["settings"] = spec.settings
            method["batch"] = {}
            for n in batch_sizes:
                if spec.max_batch is not None and n > spec.max_batch and not args.full:
                    method.setdefault("batch_sizes_skipped", []).append(n)
                    continue
                b = Bench(clf, inputs[n], targets[n], LAYER)
                method["ours_options"] = spec.ours(b)
                print(f"[{time.perf_counter() - start:6.1f}s] {name} batch {n}", file=sys.stderr, flush=True)
                try:
                    method["batch"][str(n)] = run_group(name, spec, b, args)
                except Exception as exc:  # our method failing is reported per method and batch size
                    errors[f"{name}@{n}"] = f"{type(exc).__name__}: {exc}"
            results[name] = method

    ratios = []
    for name, method in results.items():
        for batch, rec in method["batch"].items():
            row = {"method": name, "batch": int(batch), "ours_s": rec["ours_s"]}
            if "ours_over_floor" in rec:
                row["ours_over_floor"] = rec["ours_over_floor"]
            row["ours_over_peer"] = {p: e["ours_over_peer"] for p, e in rec["peers"].items()}
            ratios.append(row)

    report = {
        "model": "efficientnet_lite0 (ImageNet weights), input 3x224x224, layer 'features' (1280x7x7)",
        "input": ("scikit-image coffee and chelsea, alternating" if args.input == "images"
                  else "Gaussian noise, seed 0")
                 + "; targets: the predicted classes, passed explicitly to every library",
        "device": args.device,
        "threads": threads,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "batch_sizes": batch_sizes,
        "settings": {"n_steps": N_STEPS, "n_samples": N_SAMPLES, "smoothgrad_noise": SMOOTHGRAD_NOISE,
                     "smoothgradcampp_sigma": SGCAMPP_SIGMA, "score_ablation_batch": MASK_BATCH},
        "environment": env,
        "versions": _versions(),
        "notes": [
            "seconds are medians over the repeats; ours_over_peer > 1 means ours is slower",
            "ours: xai_lab.explain(clf, x, method, target=[...]), including the upsampling to 224x224 "
            "and the copy to CPU",
            "pytorch_grad_cam: the CAM object is constructed outside the timed call (as a user builds it once), "
            "its hooks released after each call so they do not slow the candidates timed in between; its timed call "
            "includes the min-max scaling and cv2 resize to 224x224 it always does",
            "torchcam: extractor built outside the timed call; timed: model forward + extractor call, returning "
            "normalized 7x7 maps (no upsampling)",
            "captum: explainer built outside the timed call; LayerGradCam is followed by a bilinear interpolate to 224",
            "the floors are timed in the same alternating rounds as the method (single-pass methods only)",
        ],
        "missing": missing,
        "errors": errors,
        "methods": results,
        "ratios": ratios,
        "total_seconds": round(time.perf_counter() - start, 1),
    }
    env["load_average_at_end"] = environment().get("load_average_1_5_15")
    text = json.dumps(report, indent=1)
    print(text)
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text + "\n")
    print(summary_table(results), file=sys.stderr)
    if missing:
        print(f"not registered in xai_lab.methods(): {', '.join(missing)}", file=sys.stderr)


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("torch", "captum", "grad-cam", "torchcam"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


if __name__ == "__main__":
    main()
