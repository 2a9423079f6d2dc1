"""The DCGAN's convolutions that CPU convolution kernels run slowly, as matrix products.

Where a stride-2 layer's small side is 4x4 (D's last, G's first), oneDNN's direct convolution
kernels ran well below the CPU's matrix-product speed on the CPU measured (few output
positions per image to spread the work over). The same sums as one product of every input
window by the weights run at that speed: `Conv4x4` does D's layer so, `ConvTranspose4x4`
(its adjoint) G's.
G's projection of z (a transposed convolution on a 1x1 input) and D's logit (a 4x4 convolution
on a 4x4 input) are matrix products outright: `Projection` and `Readout`. All four keep
nn.Conv2d's and nn.ConvTranspose2d's parameters, so checkpoints and exported weights are the
same as with the plain layers; only the order of additions differs.

Tensors are NCHW views of channels_last (NHWC) memory, the layout the trainer uses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

KERNEL = 4


def windows(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N * H/2 * W/2, 16 C): every 4x4 window of x padded by 1, stride 2."""
    n, c, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1).contiguous()  # NHWC
    sn, sh, sw, sc = padded.stride()
    view = padded.as_strided((n, h // 2, w // 2, KERNEL, KERNEL, c),
                             (sn, 2 * sh, 2 * sw, sh, sw, sc))
    return view.reshape(n * (h // 2) * (w // 2), KERNEL * KERNEL * c)


def overlap_add(rows: torch.Tensor, n: int, c: int, h: int, w: int) -> torch.Tensor:
    """The adjoint of `windows`: sums each row's 16 C values back where its window lay,
    giving (N, C, H, W) channels_last."""
    oh, ow = h // 2, w // 2
    taps = rows.view(n, oh, ow, KERNEL, KERNEL, c)
    padded = rows.new_zeros(n, h + 2, w + 2, c)
    for i in range(KERNEL):
        for j in range(KERNEL):
            padded[:, i : i + 2 * oh : 2, j : j + 2 * ow : 2] += taps[:, :, :, i, j]
    return padded[:, 1 : h + 1, 1 : w + 1].contiguous().permute(0, 3, 1, 2)


def weight_matrix(weight: torch.Tensor) -> torch.Tensor:
    """(A, B, 4, 4) -> (A, 16 B), the column order of `windows`."""
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)


def weight_from_matrix(matrix: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    a, b = like.shape[:2]
    return matrix.view(a, KERNEL, KERNEL, b).permute(0, 3, 1, 2)


def rows_of(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N H W, C)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def down(cols: torch.Tensor, weight: torch.Tensor, n: int, h: int, w: int) -> torch.Tensor:
    """conv2d(x, weight, stride 2, padding 1) of an (N, C, H, W) x given as windows(x)."""
    return (cols @ weight_matrix(weight).t()).view(n, h // 2, w // 2, -1).permute(0, 3, 1, 2)


def up(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """conv_transpose2d(x, weight, stride 2, padding 1): the adjoint of `down`."""
    n, _, h, w = x.shape
    return overlap_add(rows_of(x) @ weight_matrix(weight), n, weight.shape[1], 2 * h, 2 * w)


class _Down(torch.autograd.Function):
    """y = conv2d(x, weight, stride 2, padding 1), weight (C_out, C_in, 4, 4)."""

    @staticmethod
    def forward(ctx, x, weight):
        n, _, h, w = x.shape
        cols = windows(x)
        ctx.save_for_backward(cols, weight)
        return down(cols, weight, n, h, w)

    @staticmethod
    @once_differentiable  # cols were saved outside autograd: a second derivative would be wrong
    def backward(ctx, grad_y):
        cols, weight = ctx.saved_tensors
        grad_x = up(grad_y, weight) if ctx.needs_input_grad[0] else None
        grad_w = (weight_from_matrix(rows_of(grad_y).t() @ cols, weight)
                  if ctx.needs_input_grad[1] else None)
        return grad_x, grad_w


class _Up(torch.autograd.Function):
    """y = conv_transpose2d(x, weight, stride 2, padding 1), weight (C_in, C_out, 4, 4)."""

    @staticmethod
    def forward(ctx, x, weight):
        ctx.save_for_backward(x, weight)
        return up(x, weight)

    @staticmethod
    def backward(ctx, grad_y):
        x, weight = ctx.saved_tensors
        n, _, h, w = grad_y.shape
        cols = windows(grad_y)
        grad_x = down(cols, weight, n, h, w) if ctx.needs_input_grad[0] else None
        grad_w = (weight_from_matrix(rows_of(x).t() @ cols, weight)
                  if ctx.needs_input_grad[1] else None)
        return grad_x, grad_w


def _apply(function: type[torch.autograd.Function], x: torch.Tensor,
           weight: torch.Tensor) -> torch.Tensor:
    # Under autocast, cast once here and run the Function without it, so forward and backward
    # see the same dtypes (autograd casts weight's gradient back to its own dtype).
    device = x.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        with torch.autocast(device, enabled=False):
            return function.apply(x.to(dtype), weight.to(dtype))
    return function.apply(x, weight.to(x.dtype))


class Conv4x4(nn.Conv2d):
    """nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False) computed as one matrix product."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, KERNEL, 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _apply(_Down, x, self.weight)


class ConvTranspose4x4(nn.ConvTranspose2d):
    """nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False) computed as one matrix product."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, KERNEL, 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _apply(_Up, x, self.weight)


class Projection(nn.ConvTranspose2d):
    """nn.ConvTranspose2d(nz, c_out, 4, 1, 0, bias=False) on a 1x1 input (G's projection of z
    to 4x4), as the matrix product it is."""

    def __init__(self, nz: int, c_out: int):
        super().__init__(nz, c_out, KERNEL, 1, 0, bias=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n = z.shape[0]
        return (z.reshape(n, -1) @ weight_matrix(self.weight)).view(n, KERNEL, KERNEL, -1
                                                                     ).permute(0, 3, 1, 2)


class Readout(nn.Conv2d):
    """nn.Conv2d(c_in, c_out, 4, 1, 0, bias=False) on a 4x4 input (D's logit), as the matrix
    product it is."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, KERNEL, 1, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        return (x.permute(0, 2, 3, 1).reshape(n, -1) @ weight_matrix(self.weight).t()
                ).view(n, -1, 1, 1)
