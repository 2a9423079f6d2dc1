"""The shard format: fixed-size uint8 image rows in memory-mappable .npy files.

A shard directory holds, for each shard i:
  shard-0000i.npy        N x H x W x 3 uint8 (np.load(mmap_mode="r") works)
  shard-0000i.keys.txt   N lines: the source key, path or URL of each row (`encode_key`)
  shard-0000i.hw.npy     N x 2 int32: the source image's height and width
  shard-0000i.json       written last: rows, the sha256 of each of the three files, shape,
                         and the stage's notes for this unit
and, once every shard is written, manifest.json listing them all (each file once).

A shard is complete when its .json exists, so independent workers (processes today,
machines later) can each write their own shards, and a killed run resumes by skipping
the shards that are complete. The manifest is the one global step, written last.
Readers check each shard file's sha256 the first time they map it, so a damaged shard
fails the run that reads it instead of flowing on into training or a fresh manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import mmap
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import numpy as np

from dcgan_data.core.errors import InputError
from dcgan_data.core.files import atomic_path, atomic_write_bytes, read_json, write_json

FORMAT = "dcgan-data-shards"
VERSION = 1
MANIFEST = "manifest.json"
SIDECARS = "shard-*[0-9].json"  # one per finished shard
# A shard is built in memory before it is written: bound its bytes, not its rows (65,536
# rows at 64 px; 4,096 at 256 px).
DEFAULT_SHARD_BYTES = 768 * 2**20
ENTRY_FIELDS = ("file", "keys", "hw", "rows", "sha256")  # a manifest's entry for each shard
# checksums of the key and size files: absent in shard sets written before they existed
FILE_CHECKSUMS = {"keys": "keys_sha256", "hw": "hw_sha256"}


def rows_per_shard_of(shape: Sequence[int], shard_bytes: int = DEFAULT_SHARD_BYTES) -> int:
    """How many uint8 rows of `shape` fit in `shard_bytes`."""
    return max(1, shard_bytes // int(np.prod(shape)))
KEYS_ENCODING = "percent"  # manifest field; absent in shard sets written before it existed


def encode_key(key: str) -> str:
    """A key's line in keys.txt: printable characters as they are; `%` and every other
    character (line breaks, controls, Unicode separators, the raw bytes of a file name that
    is not UTF-8) as %XX escapes of its UTF-8 bytes. `decode_key` gives the key back exactly.
    """
    if key.isprintable() and "%" not in key:
        return key
    return "".join(c if c.isprintable() and c != "%" else
                   quote(c, safe="", errors="surrogateescape") for c in key)


def decode_key(line: str) -> str:
    """The key `encode_key` wrote as `line`."""
    return unquote(line, errors="surrogateescape") if "%" in line else line


def shard_stem(index: int) -> str:
    return f"shard-{index:05d}"


def is_shard_dir(path: str | os.PathLike) -> bool:
    """A shard directory, finished (manifest) or not (shards written, no manifest yet)."""
    path = Path(path)
    return (path / MANIFEST).exists() or any(path.glob(SIDECARS))


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class ShardTarget:
    """Where and how shards are written: small, so that it ships to every worker, and each
    unit's worker writes its own shard into `out_dir` (a path every worker can write)."""

    out_dir: Path
    shape: list[int]
    params: dict[str, Any]

    def write(
        self,
        index: int,
        images: np.ndarray,
        keys: Sequence[str],
        source_hw: np.ndarray | None = None,
        notes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write shard `index` atomically; its entry (the sidecar written last). `notes`
        (counts, failures) is kept in the sidecar."""
        return self.write_blocks(index, [np.asarray(images, np.uint8)], keys, source_hw, notes)

    def write_blocks(
        self,
        index: int,
        blocks: Iterable[np.ndarray],
        keys: Sequence[str],
        source_hw: np.ndarray | None = None,
        notes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """`write`, from the shard's rows in consecutive blocks (arrays of rows, e.g. memory
        maps of parts decoded elsewhere): the file is the same, and no more than one block
        is ever in memory."""
        rows = len(keys)
        if source_hw is None:
            source_hw = np.tile(np.asarray(self.shape[:2], np.int32), (rows, 1))
        source_hw = np.asarray(source_hw, np.int32).reshape(rows, 2)
        stem = self.out_dir / shard_stem(index)
        with atomic_path(stem.with_suffix(".npy")) as tmp:
            digest = self._write_npy(tmp, index, rows, blocks)
        with atomic_path(stem.with_suffix(".hw.npy")) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, source_hw)
            hw_digest = sha256_file(tmp)
        key_lines = "".join(encode_key(k) + "\n" for k in keys).encode("utf-8")
        atomic_write_bytes(stem.with_suffix(".keys.txt"), key_lines)
        entry = {
            "index": index,
            "file": stem.name + ".npy",
            "keys": stem.name + ".keys.txt",
            "hw": stem.name + ".hw.npy",
            "rows": rows,
            "sha256": digest,
            "keys_sha256": hashlib.sha256(key_lines).hexdigest(),
            "hw_sha256": hw_digest,
            "shape": self.shape,
            "params": self.params,
            "notes": notes or {},
        }
        write_json(stem.with_suffix(".json"), entry)
        return entry

    def _write_npy(self, path: Path, index: int, rows: int, blocks: Iterable[np.ndarray]
                   ) -> str:
        """Write `rows` rows from `blocks` as the .npy file np.save would; its sha256."""
        digest = hashlib.sha256()
        written = 0
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {
            "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
            "fortran_order": False, "shape": (rows, *self.shape)})
        with open(path, "wb") as f:
            f.write(header.getvalue())
            digest.update(header.getvalue())
            for block in blocks:
                if block.shape[1:] != tuple(self.shape) or block.dtype != np.uint8:
                    raise ValueError(f"shard {index}: rows {block.shape[1:]} {block.dtype}, "
                                     f"not {tuple(self.shape)} uint8")
                block = np.ascontiguousarray(block)
                f.write(block.data)
                digest.update(block.data)
                written += len(block)
        if written != rows:
            raise ValueError(f"shard {index}: {written} rows of images for {rows} keys")
        return digest.hexdigest()


class ShardWriter:
    """Writes shards of one shape into a directory, resuming a run that was cut short.

    `params` describes what produced the shards (stage options that change the pixels);
    resuming with different params or shape is refused instead of mixing two runs. Shards
    are written here (`write`) or by workers (`target.write`, then `add` their entries).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        shape: Sequence[int],
        params: dict[str, Any] | None = None,
    ):
        self.out_dir = Path(out_dir)
        self.shape = [int(s) for s in shape]
        self.params = dict(params or {})
        # absolute: a worker on another machine (or in another folder) writes the same files
        self.target = ShardTarget(self.out_dir.resolve(), self.shape, self.params)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.entries: dict[int, dict[str, Any]] = {}
        for sidecar in sorted(self.out_dir.glob(SIDECARS)):
            entry = read_json(sidecar)
            if entry.get("shape") != self.shape or entry.get("params") != self.params:
                raise InputError(
                    f"{self.out_dir} holds shards of a different run "
                    f"(shape {entry.get('shape')}, params {entry.get('params')}); "
                    "choose another output directory or delete it"
                )
            self.entries[entry["index"]] = entry

    def is_done(self, index: int) -> bool:
        return index in self.entries

    def write(
        self,
        index: int,
        images: np.ndarray,
        keys: Sequence[str],
        source_hw: np.ndarray | None = None,
        notes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write shard `index` atomically (see ShardTarget.write)."""
        return self.add(self.target.write(index, images, keys, source_hw, notes))

    def add(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Count in a shard a worker wrote (its `target.write` entry)."""
        self.entries[entry["index"]] = entry
        return entry

    def finish(self, num_shards: int, info: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write manifest.json once shards 0..num_shards-1 are all complete."""
        missing = [i for i in range(num_shards) if i not in self.entries]
        if missing:
            raise RuntimeError(f"cannot finish: shards {missing[:10]} are not written")
        fields = (*ENTRY_FIELDS, *FILE_CHECKSUMS.values())
        shards = [{k: self.entries[i][k] for k in fields if k in self.entries[i]}
                  for i in range(num_shards)]
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "shape": self.shape,
            "dtype": "uint8",
            "keys_encoding": KEYS_ENCODING,
            "count": sum(s["rows"] for s in shards),
            "params": self.params,
            "info": info or {},
            "shards": shards,
        }
        write_json(self.out_dir / MANIFEST, manifest)
        return manifest

    def notes(self) -> list[dict[str, Any]]:
        """Each written shard's notes, in shard order (for building a stage report)."""
        return [self.entries[i]["notes"] for i in sorted(self.entries)]


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
