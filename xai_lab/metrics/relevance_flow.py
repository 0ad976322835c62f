"""Where a relevance propagation sends the score: the total relevance that reaches the input of
chosen modules of the network (Bach et al. 2015, "On Pixel-Wise Explanations for Non-Linear
Classifier Decisions by Layer-Wise Relevance Propagation"; Montavon et al. 2019, "Layer-wise
relevance propagation: an overview").

In the modified-gradient form of LRP (``xai_lab.methods.lrp``), the relevance of a layer's input
``a`` is ``R = a * c`` with ``c`` the modified gradient that reaches ``a``. A conserving
propagation keeps sum(R) equal to the explained score y_c at every layer; biases, batch-norm
shifts and the rules' stabilizers let part of it leak (or, for the epsilon rule, grow). This
module measures sum(R) / y_c at the input of every module asked for, and at the image.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..capture import forward_hooks, resolve_layer
from ..explain import explain


def relevance_at_inputs(classifier_or_model, x: torch.Tensor, modules: Mapping[str, str | nn.Module],
                        method: str = "lrp", target=None, **options) -> dict[str, torch.Tensor]:
    """Per image, the share of the explained score that reaches the input of each module:
    ``{label: sum(a * c) / y_c [N]}`` for every ``label -> module`` (a name or the module) of
    ``modules``, then ``"image"``: sum of the map's attribution [N, 3, H, W] / y_c. ``method``: a
    relevance method whose ``extras`` hold ``attribution`` and ``score`` (``lrp``); ``options``
    go to it. A module must run once per forward pass. Hooks are removed on exit, also on errors."""
    model = getattr(classifier_or_model, "model", classifier_or_model)
    by_module = {}
    for label, module in modules.items():
        _, found = resolve_layer(model, module)
        if found in by_module:
            raise ValueError(f"modules {by_module[found]!r} and {label!r} are the same module")
        by_module[found] = label
    totals: dict[str, torch.Tensor] = {}
    seen: set[str] = set()

    def record(module, inputs, output):
        a = inputs[0]
        label = by_module[module]
        if label in seen or not a.requires_grad:
            raise RuntimeError(f"module {label!r} runs more than once per forward pass, or its input carries "
                               "no gradient: choose another module")
        seen.add(label)
        a.register_hook(lambda c: totals.__setitem__(label, (a.detach() * c).flatten(1).sum(1)))

    with forward_hooks(list(by_module), record):
        e = explain(classifier_or_model, x, method=method, target=target, **options)
    missing = [label for label in modules if label not in totals]
    if missing:
        raise RuntimeError(f"no relevance reached the input of {missing}: the score does not depend on them")
    score = e.extras["score"].detach().flatten()
    shares = {label: totals[label] / score for label in modules}
    shares["image"] = e.extras["attribution"].flatten(1).sum(1) / score
    return shares
