"""`pack`: image files into an LSUN-format LMDB (key = 40-hex SHA-1 of the value, value =
JPEG or WebP bytes), as `ingest.sources.lsun.LsunSource` reads it.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import lmdb
import numpy as np

from dcgan_data.core.errors import InputError
from dcgan_data.core.files import locks_output, progress
from dcgan_data.core.images import ImageError, decode_image, encode_image
from dcgan_data.ingest.options import PackOptions
from dcgan_data.ingest.sources.folder import image_files

MAP_SIZE = 1 << 40  # address space only; the file grows as data is written


def expand_inputs(inputs: Iterable[str]) -> list[Path]:
    """Files, folders (searched recursively for images) and glob patterns, as sorted paths."""
    paths: list[Path] = []
    for spec in inputs:
        matches = [Path(m) for m in sorted(glob.glob(spec, recursive=True))] or [Path(spec)]
        for path in matches:
            if path.is_dir():
                paths.extend(image_files(path))
            elif path.is_file():
                paths.append(path)
            else:
                raise InputError(f"{spec}: no such file, folder or matching pattern")
    return paths


def _shrink_to_short_side(rgb: np.ndarray, short_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if min(h, w) <= short_side:
        return rgb
    scale = short_side / min(h, w)
    size = (max(short_side, round(w * scale)), max(short_side, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def pack_images(inputs: Iterable[str], out: str | os.PathLike,
                options: PackOptions | None = None, **settings: Any) -> dict[str, Any]:
    """Write images into an LSUN-format LMDB: key = SHA-1 hex of the encoded bytes.

    Images are shrunk so their short side is `short_side` (as LSUN's are) and re-encoded as
    `format` at `quality` (`options`, or its fields as keyword `settings`).
    Re-running is idempotent: a key already present is left as it is. An image the inputs
    hold twice (the same encoded bytes) is packed once and counted in `repeated_in_input`.
    """
    options = (options or PackOptions()).replace(**settings)  # refused before OUT is made
    return _pack(inputs, out, options)


@locks_output("out")
def _pack(inputs: Iterable[str], out: str | os.PathLike, options: PackOptions
          ) -> dict[str, Any]:
    paths = expand_inputs(inputs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(out), map_size=MAP_SIZE, subdir=True)
    packed, existing, repeated, failed = 0, 0, 0, []
    this_run: set[bytes] = set()  # keys put by this run: a refused one repeats an input image
    try:
        txn = env.begin(write=True)
        for i, path in enumerate(progress(paths, desc="pack")):
            try:
                rgb, _ = decode_image(path.read_bytes())
            except (ImageError, OSError) as exc:
                failed.append({"key": str(path), "reason": getattr(exc, "reason", "unreadable"),
                               "detail": str(exc)})
                continue
            value = encode_image(_shrink_to_short_side(rgb, options.short_side),
                                 options.format, options.quality)
            digest = hashlib.sha1(value).digest()
            if txn.put(digest.hex().encode("ascii"), value, overwrite=False):
                packed += 1
                this_run.add(digest)
            elif digest in this_run:
                repeated += 1
            else:
                existing += 1
            if i % 1000 == 999:  # bounded transactions: a killed pack keeps what it committed
                txn.commit()
                txn = env.begin(write=True)
        txn.commit()
        entries = env.stat()["entries"]
    finally:
        env.close()
    return {"inputs": len(paths), "packed": packed, "already_present": existing,
            "repeated_in_input": repeated,
            "failed": failed, "entries": entries, "out": str(out)}
