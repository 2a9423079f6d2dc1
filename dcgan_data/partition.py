"""Rows that share a hash, found in P partitions so that memory stays bounded.

Grouping is the one global step of de-duplication: every row's hash and probe hashes must
meet every other row's. In one pass that is a sort of N x M 16-byte hashes in memory. Here
each (hash, row) is routed by its first 8 bytes to one of P partition files on disk (equal
hashes always land together), and each partition is sorted on its own as one unit: in this
process one after another, or on a Ray cluster in parallel.

The edges are those of `dedup.probe_pairs`: within a partition the records keep their
original order, so each hash's rows form the same chain as in the single sort.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dcgan_data.errors import InputError
from dcgan_data.units import Engine, UnitError, make_engine, run_units

RECORD = np.dtype([("hi", "<u8"), ("lo", "<u8"), ("row", "<i8")])
# bytes a partition needs in memory per record: the records, the sort order, the sorted copy
# and the comparison masks
WORKING_BYTES = RECORD.itemsize + 8 + RECORD.itemsize + 8
BLOCK_BYTES = 16 << 20  # input read per routing step (about 6x that in memory)
MAX_PARTITIONS = 4096


def available_memory() -> int:
    """Bytes this machine can still give (MemAvailable), or 4 GiB when it cannot tell."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def auto_partitions(rows: int, moves: int, memory: int | None = None) -> int:
    """The fewest partitions (a power of 2) whose one partition's sort fits in a quarter of
    `memory` (default: the memory available now), leaving room for the edges and the rest."""
    memory = available_memory() if memory is None else memory
    need = rows * moves * WORKING_BYTES
    parts = max(1, math.ceil(need / max(1, memory // 4)))
    return min(MAX_PARTITIONS, 1 << (parts - 1).bit_length())


def shared_hash_pairs(
    probes: np.ndarray,
    partitions: int | str = "auto",
    engine: Engine | str | None = None,
    spill_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of rows (a, b) that share a hash, from (N, M, 16) uint8 hashes (each row's hash
    and its probe hashes): the edges `dedup.probe_pairs` gives, found partition by partition.

    `probes` may be an np.memmap of a .npy file: it is then read block by block from the file
    and never held whole. `spill_dir` must be a path every worker can read when the engine
    is a Ray cluster (default: a temporary folder, fine on one machine).
    """
    if probes.ndim != 3 or probes.shape[2] != 16 or probes.dtype != np.uint8:
        raise InputError(f"expected (N, M, 16) uint8 hashes, not {probes.shape} {probes.dtype}")
    n, moves = probes.shape[:2]
    if partitions == "auto":
        partitions = auto_partitions(n, moves)
    if not isinstance(partitions, int) or partitions < 1:
        raise InputError(f"--partitions must be 'auto' or a whole number >= 1, not {partitions}")
    if n == 0 or moves == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty
    folder = Path(tempfile.mkdtemp(prefix="dcgan-partitions-", dir=spill_dir))
    try:
        paths = route(probes, partitions, folder)
        units = [str(p) for p in paths]
        edges = dict.fromkeys(units)
        for path, result in run_units(pairs_in_partition, units, make_engine(engine)):
            if isinstance(result, UnitError):
                raise RuntimeError(f"partition {path} failed: {result.reason} {result.detail}")
            edges[path] = result
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    a = np.concatenate([e[0] for e in edges.values()])
    b = np.concatenate([e[1] for e in edges.values()])
    return a, b


def partition_of(halves: np.ndarray, partitions: int) -> np.ndarray:
    """Partition of each hash, from its first 8 bytes: mixed (a multiplicative hash) before
    taking the top 16 bits, because a learned hash's bits are far from uniform and a plain
    prefix would crowd a few partitions; then scaled to [0, partitions)."""
    mixed = halves[:, 0] * np.uint64(0x9E3779B97F4A7C15)  # wraps modulo 2**64
    return ((mixed >> np.uint64(48)).astype(np.int64) * partitions) >> 16


def route(probes: np.ndarray, partitions: int, folder: Path) -> list[Path]:
    """Append every (hash, row) record to its partition's file, in row order; the files."""
    paths = [folder / f"part-{p:05d}.bin" for p in range(partitions)]
    files = [open(p, "wb") for p in paths]
    try:
        for first, block in _row_blocks(probes):
            n, moves = block.shape[:2]
            halves = np.ascontiguousarray(block).reshape(n * moves, 16).view("<u8")
            records = np.empty(n * moves, RECORD)
            records["hi"], records["lo"] = halves[:, 0], halves[:, 1]
            records["row"] = first + np.arange(n * moves) // moves
            owner = partition_of(halves, partitions)
            order = np.argsort(owner, kind="stable")  # stable: each file stays in row order
            bounds = np.searchsorted(owner[order], np.arange(partitions + 1))
            for p in range(partitions):
                files[p].write(records[order[bounds[p]:bounds[p + 1]]].tobytes())
    finally:
        for f in files:
            f.close()
    return paths


def _row_blocks(probes: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) blocks of about BLOCK_BYTES. A memmap is read from its file, so the
    pages read never count against this process."""
    n, moves = probes.shape[:2]
    row_bytes = moves * 16
    step = max(1, BLOCK_BYTES // row_bytes)
    on_disk = isinstance(probes, np.memmap) and probes.filename and probes.flags.c_contiguous
    for first in range(0, n, step):
        rows = min(step, n - first)
        if on_disk:
            block = np.fromfile(probes.filename, np.uint8, rows * row_bytes,
                                offset=probes.offset + first * row_bytes)
            yield first, block.reshape(rows, moves, 16)
        else:
            yield first, probes[first:first + rows]


def pairs_in_partition(path: str) -> tuple[np.ndarray, np.ndarray]:
    """One partition's edges: after a stable sort by hash, each record is paired with the next
    one holding the same hash, when they are different rows."""
    records = np.fromfile(path, RECORD)
    order = np.lexsort((records["lo"], records["hi"]))
    ordered = records[order]
    del records
    same = (ordered["hi"][1:] == ordered["hi"][:-1]) & (ordered["lo"][1:] == ordered["lo"][:-1])
    a, b = ordered["row"][:-1][same], ordered["row"][1:][same]
    other = a != b
    return a[other], b[other]
