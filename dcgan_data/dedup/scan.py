"""The pass over every row: its hash, probe hashes and thumbnails, in units on the engine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dcgan_data.core.errors import DcganDataError
from dcgan_data.core.files import disk_array, progress
from dcgan_data.core.processes import one_torch_thread
from dcgan_data.core.shards import ShardSet
from dcgan_data.dedup.inputs import Inputs
from dcgan_data.dedup.thumbnails import COLOUR, GREY, thumbnails
from dcgan_data.engines.local import LocalEngine
from dcgan_data.engines.runner import Engine, UnitError, run_units
from dcgan_data.hashmodel import hashing


@dataclass
class Rows:
    """Every row's hash, probe hashes and thumbnails: SRC's rows, then --against's."""

    hashes: np.ndarray
    probes: np.ndarray | None  # None: no probes
    grey: np.ndarray
    colour: np.ndarray
    own: int  # SRC's rows: the first `own`
    stats: dict[str, Any]  # `hashing.code_stats` of SRC's hashes


def scan_rows(model: hashing.HashAutoencoder, inputs: Inputs, probe: bool, device: str,
              engine: Engine, out: Path, max_bucket_share: float) -> Rows:
    """Hash SRC's rows and --against's, keeping their thumbnails; refuses a degenerate
    hash."""
    hasher = hashing.Hasher(model, device, probe)
    scan_engine = engine if device == "cpu" else LocalEngine(1)  # one GPU, in this process
    own, other = len(inputs.shards), inputs.other
    arrays = scan_arrays(out, own + (len(other) if other else 0), hasher.slopes is not None)
    scan(hasher, inputs.shards, scan_engine, "hash", arrays, 0)
    if other is not None:
        scan(hasher, other, scan_engine, "hash --against", arrays, own)
    hashes, probes, grey, colour = arrays
    stats = hashing.code_stats(hashes[:own])
    if own >= 50:
        refuse_degenerate(stats, grey[:own], colour[:own], max_bucket_share)
    return Rows(hashes, probes, grey, colour, own, stats)


def refuse_degenerate(stats: dict[str, Any], grey: np.ndarray, colour: np.ndarray,
                      max_bucket_share: float) -> None:
    """Refuse a degenerate hash, unless the images themselves are all one image: then only
    --max-bucket-share 1 lets the run keep one of them."""
    if not ((grey == grey[0]).all() and (colour == colour[0]).all()):
        hashing.check_codes(stats, max_bucket_share=max_bucket_share)
    elif max_bucket_share < 1:
        raise DcganDataError(
            f"degenerate input: all {len(grey)} images are one image; refusing to remove all "
            "but one (--max-bucket-share 1 does it)")


def scan_arrays(folder: Path, n: int, probe: bool
                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Hashes in memory; probe hashes and thumbnails (most of a row's bytes, read pair by
    pair) mapped from files in `folder`, so that millions of rows do not sit in the
    process's own memory."""
    hashes = np.empty((n, hashing.HASH_BYTES), np.uint8)
    probes = disk_array(folder, (n, len(hashing.PROBES), hashing.HASH_BYTES), np.uint8) \
        if probe else None
    grey = disk_array(folder, (n, GREY, GREY), np.uint8)
    colour = disk_array(folder, (n, COLOUR, COLOUR, 3), np.uint8)
    return hashes, probes, grey, colour


def scan(hasher: hashing.Hasher, shards: ShardSet, engine: Engine, desc: str,
         arrays: tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray], first: int
         ) -> None:
    """One pass over the rows, in units of up to hashing.CHUNK rows of one shard on `engine`:
    hashes, probe hashes (unless None) and verification thumbnails, written to `arrays`
    from row `first` on."""
    hashes, probes, grey, colour = arrays
    units = hashing.scan_units(shards)
    with progress(total=len(shards), desc=desc) as bar:
        for (s, lo, hi), result in run_units(scan_unit, units, engine, (hasher, shards)):
            if isinstance(result, UnitError):  # every row must be hashed to group any
                raise DcganDataError(f"{desc}: rows {lo}..{hi - 1} of {shards.path} shard {s} "
                                     f"failed {result.attempts} times: {result.detail}")
            part = slice(first + shards.offsets[s] + lo, first + shards.offsets[s] + hi)
            hashes[part], moved, grey[part], colour[part] = result
            if probes is not None:
                probes[part] = moved
            bar.update(hi - lo)


def scan_unit(context: tuple[hashing.Hasher, ShardSet], unit: tuple[int, int, int]
              ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Rows lo..hi of shard s, unit (s, lo, hi): hashes, probe hashes, thumbnails."""
    hasher, shards = context
    s, lo, hi = unit
    rows = np.asarray(shards.shard(s)[lo:hi])
    with one_torch_thread():
        codes, moved = hasher(hashing.to_hash_crops(rows))
    return (codes, moved, *thumbnails(rows))
