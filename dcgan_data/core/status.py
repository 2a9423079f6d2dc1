"""Per-item status tables: one row per input item (a crawl-list line, a source key) saying
what became of it, so that a user can find every failed item of a million and its reason.

Tables are parquet when pyarrow is installed, else gzipped CSV (any tool reads both).
A stage writes one part per work unit beside its shards (so a re-run keeps the finished
units' parts) and joins the parts, in unit order, into one table at the end.
"""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dcgan_data.core.files import atomic_path

EXTENSIONS = (".parquet", ".csv.gz")
PARTS = "status"  # folder of per-unit parts, beside the shards
INT_COLUMNS = {"line", "width", "height", "faces_found", "faces_kept"}


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        return None
    return pyarrow


def extension() -> str:
    """.parquet when pyarrow is importable, else .csv.gz."""
    return ".parquet" if _pyarrow() else ".csv.gz"


def find(stem: str | os.PathLike) -> Path | None:
    """The table written for `stem` (a path without extension) in either format, if any."""
    for ext in EXTENSIONS:
        path = Path(f"{os.fspath(stem)}{ext}")
        if path.exists():
            return path
    return None


def write_table(stem: str | os.PathLike, columns: Sequence[str],
                chunks: Iterable[Sequence[Sequence[Any]]]) -> Path:
    """Write row chunks (each a list of rows in `columns` order) to stem + extension(),
    atomically and one chunk at a time; remove a table of the other format. Returns the path."""
    path = Path(f"{os.fspath(stem)}{extension()}")
    pa = _pyarrow()
    with atomic_path(path) as tmp:
        if pa is not None:
            schema = pa.schema([(c, pa.int64() if c in INT_COLUMNS else pa.string())
                                for c in columns])
            with pa.parquet.ParquetWriter(tmp, schema) as writer:
                for chunk in chunks:
                    writer.write_table(pa.Table.from_pylist(
                        [dict(zip(columns, row, strict=True)) for row in chunk], schema))
        else:
            with gzip.open(tmp, "wt", encoding="utf-8", newline="") as f:
                table = csv.writer(f, lineterminator="\n")
                table.writerow(columns)
                for chunk in chunks:
                    table.writerows(chunk)
    for ext in EXTENSIONS:
        other = Path(f"{os.fspath(stem)}{ext}")
        if other != path:
            other.unlink(missing_ok=True)
    return path


def read_rows(path: str | os.PathLike) -> list[list[Any]]:
    """A table's rows (header excluded) as lists; integers as int, missing values as None."""
    path = Path(path)
    if path.name.endswith(".parquet"):
        pa = _pyarrow()
        if pa is None:
            raise ImportError(f"{path}: reading parquet needs pyarrow (pip install pyarrow)")
        table = pa.parquet.read_table(path)
        return [list(row.values()) for row in table.to_pylist()]
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        columns = next(reader)
        return [[_typed(c, v) for c, v in zip(columns, row, strict=True)] for row in reader]


def read_table(path: str | os.PathLike) -> list[dict[str, Any]]:
    """A table's rows as dicts keyed by column name."""
    path = Path(path)
    if path.name.endswith(".parquet"):
        pa = _pyarrow()
        if pa is None:
            raise ImportError(f"{path}: reading parquet needs pyarrow (pip install pyarrow)")
        return pa.parquet.read_table(path).to_pylist()
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        return [{c: _typed(c, v) for c, v in row.items()} for row in csv.DictReader(f)]


def _typed(column: str, value: str) -> Any:
    if value == "":
        return None
    return int(value) if column in INT_COLUMNS else value


def part_stem(out_dir: str | os.PathLike, index: int) -> Path:
    return Path(out_dir) / PARTS / f"{index:05d}"


def join_parts(out_dir: str | os.PathLike, indices: Iterable[int], stem: str | os.PathLike,
               columns: Sequence[str]) -> Path:
    """One table at `stem` from the parts of units `indices`, in that order."""
    parts = (find(part_stem(out_dir, i)) for i in indices)
    return write_table(stem, columns, (read_rows(p) for p in parts if p is not None))
