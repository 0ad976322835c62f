"""Deep feature factorization (Collins, Achanta & Süsstrunk 2018, "Deep Feature Factorization
for Concept Discovery"): the activations of a layer over a batch of images, one row per spatial
position, factorized with non-negative matrix factorization,

    V [N*h*w, K] ~= W [N*h*w, k] H [k, K],    W, H >= 0,

give k concepts: H_c is a direction in feature space, W[:, c] where in each image it appears.
The classifier's last linear layer, applied to H_c as if it were a pooled feature vector, says
which classes a concept speaks for.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .capture import LayerRecorder, model_and_layer
from .ops import check_input, eval_mode, upsample


@dataclass
class Factorization:
    """The result of :func:`deep_feature_factorization`.

    ``maps`` [N, k, H, W]: where each concept is, upsampled to the input size (>= 0; each
    concept's maximum over the batch is 1). ``layer_maps`` [N, k, h, w]: the same at the layer's
    resolution. ``concepts`` [k, K]: H, scaled so that H_c is the feature vector at the position
    where concept c is strongest. ``reconstruction_error``: ||V - W H||_F. ``top_classes``: per
    concept, the top (class name, softmax probability) of the classifier head applied to H_c
    (None when the layer does not feed the head)."""

    maps: torch.Tensor
    layer_maps: torch.Tensor
    concepts: torch.Tensor
    reconstruction_error: float
    top_classes: list[list[tuple[str, float]]] | None
    layer: str
    n_iter: int


def nndsvda(v: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-negative double SVD initialization (Boutsidis & Gallopoulos 2008) of V [m, K] >= 0:
    for each singular triplet (s, u, v) keep the positive or negative parts of u and v,
    whichever pair has the larger norm product; zeros are then filled with mean(V) ("a" variant,
    so that multiplicative updates can move them)."""
    u, s, vt = torch.linalg.svd(v, full_matrices=False)
    w = torch.zeros(v.shape[0], rank, dtype=v.dtype, device=v.device)
    h = torch.zeros(rank, v.shape[1], dtype=v.dtype, device=v.device)
    w[:, 0] = s[0].sqrt() * u[:, 0].abs()
    h[0] = s[0].sqrt() * vt[0].abs()
    for j in range(1, rank):
        x, y = u[:, j], vt[j]
        pos = (x.clamp_min(0), y.clamp_min(0))
        neg = ((-x).clamp_min(0), (-y).clamp_min(0))
        norms_pos = (pos[0].norm(), pos[1].norm())
        norms_neg = (neg[0].norm(), neg[1].norm())
        m_pos, m_neg = norms_pos[0] * norms_pos[1], norms_neg[0] * norms_neg[1]
        (a, b), (na, nb), sigma = (pos, norms_pos, m_pos) if m_pos > m_neg else (neg, norms_neg, m_neg)
        if sigma == 0:
            continue
        scale = (s[j] * sigma).sqrt()
        w[:, j] = scale * a / na
        h[j] = scale * b / nb
    tiny = 1e-6
    w[w < tiny] = 0
    h[h < tiny] = 0
    mean = v.mean()
    w[w == 0] = mean
    h[h == 0] = mean
    return w, h


def random_init(v: torch.Tensor, rank: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """|N(0, 1)| entries scaled by sqrt(mean(V) / rank), so that W H has V's mean scale."""
    scale = (v.mean() / rank).sqrt()
    w = torch.randn(v.shape[0], rank, generator=generator, dtype=v.dtype, device=v.device).abs() * scale
    h = torch.randn(rank, v.shape[1], generator=generator, dtype=v.dtype, device=v.device).abs() * scale
    return w, h


def nmf(v: torch.Tensor, rank: int, init: str = "nndsvda", seed: int = 0, max_iter: int = 1000,
        tol: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor, int]:
    """V [m, K] >= 0 ~= W H by Lee & Seung's (2001) multiplicative updates for ||V - W H||_F^2:
    H <- H * (W^T V) / (W^T W H), W <- W * (V H^T) / (W H H^T). Stops after ``max_iter``
    iterations, or when over 10 iterations the error fell by less than ``tol`` times the
    initial error. Returns (W, H, iterations); ``seed`` only matters for ``init="random"``."""
    if init == "nndsvda":
        w, h = nndsvda(v, rank)
    elif init == "random":
        w, h = random_init(v, rank, torch.Generator(device=v.device).manual_seed(seed))
    else:
        raise ValueError(f"init must be 'nndsvda' or 'random', not {init!r}")
    eps = torch.finfo(v.dtype).eps
    first = previous = torch.linalg.norm(v - w @ h)
    done = 0
    for done in range(1, max_iter + 1):
        h = h * (w.T @ v) / (w.T @ w @ h).clamp_min(eps)
        w = w * (v @ h.T) / (w @ (h @ h.T)).clamp_min(eps)
        if done % 10 == 0 and tol > 0:
            error = torch.linalg.norm(v - w @ h)
            if (previous - error) / first < tol:
                break
            previous = error
    return w, h, done


@torch.no_grad()
def deep_feature_factorization(classifier, images: torch.Tensor, layer=None, n_concepts: int = 5, seed: int = 0,
                               max_iter: int = 1000, tol: float = 1e-5, init: str = "nndsvda",
                               top_k: int = 3) -> Factorization:
    """Deep feature factorization (Collins et al. 2018) of ``layer``'s activations (default: the
    classifier's ``default_layer``) over ``images`` [N, 3, H, W] into ``n_concepts`` concepts.

    The activations, one row per image and position, form V [N*h*w, K]; negative values
    (a layer before its ReLU) are set to 0. V ~= W H by :func:`nmf` in float64. Returns a
    :class:`Factorization`; ``top_k`` classes per concept come from the classifier's head."""
    model, clf, name = model_and_layer(classifier, layer)
    if not isinstance(n_concepts, int) or n_concepts < 1:
        raise ValueError(f"n_concepts must be a positive integer, got {n_concepts!r}")
    x = check_input(images).to(next(model.parameters()).device)
    with eval_mode(model), LayerRecorder(model, [name]) as rec:
        model(x)
        acts = rec[name]
    if acts.dim() != 4:
        raise ValueError(f"Layer {name!r} outputs shape {list(acts.shape)}; factorization needs a feature map [N, K, h, w]")
    n, k_channels, h, w = acts.shape
    if n_concepts > min(n * h * w, k_channels):
        raise ValueError(f"n_concepts={n_concepts} exceeds the rank of the {n * h * w} x {k_channels} activation "
                         f"matrix of layer {name!r}")
    v = acts.permute(0, 2, 3, 1).reshape(-1, k_channels).double().clamp_min(0)
    if not v.any():
        raise ValueError(f"Layer {name!r} has no positive activation on these images")
    wmat, hmat, n_iter = nmf(v, n_concepts, init=init, seed=seed, max_iter=max_iter, tol=tol)
    error = float(torch.linalg.norm(v - wmat @ hmat))
    peak = wmat.amax(dim=0).clamp_min(torch.finfo(wmat.dtype).tiny)
    wmat, hmat = wmat / peak, hmat * peak[:, None]
    layer_maps = wmat.T.reshape(n_concepts, n, h, w).transpose(0, 1).float()
    maps = upsample(layer_maps.reshape(n * n_concepts, h, w), x.shape[-2:]).reshape(n, n_concepts, *x.shape[-2:])
    concepts = hmat.float()
    return Factorization(maps=maps.cpu(), layer_maps=layer_maps.cpu(), concepts=concepts.cpu(),
                         reconstruction_error=error, top_classes=_top_classes(model, clf, concepts, top_k),
                         layer=name, n_iter=n_iter)


def _top_classes(model, clf, concepts: torch.Tensor, top_k: int):
    """Top-``top_k`` (class, probability) of the head applied to each concept vector, or None."""
    if clf is None or clf.head is None:
        return None
    head = dict(model.named_modules())[clf.head]
    if getattr(head, "in_features", None) != concepts.shape[1]:
        return None
    probs = torch.softmax(head(concepts.to(head.weight)), dim=1)
    top = probs.topk(min(top_k, probs.shape[1]), dim=1)
    return [[(clf.categories[i], float(p)) for p, i in zip(vals.tolist(), idx.tolist())]
            for vals, idx in zip(top.values, top.indices)]
