"""Partitioned grouping gives the edges (and so the groups) of the single in-memory sort."""

import numpy as np
import pytest

from dcgan_data.core.errors import InputError
from dcgan_data.dedup import partition
from dcgan_data.dedup.grouping import connected
from dcgan_data.dedup.partition import (
    SPILL_PREFIX,
    auto_partitions,
    partition_of,
    remove_stale_spills,
    shared_hash_pairs,
)
from dcgan_data.engines.local import LocalEngine


def planted_probes(n=3000, moves=5, groups=200, seed=0):
    """Random hashes, with rows made to share a hash (as a hash or as a probe) in chains."""
    rng = np.random.default_rng(seed)
    probes = rng.integers(0, 256, (n, moves, 16), dtype=np.uint8)
    for _ in range(groups):
        rows = rng.choice(n, int(rng.integers(2, 5)), replace=False)
        source = probes[rows[0], int(rng.integers(moves))]
        for r in rows[1:]:
            probes[r, int(rng.integers(moves))] = source
    probes[7, 1] = probes[7, 3]  # a row sharing a hash with itself is no edge
    return probes


def edge_set(a, b):
    return set(zip(a.tolist(), b.tolist(), strict=True))


def brute_chain_edges(probes):
    """Each row paired with the next row (in row, then move order) holding the same hash."""
    by_hash = {}
    for row, move in np.ndindex(*probes.shape[:2]):
        by_hash.setdefault(probes[row, move].tobytes(), []).append(row)
    return {(a, b) for rows in by_hash.values()
            for a, b in zip(rows[:-1], rows[1:], strict=True) if a != b}


def test_one_sort_chains_the_rows_of_each_hash():
    probes = planted_probes(n=400, groups=40)
    got = shared_hash_pairs(probes)
    assert edge_set(*got) == brute_chain_edges(probes) and len(got[0]) > 40


@pytest.mark.parametrize("partitions", [2, 7, 64])
@pytest.mark.parametrize("band", [1, 4])
def test_same_edges_as_single_pass(partitions, band, tmp_path):
    probes = planted_probes()
    want = shared_hash_pairs(probes, 1, band=band)
    got = shared_hash_pairs(probes, partitions, LocalEngine(1), spill_dir=tmp_path, band=band)
    assert len(got[0]) == len(want[0]) > 200
    assert edge_set(*got) == edge_set(*want)
    assert np.array_equal(connected(len(probes), *got), connected(len(probes), *want))
    assert list(tmp_path.iterdir()) == []  # the spilled partitions are removed


def test_partitions_on_processes_and_from_a_memmap(tmp_path):
    probes = planted_probes(seed=1)
    np.save(tmp_path / "probes.npy", probes)
    mapped = np.load(tmp_path / "probes.npy", mmap_mode="r")
    got = shared_hash_pairs(mapped, 8, LocalEngine(2))
    assert edge_set(*got) == edge_set(*shared_hash_pairs(probes))


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_a_failed_grouping_removes_its_spilled_partitions(error, tmp_path, monkeypatch):
    def fail(path, band=1):
        raise error("no")

    monkeypatch.setattr(partition, "pairs_in_partition", fail)
    with pytest.raises((RuntimeError, KeyboardInterrupt)):
        shared_hash_pairs(planted_probes(n=200), 4, LocalEngine(1), spill_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_stale_spills_of_killed_runs_are_removed(tmp_path):
    for name in ("a", "b"):
        (tmp_path / f"{SPILL_PREFIX}{name}").mkdir()
        (tmp_path / f"{SPILL_PREFIX}{name}" / "part-00000.bin").write_bytes(bytes(24))
    (tmp_path / "shard-00000.npy").write_bytes(b"kept")
    (tmp_path / "ingested").mkdir()
    assert remove_stale_spills(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ingested", "shard-00000.npy"]


def test_skewed_hashes_still_spread_over_the_partitions():
    # a learned hash's leading bits are often constant; routing must not follow them
    probes = np.random.default_rng(2).integers(0, 256, (4000, 16), dtype=np.uint8)
    probes[:, :3] = 0
    owner = partition_of(probes.view("<u8")[:, 0], 16)
    assert np.bincount(owner, minlength=16).min() > 4000 / 16 / 2


def test_auto_partitions_grow_with_rows_and_shrink_with_memory():
    gib = 1 << 30
    assert auto_partitions(1000, 28, 16 * gib) == 1
    small = auto_partitions(3_000_000, 28, 16 * gib)
    assert small == auto_partitions(3_000_000, 28, 2 * 16 * gib) * 2
    assert auto_partitions(100_000_000, 28, 16 * gib) >= 32 * small // 2
    p = auto_partitions(100_000_000, 28, 16 * gib)
    assert p & (p - 1) == 0  # a power of two


def test_bad_input():
    with pytest.raises(InputError):
        shared_hash_pairs(np.zeros((4, 16), np.uint8))
    with pytest.raises(InputError, match="--partitions"):
        shared_hash_pairs(np.zeros((4, 2, 16), np.uint8), 0)
    a, b = shared_hash_pairs(np.zeros((0, 2, 16), np.uint8), 4)
    assert len(a) == len(b) == 0
