"""Rows that share a hash: in one sort, or in P partitions so that memory stays bounded.

Grouping is the one global step of de-duplication: every row's hash and probe hashes must
meet every other row's. In one pass that is a sort of N x M 16-byte hashes in memory. With
P > 1 partitions, each (hash, row) is routed by its first 8 bytes to one of P partition
files on disk (equal hashes always land together), and each partition is sorted on its own
as one unit: in this process one after another, or on a Ray cluster in parallel.

Both give the same pairs: the sort is stable and a partition keeps its records in their
original order, so each hash's rows come out of either sort in the same order.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np

from dcgan_data.core.errors import InputError
from dcgan_data.core.files import remove_folders
from dcgan_data.engines.runner import Engine, UnitError, make_engine, run_units

RECORD = np.dtype([("hi", "<u8"), ("lo", "<u8"), ("row", "<i8")])
# bytes a partition needs in memory per record: the records, the sort order, the sorted
# hashes, the comparison masks and lexsort's own keys
WORKING_BYTES = RECORD.itemsize + 8 + 16 + 8 + 8
BLOCK_BYTES = 16 << 20  # input read per routing step (about 6x that in memory)
MAX_PARTITIONS = 4096
SPILL_PREFIX = "dcgan-partitions-"  # a run's folder of partition files under its spill_dir


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
    partitions: int | str = 1,
    engine: Engine | str | None = None,
    spill_dir: str | os.PathLike | None = None,
    band: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of rows (a, b) that share a hash, from (N, M, 16) uint8 hashes (each row's hash
    and its probe hashes). After a stable sort of every (hash, row), each one is paired with
    the next `band` holding the same hash, when they are different rows: band 1 chains each
    hash's rows (enough for connected components), a wider band pairs every row of a small
    bucket and a band through a large one (linear in N).

    `partitions` 1 sorts in memory; more (or "auto": as many as memory needs) sort partition
    by partition on `engine`. `probes` may be an np.memmap of a .npy file: partitioning then
    reads it block by block and never holds it whole. `spill_dir` must be a path every
    worker can read when the engine is a Ray cluster (default: a temporary folder).
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
    if partitions == 1:  # sorted where they are: no copy of the hashes
        halves = np.ascontiguousarray(probes).reshape(n * moves, 16).view("<u8")
        return band_pairs(halves[:, 0], halves[:, 1], lambda entry: entry // moves, band)
    folder = Path(tempfile.mkdtemp(prefix=SPILL_PREFIX, dir=spill_dir))
    try:  # removed on any exception too; only a killed run leaves it (remove_stale_spills)
        paths = route(probes, partitions, folder)
        units = [str(p) for p in paths]
        edges = dict.fromkeys(units)
        for path, result in run_units(partial(pairs_in_partition, band=band), units,
                                      make_engine(engine)):
            if isinstance(result, UnitError):
                raise RuntimeError(f"partition {path} failed: {result.reason} {result.detail}")
            edges[path] = result
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    a = np.concatenate([e[0] for e in edges.values()])
    b = np.concatenate([e[1] for e in edges.values()])
    return a, b


def remove_stale_spills(spill_dir: str | os.PathLike) -> int:
    """Delete the partition folders that killed runs left in `spill_dir`; how many. Call
    only while no other run can be spilling there (holding the output lock of `spill_dir`)."""
    return remove_folders(spill_dir, SPILL_PREFIX)


def partition_of(first_halves: np.ndarray, partitions: int) -> np.ndarray:
    """Partition of each hash, from its first 8 bytes: mixed (a multiplicative hash) before
    taking the top 16 bits, because a learned hash's bits are far from uniform and a plain
    prefix would crowd a few partitions; then scaled to [0, partitions)."""
    mixed = first_halves * np.uint64(0x9E3779B97F4A7C15)  # wraps modulo 2**64
    return ((mixed >> np.uint64(48)).astype(np.int64) * partitions) >> 16


def route(probes: np.ndarray, partitions: int, folder: Path) -> list[Path]:
    """Append every (hash, row) record to its partition's file, in row order; the files."""
    paths = [folder / f"part-{p:05d}.bin" for p in range(partitions)]
    files = [open(p, "wb") for p in paths]
    try:
        for first, block in _row_blocks(probes):
            records = _records(block, first)
            owner = partition_of(records["hi"], partitions)
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


def _records(block: np.ndarray, first: int) -> np.ndarray:
    """(n, M, 16) hashes of rows first.. as n * M records, in row order."""
    n, moves = block.shape[:2]
    halves = np.ascontiguousarray(block).reshape(n * moves, 16).view("<u8")
    records = np.empty(n * moves, RECORD)
    records["hi"], records["lo"] = halves[:, 0], halves[:, 1]
    records["row"] = first + np.arange(n * moves) // moves
    return records


def pairs_in_partition(path: str, band: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """One partition's pairs (see `band_pairs`)."""
    records = np.fromfile(path, RECORD)
    return band_pairs(records["hi"], records["lo"], lambda entry: records["row"][entry], band)


def band_pairs(hi: np.ndarray, lo: np.ndarray, row_of: Callable[[np.ndarray], np.ndarray],
               band: int) -> tuple[np.ndarray, np.ndarray]:
    """After a stable sort of the entries by hash (hi, lo), each one paired with the next
    `band` entries holding the same hash, when they are different rows (`row_of`: the rows
    of entries)."""
    order = np.lexsort((lo, hi))
    hi, lo = hi[order], lo[order]
    found_a, found_b = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for k in range(1, band + 1):
        same = (hi[k:] == hi[:-k]) & (lo[k:] == lo[:-k])
        if not same.any():
            break
        a, b = row_of(order[:-k][same]), row_of(order[k:][same])
        other = a != b
        found_a.append(a[other])
        found_b.append(b[other])
    return np.concatenate(found_a), np.concatenate(found_b)
