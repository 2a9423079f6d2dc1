"""The paper's DCGAN: shapes for each size, layer layout, initialisation."""

import io

import pytest
import torch
from torch import nn

from dcgan_data.train.model import Discriminator, Generator, build


@pytest.mark.parametrize("size", [32, 64, 128])
def test_shapes_and_depth_for_each_size(size):
    g, d = build(size, ngf=4, ndf=4)
    z = torch.rand(3, 100) * 2 - 1
    images = g(z)
    assert images.shape == (3, 3, size, size)
    assert images.min() >= -1 and images.max() <= 1  # tanh output
    assert d(images).shape == (3,)  # one logit per image
    up = sum(isinstance(m, nn.ConvTranspose2d) for m in g.modules())
    down = sum(isinstance(m, nn.Conv2d) for m in d.modules())
    stride2 = {32: 3, 64: 4, 128: 5}[size]
    assert up == stride2 + 1  # + the 4x4 projection
    assert down == stride2 + 1  # + the 4x4 -> logit layer


def test_paper_widths_at_64():
    g, d = Generator(64, ngf=128), Discriminator(64, ndf=128)
    projected = g.net[:3](torch.rand(2, 100, 1, 1))
    assert projected.shape == (2, 1024, 4, 4)  # the paper's 4x4x1024 projection
    features = d.net[:-1](torch.rand(2, 3, 64, 64))
    assert features.shape == (2, 1024, 4, 4)


def test_batchnorm_everywhere_but_g_output_and_d_input():
    g, d = build(64, ngf=4, ndf=4)
    g_layers, d_layers = list(g.net), list(d.net)
    assert isinstance(g_layers[-2], nn.ConvTranspose2d) and isinstance(g_layers[-1], nn.Tanh)
    assert isinstance(d_layers[0], nn.Conv2d) and isinstance(d_layers[1], nn.LeakyReLU)
    assert d_layers[1].negative_slope == 0.2
    g_bn = sum(isinstance(m, nn.BatchNorm2d) for m in g_layers)
    d_bn = sum(isinstance(m, nn.BatchNorm2d) for m in d_layers)
    assert g_bn == 4 and d_bn == 3  # every hidden layer except D's first
    assert not any(isinstance(m, nn.Sigmoid) for m in d.modules())  # BCE with logits
    assert any(isinstance(m, nn.ReLU) for m in g.modules())


def test_initialisation_follows_the_paper():
    torch.manual_seed(0)
    g, d = build(64, ngf=32, ndf=32)
    convs = [m.weight for m in [*g.modules(), *d.modules()]
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    weights = torch.cat([w.flatten() for w in convs])
    assert abs(weights.mean().item()) < 1e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.02)
    bn = torch.cat([m.weight for m in [*g.modules(), *d.modules()]
                    if isinstance(m, nn.BatchNorm2d)])
    assert bn.mean().item() == pytest.approx(1.0, abs=0.005)
    assert bn.std().item() == pytest.approx(0.02, rel=0.2)


def test_unsupported_size_is_refused():
    with pytest.raises(ValueError, match="size must be one of"):
        Generator(48)


def test_torch_layers_by_default_and_the_cpu_fast_path_the_same_function():
    from dcgan_data.train import cpu_layers as convolution

    fast_kinds = (convolution.Conv4x4, convolution.ConvTranspose4x4, convolution.Projection,
                  convolution.Readout)
    torch.manual_seed(0)
    g, d = build(64, ngf=8, ndf=8)
    assert not any(isinstance(m, fast_kinds) for m in [*g.modules(), *d.modules()])
    torch.manual_seed(0)
    fast_g, fast_d = build(64, ngf=8, ndf=8, cpu_fast_path=True)
    assert sum(isinstance(m, fast_kinds) for m in [*fast_g.modules(), *fast_d.modules()]) == 4
    # the same draws, the same parameters, the same function
    for one, other in ((g, fast_g), (d, fast_d)):
        assert all(torch.equal(a, b) for a, b in zip(one.state_dict().values(),
                                                      other.state_dict().values(), strict=True))
    g.eval(), fast_g.eval(), d.eval(), fast_d.eval()
    z = torch.rand(4, 100, dtype=torch.float64) * 2 - 1
    g, fast_g, d, fast_d = (m.double() for m in (g, fast_g, d, fast_d))
    assert torch.allclose(g(z), fast_g(z), atol=1e-10)
    images = g(z)
    assert torch.allclose(d(images), fast_d(images), atol=1e-10)


def test_the_cpu_fast_path_writes_the_same_checkpoint_and_exported_weights():
    """Which layers computed a step leaves no trace in what is saved: the same seed gives
    byte-identical state dicts (checkpoints, and the weights export-weights writes from them),
    and each set loads into the other's networks."""
    saved, nets = [], []
    for fast in (False, True):
        torch.manual_seed(0)
        g, d = build(32, ngf=8, ndf=8, cpu_fast_path=fast)
        buffer = io.BytesIO()
        torch.save({"G": g.state_dict(), "D": d.state_dict()}, buffer)
        saved.append(buffer.getvalue())
        nets.append((g, d))
    assert saved[0] == saved[1]
    (g, d), (fast_g, fast_d) = nets
    fast_g.load_state_dict(g.state_dict())
    d.load_state_dict(fast_d.state_dict())
