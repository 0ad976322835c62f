"""Test helpers that compute with plain hooks and autograd, independently of xai_lab's plumbing."""
import torch


def layer_output(model, name, x):
    """(output of layer ``name`` with its graph, logits), recorded with a plain forward hook."""
    store = {}
    handle = dict(model.named_modules())[name].register_forward_hook(lambda m, i, o: store.update(a=o))
    try:
        logits = model(x)
    finally:
        handle.remove()
    return store["a"], logits


def activations_and_gradients(model, x, target, layer):
    """(A, dy_target/dA, y_target) at ``layer``."""
    a, out = layer_output(model, layer, x)
    (g,) = torch.autograd.grad(out[:, target].sum(), a)
    return a.detach(), g, out[:, target].detach()
