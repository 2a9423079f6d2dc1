"""The hash model's settings: everything that defines a hash model, saved with it so that a
reload hashes identically. Imports no torch: `dcgan-data dedup --help` reads it."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from dcgan_data.core.checks import Range
from dcgan_data.core.options import StageOptions, setting

POSITIVE = Range(0, low_open=True)
COUNT = Range(1, integer=True)


@dataclass(frozen=True)
class HashConfig(StageOptions):
    """The 3072-128-3072 denoising autoencoder and its training."""

    bits: int = 128
    epochs: float = setting(10.0, "The hash model's training (unused with --hash-model): "
                                  "passes over the sampled crops.", POSITIVE)
    min_steps: int = setting(400, "Training steps at least.", Range(0, integer=True))
    max_steps: int = setting(700, "Training steps at most.", COUNT)
    max_train_images: int = setting(200_000, "Crops sampled for training.", COUNT)
    batch_size: int = setting(512, "Crops per step of the hash model's training.",
                              Range(2, integer=True))
    lr: float = setting(2e-3, "Adam learning rate of the hash model's training.", POSITIVE)
    weight_decay: float = setting(0.0, "AdamW decay (tried 1.0 on small sets: no better).",
                                  Range(0))
    dropout: float = setting(0.1, "Dropout on the code units while training.",
                             Range(0, 1, high_open=True))
    code_noise: float = setting(0.5, "Noise on the code pre-activations while training "
                                     "(std, on the normalised pre-activations).", Range(0))
    pixel_noise: float = setting(0.05, "Std of input noise, in units of the pixel std.",
                                 Range(0))
    shift: float = setting(0.75, "Max sub-pixel shift of the corrupted input, in 32x32 pixels.",
                           Range(0))
    zoom: float = setting(0.08, "Max zoom of the corrupted input (a trimmed border).",
                          Range(0, 1, high_open=True))
    gain: float = setting(0.1, "Max brightness change of the corrupted input.", Range(0))
    contrast: float = setting(0.0, "Max contrast change of the corrupted input.", Range(0))
    saturation: float = setting(0.0, "Max saturation change of the corrupted input.", Range(0))
    grayscale: float = setting(0.0, "Share of corrupted inputs turned grey.", Range(0, 1))
    level_power: float = setting(1.0, "Divide each crop by (its mean level)^this before the "
                                      "pixel norm.", Range())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HashConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown hash config fields {sorted(unknown)}")
        return cls(**data)
