"""Shard directories: reading them (`ShardSet`), and the names of the whole format in one
place (`core.shard_format` describes the files, `core.shard_writer` writes them); this is
the module `dcgan_data.shards` documents."""

from __future__ import annotations

import contextlib
import hashlib
import io
import mmap
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dcgan_data.core.errors import InputError
from dcgan_data.core.files import read_json
from dcgan_data.core.shard_format import (
    DEFAULT_SHARD_BYTES,
    ENTRY_FIELDS,
    FILE_CHECKSUMS,
    FORMAT,
    KEYS_ENCODING,
    MANIFEST,
    SIDECARS,
    VERSION,
    decode_key,
    encode_key,
    is_shard_dir,
    rows_per_shard_of,
    sha256_file,
    shard_stem,
)
from dcgan_data.core.shard_writer import ShardTarget, ShardWriter

__all__ = ["DEFAULT_SHARD_BYTES", "ENTRY_FIELDS", "FILE_CHECKSUMS", "FORMAT", "KEYS_ENCODING",
           "MANIFEST", "SIDECARS", "VERSION", "ShardSet", "ShardTarget", "ShardWriter",
           "decode_key", "encode_key", "is_shard_dir", "rows_per_shard_of", "sha256_file",
           "shard_stem"]


def _checked_entries(manifest: dict[str, Any], where: Path) -> list[dict[str, Any]]:
    """The manifest's shard entries, each complete and each file listed once (a shard listed
    twice would give every reader its rows twice)."""
    shards = manifest.get("shards")
    shape = manifest.get("shape")
    if (not isinstance(shards, list) or not isinstance(manifest.get("count"), int)
            or not isinstance(shape, list) or len(shape) != 3
            or not all(isinstance(n, int) and n > 0 for n in shape)):
        raise InputError(f"{where}: damaged manifest (needs shards, count and a 3-number shape)")
    listed: dict[str, int] = {}
    for i, entry in enumerate(shards):
        if not isinstance(entry, dict) or any(k not in entry for k in ENTRY_FIELDS):
            raise InputError(f"{where}: shard entry {i} is incomplete (needs "
                             f"{', '.join(ENTRY_FIELDS)})")
        rows = entry["rows"]
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise InputError(f"{where}: shard entry {i}: rows {rows!r} is not a count")
        for field in ("file", "keys", "hw"):
            name = entry[field]
            if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name:
                raise InputError(f"{where}: shard entry {i}: {field} {name!r} is not a file "
                                 "name in the shard directory")
            if name in listed:
                raise InputError(f"{where}: {name} is listed twice (shard entries "
                                 f"{listed[name]} and {i})")
            listed[name] = i
    return shards


@contextlib.contextmanager
def _random_reads(array: np.ndarray) -> Iterator[np.ndarray]:
    """A memory map read at scattered rows: without this, the kernel's read-ahead drags in
    large regions around every row touched (a sample of 200k rows from 3M then reads most
    of the file). Sequential scans get their read-ahead back afterwards."""
    mapping = getattr(array, "_mmap", None)
    if mapping is None or not hasattr(mapping, "madvise"):
        yield array
        return
    mapping.madvise(mmap.MADV_RANDOM)
    try:
        yield array
    finally:
        mapping.madvise(mmap.MADV_NORMAL)


class ShardSet:
    """Read-only access to a finished shard directory, memory-mapped."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not self.path.is_dir():
            raise InputError(f"{self.path}: no such shard directory")
        if not manifest_path.exists():
            partial = list(self.path.glob(SIDECARS))
            if partial:
                raise InputError(
                    f"{self.path}: no manifest.json but {len(partial)} shard(s): the run that "
                    "wrote it did not finish; re-run the same command to resume it"
                )
            raise InputError(f"{self.path}: not a shard directory (no manifest.json)")
        try:
            manifest = read_json(manifest_path)
        except (OSError, ValueError) as exc:
            raise InputError(f"{manifest_path}: unreadable manifest ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise InputError(f"{manifest_path}: not a {FORMAT} manifest")
        if manifest.get("version") != VERSION:
            raise InputError(f"{manifest_path}: format version {manifest.get('version')}, "
                             f"this tool reads version {VERSION}")
        self.manifest = manifest
        self.shards = _checked_entries(manifest, manifest_path)
        self.shape = tuple(manifest["shape"])
        rows = [s["rows"] for s in self.shards]
        if sum(rows) != manifest["count"]:
            raise InputError(f"{manifest_path}: count {manifest['count']} != sum of shard rows")
        self.offsets = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
        self._arrays: dict[int, np.ndarray] = {}
        self._decode_keys = manifest.get("keys_encoding") == KEYS_ENCODING

    def __getstate__(self) -> dict[str, Any]:
        # Pickle as paths: a memory map pickles as a full in-memory copy of the shard, so a
        # spawned DataLoader worker would get the whole data set; each process maps its own.
        state = self.__dict__.copy()
        state["_arrays"] = {}
        return state

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def num_shards(self) -> int:
        return len(self.shards)

    def shard(self, i: int) -> np.ndarray:
        """Shard i as a read-only memory map (N, H, W, 3), its sha256 checked on first use."""
        if i not in self._arrays:
            entry = self.shards[i]
            path = self.path / entry["file"]
            try:
                array = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise InputError(f"{path}: unreadable shard ({exc})") from None
            if array.shape != (entry["rows"], *self.shape) or array.dtype != np.uint8:
                raise InputError(f"{path}: shape {array.shape} {array.dtype}, manifest says "
                                 f"{(entry['rows'], *self.shape)} uint8")
            if sha256_file(path) != entry["sha256"]:
                raise InputError(f"{path}: sha256 mismatch, the shard is damaged; re-run "
                                 "the stage that wrote it into a fresh directory")
            self._arrays[i] = array
        return self._arrays[i]

    def shard_keys(self, i: int) -> list[str]:
        path = self.path / self.shards[i]["keys"]
        try:
            data = path.read_bytes()
            self._check_sha256(i, "keys", data)
            lines = data.decode("utf-8").split("\n")
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: unreadable keys ({exc})") from None
        keys = lines[:-1] if lines and lines[-1] == "" else lines
        if len(keys) != self.shards[i]["rows"]:
            raise InputError(f"{path}: {len(keys)} keys for {self.shards[i]['rows']} rows")
        return [decode_key(k) for k in keys] if self._decode_keys else keys

    def shard_hw(self, i: int) -> np.ndarray:
        path = self.path / self.shards[i]["hw"]
        try:
            data = path.read_bytes()
            self._check_sha256(i, "hw", data)
            hw = np.load(io.BytesIO(data))
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: unreadable source sizes ({exc})") from None
        if hw.shape != (self.shards[i]["rows"], 2):
            raise InputError(f"{path}: shape {hw.shape}, expected ({self.shards[i]['rows']}, 2)")
        return hw

    def _check_sha256(self, i: int, field: str, data: bytes) -> None:
        expected = self.shards[i].get(FILE_CHECKSUMS[field])
        if expected is not None and hashlib.sha256(data).hexdigest() != expected:
            raise InputError(f"{self.path / self.shards[i][field]}: sha256 mismatch, the file "
                             "was changed after the stage wrote it")

    def keys(self) -> list[str]:
        return [k for i in range(self.num_shards) for k in self.shard_keys(i)]

    def source_hw(self) -> np.ndarray:
        if not self.shards:
            return np.zeros((0, 2), np.int32)
        return np.concatenate([self.shard_hw(i) for i in range(self.num_shards)])

    def iter_shards(self) -> Iterator[tuple[int, np.ndarray]]:
        for i in range(self.num_shards):
            yield i, self.shard(i)

    def load(self, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Rows by global index (all rows when None), copied into memory, in the order given."""
        if indices is None:
            if not self.shards:
                return np.zeros((0, *self.shape), np.uint8)
            return np.concatenate([self.shard(i) for i in range(self.num_shards)])
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"row index out of range 0..{len(self) - 1}")
        out = np.empty((len(indices), *self.shape), np.uint8)
        shard_of = np.searchsorted(self.offsets, indices, side="right") - 1
        for s in np.unique(shard_of):
            where = np.nonzero(shard_of == s)[0]
            with _random_reads(self.shard(int(s))) as array:
                out[where] = array[indices[where] - self.offsets[s]]
        return out

    def verify(self) -> list[str]:
        """Check every shard file against its sha256 and key count; return the problems found."""
        problems = []
        for i, entry in enumerate(self.shards):
            path = self.path / entry["file"]
            if not path.exists():
                problems.append(f"{entry['file']}: missing")
                continue
            if sha256_file(path) != entry["sha256"]:
                problems.append(f"{entry['file']}: sha256 mismatch")
            for check in (self.shard_keys, self.shard_hw):
                try:
                    check(i)
                except InputError as exc:
                    problems.append(str(exc))
        return problems
