"""Compose, Resize, CenterCrop, ToTensor, Normalize on PIL images and CHW float tensors."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x):
        for transform in self.transforms:
            x = transform(x)
        return x


class Resize:
    """The shorter side to `size`, PIL bilinear (antialiased when shrinking); unchanged when
    it already is that size."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: Image.Image) -> Image.Image:
        w, h = image.size
        if min(w, h) == self.size:
            return image
        if w <= h:
            return image.resize((self.size, int(self.size * h / w)), Image.BILINEAR)
        return image.resize((int(self.size * w / h), self.size), Image.BILINEAR)


class CenterCrop:
    def __init__(self, size: int):
        self.size = size

    def __call__(self, image: Image.Image) -> Image.Image:
        w, h = image.size
        left, top = round((w - self.size) / 2), round((h - self.size) / 2)
        return image.crop((left, top, left + self.size, top + self.size))


class ToTensor:
    """HWC uint8 -> CHW float in [0, 1]."""

    def __call__(self, image: Image.Image) -> torch.Tensor:
        array = torch.from_numpy(np.array(image, np.uint8, copy=True))
        return array.permute(2, 0, 1).contiguous().float().div(255)


class Normalize:
    def __init__(self, mean, std):
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
