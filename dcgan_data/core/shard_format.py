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

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np

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


