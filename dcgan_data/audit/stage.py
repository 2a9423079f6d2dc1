"""Did a generator memorise its training images? Check each generated image against the
training set, and calibrate the answer on real images the index does not hold.

    generated images (a run's samples, a folder, shards)   calibration images: training rows
                 \\                                        (each without itself) or a folder
                  32x32 crops -> hash + probe hashes, 128 code values
                                      |
    one pass over every training row, chunk by chunk:
      * rows sharing any probe hash with a query        (copies, near copies: the hash)
      * the k nearest rows by the 128 code values, faiss (copies whose hash moved)
                                      |
    exact re-ranking of those candidates in pixel space -> each query's nearest row

Both kinds of query, generated and calibration, go through exactly the same steps, so their
distances compare like with like; a training row used for calibration is simply never its
own candidate (leave-one-out), so every row stays in the index and a copy of any of them
can be found. The copy rule is a conformal test: a sample is a copy when fewer than alpha of
the calibration images are as close to the training set as it is. Nothing is stored per
training row but its hash (16 bytes): time is linear in the training set and memory is
bounded by the number of queries.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from dcgan_data.audit.options import AuditOptions, parse_holdout
from dcgan_data.core.devices import resolve_device
from dcgan_data.core.errors import DcganDataError, InputError
from dcgan_data.core.files import check_output, progress, write_csv, write_json
from dcgan_data.core.images import (
    ImageError,
    center_crop_resize,
    contact_sheet,
    decode_image,
    save_png,
)
from dcgan_data.core.processes import one_torch_thread
from dcgan_data.core.shards import ShardSet, encode_key, is_shard_dir
from dcgan_data.engines.units import Engine, LocalEngine, UnitError, make_engine, run_units
from dcgan_data.hashmodel import hashing
from dcgan_data.ingest.lsun import image_files

log = logging.getLogger(__name__)

CSV = "audit.csv"
REPORT = "audit_report.json"
NEAREST = "nearest.png"
DISTANCES = "distances.png"
MODEL = "hash_model.pt"  # saved in OUT when the audit had to train one

MAX_HASH_CANDIDATES = 16  # rows sharing a probe hash, per query (fewest differing bits first)
SMOOTH = 1.0  # Gaussian blur (sigma, 32x32 pixels) before pixel distances
SHIFT = 2  # the pixel distance tries every shift up to this many 32x32 pixels...
FINE = 2  # ...in half-pixel steps for each query's nearest 2 candidates
PAIR_BATCH = 2048  # image pairs compared per step
SAMPLE_BATCH = 500  # generator images drawn per forward pass
QUERY_BLOCK = 1024  # queries re-ranked together
CONTEXT = 5  # the relative distance divides by the mean distance to the next 5 neighbours
# A training row used for calibration stands for a real image the index does not hold, so
# its copies inside the training set are left out with it: otherwise a set holding some
# images twice calibrates on distances near 0 and no sample could ever be called a copy.
# Only (near-)exact repeats are: edited copies (JPEG, brightness, blur, a shift) lie further
# off, and a training set with many of those should be de-duplicated first.
DUPLICATE = 1.0  # RMS grey levels (pixel distance) within which two rows are one image


@dataclass
class Images:
    """Images to check: (N, S, S, 3) uint8 rows and one name each."""

    rows: np.ndarray
    names: list[str]
    info: dict[str, Any]


# --- inputs --------------------------------------------------------------------------------


def is_run_dir(path: Path) -> bool:
    return (path / "checkpoints").is_dir() or (path / "config.json").is_file() and \
        (path / "metrics.jsonl").is_file()


def read_generated(path: Path, n: int, size: int, seed: int, device: str,
                   checkpoint: str | None = None) -> Images:
    """Up to n images to audit, as size x size rows: drawn from a training run's generator,
    or the first n of a shard directory or a folder of image files."""
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if not path.is_dir():
        raise InputError(f"{path}: expected a training run, a shard directory or a folder "
                         "of images")
    if is_run_dir(path):
        images = _draw_samples(path, n, seed, device, checkpoint)
    elif is_shard_dir(path):
        shards = ShardSet(path)
        count = min(n, len(shards))
        keys = shards.keys()[:count]
        images = Images(shards.load(np.arange(count)), keys,
                        {"kind": "shards", "available": len(shards)})
    else:
        images = _read_folder(path, n)
    if not len(images.rows):
        raise InputError(f"{path}: no images to audit")
    return _to_size(images, size)


def _draw_samples(run: Path, n: int, seed: int, device: str, checkpoint: str | None) -> Images:
    from dcgan_data.train.sampling import checkpoint_path, load_generator, sample_images

    path = checkpoint_path(run, checkpoint)
    if not path.exists():
        raise InputError(f"{path}: no such checkpoint")
    g, cfg = load_generator(path, device)
    parts = []
    for start in progress(range(0, n, SAMPLE_BATCH), desc="sample", unit="batch"):
        # each batch has its own seed, so the samples do not depend on the batch size
        parts.append(sample_images(g, cfg, min(SAMPLE_BATCH, n - start), seed + start))
    names = [f"sample{i:06d}" for i in range(n)]
    return Images(np.concatenate(parts), names, {"kind": "run", "checkpoint": str(path),
                                                "seed": seed})


def _read_folder(folder: Path, n: int) -> Images:
    files = image_files(folder)
    rows, names, skipped = [], [], []
    for file in files:
        if len(rows) == n:
            break
        try:
            rgb, _ = decode_image(file.read_bytes())
            side = min(rgb.shape[:2])
            rows.append(center_crop_resize(rgb, side, min_side=1))
            names.append(file.relative_to(folder).as_posix())
        except (OSError, ImageError) as exc:
            skipped.append(f"{file.relative_to(folder).as_posix()}: {exc}")
    if skipped:
        log.warning("%s: skipped %d unreadable image(s), first: %s", folder, len(skipped),
                    skipped[0])
    info = {"kind": "folder", "files": len(files), "skipped": len(skipped),
            "skipped_files": skipped[:100]}
    if not rows:
        what = f"none of its {len(files)} image files could be read" if files else \
            "it holds no image files"
        raise InputError(f"{folder}: no images to audit ({what})")
    sides = {r.shape[0] for r in rows}
    side = max(sides)
    if len(sides) > 1:  # one array needs one size; the common size is set by _to_size
        rows = [cv2.resize(r, (side, side), interpolation=cv2.INTER_AREA) for r in rows]
    return Images(np.stack(rows), names, info)


def _to_size(images: Images, size: int) -> Images:
    have = images.rows.shape[1]
    if have == size and images.rows.shape[2] == size:
        return images
    log.warning("generated images are %dx%d, the training images %dx%d: resizing them to "
                "%dx%d", have, images.rows.shape[2], size, size, size, size)
    interp = cv2.INTER_AREA if have > size else cv2.INTER_CUBIC
    rows = np.stack([cv2.resize(r, (size, size), interpolation=interp) for r in images.rows])
    return Images(rows, images.names, {**images.info, "resized_from": have})


def calibration_rows(total: int, holdout: int | float, seed: int) -> np.ndarray:
    """Sorted training rows to calibrate on, each against the index without itself: the
    count (or share) asked, at most every row, at least one."""
    if total < 3:
        raise InputError(f"the training set holds {total} image(s): too few to calibrate on; "
                         "pass --holdout with a folder of real images instead")
    count = round(total * holdout) if isinstance(holdout, float) else holdout
    count = max(1, min(count, total))
    return np.sort(np.random.default_rng(seed).choice(total, count, replace=False))


def get_model(train: Path, shards: ShardSet, model_path: Path | None, device: str,
              seed: int, config: hashing.HashConfig | None = None
              ) -> tuple[hashing.HashAutoencoder, dict[str, Any]]:
    """--model; else the hash model of the dedup stage that wrote `train` (its own
    hash_model.pt, or the --model its report names); else a new one trained on `train`."""
    if model_path is None:
        for candidate in _dedup_models(train):
            if candidate.is_file():
                model_path = candidate
                break
    if model_path is not None:
        model, info = hashing.load_model(model_path, device)
        return model, {"model": str(model_path), "trained": False}
    config = config or hashing.HashConfig()
    crops = hashing.sample_crops(shards, config.max_train_images, np.random.default_rng(seed))
    model, stats = hashing.train_hash_model(crops, config, device, seed)
    return model, {"model": MODEL, "trained": True, **stats}


def _dedup_models(train: Path) -> list[Path]:
    from dcgan_data.dedup.stage import MODEL as DEDUP_MODEL
    from dcgan_data.dedup.stage import REPORT as DEDUP_REPORT

    found = [train / DEDUP_MODEL]
    try:
        used = json.loads((train / DEDUP_REPORT).read_text(encoding="utf-8"))["model"]["model"]
    except (OSError, ValueError, KeyError, TypeError):
        return found
    if used:
        path = Path(used)
        found.append(path if path.is_absolute() or path.exists() else train / path.name)
    return found


# --- features ------------------------------------------------------------------------------


class Features:
    """A hash model's view of 32x32 crops: hashes, probe hashes and the 128 code values
    before the threshold (the batch-normed pre-activations: each unit in units of its own
    spread over the training images)."""

    def __init__(self, model: hashing.HashAutoencoder, device: str):
        self.hasher = hashing.Hasher(model, device, probes=True)
        self.scale = torch.sqrt(model.norm.running_var + model.norm.eps).to(device)
        self.config = model.config

    @torch.no_grad()
    def codes(self, crops: np.ndarray) -> np.ndarray:
        out = np.empty((len(crops), self.hasher.weight.shape[1]), np.float32)
        for start in range(0, len(crops), hashing.CHUNK):
            pixels = torch.from_numpy(crops[start : start + hashing.CHUNK])
            pixels = pixels.to(self.hasher.weight.device).float()
            gain = hashing.level_gain(pixels, self.config)
            code = (gain * (pixels @ self.hasher.weight) - self.hasher.threshold) / self.scale
            out[start : start + len(code)] = code.cpu().numpy()
        return out

    def __call__(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        hashes, probes = self.hasher(crops)
        return hashes, probes, self.codes(crops)


def probe_keys(probes: np.ndarray) -> np.ndarray:
    """(N, moves, 16) probe hashes -> (N, moves) 64-bit keys. Two equal hashes get equal keys;
    a rare collision only adds a candidate, which the pixel distance then judges."""
    halves = np.ascontiguousarray(probes).view(np.uint64)  # (N, moves, 2)
    return halves[..., 0] ^ (halves[..., 1] * np.uint64(0x9E3779B97F4A7C15))


# --- candidates: one pass over the training rows -------------------------------------------


class Candidates:
    """The running candidates of every query while the training rows stream past."""

    def __init__(self, query_hashes: np.ndarray, query_probes: np.ndarray,
                 query_codes: np.ndarray, neighbours: int, own_rows: np.ndarray | None = None):
        self.hashes = query_hashes
        # the training row each query is (-1: none): never its own candidate
        self.own = np.full(len(query_hashes), -1, np.int64) if own_rows is None else own_rows
        self.codes = np.ascontiguousarray(query_codes, np.float32)
        keys = probe_keys(query_probes).ravel()
        self.order = np.argsort(keys, kind="stable")
        self.sorted_keys = keys[self.order]
        self.moves = query_probes.shape[1]
        self.k = neighbours
        n = len(query_hashes)
        self.knn_rows = np.full((n, 0), -1, np.int64)
        self.knn_dist = np.full((n, 0), np.inf, np.float32)
        self.hash_pairs = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))

    def add(self, rows: np.ndarray, hashes: np.ndarray, probes: np.ndarray,
            codes: np.ndarray) -> None:
        """Training rows `rows` (global indices) with their features."""
        if not len(rows):
            return
        self._add_hash_matches(rows, hashes, probes)
        self._add_neighbours(rows, codes)

    def _add_hash_matches(self, rows: np.ndarray, hashes: np.ndarray, probes: np.ndarray
                          ) -> None:
        keys = probe_keys(probes).ravel()
        lo = np.searchsorted(self.sorted_keys, keys, "left")
        hi = np.searchsorted(self.sorted_keys, keys, "right")
        hits = np.flatnonzero(hi > lo)
        if not len(hits):
            return
        counts = (hi - lo)[hits]
        slots = np.repeat(lo[hits], counts) + _ranges(counts)
        row_local = np.repeat(hits // self.moves, counts)
        query = self.order[slots] // self.moves
        other = rows[row_local] != self.own[query]
        if not other.any():
            return
        query, row_local = query[other], row_local[other]
        distance = hashing.popcount(self.hashes[query] ^ hashes[row_local])
        q, r, d = self.hash_pairs
        self.hash_pairs = _fewest_per_query(np.r_[q, query], np.r_[r, rows[row_local]],
                                            np.r_[d, distance], MAX_HASH_CANDIDATES)

    def _add_neighbours(self, rows: np.ndarray, codes: np.ndarray) -> None:
        import faiss

        k = min(self.k + 1, len(rows))  # one more: a query's own row is dropped
        dist, local = faiss.knn(self.codes, np.ascontiguousarray(codes, np.float32), k)
        found = rows[local]
        own = found == self.own[:, None]
        found[own], dist[own] = -1, np.inf
        merged_rows = np.concatenate([self.knn_rows, found], axis=1)
        merged_dist = np.concatenate([self.knn_dist, dist], axis=1)
        best = np.argsort(merged_dist, axis=1, kind="stable")[:, : self.k]
        self.knn_rows = np.take_along_axis(merged_rows, best, 1)
        self.knn_dist = np.take_along_axis(merged_dist, best, 1)

    def per_query(self) -> np.ndarray:
        """(N, M) candidate rows of each query, -1 padded, each row at most once."""
        q, r, _ = self.hash_pairs
        width = self.knn_rows.shape[1] + MAX_HASH_CANDIDATES
        table = np.full((len(self.hashes), width), -1, np.int64)
        table[:, : self.knn_rows.shape[1]] = self.knn_rows
        if len(q):
            rank = _rank_within(q)
            table[q, self.knn_rows.shape[1] + rank] = r
        table.sort(axis=1)
        table[:, 1:][table[:, 1:] == table[:, :-1]] = -1  # a row found both ways counts once
        return table


def _ranges(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each count c, concatenated."""
    ends = np.cumsum(counts)
    return np.arange(ends[-1]) - np.repeat(ends - counts, counts)


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """Position of each element among the elements of its (sorted, contiguous) group."""
    starts = np.r_[0, np.flatnonzero(groups[1:] != groups[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(groups)])
    return _ranges(sizes)


def _fewest_per_query(q: np.ndarray, r: np.ndarray, d: np.ndarray, keep: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At most `keep` (query, row) pairs per query, fewest differing bits first, sorted by
    query; a pair found by several probes counts once."""
    order = np.lexsort((r, d, q))
    q, r, d = q[order], r[order], d[order]
    first = np.r_[True, (q[1:] != q[:-1]) | (r[1:] != r[:-1])]
    q, r, d = q[first], r[first], d[first]
    kept = _rank_within(q) < keep
    return q[kept], r[kept], d[kept]


def scan_training(shards: ShardSet, features: Features, candidates: Candidates,
                  engine: Engine | None = None) -> np.ndarray:
    """Stream every training row through `candidates`; return the (N, 16) hashes of all
    rows (for the report's hash distances). The features are computed as units on `engine`
    (slices of up to hashing.CHUNK rows of one shard) and taken in unit order, so every
    engine gives the same candidates."""
    hashes = np.zeros((len(shards), hashing.HASH_BYTES), np.uint8)
    units = hashing.scan_units(shards)
    arrived: dict[tuple[int, int, int], Any] = {}
    taken = 0
    with progress(total=len(shards), desc="scan training set") as bar:
        for unit, result in run_units(features_unit, units, engine, (features, shards)):
            if isinstance(result, UnitError):  # a row left out could hide a copy
                raise DcganDataError(f"scan training set: rows {unit[1]}..{unit[2] - 1} of "
                                     f"shard {unit[0]} failed {result.attempts} times: "
                                     f"{result.detail}")
            arrived[unit] = result
            while taken < len(units) and units[taken] in arrived:
                s, lo, hi = units[taken]
                chunk_hashes, chunk_probes, chunk_codes = arrived.pop(units[taken])
                rows = shards.offsets[s] + np.arange(lo, hi)
                hashes[rows] = chunk_hashes
                candidates.add(rows, chunk_hashes, chunk_probes, chunk_codes)
                bar.update(hi - lo)
                taken += 1
    return hashes


def features_unit(context: tuple[Features, ShardSet], unit: tuple[int, int, int]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows lo..hi of shard s, unit (s, lo, hi): hashes, probe hashes and code values."""
    features, shards = context
    s, lo, hi = unit
    with one_torch_thread():
        return features(hashing.to_hash_crops(np.asarray(shards.shard(s)[lo:hi])))


# --- exact distances in pixel space --------------------------------------------------------


def pixel_view(crops: np.ndarray, config: hashing.HashConfig) -> torch.Tensor:
    """(N, 3072) uint8 crops -> (N, 3, 32, 32) brightness-levelled pixels (as the hash sees
    them, so a copy 10% brighter is the same image), slightly blurred so that a copy shifted
    by a fraction of a pixel, re-encoded or blurred stays close to its original."""
    pixels = hashing.level(torch.from_numpy(crops).float(), config)
    images = pixels.view(-1, hashing.SIDE, hashing.SIDE, 3).permute(0, 3, 1, 2)
    if not SMOOTH:
        return images
    taps = torch.arange(-2, 3, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / SMOOTH) ** 2)
    kernel = (kernel / kernel.sum()).view(1, 1, 1, 5).repeat(3, 1, 1, 1)
    images = F.conv2d(F.pad(images, (2, 2, 0, 0), mode="replicate"), kernel, groups=3)
    return F.conv2d(F.pad(images, (0, 0, 2, 2), mode="replicate"), kernel.transpose(2, 3),
                    groups=3)


def shift_distance(a: torch.Tensor, b: torch.Tensor, shift: int = SHIFT, fine: bool = True
                   ) -> torch.Tensor:
    """RMS difference (grey levels) of image pairs (N, 3, S, S), at the best alignment of b
    within `shift` pixels each way, in half-pixel steps (`fine`) or whole pixels, over the
    centre all alignments share. A copy moved by a few pixels or trimmed a little stays
    close; two different scenes do not."""
    a = a - 128.0  # smaller magnitudes: less cancellation in float32
    b = b - 128.0
    phases = [b, _half_step(b, 3), _half_step(b, 2), _half_step(_half_step(b, 3), 2)] \
        if fine else [b]
    return torch.stack([_aligned_error(a, p, shift) for p in phases], 1).min(1).values.sqrt()


def _half_step(images: torch.Tensor, dim: int) -> torch.Tensor:
    """Images resampled half a pixel along `dim` (linear interpolation; the edge repeats)."""
    nxt = torch.cat([images.narrow(dim, 1, images.shape[dim] - 1),
                     images.narrow(dim, images.shape[dim] - 1, 1)], dim)
    return (images + nxt) / 2


def _aligned_error(a: torch.Tensor, b: torch.Tensor, shift: int) -> torch.Tensor:
    """Mean squared difference of a's centre and b at its best integer alignment. Every
    alignment at once: |a - b|^2 = |a|^2 + |b|^2 - 2 a.b, the cross terms as one grouped
    convolution (each pair is its own group)."""
    n, c, side, _ = a.shape
    width = side - 2 * shift
    inner = a[:, :, shift : side - shift, shift : side - shift]
    cross = F.conv2d(b.reshape(1, n * c, side, side), inner.reshape(n * c, 1, width, width),
                     groups=n * c).view(n, c, 2 * shift + 1, 2 * shift + 1).sum(1)
    b_squares = F.avg_pool2d((b * b).sum(1, keepdim=True), width, stride=1)[:, 0] * width**2
    a_squares = (inner * inner).sum(dim=(1, 2, 3))
    error = (a_squares[:, None, None] + b_squares - 2 * cross).clamp(min=0) / (c * width**2)
    return error.flatten(1).min(dim=1).values


def rerank(shards: ShardSet, query_crops: np.ndarray, table: np.ndarray,
           config: hashing.HashConfig) -> tuple[np.ndarray, np.ndarray]:
    """Each query's candidates by `shift_distance`, nearest first: (rows, distances), both
    (N, M), padded with (-1, inf)."""
    rows_out = np.full(table.shape, -1, np.int64)
    dist_out = np.full(table.shape, np.inf, np.float32)
    for start in progress(range(0, len(table), QUERY_BLOCK), desc="re-rank", unit="block"):
        block = table[start : start + QUERY_BLOCK]
        rows = np.unique(block[block >= 0])
        if not len(rows):
            continue
        candidates = pixel_view(hashing.to_hash_crops(shards.load(rows)), config)
        queries = pixel_view(query_crops[start : start + QUERY_BLOCK], config)
        found = np.full(block.shape, np.inf, np.float32)
        # whole-pixel alignments for every candidate, then half-pixel ones for the nearest
        _measure(queries, candidates, rows, block, found, block >= 0, fine=False)
        order = np.argsort(found, axis=1, kind="stable")
        block, found = np.take_along_axis(block, order, 1), np.take_along_axis(found, order, 1)
        nearest = np.zeros(block.shape, bool)
        nearest[:, :FINE] = block[:, :FINE] >= 0
        _measure(queries, candidates, rows, block, found, nearest, fine=True)
        order = np.argsort(found, axis=1, kind="stable")
        found = np.take_along_axis(found, order, 1)
        dist_out[start : start + len(block)] = found
        rows_out[start : start + len(block)] = np.where(
            np.isfinite(found), np.take_along_axis(block, order, 1), -1)
    return rows_out, dist_out


def _measure(queries: torch.Tensor, candidates: torch.Tensor, rows: np.ndarray,
             block: np.ndarray, found: np.ndarray, which: np.ndarray, fine: bool) -> None:
    """found[q, m] = the distance of query q to candidate block[q, m], where `which`."""
    query, slot = np.nonzero(which)
    for part in range(0, len(query), PAIR_BATCH):
        q, m = query[part : part + PAIR_BATCH], slot[part : part + PAIR_BATCH]
        where = np.searchsorted(rows, block[q, m])
        found[q, m] = shift_distance(queries[q], candidates[where], fine=fine).numpy()


def without_repeats(rows: np.ndarray, distances: np.ndarray, which: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranked candidates (rows, distances) with, for the queries `which` (training rows
    used for calibration), the rows within DUPLICATE of them left out, nearest first; and
    whether each query had any."""
    repeat = which[:, None] & (distances <= DUPLICATE)
    rows, distances = np.where(repeat, -1, rows), np.where(repeat, np.inf, distances)
    order = np.argsort(distances, axis=1, kind="stable")
    return (np.take_along_axis(rows, order, 1), np.take_along_axis(distances, order, 1),
            repeat.any(axis=1))


def relative_distances(distances: np.ndarray, context: int = CONTEXT) -> np.ndarray:
    """Distance to the nearest training image over the mean distance to the next `context`
    ones, from (N, M) sorted candidate distances. A copy is much nearer its original than
    anything else (small ratio); an image that is merely plain, and so near many training
    images at once, is not (ratio near 1). NaN with fewer than two candidates."""
    following = distances[:, 1 : 1 + context]
    counted = np.isfinite(following).sum(axis=1)
    total = np.where(np.isfinite(following), following, 0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = distances[:, 0] / (total / counted)
    ratio[(counted == 0) | ~np.isfinite(distances[:, 0])] = np.nan
    return np.where(np.isfinite(ratio), ratio, np.nan).astype(np.float32)


# --- the copy rule -------------------------------------------------------------------------


def copy_threshold(holdout: np.ndarray, alpha: float) -> tuple[float, float]:
    """The conformal copy rule. With m held-out distances, a sample's p-value is
    (1 + #held-out at least as close) / (m + 1); it is a copy when that is <= alpha, i.e.
    when it is strictly closer than the k-th closest held-out image, k = floor(alpha (m+1)).
    A holdout too small for alpha (k = 0) falls back to k = 1: closer than every held-out
    image, a false-copy rate of 1 / (m + 1). Returns (threshold, the alpha in effect)."""
    finite = np.sort(holdout[np.isfinite(holdout)])
    m = len(finite)
    if not m:
        return 0.0, 1.0
    k = max(1, math.floor(alpha * (m + 1) + 1e-9))
    return float(finite[k - 1]), k / (m + 1)


def calibration_warning(usable: int, alpha: float, alpha_used: float) -> str | None:
    """What to do when the calibration is too small to honour alpha; None when it is not."""
    if alpha_used <= alpha:
        return None
    need = math.ceil(1 / alpha - 1 - 1e-9)  # the fewest images with floor(alpha (m+1)) >= 1
    digits = 1 - math.floor(math.log10(alpha_used))  # two significant digits, rounded up
    accept = math.ceil(alpha_used * 10**digits) / 10**digits
    return (f"--alpha {alpha:g} needs at least {need} calibration images and {usable} were "
            f"usable, so the copy rule ran at alpha {alpha_used:.3g} (closer than every one of "
            f"them) instead: calibrate on at least {need} images (--holdout N training rows, "
            f"or a folder of real images the generator never saw), or pass --alpha {accept:g}")


def closer_share(samples: np.ndarray, holdout: np.ndarray) -> float:
    """P(a sample's distance is below a held-out real image's), ties half: 0.5 when samples
    are as near the training set as unseen real images are, near 1 when they copy. Used on
    relative distances: on raw ones a blurred sample, near many images at once, would look
    closer than a sharp real image."""
    samples, holdout = samples[np.isfinite(samples)], np.sort(holdout[np.isfinite(holdout)])
    if not len(samples) or not len(holdout):
        return float("nan")
    below = np.searchsorted(holdout, samples, "left")
    ties = np.searchsorted(holdout, samples, "right") - below
    return float(((len(holdout) - below - ties) + 0.5 * ties).sum() /
                 (len(samples) * len(holdout)))


def _quantiles(values: np.ndarray) -> dict[str, float]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return {}
    return {f"q{int(q * 100):02d}": round(float(np.quantile(finite, q)), 3)
            for q in (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95)}


# --- pictures ------------------------------------------------------------------------------


def write_nearest(path: Path, samples: np.ndarray, train_rows: np.ndarray,
                  distance: np.ndarray, relative: np.ndarray, copy: np.ndarray) -> None:
    """Sample | nearest training image, closest first, each labelled with its distances."""
    side = max(64, samples.shape[1])
    tiles = []
    for sample, train_row, d, r, c in zip(samples, train_rows, distance, relative, copy,
                                          strict=True):
        pair = [cv2.resize(img, (side, side), interpolation=cv2.INTER_NEAREST)
                for img in (sample, train_row)]
        label = np.full((16, 2 * side + 2, 3), 255, np.uint8)
        text = f"{d:.1f} / {r:.2f}" + (" COPY" if c else "")
        cv2.putText(label, text, (2, 12), cv2.FONT_HERSHEY_PLAIN, 0.9,
                    (200, 0, 0) if c else (0, 0, 0), 1, cv2.LINE_AA)
        gap = np.full((side, 2, 3), 255, np.uint8)
        tiles.append(np.concatenate([np.concatenate([pair[0], gap, pair[1]], 1), label], 0))
    save_png(path, contact_sheet(np.stack(tiles), cols=4, pad=8))


def write_distances(path: Path, distances: tuple[np.ndarray, np.ndarray],
                    relative: tuple[np.ndarray, np.ndarray], threshold: float,
                    title: str) -> None:
    """Samples' and calibration images' distances side by side: to the nearest training image
    (left), and relative to the next neighbours, with the copy threshold (right)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from dcgan_data.core.files import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    for ax, (samples, held_out), label in (
            (axes[0], distances, "distance to the nearest training image (RMS grey levels)"),
            (axes[1], relative, "relative distance (nearest / mean of the next 5)")):
        samples, held_out = samples[np.isfinite(samples)], held_out[np.isfinite(held_out)]
        top = max(float(np.max(samples, initial=0)), float(np.max(held_out, initial=0)), 1e-3)
        bins = np.linspace(0, top * 1.02, 50)
        ax.hist(held_out, bins, density=True, alpha=0.45, color="tab:blue",
                label=f"calibration images ({len(held_out)})")
        ax.hist(samples, bins, density=True, histtype="step", linewidth=2, color="tab:red",
                label=f"generated samples ({len(samples)})")
        ax.set_xlabel(label)
        ax.set_ylabel("density")
    axes[1].axvline(threshold, color="black", linestyle="--",
                    label=f"copy threshold {threshold:.3f}")
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


# --- the stage -----------------------------------------------------------------------------


def _check_options(out: Path, inputs: list[Path]) -> None:
    check_output(out, directory=True, option="-o")
    for path in inputs:
        if path.exists() and out.exists() and out.resolve() == path.resolve():
            raise InputError(f"-o {out} is an input; write the audit somewhere else")


def _open_training(train: Path) -> ShardSet:
    if not train.exists():
        raise InputError(f"--train {train}: no such directory")
    if not is_shard_dir(train):
        raise InputError(f"--train {train}: not a shard directory (run `dcgan-data ingest` "
                         "or `dedup` first)")
    shards = ShardSet(train)
    if len(shards) == 0:
        raise InputError(f"--train {train}: the shard directory holds no images")
    return shards


def audit(
    generated: str | os.PathLike,
    train: str | os.PathLike,
    out: str | os.PathLike,
    options: AuditOptions | None = None,
    *,
    config: hashing.HashConfig | None = None,
    engine: Engine | str | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Audit `generated` against the training shards `train`; write OUT/audit.csv,
    audit_report.json, nearest.png and distances.png. Returns the report. `options` (or
    its fields as keyword arguments) say how; `config` is for a hash model trained here (no
    --model, none from a dedup stage). The scan of the training rows runs as units on
    `engine` (local processes, `workers` of them, or Ray); on a GPU it runs in this process."""
    options = (options or AuditOptions()).replace(**settings)
    n, alpha, neighbours, seed = options.n, options.alpha, options.neighbours, options.seed
    checkpoint, workers = options.checkpoint, options.workers
    generated, train, out = Path(generated), Path(train), Path(out)
    model_path = Path(options.model_path) if options.model_path is not None else None
    holdout = parse_holdout(options.holdout)
    _check_options(out, [generated, train])
    device = resolve_device(options.device)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    # everything that can refuse the input runs before anything is written to `out`
    shards = _open_training(train)
    size = shards.shape[0]
    model, model_info = get_model(train, shards, model_path, device, seed, config)
    if isinstance(holdout, Path):
        if holdout.is_dir() and is_run_dir(holdout):
            raise InputError(f"--holdout {holdout} is a training run; give real images")
        real = read_generated(holdout, 10**9, size, seed, device)
        own_rows = np.full(len(real.rows), -1, np.int64)
        real_rows, real_names = real.rows, real.names
    else:
        own_rows = calibration_rows(len(shards), holdout, seed)
        real_rows = shards.load(own_rows)
        keys = shards.keys()
        real_names = [keys[i] for i in own_rows]
    if len(shards) < 2:
        raise InputError(f"--train {train}: {len(shards)} image(s); the audit needs at least "
                         "two in its index to tell a copy from a near neighbour")
    queries = read_generated(generated, n, size, seed, device, checkpoint)
    count = len(queries.rows)
    timings["read"] = time.perf_counter() - clock

    clock = time.perf_counter()
    query_crops = hashing.to_hash_crops(np.concatenate([queries.rows, real_rows]))
    features = Features(model, device)
    q_hashes, q_probes, q_codes = features(query_crops)
    own_rows = np.r_[np.full(count, -1, np.int64), own_rows]
    candidates = Candidates(q_hashes, q_probes, q_codes, neighbours, own_rows)
    scan_engine = make_engine(engine, workers) if device == "cpu" else LocalEngine(1)
    train_hashes = scan_training(shards, features, candidates, scan_engine)
    timings["scan"] = time.perf_counter() - clock

    clock = time.perf_counter()
    ranked_rows, ranked_dist = rerank(shards, query_crops, candidates.per_query(), model.config)
    ranked_rows, ranked_dist, repeated = without_repeats(ranked_rows, ranked_dist,
                                                         own_rows >= 0)
    timings["rerank"] = time.perf_counter() - clock

    nearest, distance = ranked_rows[:, 0], ranked_dist[:, 0]
    relative = relative_distances(ranked_dist)
    sample_r, holdout_r = relative[:count], relative[count:]
    sample_d, holdout_d = distance[:count], distance[count:]
    threshold, alpha_used = copy_threshold(holdout_r, alpha)
    usable = int(np.isfinite(holdout_r).sum())
    warning = calibration_warning(usable, alpha, alpha_used)
    if warning:
        log.warning("audit: %s", warning)
    copy = np.nan_to_num(sample_r, nan=np.inf) < threshold
    hash_distance = np.full(count, -1, np.int64)
    found = np.flatnonzero(nearest[:count] >= 0)
    hash_distance[found] = hashing.popcount(q_hashes[found] ^ train_hashes[nearest[found]])
    closer = closer_share(sample_r, holdout_r)
    # each image's spatial spread of grey levels, per channel: a flat colour has none
    contrast = query_crops.reshape(len(query_crops), -1, 3).std(axis=1).mean(axis=1)
    copies = int(copy.sum())

    clock = time.perf_counter()
    keys = shards.keys()
    write_csv(out / CSV, ["sample", "nearest_key", "hash_distance", "distance",
                          "relative_distance", "copy"],
              ([encode_key(name), encode_key(keys[row]) if row >= 0 else "", int(h), f"{d:.4f}",
                f"{r:.4f}", int(c)]
               for name, row, h, d, r, c in zip(queries.names, nearest[:count], hash_distance,
                                                  sample_d, sample_r, copy, strict=True)),
              spreadsheet_safe=True)
    if model_info["trained"]:
        hashing.save_model(model, out / MODEL, {"source_rows": len(shards), "seed": seed})
    shown = np.lexsort((sample_d, np.nan_to_num(sample_r, nan=np.inf)))[:32]
    shown = shown[nearest[shown] >= 0]
    if len(shown):
        write_nearest(out / NEAREST, queries.rows[shown], shards.load(nearest[shown]),
                      sample_d[shown], sample_r[shown], copy[shown])
    write_distances(out / DISTANCES, (sample_d, holdout_d), (sample_r, holdout_r), threshold,
                    f"{copies} of {count} samples are copies ({copies / count:.2%}); "
                    f"P(a sample's relative distance < a calibration image's) = {closer:.2f}")
    timings["write"] = time.perf_counter() - clock

    report = {
        "generated": str(generated),
        "train": str(train),
        "out": str(out),
        "samples": count,
        "copies": copies,
        "copy_fraction": round(copies / count, 6),
        "closer_than_holdout": round(closer, 4),
        "expected_false_copies": round(alpha_used * count, 1),
        "verdict": _verdict(copies, count, alpha_used, closer, usable,
                            (sample_d, holdout_d), (contrast[:count], contrast[count:])),
        **({"calibration_warning": warning} if warning else {}),
        "training_images": len(shards),
        "indexed_images": len(shards),
        "holdout_images": len(real_rows),
        "holdout_source": str(holdout) if isinstance(holdout, Path) else
        "training rows, each measured against the index without itself",
        "holdout_repeated_in_training": int(repeated.sum()),
        "holdout_called_copies": int((np.nan_to_num(holdout_r, nan=np.inf) < threshold).sum()),
        "holdout_keys": real_names,
        "threshold": round(threshold, 4),
        "alpha": alpha,
        "alpha_effective": round(alpha_used, 6),
        "sample_distance_quantiles": _quantiles(sample_d),
        "holdout_distance_quantiles": _quantiles(holdout_d),
        "sample_relative_quantiles": _quantiles(sample_r),
        "holdout_relative_quantiles": _quantiles(holdout_r),
        "samples_without_candidate": int(count - len(found)),
        "nearest_found_by_hash": int(_found_by_hash(candidates, nearest[:count]).sum()),
        "input": queries.info,
        "parameters": {"n": n, "holdout": str(holdout), "alpha": alpha,
                       "neighbours": neighbours, "max_hash_candidates": MAX_HASH_CANDIDATES,
                       "context": CONTEXT, "shift": SHIFT, "seed": seed, "device": device,
                       "checkpoint": checkpoint, "engine": scan_engine.name},
        "model": model_info,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "files": {"table": CSV, "nearest": NEAREST if len(shown) else None,
                  "distances": DISTANCES},
    }
    write_json(out / REPORT, report)
    return report


def _found_by_hash(candidates: Candidates, nearest: np.ndarray) -> np.ndarray:
    """Whether each sample's nearest row was among its probe-hash matches."""
    q, r, _ = candidates.hash_pairs
    hit = np.zeros(len(nearest), bool)
    mine = q < len(nearest)
    hit[q[mine][nearest[q[mine]] == r[mine]]] = True
    return hit


def _verdict(copies: int, count: int, alpha: float, closer: float, calibrated: int,
             distances: tuple[np.ndarray, np.ndarray], contrast: tuple[np.ndarray, np.ndarray]
             ) -> str:
    """Plain words: how many samples are called copies beside how many a generator that
    copies nothing would get, then how near the samples lie to the training set compared
    with real images left out of the index. Samples that are nearly flat (an untrained
    generator's grey) or far from every training image (noise) are said to be so: their
    relative distances then say nothing of copying. "Nearer" only when P is over 0.5 by
    three standard errors (the Mann-Whitney statistic's spread when the two sets of
    distances do not differ)."""
    called = (f"{copies} of {count} samples ({copies / count:.2%}) are called copies of a "
              f"training image, where a generator that copies nothing would get about "
              f"{alpha * count:.0f} (the rule calls {alpha:.2%} of real images copies by chance)")
    (sample_d, real_d), (sample_c, real_c) = (
        (a[np.isfinite(a)], b[np.isfinite(b)]) for a, b in (distances, contrast))
    spread = math.sqrt((count + calibrated + 1) / (12 * count * max(calibrated, 1)))
    nearer = (f"P(nearer) = {closer:.2f} +-{spread:.2f}, the share of (sample, real image) "
              "pairs where the sample's nearest training image stands out more from the next "
              "ones; 0.5 is no difference")
    if not len(sample_d) or not len(real_d):
        lean = "no distances to compare"
    elif np.median(sample_c) < np.quantile(real_c, 0.05):
        lean = (f"samples are nearly flat (median contrast {np.median(sample_c):.1f} grey "
                f"levels, real images {np.median(real_c):.1f}): they look like no training "
                "image, and how near they lie to plain ones says nothing of copying")
    elif np.median(sample_d) > np.quantile(real_d, 0.95):
        lean = (f"samples are far from every training image (median pixel distance to the "
                f"nearest {np.median(sample_d):.1f}, real images {np.median(real_d):.1f}): "
                "they look like none of them, as noise does")
    elif closer > 0.5 + 3 * spread:
        lean = f"samples lie nearer single training images than real images do ({nearer})"
    else:
        lean = f"samples lie no nearer the training set than real images do ({nearer})"
    return f"{called}; {lean}"


# --- a planted memoriser (for the tests and the benchmark) ---------------------------------

# near-duplicate edits a memorised image may carry; "shift" moves the crop 1-3 output pixels
PLANTED_EDITS = ("jpeg_q75", "webp_q80", "brighter_10pct", "darker_10pct", "slight_blur", "shift")


@dataclass
class Planted:
    """Training rows, real rows the generator never saw, and a stand-in generator's output:
    for `copy_of >= 0`, an edited copy of training row copy_of, else a real unseen image."""

    train: np.ndarray
    unseen: np.ndarray
    generated: np.ndarray
    copy_of: np.ndarray
    edits: list[str]


def planted_memoriser(photos: list[np.ndarray], per_photo: int, copies: int, fakes: int,
                      unseen: int, size: int = 64, seed: int = 0) -> Planted:
    """Distinct crops of `photos` (overlapping each other by at most half) split into a
    training set, `unseen` real images for calibration and `fakes` more for the stand-in
    generator's non-copies; plus `copies` edited copies of random training rows."""
    from dcgan_data.testing.neardup import cut, distinct_crops, near_duplicate

    rng = np.random.default_rng(seed)
    crops = distinct_crops([p.shape[:2] for p in photos], per_photo, rng)
    order = rng.permutation(len(crops))
    n_train = len(crops) - unseen - fakes
    if n_train < 2:
        raise ValueError(f"{len(crops)} crops: too few for {unseen} + {fakes} unseen images")
    rows = np.stack([cut(photos[c.photo], c, size) for c in crops])
    train_idx, rest = order[:n_train], order[n_train:]
    copy_of = np.r_[rng.integers(0, n_train, copies), np.full(fakes, -1)]
    generated, edits = [], []
    for source in copy_of[:copies]:
        crop = crops[train_idx[source]]
        edit = str(rng.choice(PLANTED_EDITS))
        if edit == "shift":
            step = crop.side / size
            dy, dx = (int(round(rng.integers(1, 4) * step * s)) for s in rng.choice([-1, 1], 2))
            generated.append(cut(photos[crop.photo], crop, size, dy, dx))
        else:
            generated.append(near_duplicate(photos[crop.photo], crop, size, edit, rng))
        edits.append(edit)
    generated.extend(rows[rest[unseen:]])
    edits.extend(["none"] * fakes)
    shuffle = rng.permutation(len(copy_of))
    generated = np.stack(generated) if generated else np.zeros((0, *rows.shape[1:]), np.uint8)
    return Planted(rows[train_idx], rows[rest[:unseen]], generated[shuffle],
                   copy_of[shuffle], [edits[i] for i in shuffle])
