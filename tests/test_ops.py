"""xai_lab.ops: the input check, the baseline vocabulary, blurring and the option checks."""
import pytest
import torch

import xai_lab
from xai_lab.ops import (
    BASELINES,
    CPU_FORWARD_BATCH,
    baseline_image,
    check_fraction,
    check_input,
    check_positive,
    copies_fitting,
    copies_per_pass,
    forward_batch_size,
    gaussian_blur,
    model_device,
    model_dtype,
    upsample,
)


def test_check_input_shapes_and_types():
    assert check_input(torch.zeros(3, 4, 4)).shape == (1, 3, 4, 4)
    for bad, error in [(torch.zeros(2, 4, 4, 4), ValueError), (torch.zeros(1, 3, 4), ValueError),
                       (torch.zeros(0, 3, 4, 4), ValueError), (torch.zeros(1, 3, 4, 4, dtype=torch.long), TypeError),
                       (torch.full((1, 3, 4, 4), float("nan")), ValueError), ([[0.0]], TypeError),
                       (torch.zeros(1, 3, 1, 4), ValueError)]:
        with pytest.raises(error):
            check_input(bad)


def test_every_baseline_name(lite0):
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert set(BASELINES) == {"black", "zero", "mean", "blur"}
    assert torch.equal(baseline_image(x, "zero"), torch.zeros_like(x))
    assert torch.allclose(baseline_image(x, "black", lite0), torch.full_like(x, -1.0))  # Lite0: (0 - 0.5) / 0.5
    assert torch.allclose(baseline_image(x, "mean")[:, :, 3, 5], x.mean(dim=(2, 3)))
    assert torch.equal(baseline_image(x, "blur", sigma=2.0), gaussian_blur(x, 2.0))
    assert torch.equal(baseline_image(x, 0.25), torch.full_like(x, 0.25))
    with pytest.raises(ValueError, match="Classifier"):
        baseline_image(x, "black")
    with pytest.raises(ValueError, match="Unknown baseline"):
        baseline_image(x, "gray")


def test_gaussian_blur_keeps_constants_and_the_mean_of_a_symmetric_image():
    x = torch.full((1, 3, 12, 12), 0.7)
    assert torch.allclose(gaussian_blur(x, 1.5), x)
    impulse = torch.zeros(1, 1, 21, 21)
    impulse[0, 0, 10, 10] = 1
    blurred = gaussian_blur(impulse, 1.0)
    assert torch.isclose(blurred.sum(), torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(blurred, blurred.flip(-1)) and torch.allclose(blurred, blurred.transpose(-1, -2))
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(x, 0)


def test_upsample_is_the_identity_at_the_same_size():
    maps = torch.rand(2, 5, 5)
    assert upsample(maps, (5, 5)) is maps and upsample(maps, (10, 10)).shape == (2, 10, 10)


@pytest.mark.parametrize("value,kwargs,error", [
    (0, {}, ValueError), (-1, {"allow_zero": True}, ValueError), (1.5, {"integer": True}, TypeError),
    (True, {}, TypeError), ("3", {}, TypeError), (float("nan"), {}, ValueError)])
def test_check_positive(value, kwargs, error):
    with pytest.raises(error, match="opt"):
        check_positive("opt", value, **kwargs)


def test_check_positive_and_fraction_accept_their_ranges():
    check_positive("n", 3, integer=True)
    check_positive("s", 0.0, allow_zero=True)
    check_fraction("p", 1.0)
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\)"):
        check_fraction("p", 1.0, open_low=True, open_high=True)


def test_model_dtype_and_device_of_a_module_without_parameters():
    assert model_dtype(torch.nn.Identity()) == torch.float32
    assert model_device(torch.nn.Identity()) == torch.device("cpu")
    assert model_dtype(torch.nn.Linear(2, 2).double()) == torch.float64


def test_the_registry_imports_no_method():
    import ast
    import inspect

    import xai_lab.registry as registry

    tree = ast.parse(inspect.getsource(registry))
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if "methods" in m or m.startswith(".")], imported
    assert xai_lab.methods() == sorted(xai_lab.registry._REGISTRY)


def test_forward_batch_size_is_small_on_a_cpu_and_the_callers_elsewhere():
    assert forward_batch_size(None, "cpu", accelerator=100) == CPU_FORWARD_BATCH
    assert forward_batch_size(None, torch.device("cpu"), accelerator=100) == CPU_FORWARD_BATCH
    assert forward_batch_size(None, torch.device("cuda", 0), accelerator=100) == 100  # no GPU needed to name one
    assert forward_batch_size(None, "meta", accelerator=7) == 7
    assert forward_batch_size(37, "cpu", accelerator=100) == 37
    with pytest.raises(ValueError, match="batch_size"):
        forward_batch_size(0, "cpu", accelerator=100)
    with pytest.raises(TypeError, match="batch_size"):
        forward_batch_size(2.5, "cpu", accelerator=100)


def test_copies_fitting_is_whole_copies_of_the_batch_and_at_least_one():
    assert copies_fitting(64, 1) == 64
    assert copies_fitting(64, 5) == 12  # 60 images a pass, not 64
    assert copies_fitting(4, 16) == 1


def test_copies_per_pass_keep_a_cpu_pass_near_the_cpu_batch():
    assert copies_per_pass(None, 1, "cpu", accelerator=16) == CPU_FORWARD_BATCH
    assert copies_per_pass(None, 2, "cpu", accelerator=16) == CPU_FORWARD_BATCH // 2
    assert copies_per_pass(None, 16, "cpu", accelerator=16) == 1  # at least one copy
    assert copies_per_pass(None, 1, torch.device("cuda", 0), accelerator=16) == 16
    assert copies_per_pass(5, 16, "cpu", accelerator=16) == 5
    with pytest.raises(ValueError, match="batch_size"):
        copies_per_pass(0, 1, "cpu", accelerator=16)
