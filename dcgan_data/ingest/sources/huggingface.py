"""A Hugging Face dataset's image column: a save_to_disk folder or .parquet files."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dcgan_data.core.errors import InputError, require
from dcgan_data.core.images import ImageError
from dcgan_data.core.limits import MAX_FILE_BYTES
from dcgan_data.faces.fetch import FetchError, read_local_file
from dcgan_data.ingest.sources.base import Lazy, Read

HF_MARKERS = ("state.json", "dataset_dict.json")  # what datasets.save_to_disk writes
IMAGE_COLUMNS = ("image", "img", "jpg", "jpeg", "png", "webp")


class HfSource(Lazy):
    """The image column of a Hugging Face dataset: a `save_to_disk` folder (its train split,
    for a DatasetDict), or .parquet files (one, or every one below a folder). Items are row
    numbers, `file/row` for parquet files. A cell holding only a file's path is read as a
    crawl list's local path is: a regular file below `local_root` (default: the dataset's
    folder, which relative paths start from), at most `max_bytes`; else a named failure."""

    kind = "hf"
    pickled = ("path", "local_root", "max_bytes")

    def __init__(self, path: str | os.PathLike, local_root: str | os.PathLike | None = None,
                 max_bytes: int = MAX_FILE_BYTES):
        self.path = Path(path)
        self.local_root = Path(local_root) if local_root is not None else None
        self.max_bytes = max_bytes
        self.base_dir = self.path if self.path.is_dir() else self.path.parent
        self._rows: Any = None  # save_to_disk: the dataset's image column, undecoded
        self._files: dict[str, Any] | None = None  # parquet: name -> (file, column, cache)
        self.saved = self.path.is_dir() and any((self.path / m).exists() for m in HF_MARKERS)
        if not self.saved:
            self.parquet = ([self.path] if self.path.is_file()
                            else sorted(self.path.rglob("*.parquet")))
            if not self.parquet:
                raise InputError(f"{self.path}: no Hugging Face dataset or .parquet files here")

    def items(self) -> list[str]:
        if self.saved:
            return [str(i) for i in range(len(self._saved()))]
        return [f"{name}/{row}" for name, (table, _, _) in self._parquet().items()
                for row in range(table.metadata.num_rows)]

    def read_many(self, items: Sequence[str]) -> list[Read]:
        if self.saved:
            column = self._saved()
            cells = [column[int(i)] if 0 <= int(i) < len(column) else None for i in items]
            return [self._bytes(c) for c in cells]
        out: list[Read] = []
        tables = self._parquet()
        for item in items:
            name, _, row = item.rpartition("/")
            out.append(self._bytes(_parquet_cell(*tables[name], int(row)))
                       if name in tables else None)
        return out

    def _bytes(self, cell: Any) -> Read:
        # an Image cell is {"bytes", "path"}; a dataset built from files may hold only the path
        if isinstance(cell, dict):
            if cell.get("bytes"):
                return cell["bytes"]
            if cell.get("path"):
                try:
                    return read_local_file(cell["path"], self.base_dir,
                                           self.local_root or self.base_dir, self.max_bytes)
                except FetchError as exc:
                    return ImageError(exc.reason, exc.detail)
            return None
        return cell if isinstance(cell, bytes) and cell else None

    def _saved(self) -> Any:
        if self._rows is None:
            datasets = require("datasets", "reading a Hugging Face dataset")
            data = datasets.load_from_disk(str(self.path))
            if isinstance(data, datasets.DatasetDict):
                if "train" not in data:
                    raise InputError(f"{self.path}: splits {list(data)}, none named train; "
                                     "pass the split's folder")
                data = data["train"]
            col = _image_column(data.features, self.path)
            if isinstance(data.features[col], datasets.Image):
                data = data.cast_column(col, datasets.Image(decode=False))
            self._rows = data.select_columns([col])[col]
        return self._rows

    def _parquet(self) -> dict[str, Any]:
        if self._files is None:
            pq = require("pyarrow.parquet", "reading .parquet files")
            self._files = {}
            for path in self.parquet:
                try:
                    table = pq.ParquetFile(path)
                except Exception as exc:  # pyarrow's errors for a broken file vary
                    raise InputError(f"{path}: unreadable Parquet file ({exc})") from None
                name = path.relative_to(self.path).as_posix() if path != self.path else path.name
                self._files[name] = (table, _parquet_image_column(table, path), {})
        return self._files


def _image_column(features: Any, where: Path) -> str:
    datasets = require("datasets", "reading a Hugging Face dataset")
    for name, feature in features.items():
        if isinstance(feature, datasets.Image):
            return name
    for name in IMAGE_COLUMNS:
        if name in features:
            return name
    raise InputError(f"{where}: no Image column (columns: {list(features)})")


def _parquet_image_column(table: Any, where: Path) -> str:
    """The column `datasets` marks as Image in the file's metadata, else a {bytes, path}
    struct column, else a binary column with an image-like name."""
    names = table.schema_arrow.names
    meta = (table.schema_arrow.metadata or {}).get(b"huggingface")
    if meta:
        features = json.loads(meta).get("info", {}).get("features", {})
        for name, feature in features.items():
            if isinstance(feature, dict) and feature.get("_type") == "Image" and name in names:
                return name
    for field in table.schema_arrow:
        if str(field.type) in ("struct<bytes: binary, path: string>",
                               "struct<bytes: large_binary, path: large_string>"):
            return field.name
    for name in IMAGE_COLUMNS:
        if name in names:
            return name
    raise InputError(f"{where}: no image column (columns: {names})")


def _parquet_cell(table: Any, column: str, cache: dict[int, list], row: int) -> Any:
    """One cell, reading (and keeping, for the neighbouring rows) only its row group."""
    meta = table.metadata
    if not 0 <= row < meta.num_rows:
        return None
    start = 0
    for group in range(meta.num_row_groups):
        rows = meta.row_group(group).num_rows
        if row < start + rows:
            if group not in cache:
                cache.clear()  # one row group held at a time
                cache[group] = table.read_row_group(group, columns=[column]).column(0).to_pylist()
            return cache[group][row - start]
        start += rows
    return None
