"""The 4x4 stride-2 layers computed as matrix products: the same function, gradients and
parameters as torch's convolutions."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dcgan_data.convolution import Conv4x4, ConvTranspose4x4

LAYERS = [
    (Conv4x4, nn.Conv2d, lambda x, w: F.conv2d(x, w, stride=2, padding=1)),
    (ConvTranspose4x4, nn.ConvTranspose2d,
     lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1)),
]


@pytest.mark.parametrize(("ours", "_", "reference"), LAYERS)
@pytest.mark.parametrize("side", [4, 8])
@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format])
def test_output_and_gradients_equal_torchs(ours, _, reference, side, layout):
    torch.manual_seed(0)
    layer = ours(5, 7).double()
    x = torch.randn(3, 5, side, side, dtype=torch.float64).contiguous(memory_format=layout)
    x.requires_grad_(True)
    y = layer(x)
    expected = reference(x, layer.weight)
    assert y.shape == expected.shape
    assert torch.allclose(y, expected, atol=1e-12)
    grad_y = torch.randn_like(expected)
    got = torch.autograd.grad(y, [x, layer.weight], grad_y)
    want = torch.autograd.grad(expected, [x, layer.weight], grad_y)
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize(("ours", "_", "__"), LAYERS)
def test_gradcheck(ours, _, __):
    torch.manual_seed(1)
    layer = ours(2, 3).double()
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))


@pytest.mark.parametrize(("ours", "plain", "_"), LAYERS)
def test_parameters_are_the_plain_layers(ours, plain, _):
    """Checkpoints and exported weights do not change: a plain layer's state dict loads."""
    torch.manual_seed(2)
    theirs = plain(6, 4, 4, 2, 1, bias=False)
    layer = ours(6, 4)
    assert layer.state_dict().keys() == theirs.state_dict().keys()
    layer.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 6, 8, 8)
    assert torch.allclose(layer(x), theirs(x), atol=1e-5)


@pytest.mark.parametrize(("ours", "_", "reference"), LAYERS)
def test_autocast_runs_in_its_dtype_and_keeps_fp32_weight_gradients(ours, _, reference):
    torch.manual_seed(3)
    layer = ours(16, 8)
    x = torch.randn(4, 16, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.bfloat16
    y.float().square().sum().backward()
    assert layer.weight.grad.dtype == torch.float32
    weight = layer.weight.detach().requires_grad_(True)
    reference(x, weight).square().sum().backward()
    error = (layer.weight.grad - weight.grad).norm() / weight.grad.norm()
    assert error < 0.02  # bf16 rounding, not a different function
