"""The settings of `pack`, `ingest` and `inspect`: each default, range, choice and help once.

Imports no torch, no OpenCV: `dcgan-data ingest --help` reads these classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from dcgan_data.core.checks import COUNT, SIDE, Range
from dcgan_data.core.limits import MAX_FILE_BYTES, MAX_PIXELS
from dcgan_data.core.options import StageOptions, setting

# LSUN's scene categories (the paper's) are JPEG q75; JPEG-only decoders (GPU decoders,
# torchvision.io.decode_jpeg) cannot read WebP, so WebP is the option, not the default
PACK_FORMATS = ("jpeg", "webp")


@dataclass(frozen=True)
class PackOptions(StageOptions):
    """How `pack_images` re-encodes images into an LSUN-format LMDB."""

    format: str = setting(
        "jpeg", "JPEG as LSUN's scene categories; WebP is smaller but JPEG-only decoders "
                "(GPU, torchvision.io.decode_jpeg) cannot read it.", choices=PACK_FORMATS)
    quality: int = setting(75, "Encoding quality of each packed image.",
                           Range(1, 100, integer=True))
    short_side: int = setting(256, "Shrink so the short side is this many px (LSUN uses 256).",
                              Range(8, integer=True))


@dataclass(frozen=True)
class IngestOptions(StageOptions):
    """How `ingest` crops a source into shards."""

    size: int = setting(64, "Output side in px (center crop, area resize).", SIDE)
    workers: int | None = setting(None, "Decoding processes.", COUNT,
                                  default_text="all cores")
    rows_per_shard: int | None = setting(
        None, "Rows in each shard.", COUNT,
        default_text="as many as fit in 768 MiB: 65,536 at 64 px")
    max_pixels: int = setting(MAX_PIXELS, "Refuse images whose header declares more pixels "
                                          "(decompression bombs).", COUNT)
    local_root: str | None = setting(
        None, "Files named by a Hugging Face dataset's path cells must lie below this folder.",
        default_text="the dataset's")
    max_bytes: int = setting(MAX_FILE_BYTES, "Largest file a path cell may name.", COUNT)


@dataclass(frozen=True)
class InspectOptions(StageOptions):
    """What `inspect` samples and shows."""

    sample: int = setting(64, "How many images to decode / show.", COUNT)
    size: int = setting(64, "Side in px of the sampled crops.", SIDE)
    sheet: str | None = setting(None, "Also write a contact sheet of the sampled images to "
                                      "this PNG.")
