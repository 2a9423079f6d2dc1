"""The audit's settings: each one's default, range and help, stated once. Imports no torch:
`dcgan-data audit --help` reads it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dcgan_data.core.checks import COUNT, POSITIVE, SEED, Range
from dcgan_data.core.errors import InputError
from dcgan_data.core.options import StageOptions, setting

Holdout = int | float | Path


def parse_holdout(value: str | int | float | os.PathLike) -> Holdout:
    """--holdout: a row count, a fraction of the training rows (0 < f < 1), or a path to real
    images the generator never saw (a shard directory or a folder)."""
    if isinstance(value, (int, float)):
        number = value
    else:
        try:
            number = float(str(value))
        except ValueError:
            return Path(value)
    if not POSITIVE.holds(number) or (number >= 1 and number != int(number)):
        raise InputError(f"--holdout {value}: give a row count, a fraction in (0, 1), or a "
                         "folder of real images")
    return number if number < 1 else int(number)


@dataclass(frozen=True)
class AuditInputs(StageOptions):
    """The training shards: an input path the library takes as an argument, a required
    option on the command line."""

    train: str | os.PathLike | None = setting(
        None, "The training shards the generator learnt from.")


@dataclass(frozen=True)
class AuditOptions(StageOptions):
    """How `audit` samples, calibrates and searches (see docs/audit.md)."""

    n: int = setting(10_000, "Samples drawn from a run (or the first N images of a folder or "
                             "shards).", COUNT)
    holdout: str | int | float | os.PathLike = setting(
        2000, "Real images for calibration: rows of --train, each measured against the index "
              "without itself (a count, or a fraction below 1), or a folder or shard "
              "directory of real images the generator never saw (better, where you have one).")
    alpha: float = setting(
        0.01, "A sample is a copy when at most this share of the calibration images are as "
              "close to the training set as it is; needs at least 1/alpha - 1 of them (a "
              "warning says when there are fewer).", Range(0, 1, low_open=True, high_open=True))
    model_path: str | os.PathLike | None = setting(
        None, "Hash model.", default_text="the one the dedup stage of --train used, else one "
                             "trained on --train")
    neighbours: int = setting(10, "Nearest training images by code values checked per sample "
                                  "(besides those sharing a hash).", COUNT)
    checkpoint: str | None = setting(None, "For a run: a checkpoint file or a name in "
                                           "RUN/checkpoints.", default_text="last.pt")
    seed: int = setting(0, "Seed of the samples drawn, the calibration rows and a hash model "
                           "trained here.", SEED)
    device: str = setting("auto", "auto: cuda when available, else cpu.",
                          choices=("auto", "cpu", "cuda"))
    workers: int | None = setting(None, "Processes scanning the training shards on CPU.", COUNT,
                                  default_text="all cores")

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_holdout(self.holdout)
