"""Where images come from: one small reader per kind of source, picked by `open_source`.

A source lists its items (string names, in a stable order) and reads their bytes in
batches: None for an item that is gone, an ImageError for one that cannot be read.
Sources pickle without open handles, so worker processes can each read their own.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from dcgan_data.core.errors import InputError
from dcgan_data.core.images import ImageError
from dcgan_data.faces.options import DEFAULT_MAX_BYTES
from dcgan_data.ingest.interop import HF_MARKERS, HfSource, WebDatasetSource
from dcgan_data.ingest.lsun import LsunSource, find_lmdb_dirs, image_files


class Source(Protocol):
    kind: str
    path: Path

    def items(self) -> list[str]: ...

    def read_many(self, items: Sequence[str]) -> list[bytes | ImageError | None]: ...


class FolderSource:
    """Image files below a folder, named by their path relative to it, in sorted order."""

    kind = "folder"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def items(self) -> list[str]:
        return [p.relative_to(self.path).as_posix() for p in image_files(self.path)]

    def read_many(self, items: Sequence[str]) -> list[bytes | ImageError | None]:
        out: list[bytes | ImageError | None] = []
        for item in items:
            try:
                out.append((self.path / item).read_bytes())
            except FileNotFoundError:
                out.append(None)
            except OSError as exc:  # permission denied, an I/O error: there, but unreadable
                out.append(ImageError("unreadable", exc.strerror or str(exc)))
        return out


def open_source(path: str | os.PathLike, local_root: str | os.PathLike | None = None,
                max_bytes: int = DEFAULT_MAX_BYTES) -> Source:
    """An LSUN LMDB (or a folder of them), webdataset .tar shards, a Hugging Face dataset
    (save_to_disk folder or .parquet files), else a folder of image files. `local_root` and
    `max_bytes` bound the files a Hugging Face dataset's path cells may name (HfSource)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_file() and path.suffix in (".tar", ".parquet"):
        return (WebDatasetSource(path) if path.suffix == ".tar"
                else HfSource(path, local_root, max_bytes))
    if not path.is_dir():
        raise InputError(f"{path}: expected an LMDB directory, a folder of images, "
                         ".tar shards or a Hugging Face dataset")
    if not os.access(path, os.R_OK | os.X_OK):
        raise InputError(f"{path}: permission denied")
    if find_lmdb_dirs(path):
        return LsunSource(path)
    if any((path / marker).exists() for marker in HF_MARKERS) or (
            any(path.rglob("*.parquet")) and not image_files(path)):
        return HfSource(path, local_root, max_bytes)
    if any(path.glob("*.tar")) and not image_files(path):
        return WebDatasetSource(path)
    return FolderSource(path)
