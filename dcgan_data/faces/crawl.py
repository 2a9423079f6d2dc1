"""Crawl lists and polite, bounded fetching of the images they name.

A crawl list names one image per line: an http(s) URL or a local path, optionally as
`name<TAB>url` (the name is kept as a label). `.tsv`, `.csv` and `.jsonl` lists name the
image in a `url` column or field (and the label in `name` or `label`); `.parquet` lists (the
format of LAION-style URL lists) likewise, by column. `url_col` / `label_col` name other
columns. Blank lines and `#` comments are ignored; a malformed line (no url, a NUL byte, not
JSON) is counted, never fatal. A list compressed as `.gz`, `.bz2`, `.xz` or `.zst` is
decompressed once, streaming, into the stage's output directory, and a Parquet list's url and
label columns are copied there once as JSON lines (`plain_list`).

Work units are ranges of physical lines holding a fixed number of entries, so a unit can be
read from its byte range alone, by another process or machine, and a re-run recognises the
units it already finished.

`fetch` returns the bytes of one image or raises `FetchError` with a short reason code
("timeout", "http_404", "too_large", "noai", ...) that reports count. A crawl list may come
from the web, so by default a fetch never connects to a loopback, private, link-local or
otherwise non-global address (checked after DNS resolution, on every redirect), and a local
path is read only when it is a regular file under the list's folder (or `local_root`).
"""

from __future__ import annotations

import bz2
import csv
import email.utils
import errno
import functools
import gzip
import hashlib
import io
import ipaddress
import json
import lzma
import os
import re
import socket
import stat
import tempfile
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from dcgan_data.core.errors import InputError, require
from dcgan_data.core.files import atomic_path, read_json, write_json
from dcgan_data.core.images import sniff_format
from dcgan_data.engines.units import bounded_map
from dcgan_data.faces.options import LABEL_FIELDS, URL_FIELDS, FaceOptions, FetchOptions

# X-Robots-Tag directives that ask not to use an image for AI training
NOAI_DIRECTIVES = {"noai", "noimageai"}
COMPRESSED = (".gz", ".bz2", ".xz", ".zst")
PLAIN_LISTS = "crawl_list"  # folder of the output directory holding decompressed lists
CHUNK = 64 * 1024
MAX_RETRY_AFTER = 120.0  # seconds: a longer Retry-After gives up on the URL instead


# ---------------------------------------------------------------------------- crawl lists


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


# ---------------------------------------------------------------------------- fetching


class FetchError(Exception):
    """An image that could not be fetched. `reason` is a short code for reports."""

    def __init__(self, reason: str, detail: str = "", retry: bool = False,
                 retry_after: float | None = None):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.retry = retry
        self.retry_after = retry_after  # seconds the server asked us to wait (Retry-After)


def fetch(source: str, options: FetchOptions, session: requests.Session | None = None) -> bytes:
    """The bytes of one image (a URL or a local path); raises FetchError."""
    if "://" not in source:
        return read_local_file(source, options.base_dir, options.local_root or options.base_dir,
                               options.max_bytes)
    session = session or new_session(options)
    for attempt in range(options.retries + 1):
        try:
            return _get(source, options, session)
        except FetchError as exc:
            if not exc.retry or attempt == options.retries:
                raise
            wait = options.backoff * 2**attempt
            if exc.retry_after is not None:
                if exc.retry_after > MAX_RETRY_AFTER:
                    raise
                wait = max(wait, exc.retry_after)
        time.sleep(wait)
    raise AssertionError("unreachable")


def new_session(options: FetchOptions) -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = options.user_agent
    session.max_redirects = options.max_redirects
    session.trust_env = False  # proxies from the environment do not apply to a crawl
    adapter = _GuardedAdapter(options.allow_private_addresses)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def read_local_file(source: str, base_dir: Path, root: Path, max_bytes: int) -> bytes:
    """The bytes of the image file `source` names (relative to base_dir): only a regular file
    below `root`, at most max_bytes of it (the file's own bytes never reach the message);
    raises FetchError."""
    path = (base_dir / source).resolve()
    root = root.resolve()
    if not path.is_relative_to(root):
        raise FetchError("outside_local_root",
                         f"{source} is not below {root} (allow a folder with --local-root)")
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        raise FetchError("missing_file", str(path)) from None
    except OSError as exc:
        raise FetchError("unreadable_file", f"{path}: {exc.strerror}") from None
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FetchError("not_a_file", f"{path} is not a regular file")
        try:
            data = f.read(max_bytes + 1)  # st_size can lie (/proc, a growing file)
        except OSError as exc:
            raise FetchError("unreadable_file", f"{path}: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise FetchError("too_large", f"{path}: over {max_bytes} bytes")
    if sniff_format(data[:16]) is None:  # the file's bytes are never echoed into a report
        raise FetchError("not_an_image", f"{path}: not an image file")
    return data


# ---------------------------------------------------------------------------- connections

# The sockets of the request this thread is making, for its deadline watchdog.
_in_flight = threading.local()


def _track(sock: socket.socket) -> None:
    sockets = getattr(_in_flight, "sockets", None)
    if sockets is not None:
        sockets.append(sock)


def _refused_address(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast


class _GuardedConnectionMixin:
    """Connects only to addresses that pass the crawl's address policy, resolved once (so a
    second DNS answer cannot swap in another address), and lets the deadline watchdog see
    the socket of every request."""

    allow_private = False

    def _new_conn(self) -> socket.socket:
        host = self._dns_host
        if not self.allow_private:
            try:
                infos = socket.getaddrinfo(host, self.port, type=socket.SOCK_STREAM)
            except socket.gaierror:
                infos = []  # the parent class reports the lookup failure
            addresses = [info[4][0] for info in infos]
            refused = [a for a in addresses if _refused_address(a)]
            if refused:
                raise FetchError("private_address", f"{host} resolves to {refused[0]}, not a "
                                 "public address (--allow-private-addresses for a trusted list)")
            if addresses:
                self._dns_host = addresses[0]
        try:
            sock = super()._new_conn()
        finally:
            self._dns_host = host
        return sock

    def request(self, *args, **kwargs):
        if self.sock is not None:  # a kept-alive connection: this request's watchdog needs it
            _track(self.sock)
        return super().request(*args, **kwargs)

    def connect(self) -> None:
        super().connect()
        _track(self.sock)


@functools.lru_cache(maxsize=2)
def _pool_classes(allow_private: bool) -> dict[str, type]:
    def pool(base_pool: type, base_conn: type) -> type:
        conn = type(f"Guarded{base_conn.__name__}", (_GuardedConnectionMixin, base_conn),
                    {"allow_private": allow_private})
        return type(f"Guarded{base_pool.__name__}", (base_pool,), {"ConnectionCls": conn})

    return {"http": pool(HTTPConnectionPool, HTTPConnection),
            "https": pool(HTTPSConnectionPool, HTTPSConnection)}


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, allow_private: bool):
        self.allow_private = allow_private
        super().__init__()

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(self.allow_private)


class _Deadline:
    """Shuts the request's sockets down when its wall-clock time is up: socket timeouts
    bound each read, not a server trickling a byte at a time."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False

    def __enter__(self) -> _Deadline:
        self.sockets = _in_flight.sockets = []
        self.timer = threading.Timer(self.seconds, self._expire)
        self.timer.daemon = True
        self.timer.start()
        return self

    def _expire(self) -> None:
        self.expired = True
        for sock in list(self.sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __exit__(self, *exc_info) -> None:
        self.timer.cancel()
        _in_flight.sockets = None


def _get(url: str, options: FetchOptions, session: requests.Session) -> bytes:
    timed_out = FetchError("timeout", f"no full answer within {options.timeout:g}s", retry=True)
    with _Deadline(options.timeout) as deadline:
        try:
            with session.get(url, stream=True, timeout=options.timeout) as response:
                _check_response(response, options)
                return _read_body(response, options, deadline)
        except FetchError:
            raise
        except requests.TooManyRedirects:
            raise FetchError("too_many_redirects", f"more than {options.max_redirects}"
                             ) from None
        except (requests.Timeout, TimeoutError):
            raise timed_out from None
        except (requests.RequestException, OSError) as exc:
            if deadline.expired:  # the watchdog cut the connection
                raise timed_out from None
            if isinstance(exc, requests.exceptions.ChunkedEncodingError):
                raise FetchError("connection_lost", str(exc)[:120], retry=True) from None
            # requests reports a read timeout inside the body as a ConnectionError
            if exc.args and isinstance(exc.args[0], urllib3.exceptions.ReadTimeoutError):
                raise FetchError("timeout", "body stalled", retry=True) from None
            if isinstance(exc, requests.ConnectionError):
                raise FetchError("dead_url", _short(exc)) from None
            raise FetchError("bad_request", _short(exc)) from None


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _check_response(response: requests.Response, options: FetchOptions) -> None:
    status = response.status_code
    if status != 200:
        retry = status == 429 or status >= 500
        raise FetchError(f"http_{status}", response.reason or "", retry=retry,
                         retry_after=_retry_after(response.headers.get("Retry-After")))
    if options.respect_robots and _noai(response.headers.get("X-Robots-Tag", "")):
        raise FetchError("noai", f"X-Robots-Tag: {response.headers['X-Robots-Tag']}")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > options.max_bytes:
        raise FetchError("too_large", f"Content-Length {declared} > {options.max_bytes}")


def _read_body(response: requests.Response, options: FetchOptions,
               deadline: _Deadline) -> bytes:
    body, sniffed = bytearray(), False
    for chunk in response.iter_content(CHUNK):
        body += chunk
        if len(body) > options.max_bytes:  # stop reading: the rest is never downloaded
            raise FetchError("too_large", f"over {options.max_bytes} bytes")
        if not sniffed and len(body) >= 16:  # an HTML page: stop after its first bytes
            if sniff_format(bytes(body[:16])) is None:
                raise FetchError("not_an_image", _not_image_detail(response, body))
            sniffed = True
        if deadline.expired:
            raise TimeoutError
    if sniff_format(bytes(body[:16])) is None:
        raise FetchError("not_an_image", _not_image_detail(response, body))
    return bytes(body)


def _noai(header: str) -> bool:
    # "noai, noimageai" or "otherbot: noai" (the second names another robot, so it does not apply)
    for token in header.lower().split(","):
        agent, _, directive = token.rpartition(":")
        if agent.strip() in ("", "*", "dcgan-data") and directive.strip() in NOAI_DIRECTIVES:
            return True
    return False


def _not_image_detail(response: requests.Response, body: bytearray) -> str:
    kind = response.headers.get("Content-Type", "no Content-Type")
    return f"{kind}, leading bytes {bytes(body[:8]).hex()}"


def _short(exc: Exception) -> str:
    # urllib3 nests the cause ("[Errno 111] Connection refused") deep inside a long message
    text = str(exc)
    cause = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if cause:
        return cause.group(1).strip()
    return text if len(text) <= 160 else text[:157] + "..."


def fetch_many(
    entries: list[Entry], options: FetchOptions, workers: int = 16
) -> Iterator[tuple[Entry, bytes | FetchError, float]]:
    """Fetch entries on `workers` threads; yield (entry, bytes or FetchError, seconds) as they
    finish. At most 2 x workers responses wait in memory for the consumer."""
    local = threading.local()

    def task(entry: Entry) -> tuple[Entry, bytes | FetchError, float]:
        if not hasattr(local, "session"):
            local.session = new_session(options)
        start = time.perf_counter()
        try:
            result: bytes | FetchError = fetch(entry.source, options, local.session)
        except FetchError as exc:
            result = exc
        return entry, result, time.perf_counter() - start

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="fetch") as pool:
        for _, result in bounded_map(pool, task, entries, 2 * max(1, workers)):
            yield result

