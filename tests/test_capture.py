"""xai_lab.capture: hooks and replaced forwards leave nothing behind, act on their own thread only."""
import threading

import pytest
import torch
from torch import nn

from xai_lab.capture import forward_hooks, replaced_forward


def test_replaced_forward_computes_the_replacement_and_is_restored_after_an_exception():
    layer = nn.Linear(3, 2)
    x = torch.ones(1, 3)
    own = layer(x)
    with pytest.raises(RuntimeError, match="inside"):
        with replaced_forward(layer, lambda inputs: torch.zeros(1, 2)):
            assert torch.equal(layer(x), torch.zeros(1, 2))
            raise RuntimeError("inside")
    assert "forward" not in vars(layer)
    assert torch.equal(layer(x), own)


def test_replaced_forward_keeps_hooks_and_an_instance_forward():
    layer = nn.Identity()
    calls = []
    layer.forward = lambda inputs: inputs + 1  # an instance attribute, restored as it was
    instance_forward = layer.forward
    with forward_hooks([layer], lambda module, inputs, output: calls.append(output.item())):
        with replaced_forward(layer, lambda inputs: inputs * 10):
            layer(torch.tensor(2.0))
        layer(torch.tensor(2.0))
    assert calls == [20.0, 3.0]
    assert vars(layer)["forward"] is instance_forward


def test_replaced_forward_leaves_other_threads_alone():
    layer = nn.Identity()
    seen = {}
    entered, done = threading.Event(), threading.Event()

    def other():
        entered.wait()
        seen["other"] = layer(torch.tensor(1.0)).item()
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with replaced_forward(layer, lambda inputs: inputs - 5):
        entered.set()
        done.wait(10)
        seen["owner"] = layer(torch.tensor(1.0)).item()
    thread.join()
    assert seen == {"other": 1.0, "owner": -4.0}
