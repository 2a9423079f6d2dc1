"""`inspect`: a summary and a contact sheet of a shard directory or an image source."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from dcgan_data.core.images import ImageError, contact_sheet, save_png, sniff_format
from dcgan_data.core.shards import ShardSet, is_shard_dir
from dcgan_data.ingest.chunks import crop_items
from dcgan_data.ingest.options import InspectOptions
from dcgan_data.ingest.sources import open_source


def sample_rows(shards: ShardSet, n: int = 64) -> np.ndarray:
    """Up to n rows spread evenly over a shard set."""
    if len(shards) == 0:
        return np.zeros((0, *shards.shape), np.uint8)
    picks = np.unique(np.linspace(0, len(shards) - 1, min(n, len(shards))).round().astype(int))
    return shards.load(picks)


def write_contact_sheet(shards: ShardSet, path: str | os.PathLike, n: int = 64) -> bool:
    """A grid of up to n rows of `shards`, as PNG. False (no file) when the set is empty."""
    rows = sample_rows(shards, n)
    if len(rows) == 0:
        return False
    save_png(path, contact_sheet(rows))
    return True


def _format_name(data: bytes | ImageError | None) -> str:
    if isinstance(data, ImageError):
        return data.reason
    return (sniff_format(data) or "not_an_image") if data else "empty"


def _spread(values: np.ndarray) -> dict[str, float]:
    return {"min": int(values.min()), "median": float(np.median(values)), "max": int(values.max())}


def inspect(path: str | os.PathLike, options: InspectOptions | None = None, **settings: Any
            ) -> tuple[dict[str, Any], np.ndarray | None]:
    """Summarise a shard directory (verifying checksums) or an image source (decoding a
    sample of `options.sample` items at `options.size` px); with `options.sheet`, write the
    contact sheet there as PNG.

    Returns the summary and a contact sheet (None if there is nothing to show).
    """
    options = (options or InspectOptions()).replace(**settings)
    path = Path(path)
    summary, sheet = (_shards_summary(path, options.sample) if is_shard_dir(path)
                      else _source_summary(path, options.sample, options.size))
    if sheet is not None and options.sheet:
        save_png(options.sheet, sheet)
        summary["sheet"] = options.sheet
    return summary, sheet


def _shards_summary(path: Path, sample: int) -> tuple[dict[str, Any], np.ndarray | None]:
    shards = ShardSet(path)
    problems = shards.verify()
    summary = {"kind": "shards", "path": str(path), "count": len(shards),
               "shape": list(shards.shape), "shards": shards.num_shards,
               "params": shards.manifest.get("params", {}),
               "verified": not problems, "problems": problems}
    if problems:  # sampling rows from a broken shard would only raise
        return summary, None
    rows = sample_rows(shards, sample)
    return summary, contact_sheet(rows) if len(rows) else None


def _source_summary(path: Path, sample: int, size: int
                    ) -> tuple[dict[str, Any], np.ndarray | None]:
    source = open_source(path)
    items = source.items()
    picks = [items[int(i)] for i in np.unique(np.linspace(0, len(items) - 1, sample).round())
             ] if items else []
    formats = Counter(map(_format_name, source.read_many(picks)))
    part = crop_items(source, picks, size)
    hw = part["hw"]
    summary = {
        "kind": source.kind, "path": str(path), "count": len(items),
        "databases": [str(p) for p in getattr(source, "dbs", [])],
        "sampled": len(picks), "formats": dict(formats),
        "sample_failed": part["failed"],
        "sample_short_side": _spread(hw.min(1)) if len(hw) else None,
    }
    return summary, contact_sheet(part["images"]) if len(part["images"]) else None
