"""Writing shards (the format: `core.shard_format`): one shard file set per unit, written
atomically by whichever worker ran the unit, and the manifest last."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dcgan_data.core import shard_format as fmt
from dcgan_data.core.errors import InputError
from dcgan_data.core.files import atomic_path, atomic_write_bytes, read_json, write_json


@dataclass(frozen=True, eq=False)
class ShardTarget:
    """Where and how shards are written: small, so that it ships to every worker, and each
    unit's worker writes its own shard into `out_dir` (a path every worker can write)."""

    out_dir: Path
    shape: list[int]
    params: dict[str, Any]

    def write(self, index: int, images: np.ndarray, keys: Sequence[str],
              source_hw: np.ndarray | None = None, notes: dict[str, Any] | None = None
              ) -> dict[str, Any]:
        """Write shard `index` atomically; its entry (the sidecar written last). `notes`
        (counts, failures) is kept in the sidecar."""
        return self.write_blocks(index, [np.asarray(images, np.uint8)], keys, source_hw, notes)

    def write_blocks(self, index: int, blocks: Iterable[np.ndarray], keys: Sequence[str],
                     source_hw: np.ndarray | None = None, notes: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
        """`write`, from the shard's rows in consecutive blocks (arrays of rows, e.g. memory
        maps of parts decoded elsewhere): the file is the same, and no more than one block
        is ever in memory."""
        rows = len(keys)
        if source_hw is None:
            source_hw = np.tile(np.asarray(self.shape[:2], np.int32), (rows, 1))
        source_hw = np.asarray(source_hw, np.int32).reshape(rows, 2)
        stem = self.out_dir / fmt.shard_stem(index)
        with atomic_path(stem.with_suffix(".npy")) as tmp:
            digest = self._write_npy(tmp, index, rows, blocks)
        with atomic_path(stem.with_suffix(".hw.npy")) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, source_hw)
            hw_digest = fmt.sha256_file(tmp)
        key_lines = "".join(fmt.encode_key(k) + "\n" for k in keys).encode("utf-8")
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
        for sidecar in sorted(self.out_dir.glob(fmt.SIDECARS)):
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

    def write(self, index: int, images: np.ndarray, keys: Sequence[str],
              source_hw: np.ndarray | None = None, notes: dict[str, Any] | None = None
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
        fields = (*fmt.ENTRY_FIELDS, *fmt.FILE_CHECKSUMS.values())
        shards = [{k: self.entries[i][k] for k in fields if k in self.entries[i]}
                  for i in range(num_shards)]
        manifest = {
            "format": fmt.FORMAT,
            "version": fmt.VERSION,
            "shape": self.shape,
            "dtype": "uint8",
            "keys_encoding": fmt.KEYS_ENCODING,
            "count": sum(s["rows"] for s in shards),
            "params": self.params,
            "info": info or {},
            "shards": shards,
        }
        write_json(self.out_dir / fmt.MANIFEST, manifest)
        return manifest

    def notes(self) -> list[dict[str, Any]]:
        """Each written shard's notes, in shard order (for building a stage report)."""
        return [self.entries[i]["notes"] for i in sorted(self.entries)]
