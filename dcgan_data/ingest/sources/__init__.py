"""Where images come from: one small reader per kind of source, picked by `open_source`.

  folder.py       image files below a folder (FolderSource)
  lsun.py         LSUN's LMDB databases (LsunSource)
  webdataset.py   webdataset .tar shards (WebDatasetSource)
  huggingface.py  a Hugging Face dataset's image column (HfSource)

Each lists its items and reads their bytes in batches (base.Source).
"""

from __future__ import annotations

import os
from pathlib import Path

from dcgan_data.core.errors import InputError
from dcgan_data.core.limits import MAX_FILE_BYTES
from dcgan_data.ingest.sources.base import Source
from dcgan_data.ingest.sources.folder import FolderSource, image_files
from dcgan_data.ingest.sources.huggingface import HF_MARKERS, HfSource
from dcgan_data.ingest.sources.lsun import LsunSource, find_lmdb_dirs
from dcgan_data.ingest.sources.webdataset import WebDatasetSource

__all__ = ["FolderSource", "HfSource", "LsunSource", "Source", "WebDatasetSource",
           "open_source"]


def open_source(path: str | os.PathLike, local_root: str | os.PathLike | None = None,
                max_bytes: int = MAX_FILE_BYTES) -> Source:
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
