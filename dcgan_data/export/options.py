"""The settings of `export` and `export-weights`: each default, range, choice and help once.

Imports no torch: `dcgan-data export --help` reads these classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from dcgan_data.core.checks import COUNT
from dcgan_data.core.options import StageOptions, setting

FORMATS = ("folder", "webdataset", "stylegan", "hf")


@dataclass(frozen=True)
class ExportOptions(StageOptions):
    """Which format `export` writes, in parts of how many rows."""

    format: str | None = setting(
        None, "folder: PNGs for ImageFolder; webdataset: tar shards; stylegan: "
              "StyleGAN2-ADA/3 dataset.zip; hf: Hugging Face parquet dataset.", choices=FORMATS)
    rows_per_part: int = setting(10_000, "Rows per tar / parquet file, and per resumable unit.",
                                 COUNT)
    threads: int | None = setting(None, "Threads encoding PNGs.", COUNT,
                                  default_text="one per core")


@dataclass(frozen=True)
class ExportWeightsOptions(StageOptions):
    """Which checkpoint `export-weights` writes out."""

    checkpoint: str | None = setting(None, "A checkpoint file, or a name in RUN/checkpoints.",
                                     default_text="last.pt")
