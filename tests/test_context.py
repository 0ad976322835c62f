"""xai_lab.context: the batching loop, pass counting and the layer activations every CAM uses."""
import pytest
import torch

from xai_lab.context import Context, layer_activations


def _ctx(model, x, target=None, layer=None):
    named = (layer, dict(model.named_modules())[layer]) if layer else None
    return Context(model, x, target, named, None, torch.Generator().manual_seed(0), progress=False)


def test_batches_cover_every_item_once(tiny, tiny_input):
    ctx = _ctx(tiny, tiny_input)
    assert list(ctx.batches(7, 3)) == [(0, 3), (3, 3), (6, 1)]
    assert list(ctx.batches(0, 3)) == []
    with pytest.raises(ValueError, match="batch_size"):
        list(ctx.batches(4, 0))


def test_outputs_count_forward_images(tiny, tiny_input):
    ctx = _ctx(tiny, tiny_input)
    logits = ctx.outputs(iter([tiny_input, tiny_input[:1]]), total=2)
    assert logits.shape == (3, 5) and ctx.forward_images == 3
    probs = ctx.probabilities(iter([tiny_input]))
    assert torch.allclose(probs.sum(1), torch.ones(2))


def test_layer_activations_by_hand(tiny, tiny_input):
    """A = the layer's output; G = d y_c / d A by autograd on the whole network; one pass each."""
    ctx = _ctx(tiny, tiny_input, target=[1, 3], layer="act2")
    A, G, scores = layer_activations(ctx, gradients=True)
    a = tiny.act2(tiny.conv2(tiny.act1(tiny.conv1(tiny_input)))).detach().requires_grad_(True)
    y = tiny.fc(tiny.flatten(tiny.pool(a)))
    (g,) = torch.autograd.grad(y[[0, 1], [1, 3]].sum(), a)
    assert torch.allclose(A, a) and torch.allclose(G, g) and torch.allclose(scores, y[[0, 1], [1, 3]].detach())
    assert ctx.forward_images == 2 and ctx.backward_images == 2
    assert all(p.requires_grad for p in tiny.parameters())
    A2, none, _ = layer_activations(ctx)
    assert none is None and torch.allclose(A2, a)


def test_layer_activations_of_noisy_copies(tiny, tiny_input):
    ctx = _ctx(tiny, tiny_input, target=[0, 4], layer="act2")
    copies = torch.cat([tiny_input, tiny_input + 0.1])
    A, G, scores = layer_activations(ctx, gradients=True, inputs=copies, repeats=2)
    assert A.shape[0] == G.shape[0] == scores.shape[0] == 4
    assert torch.allclose(scores, tiny(copies)[[0, 1, 2, 3], [0, 4, 0, 4]].detach())
