"""A crawl list as the plain text that units cut into byte ranges.

A list compressed as `.gz`, `.bz2`, `.xz` or `.zst` is decompressed once, streaming, into the
stage's output directory, and a Parquet list's url and label columns (the format of
LAION-style URL lists) are copied there once as JSON lines; a plain list is read in place.
"""

from __future__ import annotations

import bz2
import errno
import functools
import gzip
import json
import lzma
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dcgan_data.core.errors import InputError, require
from dcgan_data.core.files import atomic_path, read_json, write_json
from dcgan_data.faces.options import LABEL_FIELDS, URL_FIELDS, FaceOptions

COMPRESSED = (".gz", ".bz2", ".xz", ".zst")
PLAIN_LISTS = "crawl_list"  # folder of the output directory holding decompressed lists


def crawl_format(path: str | os.PathLike) -> str:
    name = Path(path).name.lower()
    for suffix in COMPRESSED:
        name = name.removesuffix(suffix)
    suffix = Path(name).suffix.lstrip(".")
    return suffix if suffix in ("tsv", "csv", "jsonl", "parquet") else "txt"


def plain_list(path: str | os.PathLike, work_dir: str | os.PathLike, url_col: str | None = None,
               label_col: str | None = None, max_bytes: int = FaceOptions.max_list_bytes) -> Path:
    """The crawl list as text that units cut into byte ranges: the list itself or a copy in
    work_dir/crawl_list/, made once (again only when the list changes): a compressed list
    decompressed, streaming; a Parquet list's url and label columns as JSON lines, one per
    row, batch by batch (so every later pass is linear: a unit never re-reads a row group).
    A copy over `max_bytes` is refused: a few KB of gzip can fill a disk."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such crawl list")
    suffix = path.suffix.lower()
    if suffix in COMPRESSED:
        errors: tuple[type[Exception], ...] = (OSError, EOFError, lzma.LZMAError)
        if suffix == ".zst":
            errors += (require("zstandard", "a .zst crawl list").ZstdError,)
        path = _copy_once(path, path.name[: -len(suffix)], work_dir, {}, max_bytes,
                          functools.partial(_decompressed, path, suffix),
                          errors, f"a complete {suffix[1:]} file")
    if crawl_format(path) == "parquet":
        errors = (OSError, require("pyarrow", "a Parquet crawl list").ArrowException)
        path = _copy_once(path, path.name + ".jsonl", work_dir,
                          {"url_col": url_col, "label_col": label_col}, max_bytes,
                          functools.partial(_parquet_lines, path, url_col, label_col),
                          errors, "a readable Parquet file")
    return path


def _copy_once(source: Path, name: str, work_dir: str | os.PathLike, made_with: dict,
               max_bytes: int, chunks: Callable[[], Iterator[bytes]],
               read_errors: tuple[type[Exception], ...], what: str) -> Path:
    """work_dir/crawl_list/name, written from `chunks` unless a copy of this very source is
    there. `read_errors` from `chunks` mean the source is not `what`; an OSError writing the
    copy is the disk's (ENOSPC...) and says so."""
    copy = Path(work_dir) / PLAIN_LISTS / name
    stamp = copy.with_name(copy.name + ".source.json")
    stat = source.stat()
    made = {"path": str(source.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            **made_with}
    if copy.exists() and stamp.exists() and read_json(stamp) == made:
        return copy
    with atomic_path(copy) as tmp:
        try:
            with open(tmp, "wb") as dst:
                written, pieces = 0, chunks()
                while True:
                    try:
                        chunk = next(pieces, None)
                    except read_errors as exc:
                        raise InputError(f"{source}: not {what} ({exc})") from None
                    if chunk is None:
                        break
                    written += len(chunk)
                    if written > max_bytes:
                        raise InputError(f"{source}: over {max_bytes} bytes as a plain list "
                                         "(--max-list-bytes raises the limit)")
                    dst.write(chunk)
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, "no errno")
            raise OSError(exc.errno, f"{exc.strerror} ({name}) writing the plain copy of "
                          f"{source.name}", str(copy)) from None
    write_json(stamp, made)
    return copy


def _decompressed(path: Path, suffix: str) -> Iterator[bytes]:
    if suffix == ".zst":
        zstandard = require("zstandard", "a .zst crawl list")
        src = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
    else:
        src = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}[suffix](path, "rb")
    with src:
        while chunk := src.read(1 << 20):
            yield chunk


# A Parquet list is read once with pyarrow, its url and label columns only, a batch at a time:
# a list of millions of URLs is never loaded whole.


def _parquet(path: Path, url_col: str | None, label_col: str | None) -> tuple[Any, list[str]]:
    """The open ParquetFile and the columns to read (url first, then label candidates)."""
    pq = require("pyarrow.parquet", "a Parquet crawl list")
    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError... for a broken file
        raise InputError(f"{path}: unreadable Parquet file ({exc})") from None
    names = table.schema_arrow.names
    url = url_col or next((c for c in URL_FIELDS if c in names), None)
    if url not in names:
        raise InputError(f"{path}: no {url_col or 'url'} column (columns: {names})")
    if label_col and label_col not in names:
        raise InputError(f"{path}: no {label_col} column (columns: {names})")
    labels = [label_col] if label_col else [c for c in LABEL_FIELDS if c in names]
    return table, [url, *labels]


def _parquet_lines(path: Path, url_col: str | None, label_col: str | None) -> Iterator[bytes]:
    """Each row's url and label cells as a JSON line (null for a missing or binary cell)."""
    table, columns = _parquet(path, url_col, label_col)
    for batch in table.iter_batches(batch_size=1 << 16, columns=columns):
        cells = zip(*(batch.column(c).to_pylist() for c in columns), strict=True)
        yield "".join(json.dumps(dict(zip(columns, row, strict=True)), default=_json_cell) + "\n"
                      for row in cells).encode("utf-8")


def _json_cell(value: Any) -> str | None:
    return None if isinstance(value, bytes | bytearray) else str(value)
