"""The DCGAN of Radford, Metz & Chintala (ICLR 2016): generator G and discriminator D.

G: z (nz-d) -> projection to 4x4 -> fractionally-strided convolutions (kernel 4, stride 2),
each doubling the side and halving the channels -> size x size x 3 with tanh.
D: the mirror image with strided convolutions and LeakyReLU 0.2 -> one logit per image.
BatchNorm everywhere except G's output layer and D's input layer.

--size 32|64|128 changes the number of stride-2 layers (3, 4, 5). The last hidden layer of G
(and the first of D) has ngf (ndf) channels and each layer nearer 4x4 doubles them, so at
size 64 with ngf=128 the projection is 4x4x1024, as in the paper's figure 1.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import torch
from torch import nn

from dcgan_data.train.cpu_layers import Conv4x4, ConvTranspose4x4, Projection, Readout
from dcgan_data.train.options import SIZES, TrainOptions


def num_upsamplings(size: int) -> int:
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, not {size}")
    return int(math.log2(size)) - 2  # 4x4 -> size x size


class Generator(nn.Module):
    def __init__(self, size: int = 64, nz: int = TrainOptions.nz, ngf: int = 128,
                 cpu_fast_path: bool = False):
        super().__init__()
        n = num_upsamplings(size)
        channels = [ngf * 2 ** (n - 1 - i) for i in range(n)]  # e.g. 1024, 512, 256, 128
        # The paper's "project and reshape" of z to 4x4xC: a transposed conv on a 1x1 input is
        # exactly a linear layer followed by a reshape, and is computed as one.
        layers: list[nn.Module] = [
            Projection(nz, channels[0]) if cpu_fast_path
            else nn.ConvTranspose2d(nz, channels[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(True),
        ]
        side = 4
        for c_in, c_out in pairwise(channels):
            # on a CPU the layer with a 4x4 input is faster as one matrix product
            up = (ConvTranspose4x4(c_in, c_out) if side == 4 and cpu_fast_path
                  else nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False))
            side *= 2
            layers += [
                up,
                nn.BatchNorm2d(c_out),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(channels[-1], 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.size, self.nz = size, nz

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, nz) -> images (N, 3, size, size) in [-1, 1]."""
        return self.net(z.view(z.shape[0], self.nz, 1, 1))


class Discriminator(nn.Module):
    def __init__(self, size: int = 64, ndf: int = 128, cpu_fast_path: bool = False):
        super().__init__()
        n = num_upsamplings(size)
        channels = [ndf * 2**i for i in range(n)]  # e.g. 128, 256, 512, 1024
        layers: list[nn.Module] = [
            nn.Conv2d(3, channels[0], 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, True),
        ]
        side = size // 2
        for c_in, c_out in pairwise(channels):
            side //= 2
            # on a CPU the layer with a 4x4 output is faster as one matrix product
            down = (Conv4x4(c_in, c_out) if side == 4 and cpu_fast_path
                    else nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False))
            layers += [
                down,
                nn.BatchNorm2d(c_out),
                nn.LeakyReLU(0.2, True),
            ]
        # 4x4xC -> one logit: a 4x4 valid convolution is the paper's flatten + linear layer.
        layers.append(Readout(channels[-1], 1) if cpu_fast_path
                      else nn.Conv2d(channels[-1], 1, 4, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """images (N, 3, size, size) -> logits (N,)."""
        return self.net(x).flatten()


def init_weights(module: nn.Module) -> None:
    """The paper's initialisation: conv weights N(0, 0.02); BatchNorm weights N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build(size: int = 64, nz: int = TrainOptions.nz, ngf: int = 128, ndf: int = 128,
          cpu_fast_path: bool = False) -> tuple[Generator, Discriminator]:
    """G and D for `size`, initialised as in the paper (draws from torch's global RNG).
    Torch's own layers, unless `cpu_fast_path`: four of them as the matrix products of
    convolution.py, faster on a CPU, with the same parameters (state dicts load either way)
    and the same function; they are not measured on a GPU, and the strided one has no
    second derivative."""
    g, d = Generator(size, nz, ngf, cpu_fast_path), Discriminator(size, ndf, cpu_fast_path)
    g.apply(init_weights)
    d.apply(init_weights)
    return g, d


# --- what goes in and comes out: z, and images as pixels ------------------------------------


def draw_z(n: int, nz: int, dist: str, generator: torch.Generator,
           device: torch.device) -> torch.Tensor:
    """n z vectors: uniform in [-1, 1] as in the paper, or standard normal."""
    if dist == "normal":
        return torch.randn(n, nz, generator=generator, device=device)
    return torch.rand(n, nz, generator=generator, device=device).mul_(2).sub_(1)


def to_model_input(batch: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1]. The permuted view is already channels_last."""
    x = batch.permute(0, 3, 1, 2).float()
    return x.mul_(2.0 / 255.0).sub_(1.0).contiguous(memory_format=torch.channels_last)


def to_uint8_images(x: torch.Tensor) -> np.ndarray:
    """G's output (N, 3, H, W) in [-1, 1] -> uint8 RGB (N, H, W, 3) on the CPU."""
    x = (x.float() + 1.0).mul_(127.5).round_().clamp_(0, 255)
    return x.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


SAMPLE_CHUNK = 256  # images per forward pass when sampling: bounded memory for any count


@torch.no_grad()
def generate(g: Generator, z: torch.Tensor, chunk: int = SAMPLE_CHUNK) -> np.ndarray:
    """uint8 images (N, H, W, 3) for z (N, nz), `chunk` at a time, with G in inference mode
    (BatchNorm's running statistics, so each image depends on its own z alone)."""
    was_training = g.training
    g.eval()
    device = next(g.parameters()).device
    out = np.empty((len(z), g.size, g.size, 3), np.uint8)
    for start in range(0, len(z), chunk):
        out[start : start + chunk] = to_uint8_images(g(z[start : start + chunk].to(device)))
    g.train(was_training)
    return out
