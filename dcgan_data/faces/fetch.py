"""Polite, bounded fetching of the images a crawl list names.

`fetch` returns the bytes of one image or raises `FetchError` with a short reason code
("timeout", "http_404", "too_large", "noai", ...) that reports count. A crawl list may come
from the web, so by default a fetch never connects to a loopback, private, link-local or
otherwise non-global address (checked after DNS resolution, on every redirect), and a local
path is read only when it is a regular file under the list's folder (or `local_root`). Each
request has a wall-clock deadline, each body a size limit, and `fetch_many` keeps at most
twice its threads' responses in memory.
"""

from __future__ import annotations

import email.utils
import functools
import ipaddress
import os
import re
import socket
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from dcgan_data.core.images import sniff_format
from dcgan_data.engines.runner import bounded_map
from dcgan_data.faces.crawl_list import Entry
from dcgan_data.faces.options import FetchOptions

# X-Robots-Tag directives that ask not to use an image for AI training
NOAI_DIRECTIVES = {"noai", "noimageai"}
CHUNK = 64 * 1024
MAX_RETRY_AFTER = 120.0  # seconds: a longer Retry-After gives up on the URL instead


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
