"""Atomic writes, output-directory locks, JSON reports and progress bars shared by every
stage."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import functools
import inspect
import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm import tqdm

from dcgan_data.core.errors import InputError

LOCK_FILE = ".dcgan-data.lock"
F = TypeVar("F", bound=Callable[..., Any])


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates files 0600; a finished file gets the mode the user's umask asks for
_FILE_MODE = 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A killed run therefore leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, _FILE_MODE)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def disk_array(folder: str | os.PathLike, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A zeroed array mapped from a nameless file in `folder` (unlinked from the start): its
    pages are file pages, which the kernel writes back and lets go under memory pressure
    rather than holding them as the process's own, and nothing is left behind however the
    run ends."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if size == 0:
        return np.zeros(shape, dtype)
    with tempfile.TemporaryFile(dir=folder) as f:
        f.truncate(size)
        return np.memmap(f, dtype, "r+", shape=shape)  # the map keeps its own descriptor


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    # surrogateescape: a file name that is not UTF-8 is written back as its own bytes
    atomic_write_bytes(path, text.encode("utf-8", "surrogateescape"))


@contextlib.contextmanager
def output_lock(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive advisory lock on an output directory while a stage writes into it.

    A second run into the same directory is refused at once with a one-line message, instead
    of interleaving its files with the first run's. The kernel drops the lock when the holder
    dies (flock), so a killed run never leaves the directory locked. Holding the lock, the
    stage also removes temporary files a killed run left behind. A stage that fails leaves no
    directory it created behind it empty (a refused option writes nothing).
    """
    out_dir = Path(out_dir)
    check_output(out_dir, directory=True)
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        raise InputError(f"{out_dir}: another dcgan-data run (pid {holder or '?'}) is writing "
                         "there; wait for it to finish or choose another output directory"
                         ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        remove_stale_temporaries(out_dir)
        yield out_dir
    except BaseException:
        if created and [p.name for p in out_dir.iterdir()] == [LOCK_FILE]:
            (out_dir / LOCK_FILE).unlink()
            out_dir.rmdir()
        raise
    finally:
        os.close(fd)


def check_output(path: str | os.PathLike, directory: bool, option: str = "") -> None:
    """Refuse, before any work, an output that cannot be written: a directory where a file
    is wanted or the other way round, a parent that is a file, a folder not writable."""
    path = Path(path)
    where = f"{option} {path}".strip()
    if path.exists() and path.is_dir() != directory:
        raise InputError(f"{where}: exists and is not a {'directory' if directory else 'file'}")
    parent = path if path.is_dir() else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{where}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{where}: {parent} is not writable")


def locks_output(arg: str) -> Callable[[F], F]:
    """Decorate a stage function so it runs holding `output_lock` on its argument `arg`."""

    def decorate(stage: F) -> F:
        signature = inspect.signature(stage)

        @functools.wraps(stage)
        def locked(*args: Any, **kwargs: Any) -> Any:
            if os.environ.get("RANK", "0") != "0":  # a distributed job: rank 0 alone writes
                return stage(*args, **kwargs)
            out_dir = signature.bind(*args, **kwargs).arguments[arg]
            with output_lock(out_dir):
                return stage(*args, **kwargs)

        return locked  # type: ignore[return-value]

    return decorate


def remove_stale_temporaries(folder: Path) -> int:
    """Delete the `.NAME.XXXX.tmp` files `atomic_path` leaves when a run is killed mid-write.
    Call only while holding the folder's `output_lock`. Returns how many were removed."""
    removed = 0
    # the folder and its direct subfolders (checkpoints/, samples/): an -o naming a big tree
    # by mistake must not cost a walk of it
    for tmp in [*folder.glob(".*.tmp"), *folder.glob("*/.*.tmp")]:
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def write_csv(path: str | os.PathLike, header: list[str], rows: Iterable[Iterable],
              spreadsheet_safe: bool = False) -> None:
    """Write a CSV table (header first, "\n" line ends), atomically. With `spreadsheet_safe`,
    text from outside (labels, URLs) is written as `spreadsheet_text` makes it."""
    buf = io.StringIO()
    table = csv.writer(buf, lineterminator="\n")
    table.writerow(header)
    if spreadsheet_safe:
        rows = ([spreadsheet_text(c) if isinstance(c, str) else c for c in row] for row in rows)
    table.writerows(rows)
    atomic_write_text(path, buf.getvalue())


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def spreadsheet_text(cell: str) -> str:
    """A text cell a spreadsheet would run as a formula (=, +, -, @, tab, CR first), with a
    leading "'" as OWASP recommends; a cell starting with "'" gets one too, so removing one
    leading "'" (`from_spreadsheet_text`) always gives the original back."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def from_spreadsheet_text(cell: str) -> str:
    return cell[1:] if cell.startswith("'") else cell


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays, Paths: the usual things a report holds
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


PROGRESS_SECONDS_ENV = "DCGAN_DATA_PROGRESS_SECONDS"


def progress(iterable: Iterable | None = None, **kwargs: Any) -> tqdm | LogProgress:
    """A tqdm bar on stderr when stderr is a terminal; else (CI, pipes, logs) a plain line
    every $DCGAN_DATA_PROGRESS_SECONDS seconds (30 unless set). disable=True: silent."""
    kwargs.setdefault("unit", "img")
    if kwargs.get("disable") is True:
        return tqdm(iterable, **kwargs)
    if not sys.stderr.isatty():
        return LogProgress(iterable, _progress_seconds(), **kwargs)
    kwargs["disable"] = False
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)


def _progress_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(PROGRESS_SECONDS_ENV, "30")))
    except ValueError:
        return 30.0


class LogProgress:
    """The part of tqdm's interface the stages use, printing one line (done/total, rate, ETA)
    at most every `interval` seconds, and a last one when the phase took that long."""

    def __init__(self, iterable: Iterable | None, interval: float, total: int | None = None,
                 initial: int = 0, desc: str = "", unit: str = "img", **_: Any):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.interval, self.total, self.desc, self.unit = (
            iterable, interval, total, desc, unit)
        self.n = self.initial = initial
        self.postfix = ""
        self.shown: tuple[int, str] | None = None  # the last line's count and description
        self.start = self.printed = time.monotonic()
        self.closed = False

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.printed >= self.interval:
            self._print()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", " + ", ".join(f"{k} {v}" for k, v in values.items())

    def set_description_str(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc  # shown by the next line

    def close(self) -> None:
        if (not self.closed and time.monotonic() - self.start >= self.interval
                and self.shown != (self.n, self.desc)):
            self._print()
        self.closed = True

    def _print(self) -> None:
        now = time.monotonic()
        self.printed, self.shown = now, (self.n, self.desc)
        rate = (self.n - self.initial) / max(now - self.start, 1e-9)
        done = f"{self.n:,}" if self.total is None else f"{self.n:,}/{self.total:,}"
        eta = ""
        if self.total is not None and rate > 0 and self.n < self.total:
            eta = f", ETA {_duration((self.total - self.n) / rate)}"
        print(f"{self.desc}: {done} {self.unit}, {rate:,.1f} {self.unit}/s{eta}{self.postfix}",
              file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    h, m = divmod(minutes, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def remove_folders(parent: str | os.PathLike, prefix: str, keep: Path | None = None) -> int:
    """Delete the folders named prefix* in `parent` but `keep`: working folders that killed
    runs left. Call only while no other run can be using them (holding the output lock)."""
    stale = [p for p in Path(parent).glob(prefix + "*") if p.is_dir() and p != keep]
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return len(stale)
