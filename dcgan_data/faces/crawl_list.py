"""Crawl lists: one image per entry, read by units of lines.

A crawl list names one image per line: an http(s) URL or a local path, optionally as
`name<TAB>url` (the name is kept as a label). `.tsv`, `.csv` and `.jsonl` lists name the
image in a `url` column or field (and the label in `name` or `label`); `.parquet` lists
likewise, by column, read through their plain copy (`plain_list`). `url_col` / `label_col`
name other columns. Blank lines and `#` comments are ignored; a malformed line (no url, a NUL
byte, not JSON) is counted, never fatal.

Work units are ranges of physical lines holding a fixed number of entries, so a unit can be
read from its byte range alone, by another process or machine, and a re-run recognises the
units it already finished.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from dcgan_data.core.errors import InputError
from dcgan_data.faces.options import LABEL_FIELDS, URL_FIELDS
from dcgan_data.faces.plain_list import crawl_format, plain_list


@dataclass(frozen=True)
class Entry:
    """One image to fetch: its 1-based line in the crawl list, URL or path, and label."""

    line: int
    source: str
    label: str | None = None


@dataclass(frozen=True)
class Unit:
    """Lines first_line..first_line+lines-1 of the crawl list, bytes [start, stop) (of the
    plain_list copy: its line i is row i of a Parquet list)."""

    index: int
    first_line: int
    lines: int
    start: int
    stop: int
    digest: str  # of the header and these bytes: a re-run redoes a unit whose lines changed
    # (line, first line) for each of these lines naming an image an earlier line named
    repeats: tuple[tuple[int, int], ...] = ()


def read_columns(path: str | os.PathLike, fmt: str, url_col: str | None = None) -> list[str] | None:
    """The header of a .tsv/.csv list (which must have a url column), None for other formats."""
    if fmt not in ("tsv", "csv"):
        return None
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        first = f.readline()
    columns = next(csv.reader([first], delimiter="\t" if fmt == "tsv" else ","), [])
    columns = [c.strip() for c in columns]
    if not any(c in ((url_col,) if url_col else URL_FIELDS) for c in columns):
        raise InputError(f"{path}: the header {columns} has no {url_col or 'url'} column")
    return columns


def plan_units(path: str | os.PathLike, entries_per_unit: int, url_col: str | None = None,
               label_col: str | None = None) -> list[Unit]:
    """Split the crawl list into units of `entries_per_unit` entries (lines that are neither
    blank nor comments; one pass). A unit ends just before the entry that would overfill it,
    so the blank lines after its last entry are its own and a list without entries has no
    unit. Lines end at "\n" only; in a .csv/.tsv list a quoted field may hold line breaks,
    and a unit ends only where a record does."""
    if entries_per_unit < 1:
        raise InputError("--lines-per-shard must be at least 1")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such crawl list")
    fmt = crawl_format(path)
    if fmt == "parquet":
        raise ValueError(f"{path}: plan a Parquet list's plain_list copy")
    header = b""
    delimiter = {"tsv": "\t", "csv": ","}.get(fmt)
    units: list[Unit] = []
    with open(path, "rb") as f:
        if delimiter:
            header = f.readline()
        line_no, start, pos = (2 if header else 1), len(header), len(header)
        digest, lines, count, quoted = hashlib.sha1(header), 0, 0, False
        for raw in f:
            entry = not quoted and not _skipped_line(raw, delimiter)
            if entry and count >= entries_per_unit:
                units.append(Unit(len(units), line_no, lines, start, pos, digest.hexdigest()))
                line_no, start, digest = line_no + lines, pos, hashlib.sha1(header)
                lines = count = 0
            digest.update(raw)
            pos += len(raw)
            lines += 1
            count += entry
            if header:  # "" inside a quoted field counts twice: the parity is right
                quoted ^= raw.count(b'"') % 2 == 1
        if count:
            units.append(Unit(len(units), line_no, lines, start, pos, digest.hexdigest()))
    return units


def read_unit(path: str | os.PathLike, unit: Unit, url_col: str | None = None,
              label_col: str | None = None) -> tuple[list[Entry], list[tuple[int, str]]]:
    """Parse one unit's lines: (entries, malformed as (line, reason))."""
    fmt = crawl_format(path)
    columns = read_columns(path, fmt, url_col)
    with open(path, "rb") as f:
        f.seek(unit.start)
        data = f.read(unit.stop - unit.start)
    text = data.decode("utf-8", errors="replace")
    if fmt in ("tsv", "csv"):
        return parse_records(text, unit.first_line, fmt, columns, url_col, label_col)
    # "\n" alone ends a line: str.splitlines would also split at \x0b, \x1c, U+2028, ...
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return parse_lines(enumerate(lines, unit.first_line), fmt, columns, url_col, label_col)


def parse_records(text: str, first_line: int, fmt: str, columns: list[str],
                  url_col: str | None = None, label_col: str | None = None
                  ) -> tuple[list[Entry], list[tuple[int, str]]]:
    """Parse .csv/.tsv records (quoted fields may span lines), each numbered by the line it
    starts on."""
    entries, malformed = [], []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if fmt == "tsv" else ",")
    line_no = first_line
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            malformed.append((line_no, f"unreadable CSV ({exc})"))
            break
        start, line_no = line_no, first_line + reader.line_num
        if _skipped_row(row):
            continue
        try:
            if len(row) != len(columns):
                raise ValueError(f"{len(row)} fields, the header has {len(columns)}")
            source, label = _pick(dict(zip(columns, row, strict=True)), url_col, label_col)
            entries.append(Entry(start, _check_source(source), label))
        except ValueError as exc:
            malformed.append((start, str(exc)))
    return entries, malformed


def mark_repeats(path: str | os.PathLike, units: list[Unit], url_col: str | None = None,
                 label_col: str | None = None) -> list[Unit]:
    """The units, each knowing which of its lines name an image that an earlier line of the
    list already named (one image gives one set of rows, with the first line's label)."""
    lines, digests = array("q"), array("q")
    for unit in units:
        for entry in read_unit(path, unit, url_col, label_col)[0]:
            lines.append(entry.line)
            name = entry.source.encode("utf-8", "surrogateescape")
            digests.append(int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(),
                                          "little", signed=True))
    if not lines:
        return units
    line_of = np.frombuffer(lines, np.int64)
    _, first, which = np.unique(np.frombuffer(digests, np.int64), return_index=True,
                                return_inverse=True)
    first_line = line_of[first[which.reshape(-1)]]
    repeated = np.nonzero(first_line != line_of)[0]
    marked = []
    for unit in units:
        ends = np.searchsorted(line_of[repeated], [unit.first_line, unit.first_line + unit.lines])
        at = repeated[ends[0] : ends[1]]
        pairs = tuple(zip(line_of[at].tolist(), first_line[at].tolist(), strict=True))
        marked.append(replace(unit, repeats=pairs) if pairs else unit)
    return marked


def read_crawl(path: str | os.PathLike, url_col: str | None = None, label_col: str | None = None
               ) -> tuple[list[Entry], list[tuple[int, str]]]:
    """Parse a whole crawl list (small lists, tests): (entries, malformed)."""
    entries, malformed = [], []
    with tempfile.TemporaryDirectory() as work:
        listing = plain_list(path, work, url_col, label_col)
        for unit in plan_units(listing, 1 << 30, url_col, label_col):
            e, m = read_unit(listing, unit, url_col, label_col)
            entries += e
            malformed += m
    return entries, malformed


def parse_lines(
    numbered: Iterable[tuple[int, str | dict]], fmt: str, columns: list[str] | None = None,
    url_col: str | None = None, label_col: str | None = None,
) -> tuple[list[Entry], list[tuple[int, str]]]:
    """Lines of text (or Parquet rows as dicts) -> (entries, malformed as (line, reason))."""
    entries, malformed = [], []
    for line_no, text in numbered:
        if isinstance(text, str) and _skipped(text):
            continue
        try:
            record = text if isinstance(text, dict) else _parse_line(text, fmt, columns)
            source, label = (record if isinstance(record, tuple)
                             else _pick(record, url_col, label_col))
            entries.append(Entry(line_no, _check_source(source), label))
        except ValueError as exc:
            malformed.append((line_no, str(exc)))
        except RecursionError:  # json.loads (or str() of a label) on "[[[[..."
            malformed.append((line_no, "nested too deeply"))
    return entries, malformed


def _skipped(text: str) -> bool:
    """A blank line or a `#` comment: no entry."""
    return not text.strip() or text.lstrip().startswith("#")


def _skipped_row(cells: list[str]) -> bool:
    """A .csv/.tsv record of blank fields, or whose first field is a `#` comment."""
    return not any(cell.strip() for cell in cells) or cells[0].lstrip().startswith("#")


def _skipped_line(raw: bytes, delimiter: str | None) -> bool:
    """Whether reading will skip this line (one that starts a record, for .csv/.tsv)."""
    text = raw.decode("utf-8", errors="replace")
    if delimiter is None:
        return _skipped(text)
    if raw.count(b'"') % 2:  # a quoted field goes on over the next lines: a record to read
        return False
    return _skipped_row(next(csv.reader([text], delimiter=delimiter), []))


def _parse_line(text: str, fmt: str, columns: list[str] | None
                ) -> dict[str, Any] | tuple[str, str | None]:
    """A record (dict) for the tabular formats, (source, label) for plain lines."""
    if fmt == "jsonl":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        return obj
    parts = text.strip().split("\t")
    if len(parts) == 1:
        return parts[0], None
    if len(parts) == 2:
        return parts[1].strip(), parts[0].strip() or None
    raise ValueError(f"{len(parts)} tab-separated fields (expected url or name<TAB>url)")


def _pick(record: dict, url_col: str | None = None, label_col: str | None = None
          ) -> tuple[str, str | None]:
    source = record.get(url_col) if url_col else next(
        (record[k] for k in URL_FIELDS if k in record), None)
    if not isinstance(source, str):
        raise ValueError(f"no {url_col or 'url'} field")
    label = record.get(label_col) if label_col else next(
        (record[k] for k in LABEL_FIELDS if record.get(k)), None)
    return source.strip(), None if label in (None, "") else str(label)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPACE = re.compile(r"\s")


def _check_source(source: str) -> str:
    if not source:
        raise ValueError("empty url")
    if _CONTROL.search(source):
        raise ValueError(f"control character (NUL, tab...) in {source[:80]!r}")
    if "://" in source:
        parts = urlsplit(source)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {parts.scheme!r}")
        if not parts.netloc or _SPACE.search(source):
            raise ValueError(f"not a valid URL: {source[:80]!r}")
    elif "/" not in source and "\\" not in source and "." not in source:
        # a path names a folder or has an extension; a line of plain words is neither
        raise ValueError(f"neither a URL nor a path: {source[:80]!r}")
    return source
