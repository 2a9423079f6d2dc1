"""save_image: a grid of 8 per row with 2 px of padding, min-max scaled, written as PNG."""

from __future__ import annotations

import math

import torch
from PIL import Image


def save_image(tensor: torch.Tensor, fp: str, nrow: int = 8, padding: int = 2,
               normalize: bool = False) -> None:
    x = tensor.detach().cpu().float()
    if normalize:
        x = (x - x.min()) / max(float(x.max() - x.min()), 1e-5)
    n, c, h, w = x.shape
    cols, rows = min(nrow, n), math.ceil(n / nrow)
    grid = torch.zeros(c, rows * (h + padding) + padding, cols * (w + padding) + padding)
    for i in range(n):
        top, left = (i // nrow) * (h + padding) + padding, (i % nrow) * (w + padding) + padding
        grid[:, top : top + h, left : left + w] = x[i]
    pixels = grid.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(pixels).save(fp)
