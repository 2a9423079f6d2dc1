"""Crawl lists and polite, bounded fetching of the images they name.

A crawl list names one image per line: an http(s) URL or a local path, optionally as
`name<TAB>url` (the name is kept as a label). `.tsv`, `.csv` and `.jsonl` lists name the
image in a `url` column or field (and the label in `name` or `label`). Blank lines and `#`
comments are ignored; a malformed line is counted, never fatal.

Work units are ranges of physical lines, so a unit can be read from its byte range alone
(by another process or machine) and a re-run recognises the units it already finished.

`fetch` returns the bytes of one image or raises `FetchError` with a short reason code
("timeout", "http_404", "too_large", "noai", ...) that reports count.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests
import urllib3

from dcgan_data import __version__
from dcgan_data.errors import InputError
from dcgan_data.images import sniff_format
from dcgan_data.units import bounded_map

USER_AGENT = f"dcgan-data/{__version__} (face crawl for DCGAN training; python-requests)"
# X-Robots-Tag directives that ask not to use an image for AI training
NOAI_DIRECTIVES = {"noai", "noimageai"}
URL_FIELDS = ("url", "URL", "link", "image_url")
LABEL_FIELDS = ("name", "label", "caption")
CHUNK = 64 * 1024


# ---------------------------------------------------------------------------- crawl lists


@dataclass(frozen=True)
class Entry:
    """One image to fetch: its 1-based line in the crawl list, URL or path, and label."""

    line: int
    source: str
    label: str | None = None


@dataclass(frozen=True)
class Unit:
    """Lines first_line..first_line+lines-1 of the crawl list, bytes [start, stop)."""

    index: int
    first_line: int
    lines: int
    start: int
    stop: int
    digest: str  # of the header and these bytes: a re-run redoes a unit whose lines changed


def crawl_format(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    return suffix if suffix in ("tsv", "csv", "jsonl") else "txt"


def read_columns(path: str | os.PathLike, fmt: str) -> list[str] | None:
    """The header of a .tsv/.csv list (which must have a url column), None for other formats."""
    if fmt not in ("tsv", "csv"):
        return None
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        first = f.readline()
    columns = next(csv.reader([first], delimiter="\t" if fmt == "tsv" else ","), [])
    columns = [c.strip() for c in columns]
    if not any(c in URL_FIELDS for c in columns):
        raise InputError(f"{path}: the header {columns} has no url column")
    return columns


def plan_units(path: str | os.PathLike, lines_per_unit: int) -> list[Unit]:
    """Split the crawl list into units of `lines_per_unit` physical lines (one pass)."""
    if lines_per_unit < 1:
        raise InputError("--lines-per-shard must be at least 1")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such crawl list")
    fmt = crawl_format(path)
    header = b""
    units: list[Unit] = []
    with open(path, "rb") as f:
        if fmt in ("tsv", "csv"):
            header = f.readline()
        line_no, start, pos = (2 if header else 1), len(header), len(header)
        digest, count = hashlib.sha1(header), 0
        for raw in f:
            digest.update(raw)
            pos += len(raw)
            count += 1
            if count == lines_per_unit:
                units.append(Unit(len(units), line_no, count, start, pos, digest.hexdigest()))
                line_no, start, digest, count = line_no + count, pos, hashlib.sha1(header), 0
        if count:
            units.append(Unit(len(units), line_no, count, start, pos, digest.hexdigest()))
    return units


def read_unit(path: str | os.PathLike, unit: Unit) -> tuple[list[Entry], list[tuple[int, str]]]:
    """Parse one unit's lines: (entries, malformed as (line, reason))."""
    fmt = crawl_format(path)
    columns = read_columns(path, fmt)
    with open(path, "rb") as f:
        f.seek(unit.start)
        data = f.read(unit.stop - unit.start)
    lines = data.decode("utf-8", errors="replace").splitlines()
    return parse_lines(enumerate(lines, unit.first_line), fmt, columns)


def read_crawl(path: str | os.PathLike) -> tuple[list[Entry], list[tuple[int, str]]]:
    """Parse a whole crawl list (small lists, tests): (entries, malformed)."""
    entries, malformed = [], []
    for unit in plan_units(path, 1 << 30):
        e, m = read_unit(path, unit)
        entries += e
        malformed += m
    return entries, malformed


def parse_lines(
    numbered: Iterable[tuple[int, str]], fmt: str, columns: list[str] | None = None
) -> tuple[list[Entry], list[tuple[int, str]]]:
    entries, malformed = [], []
    for line_no, text in numbered:
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            source, label = _parse_line(text, fmt, columns)
            entries.append(Entry(line_no, _check_source(source), label))
        except ValueError as exc:
            malformed.append((line_no, str(exc)))
    return entries, malformed


def _parse_line(text: str, fmt: str, columns: list[str] | None) -> tuple[str, str | None]:
    if fmt == "jsonl":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        return _pick(obj)
    if fmt in ("tsv", "csv"):
        row = next(csv.reader([text], delimiter="\t" if fmt == "tsv" else ","))
        if len(row) != len(columns):
            raise ValueError(f"{len(row)} fields, the header has {len(columns)}")
        return _pick(dict(zip(columns, row, strict=True)))
    parts = text.strip().split("\t")
    if len(parts) == 1:
        return parts[0], None
    if len(parts) == 2:
        return parts[1].strip(), parts[0].strip() or None
    raise ValueError(f"{len(parts)} tab-separated fields (expected url or name<TAB>url)")


def _pick(record: dict) -> tuple[str, str | None]:
    source = next((record[k] for k in URL_FIELDS if k in record), None)
    if not isinstance(source, str):
        raise ValueError("no url field")
    label = next((record[k] for k in LABEL_FIELDS if record.get(k)), None)
    return source.strip(), None if label is None else str(label)


def _check_source(source: str) -> str:
    if not source:
        raise ValueError("empty url")
    if "://" in source:
        parts = urlsplit(source)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {parts.scheme!r}")
        if not parts.netloc or any(c.isspace() for c in source):
            raise ValueError(f"not a valid URL: {source[:80]!r}")
    elif "/" not in source and "\\" not in source and "." not in source:
        # a path names a folder or has an extension; a line of plain words is neither
        raise ValueError(f"neither a URL nor a path: {source[:80]!r}")
    return source


# ---------------------------------------------------------------------------- fetching


class FetchError(Exception):
    """An image that could not be fetched. `reason` is a short code for reports."""

    def __init__(self, reason: str, detail: str = "", retry: bool = False):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.retry = retry


@dataclass
class FetchOptions:
    timeout: float = 10.0  # seconds for the whole response, headers and body
    retries: int = 2  # extra attempts after a timeout, a 429 or a 5xx
    backoff: float = 1.0  # seconds before the first retry, doubled after each
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 5
    respect_robots: bool = True  # skip X-Robots-Tag: noai / noimageai
    base_dir: Path = field(default_factory=Path)  # relative local paths are read from here
    user_agent: str = USER_AGENT


def fetch(source: str, options: FetchOptions, session: requests.Session | None = None) -> bytes:
    """The bytes of one image (a URL or a local path); raises FetchError."""
    if "://" not in source:
        return _read_local(source, options)
    session = session or new_session(options)
    for attempt in range(options.retries + 1):
        try:
            return _get(source, options, session)
        except FetchError as exc:
            if not exc.retry or attempt == options.retries:
                raise
        time.sleep(options.backoff * 2**attempt)
    raise AssertionError("unreachable")


def new_session(options: FetchOptions) -> requests.Session:
    session = requests.Session()
    session.headers["User-Agent"] = options.user_agent
    session.max_redirects = options.max_redirects
    session.trust_env = False  # proxies from the environment do not apply to a crawl
    return session


def _read_local(source: str, options: FetchOptions) -> bytes:
    path = options.base_dir / source
    try:
        size = path.stat().st_size
        if size > options.max_bytes:
            raise FetchError("too_large", f"{size} bytes > {options.max_bytes}")
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise FetchError("missing_file", str(path)) from None
    except OSError as exc:
        raise FetchError("unreadable_file", f"{path}: {exc.strerror}") from None
    if sniff_format(data[:16]) is None:
        raise FetchError("not_an_image", f"leading bytes {data[:8].hex()}")
    return data


def _get(url: str, options: FetchOptions, session: requests.Session) -> bytes:
    deadline = time.monotonic() + options.timeout
    try:
        with session.get(url, stream=True, timeout=options.timeout) as response:
            _check_response(response, options)
            return _read_body(response, options, deadline)
    except requests.TooManyRedirects:
        raise FetchError("too_many_redirects", f"more than {options.max_redirects}") from None
    except (requests.Timeout, TimeoutError):
        raise FetchError("timeout", f"no answer within {options.timeout:g}s", retry=True) from None
    except requests.exceptions.ChunkedEncodingError as exc:
        raise FetchError("connection_lost", str(exc)[:120], retry=True) from None
    except requests.ConnectionError as exc:
        # requests reports a read timeout inside the body as a ConnectionError
        if exc.args and isinstance(exc.args[0], urllib3.exceptions.ReadTimeoutError):
            raise FetchError("timeout", "body stalled", retry=True) from None
        raise FetchError("dead_url", _short(exc)) from None
    except requests.RequestException as exc:
        raise FetchError("bad_request", _short(exc)) from None


def _check_response(response: requests.Response, options: FetchOptions) -> None:
    status = response.status_code
    if status != 200:
        retry = status == 429 or status >= 500
        raise FetchError(f"http_{status}", response.reason or "", retry=retry)
    if options.respect_robots and _noai(response.headers.get("X-Robots-Tag", "")):
        raise FetchError("noai", f"X-Robots-Tag: {response.headers['X-Robots-Tag']}")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > options.max_bytes:
        raise FetchError("too_large", f"Content-Length {declared} > {options.max_bytes}")


def _read_body(response: requests.Response, options: FetchOptions, deadline: float) -> bytes:
    body, sniffed = bytearray(), False
    for chunk in response.iter_content(CHUNK):
        body += chunk
        if len(body) > options.max_bytes:  # stop reading: the rest is never downloaded
            raise FetchError("too_large", f"over {options.max_bytes} bytes")
        if not sniffed and len(body) >= 16:  # an HTML page: stop after its first bytes
            if sniff_format(bytes(body[:16])) is None:
                raise FetchError("not_an_image", _not_image_detail(response, body))
            sniffed = True
        if time.monotonic() > deadline:  # a server trickling bytes: the timeout is per response
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

