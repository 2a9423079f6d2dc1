"""The DCGAN layers computed as matrix products: the same function, gradients and parameters
as torch's own layers."""

import pytest
import torch
from torch import nn

from dcgan_data.train.cpu_layers import Conv4x4, ConvTranspose4x4, Projection, Readout

# (ours, torch's layer with the same parameters, an input side)
LAYERS = {
    "conv 4x4 stride 2": (lambda: Conv4x4(5, 7), lambda: nn.Conv2d(5, 7, 4, 2, 1, bias=False), 8),
    "conv 4x4 stride 2, 4x4 input": (lambda: Conv4x4(5, 7),
                                     lambda: nn.Conv2d(5, 7, 4, 2, 1, bias=False), 4),
    "transposed": (lambda: ConvTranspose4x4(5, 7),
                   lambda: nn.ConvTranspose2d(5, 7, 4, 2, 1, bias=False), 4),
    "transposed, 8x8 input": (lambda: ConvTranspose4x4(5, 7),
                              lambda: nn.ConvTranspose2d(5, 7, 4, 2, 1, bias=False), 8),
    "projection": (lambda: Projection(5, 7),
                   lambda: nn.ConvTranspose2d(5, 7, 4, 1, 0, bias=False), 1),
    "readout": (lambda: Readout(5, 1), lambda: nn.Conv2d(5, 1, 4, 1, 0, bias=False), 4),
}


def pair(name: str) -> tuple[nn.Module, nn.Module, int]:
    ours, plain, side = LAYERS[name]
    torch.manual_seed(0)
    layer, reference = ours().double(), plain().double()
    reference.load_state_dict(layer.state_dict())  # the same parameter names and shapes
    return layer, reference, side


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_output_and_gradients_equal_torchs(name, layout):
    layer, reference, side = pair(name)
    x = torch.randn(3, 5, side, side, dtype=torch.float64).contiguous(memory_format=layout)
    x.requires_grad_(True)
    y, expected = layer(x), reference(x)
    assert y.shape == expected.shape
    assert torch.allclose(y, expected, atol=1e-12)
    grad_y = torch.randn_like(expected)
    got = torch.autograd.grad(y, [x, layer.weight], grad_y)
    want = torch.autograd.grad(expected, [x, reference.weight], grad_y)
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("name", ["conv 4x4 stride 2", "transposed"])
def test_gradcheck(name):
    layer, _, side = pair(name)
    x = torch.randn(2, 5, side, side, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))


@pytest.mark.parametrize("name", LAYERS)
def test_autocast_runs_in_its_dtype_and_keeps_fp32_weight_gradients(name):
    layer, reference, side = pair(name)
    layer, reference = layer.float(), reference.float()
    x = torch.randn(4, 5, side, side)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.bfloat16
    y.float().square().sum().backward()
    assert layer.weight.grad.dtype == torch.float32
    reference(x).square().sum().backward()
    error = (layer.weight.grad - reference.weight.grad).norm() / reference.weight.grad.norm()
    assert error < 0.02  # bf16 rounding, not a different function


def test_second_derivatives_are_right_or_refused():
    """A gradient penalty differentiates the gradient: the transposed layer supports it, the
    strided one (its windows are saved outside autograd) refuses rather than answer wrong."""
    layer, _, side = pair("transposed")
    x = torch.randn(2, 5, side, side, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(layer, (x,))
    layer, _, side = pair("conv 4x4 stride 2")
    x = torch.randn(2, 5, side, side, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(layer(x).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|not have a grad_fn|twice"):
        grad.sum().backward()
