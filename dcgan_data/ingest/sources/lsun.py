"""LSUN's LMDB format: key = 40-hex image id, value = JPEG or WebP bytes.

`LsunSource` reads one `*_lmdb` directory or a folder holding several. Environments are
opened lazily in whichever process reads, and are never pickled, so a source can be handed
to worker processes (or remote workers) safely. `ingest.pack.pack_images` writes the format.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import lmdb

from dcgan_data.core.errors import InputError

# lmdb allows one open environment per database per process: every source shares these.
_open_envs: dict[tuple[int, Path], lmdb.Environment] = {}


def open_readonly(db: Path) -> lmdb.Environment:
    """This process's read-only environment for `db`, opened once and shared."""
    slot = (os.getpid(), db.resolve())
    if slot not in _open_envs:
        try:
            _open_envs[slot] = lmdb.open(
                str(db), readonly=True, lock=False, readahead=False, meminit=False,
                max_readers=1024, subdir=True,
            )
        except lmdb.Error as exc:
            raise InputError(f"{db}: unreadable LMDB ({exc})") from None
        _check_complete(db, _open_envs[slot])
    return _open_envs[slot]


def _check_complete(db: Path, env: lmdb.Environment) -> None:
    # Reading a page past the end of a cut data.mdb kills the process with SIGBUS, so a file
    # shorter than the pages the database says it uses is refused before any read.
    used = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    size = (db / "data.mdb").stat().st_size
    if size < used:
        raise InputError(f"{db / 'data.mdb'}: {size} bytes, but the database uses {used}: "
                         "the file is truncated (an interrupted copy or download?)")


def item_name(key: bytes) -> str:
    """An LMDB key as an item name: UTF-8, with any other bytes kept as surrogate escapes
    (as Python names files), so `item_key` gives back exactly the same bytes."""
    return key.decode("utf-8", "surrogateescape")


def item_key(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def is_lmdb_dir(path: Path) -> bool:
    return path.is_dir() and (path / "data.mdb").is_file()


def find_lmdb_dirs(path: Path) -> list[Path]:
    """The LMDB directory `path`, or the LMDB directories directly inside it, sorted."""
    if is_lmdb_dir(path):
        return [path]
    if path.is_dir():
        return sorted(p for p in path.iterdir() if is_lmdb_dir(p))
    return []


class LsunSource:
    """Images stored in one or more LSUN LMDB databases, in key order.

    Item names are the hex keys; with several databases they are `dbname/key`.
    """

    kind = "lsun"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.dbs = find_lmdb_dirs(self.path)
        if not self.dbs:
            raise InputError(f"{self.path}: no LMDB database (data.mdb) here")

    def _env(self, db: int) -> lmdb.Environment:
        # looked up per call, never stored: the source pickles as paths only, and each
        # process (worker, or later a remote task) opens its own environment
        return open_readonly(self.dbs[db])

    def count(self) -> int:
        return sum(self._env(i).stat()["entries"] for i in range(len(self.dbs)))

    def items(self) -> list[str]:
        """Every key, in key order, read without touching the values."""
        names = []
        prefix_db = len(self.dbs) > 1
        for db, db_path in enumerate(self.dbs):
            with self._env(db).begin(buffers=False) as txn:
                keys = txn.cursor().iternext(keys=True, values=False)
                prefix = db_path.name + "/" if prefix_db else ""
                names.extend(prefix + item_name(key) for key in keys)
        return names

    def _split(self, item: str) -> tuple[int, bytes]:
        if len(self.dbs) == 1:
            return 0, item_key(item)
        db_name, key = item.split("/", 1)
        db = next(i for i, p in enumerate(self.dbs) if p.name == db_name)
        return db, item_key(key)

    def read_many(self, items: Sequence[str]) -> list[bytes | None]:
        """The values of `items` (None where a key is missing), one transaction per database."""
        out: list[bytes | None] = []
        txns: dict[int, lmdb.Transaction] = {}
        try:
            for item in items:
                db, key = self._split(item)
                if db not in txns:
                    txns[db] = self._env(db).begin(buffers=False)
                out.append(txns[db].get(key))
        finally:
            for txn in txns.values():
                txn.abort()
        return out
