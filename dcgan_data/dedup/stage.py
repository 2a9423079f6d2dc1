"""De-duplication by semantic hash, as in the DCGAN paper.

    shards -> train (or load) the hash model -> hash every row -> group equal hashes
    (and, with radius R, hashes within Hamming distance R) -> keep one row per group
    -> write the kept rows, one output shard per input shard

Grouping equal hashes is one pass over a dict (linear time). With a radius, equal hashes
are collapsed first, then a multi-index finds every pair of distinct hashes within R
exactly: split the 128 bits into R+1 blocks; two codes that differ in at most R bits agree
on at least one block (pigeonhole), so comparing codes that share a block misses nothing.
With probes (the default), each image also carries the hashes of its slightly shifted and
zoomed versions (hashing.PROBES), and images sharing any of them are grouped too: one sort
of N x 27 probe hashes, so shifted and trimmed copies are found without a radius.

The hash model trains here, in the driver. Hashing every row and writing the kept rows run
as units on the unit runner (`units`: local processes or a Ray cluster; each output shard is
written by the worker that made it); the sort of shared hashes runs in one piece or in
partitions (`partition`).
"""

from __future__ import annotations

import csv
import hashlib
import os
import time
from collections import Counter
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcgan_data.core.devices import resolve_device
from dcgan_data.core.errors import DcganDataError, InputError
from dcgan_data.core.files import (
    atomic_path,
    disk_array,
    locks_output,
    progress,
    write_csv,
    write_json,
)
from dcgan_data.core.images import contact_sheet, resize_square, save_png
from dcgan_data.core.processes import one_torch_thread, reuse_freed_memory
from dcgan_data.core.shards import ShardSet, ShardTarget, ShardWriter, encode_key, is_shard_dir
from dcgan_data.core.stage import Failures
from dcgan_data.dedup import partition, selffit, verify
from dcgan_data.dedup.options import SELF_FIT_MIN_ROWS, DedupOptions
from dcgan_data.engines.units import (
    Engine,
    LocalEngine,
    UnitError,
    make_engine,
    run_units,
)
from dcgan_data.hashmodel import hashing

MODEL = "hash_model.pt"
HASHES = "hashes.npy"
CSV = "duplicates.csv"
REPORT = "dedup_report.json"
SHEET = "duplicates.png"
# Equal hashes only, as in the paper: precision ~0.99 on near duplicates of real photos;
# radius 1 finds ~40% more pairs but precision drops to ~0.985 (bench/RESULTS.md).
LARGE_BUCKET = 4096  # buckets this big are compared by faiss rather than numpy
BUCKET_BAND = 4  # a row sharing a key is a candidate with this many rows after it
KEEPER_ROUNDS = 8  # how often a component's unverified rest is regrouped before it is kept


# --- grouping ------------------------------------------------------------------------------


def exact_groups(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group equal hashes in one pass. Returns (inverse, first): row i has distinct code
    inverse[i], and first[u] is the first row holding code u."""
    seen: dict[bytes, int] = {}
    rows = hashes.view(np.dtype((np.void, hashes.shape[1]))).ravel().tolist()
    inverse = np.fromiter((seen.setdefault(code, len(seen)) for code in rows), np.int64,
                          count=len(rows))
    first = np.full(len(seen), len(rows), np.int64)
    np.minimum.at(first, inverse, np.arange(len(rows)))
    return inverse, first


def _blocks(bits: int, radius: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, bits, radius + 2).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))


def _block_keys(codes: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """bits lo..hi of each code as one integer (hi - lo <= 64), a chunk of rows at a time."""
    weights = (np.uint64(1) << np.arange(hi - lo, dtype=np.uint64)[::-1])
    keys = np.empty(len(codes), np.uint64)
    for start in range(0, len(codes), 1 << 16):
        bits = np.unpackbits(codes[start : start + (1 << 16)], axis=1)[:, lo:hi]
        keys[start : start + len(bits)] = (bits.astype(np.uint64) * weights).sum(
            axis=1, dtype=np.uint64)
    return keys


def _distances(codes: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return hashing.popcount(codes[a] ^ codes[b])


def _pairs_in_buckets(codes: np.ndarray, keys: np.ndarray, radius: int
                      ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Pairs of codes with equal keys and distance <= radius."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    found_a, found_b = [], []
    # small buckets: compare each code with the next k codes of its bucket, for every k
    small = np.repeat(sizes <= LARGE_BUCKET, sizes)
    for k in range(1, int(sizes[sizes <= LARGE_BUCKET].max(initial=1))):
        same = (sorted_keys[k:] == sorted_keys[:-k]) & small[k:]
        left = order[:-k][same]
        right = order[k:][same]
        if not len(left):
            break
        near = _distances(codes, left, right) <= radius
        found_a.append(left[near])
        found_b.append(right[near])
    # large buckets (skewed bits): exact brute force within the bucket, in faiss
    for start, size in zip(starts[sizes > LARGE_BUCKET], sizes[sizes > LARGE_BUCKET],
                           strict=True):
        members = order[start : start + size]
        a, b = _faiss_range_pairs(codes[members], radius)
        found_a.append(members[a])
        found_b.append(members[b])
    return found_a, found_b


def _faiss_range_pairs(codes: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
    index.add(np.ascontiguousarray(codes))
    # faiss keeps distances strictly below its radius: ask for radius + 1 to get <= radius
    lims, _, neighbours = index.range_search(np.ascontiguousarray(codes), radius + 1)
    queries = np.repeat(np.arange(len(codes)), np.diff(lims.astype(np.int64)))
    keep = queries < neighbours
    return queries[keep], neighbours[keep].astype(np.int64)


def radius_pairs(codes: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (a < b) of distinct codes within Hamming distance `radius`, exactly."""
    if radius <= 0 or len(codes) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    found_a, found_b = [], []
    for lo, hi in _blocks(codes.shape[1] * 8, radius):
        a, b = _pairs_in_buckets(codes, _block_keys(codes, lo, hi), radius)
        found_a += a
        found_b += b
    if not found_a:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a, b = np.concatenate(found_a), np.concatenate(found_b)
    low, high = np.minimum(a, b), np.maximum(a, b)
    unique = np.unique(low * len(codes) + high)  # a pair found by several blocks counts once
    return unique // len(codes), unique % len(codes)


def connected(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of n nodes joined by edges (a, b): each node's smallest member."""
    label = np.arange(n)
    while len(a):
        low = np.minimum(label[a], label[b])
        before = label.copy()
        np.minimum.at(label, a, low)
        np.minimum.at(label, b, low)
        label = label[label]  # pointer jumping: halves the depth each round
        while not np.array_equal(label, label[label]):
            label = label[label]
        if np.array_equal(label, before):
            break
    return label


def find_groups(hashes: np.ndarray, radius: int, probes: np.ndarray | None = None,
                **partitioning: Any) -> np.ndarray:
    """Group label of every row: the first row of its group (equal hashes, hashes within
    `radius`, or rows sharing a probe hash, joined by chains of such pairs). Unverified:
    the paper's rule (with probes and radius as options). `partitioning`: the partitions,
    engine and spill_dir of `partition.shared_hash_pairs`."""
    inverse, first = exact_groups(hashes)
    a, b = radius_pairs(hashes[first], radius)
    if probes is not None:
        rows_a, rows_b = partition.shared_hash_pairs(probes, band=1, **partitioning)
        a, b = np.concatenate([a, inverse[rows_a]]), np.concatenate([b, inverse[rows_b]])
    code_label = connected(len(first), a, b)
    return first[code_label][inverse]


# --- candidates and verified groups --------------------------------------------------------


def shared_key_pairs(keys: np.ndarray, band: int = BUCKET_BAND, **partitioning: Any
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (a < b) of rows sharing a key, from (N, M, 16) keys (each row's hash
    and probe hashes): every pair in a small bucket, a band through a large one
    (`partition.shared_hash_pairs`, which `partitioning` is passed to)."""
    a, b = partition.shared_hash_pairs(keys, band=band, **partitioning)
    return verify.unique_pairs(a, b, len(keys))


def candidate_pairs(hashes: np.ndarray, probes: np.ndarray | None, radius: int,
                    grey: np.ndarray, neighbours: int, mirrors: bool, device: str,
                    min_cosine: float, **partitioning: Any
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """The union of every generator's candidate pairs (a < b) and how many each proposed."""
    a, b = shared_key_pairs(probes if probes is not None else hashes[:, None, :],
                            **partitioning)
    counts = {"hash": len(a)}
    if radius:
        inverse, first = exact_groups(hashes)
        code_a, code_b = radius_pairs(hashes[first], radius)
        a, b = np.concatenate([a, first[code_a]]), np.concatenate([b, first[code_b]])
        counts["radius"] = len(code_a)
    if neighbours:
        near_a, near_b = verify.neighbour_pairs(grey, neighbours, min_cosine, mirrors, device)
        a, b = np.concatenate([a, near_a]), np.concatenate([b, near_b])
        counts["neighbours"] = len(near_a)
    a, b = verify.unique_pairs(a, b, len(hashes))
    counts["distinct"] = len(a)
    return a, b, counts


SECOND_LOOK_SHARE = 0.03  # of the pairs scored, at most this many get a second look...
SECOND_LOOK_MIN = 256  # ...or this many, whichever is more


class Verifier:
    """Scores pairs of rows by their thumbnails: log-odds of being near duplicates."""

    def __init__(self, grey: np.ndarray, colour: np.ndarray, threshold: float | None,
                 mirrors: bool, device: str, keep_features: bool = False):
        self.grey, self.colour, self.mirrors, self.device = grey, colour, mirrors, device
        self.keep_features = keep_features
        self.model = verify.VerifyModel.load()
        self.threshold = self.model.threshold if threshold is None else threshold
        self.scored = self.aligned = self.second_look_skipped = self.unoverlaid = 0
        self.last_features = np.zeros((0, len(verify.FEATURES)), np.float32)
        self.chroma_matched = 0

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Log-odds of the pairs (a[i], b[i])."""
        # pairs sharing a row side by side, so that row's views are computed once per chunk
        recurring = a if len(np.unique(a)) <= len(np.unique(b)) else b
        order = np.argsort(recurring, kind="stable")
        scores, chroma_scores = np.empty((2, len(a)), np.float32)
        # the plain looks' features of this call's pairs, for the model fitted on the dataset
        # (selffit); replaced by the next call
        self.last_features = np.empty((len(a) if self.keep_features else 0,
                                       len(verify.FEATURES)), np.float32)
        for start in range(0, len(a), 1 << 16):
            part = order[start : start + (1 << 16)]
            plain, chroma = verify.pair_looks(self.grey, self.colour, a[part], b[part],
                                              self.mirrors, self.device)
            if self.keep_features:
                self.last_features[part] = plain
            scores[part] = self.model.log_odds(plain)
            chroma_scores[part] = self.model.log_odds(chroma) - self.model.chroma_margin
        self.scored += len(a)
        self._second_look(a, b, scores)
        self._overlay_look(a, b, scores)
        # last, as fitted: the pairs that pass only when their chroma is matched
        gained = (scores < self.threshold) & (chroma_scores >= self.threshold)
        self.chroma_matched += int(gained.sum())
        return np.maximum(scores, chroma_scores)

    def _second_look(self, a: np.ndarray, b: np.ndarray, scores: np.ndarray) -> None:
        """Pairs just short of the threshold scored again after a fitted alignment; a pair's
        score is the better of the two, the aligned one less the model's margin. At most
        SECOND_LOOK_SHARE of the pairs (the closest to the threshold first) get it, so that a
        set where many pairs fall just short cannot multiply the cost of verification."""
        near = verify.near_threshold(scores, self.threshold, self.model.align_band)
        budget = max(SECOND_LOOK_MIN, int(SECOND_LOOK_SHARE * len(scores)))
        if len(near) > budget:
            self.second_look_skipped += len(near) - budget
            near = np.sort(near[np.argsort(-scores[near], kind="stable")[:budget]])
        if not len(near):
            return
        features, found = verify.aligned_pair_features(self.grey, self.colour, a[near],
                                                       b[near], self.mirrors, self.device)
        aligned = self.model.log_odds(features).astype(np.float32) - self.model.align_margin
        better = found & (aligned > scores[near])
        scores[near[better]] = aligned[better]
        self.aligned += len(near)

    def _overlay_look(self, a: np.ndarray, b: np.ndarray, scores: np.ndarray) -> None:
        """Pairs still short of the threshold, within the model's overlay band, scored again
        with the region where they differ most filled in on both (an emoji or a caption drawn
        on a copy); a pair's score is the better of the two, the filled one less the model's
        margin. The pairs are compared as they lie (one view), the cost of their features."""
        near = verify.near_threshold(scores, self.threshold, self.model.overlay_band)
        for start in range(0, len(near), 1 << 16):
            part = near[start : start + (1 << 16)]
            filled = self.model.log_odds(verify.unoverlaid_pair_features(
                self.grey, self.colour, a[part], b[part], self.device)) - \
                self.model.overlay_margin
            scores[part] = np.maximum(scores[part], filled)
        self.unoverlaid += len(near)


def scored_with_features(grey: np.ndarray, colour: np.ndarray, a: np.ndarray, b: np.ndarray,
                         mirrors: bool = False, device: str = "cpu"
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The fixed model's scores of the pairs (a[i], b[i]) of these thumbnails, at its own
    threshold, and their plain features: what the run-time fit learns from."""
    scorer = Verifier(grey, colour, None, mirrors, device, keep_features=True)
    return scorer(a, b), scorer.last_features


class RunTimeDecider:
    """Scores pairs with the model fitted on this dataset (`selffit`): the fixed verifier's
    score, set against each image's neighbourhood."""

    def __init__(self, verifier: Verifier, model: selffit.RunTimeModel,
                 neighbourhood: selffit.Neighbourhood, texture: np.ndarray,
                 threshold: float | None, a: np.ndarray, b: np.ndarray):
        self.verifier, self.model = verifier, model
        self.candidates = np.minimum(a, b) * len(texture) + np.maximum(a, b)
        self.neighbourhood, self.texture = neighbourhood, texture
        self.threshold = model.threshold if threshold is None else threshold

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Log-odds of pairs that were not all candidates (the keeper re-checks): a pair that
        was not is not left out of its images' neighbourhoods, as it was never in them."""
        fixed = self.verifier(a, b)
        n = len(self.texture)
        candidate = np.isin(np.minimum(a, b) * n + np.maximum(a, b), self.candidates)
        return self.model.log_odds(selffit.pair_stack_features(
            a, b, np.where(candidate, fixed, np.nan), self.verifier.last_features,
            self.neighbourhood, self.texture, fixed))


def verified_groups(n: int, a: np.ndarray, b: np.ndarray, scores: np.ndarray,
                    verifier: Verifier | RunTimeDecider, area: np.ndarray, keep: str,
                    protected: int) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """The row kept in place of each row, and the log-odds of each row against its keeper.

    Verified pairs join rows into connected components; each component keeps one row (the
    keep policy) and loses only the members verified against that keeper. A chain of
    verified pairs is not enough: members that fail against the keeper are grouped again
    among themselves around a keeper of their own, for up to KEEPER_ROUNDS rounds, and what
    is left after that is kept. Every removed row is therefore a verified duplicate of the
    row kept in its place, and the work is linear in the component sizes.
    """
    passed = scores >= verifier.threshold
    edge_score = dict(zip((a[passed] * n + b[passed]).tolist(), scores[passed].tolist(),
                          strict=True))
    labels = connected(n, a[passed], b[passed])
    kept_as = np.arange(n)
    row_score = np.full(n, np.inf, np.float32)
    pending = np.flatnonzero(np.bincount(labels, minlength=n)[labels] > 1)
    stats = {"split_rounds": 0, "rechecked_pairs": 0, "kept_unverified": 0}
    for _ in range(KEEPER_ROUNDS):
        if not len(pending):
            break
        keeper = pending[choose_kept(labels[pending], area[pending], keep,
                                     int(np.searchsorted(pending, protected)))]
        members = pending[keeper != pending]
        keepers = keeper[keeper != pending]
        known = np.array([edge_score.get(k, np.nan) for k in
                          (np.minimum(members, keepers) * n + np.maximum(members, keepers))
                          .tolist()], np.float32)
        unknown = np.isnan(known)
        known[unknown] = verifier(members[unknown], keepers[unknown])
        stats["rechecked_pairs"] += int(unknown.sum())
        ok = known >= verifier.threshold
        kept_as[members[ok]] = keepers[ok]
        row_score[members[ok]] = known[ok]
        pending = np.sort(members[~ok])
        stats["split_rounds"] += bool(len(pending))
        if len(pending):  # the rest of each component tries again around a keeper of its own
            alone = np.bincount(labels[pending], minlength=n)[labels[pending]] == 1
            pending = pending[~alone]
    stats["kept_unverified"] = len(pending)
    return kept_as, row_score, stats


def choose_kept(labels: np.ndarray, area: np.ndarray, keep: str, protected: int) -> np.ndarray:
    """The row kept in place of each row (itself if kept).

    Rows >= `protected` belong to the --against set: a group holding one of them keeps it
    (it is not ours to drop) and loses all of our rows. Otherwise `keep` picks the first row
    or the one of largest source resolution (ties: the first).
    """
    index = np.arange(len(labels))
    ours = index < protected
    rank = -area.astype(np.int64) if keep == "largest" else np.zeros(len(labels), np.int64)
    order = np.lexsort((index, np.where(ours, rank, 0), ours, labels))
    sorted_labels = labels[order]
    starts = np.r_[True, sorted_labels[1:] != sorted_labels[:-1]]
    keeper_of_run = order[starts][np.cumsum(starts) - 1]
    kept = np.empty(len(labels), np.int64)
    kept[order] = keeper_of_run
    return kept


# --- inputs --------------------------------------------------------------------------------


def open_input(src: str | os.PathLike, cache: Path, size: int, engine: Engine
               ) -> tuple[ShardSet, dict[str, Any] | None]:
    """A shard directory as is; any other source (LSUN LMDB, folder of images) is ingested
    into `cache` first (resumable). Returns the shards and the ingest report, if any."""
    src = Path(src)
    if not src.exists():
        raise InputError(f"{src}: no such file or directory")
    if is_shard_dir(src):
        return ShardSet(src), None
    from dcgan_data.ingest.stage import ingest

    report = ingest(src, cache, size=size, engine=engine)
    return ShardSet(cache), report


def output_size(size: int | None, shards: ShardSet) -> int:
    """The side of the output rows: the shards' own unless --size says otherwise; a larger
    side would only enlarge the rows, which is refused."""
    side = int(shards.shape[0])
    if size is None:
        return side
    if size > side:
        raise InputError(f"--size {size}: {shards.path} holds {side} px images; dedup does not "
                         f"enlarge them (ingest the source at {size} px, or leave --size out)")
    return size


def _check_options(src: Path, out: Path, against: Path | None, dry_run: bool) -> None:
    for other in (src, against):
        if other is not None and out.resolve() == other.resolve():
            raise InputError(f"-o {out} is an input; write the output somewhere else")
    if against is not None and against.exists() and src.exists() and \
            against.resolve() == src.resolve():
        raise InputError(f"--against {against} is SRC itself: every image would be a "
                         "duplicate of itself; name another shard set")
    if dry_run and (out / "manifest.json").exists():
        raise InputError(f"-o {out} holds a finished dedup; a dry run never touches a "
                         "finished output: choose another -o")


def _get_model(src: ShardSet, out: Path, model_path: Path | None, config: hashing.HashConfig,
               device: str, seed: int) -> tuple[hashing.HashAutoencoder, dict]:
    """The --model given, the one a previous run of this command saved in `out`, or a new
    one trained on the source."""
    if model_path is not None:
        model, info = hashing.load_model(model_path, device)
        return model, {"model": str(model_path), "trained": False, **info}
    saved = out / MODEL
    if saved.exists():  # resume: a re-run must hash exactly as the interrupted run did
        try:
            model, info = hashing.load_model(saved, device)
        except InputError:  # written by an older version of this tool: train afresh
            model, info = None, {}
        if model is not None and asdict(model.config) == asdict(config) \
                and info.get("source_rows") == len(src):
            return model, {"model": str(saved), "trained": False, "resumed": True, **info}
    if len(src) < 2:
        raise InputError(f"{src.path} holds {len(src)} image(s): too few to learn a hash "
                         "from; pass --model with a hash model trained on a larger set")
    rng = np.random.default_rng(seed)
    crops = hashing.sample_crops(src, config.max_train_images, rng)
    model, stats = hashing.train_hash_model(crops, config, device, seed)
    return model, {"model": str(saved), "trained": True, "source_rows": len(src),
                   "seed": seed, **stats}


# --- the stage -----------------------------------------------------------------------------


def dedup(src: str | os.PathLike, out: str | os.PathLike, options: DedupOptions | None = None,
          config: hashing.HashConfig | None = None, engine: Engine | str | None = None,
          **settings: Any) -> dict[str, Any]:
    """De-duplicate `src` into `out` as `options` (or the defaults, changed by `settings`:
    any DedupOptions field) say; `config`: the hash model's training. Returns the report
    (also out/dedup_report.json).

    `engine` runs the ingest of a non-shard SRC, the hashing pass (on the CPU; with a GPU
    `device` it runs here) and the hash partitions ("local": `workers` processes, or "ray")."""
    options = (options or DedupOptions()).replace(**settings).applied()  # checked: may refuse
    o = options
    return _dedup(src, out, size=o.size, radius=o.radius, keep=o.keep, model_path=o.hash_model,
                  against=o.against, dry_run=o.dry_run, device=o.device, workers=o.workers,
                  seed=o.seed, config=config, max_bucket_share=o.max_bucket_share,
                  probe=o.probe, neighbours=o.neighbours, min_cosine=o.min_cosine,
                  verified=o.verify, verify_threshold=o.verify_threshold, mirrors=o.mirrors,
                  engine=engine, partitions=o.partitions, self_fit=o.self_fit,
                  max_false_share=o.max_false_share)


@locks_output("out")  # one run per output directory
def _dedup(
    src: str | os.PathLike,
    out: str | os.PathLike,
    size: int | None,
    radius: int,
    keep: str,
    model_path: str | os.PathLike | None,
    against: str | os.PathLike | None,
    dry_run: bool,
    device: str,
    workers: int | None,
    seed: int,
    config: hashing.HashConfig | None,
    max_bucket_share: float,
    probe: bool,
    neighbours: int,
    min_cosine: float,
    verified: bool,
    verify_threshold: float | None,
    mirrors: bool,
    engine: Engine | str | None,
    partitions: int | str,
    self_fit: bool,
    max_false_share: float,
) -> dict[str, Any]:
    """De-duplicate `src` into `out`. Returns the report (also out/dedup_report.json).

    The defaults propose candidates from the hash, its probe hashes and nearest neighbours,
    and remove only verified duplicates. `probe=False, neighbours=0, verified=False` is the
    paper's rule: equal hashes are duplicates.

    `engine` runs the ingest of a non-shard SRC, the hashing pass (on the CPU; with a GPU
    `device` it runs here) and the hash partitions ("local": `workers` processes, or "ray").
    `partitions` (a number or "auto": from the row count and the memory available) splits
    the grouping of shared hashes so that no process sorts them all at once; the output is
    the same for every number."""
    src, out = Path(src), Path(out)
    against = Path(against) if against is not None else None
    model_path = Path(model_path) if model_path is not None else None
    config = config or hashing.HashConfig()
    device = resolve_device(device)
    _check_options(src, out, against, dry_run)
    partition.remove_stale_spills(out)  # a killed run's partition files (OUT is ours now)
    engine = make_engine(engine, workers)
    if workers:
        torch.set_num_threads(workers)
    if device == "cpu":
        reuse_freed_memory()  # training and verification allocate the same blocks all along
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    # everything that can refuse the input runs before anything is written to `out`
    if model_path is not None:
        hashing.load_model(model_path, device)
    shards, ingest_report = open_input(src, out / "ingested", size or 64, engine)
    other = open_input(against, out / "against_ingested", 64, engine)[0] if against else None
    if len(shards) == 0:
        raise InputError(f"{src}: no images to de-duplicate")
    size = output_size(size, shards)
    if other is not None and len(other) == 0:
        raise InputError(f"--against {against}: holds no images")
    timings["ingest"] = time.perf_counter() - clock

    clock = time.perf_counter()
    model, model_info = _get_model(shards, out, model_path, config, device, seed)
    timings["train"] = time.perf_counter() - clock

    clock = time.perf_counter()
    hasher = hashing.Hasher(model, device, probe)
    scan_engine = engine if device == "cpu" else LocalEngine(1)  # one GPU, in this process
    arrays = _scan_arrays(out, len(shards) + (len(other) if other else 0),
                          hasher.slopes is not None)
    _scan(hasher, shards, scan_engine, "hash", arrays, 0)
    if other is not None:
        _scan(hasher, other, scan_engine, "hash --against", arrays, len(shards))
    all_hashes, all_probes, grey, colour = arrays
    hashes = all_hashes[: len(shards)]
    timings["hash"] = time.perf_counter() - clock
    stats = hashing.code_stats(hashes)
    if len(hashes) >= 50:
        _check_codes(stats, grey[: len(hashes)], colour[: len(hashes)], max_bucket_share)

    clock = time.perf_counter()
    keys_per_row = 1 if all_probes is None else all_probes.shape[1]
    parts = partition.auto_partitions(len(all_hashes), keys_per_row) if partitions == "auto" \
        else partitions
    # on this machine partitions run one after another, so that memory holds one at a time;
    # a Ray cluster runs them in parallel, spilled to OUT, the path every node can read
    partitioning = {"partitions": parts, "spill_dir": out,
                    "engine": engine if engine.name == "ray" else LocalEngine(1)}
    area = np.concatenate([np.prod(shards.source_hw().astype(np.int64), axis=1),
                           np.zeros(len(all_hashes) - len(hashes), np.int64)])
    if verified:
        fit_rows = None
        if self_fit and len(hashes) >= SELF_FIT_MIN_ROWS:
            fit_rows = selffit.FitRows(shards.load, grey, colour, verify.textures(grey, device),
                                       len(hashes), verify.VerifyModel.load().threshold)
        kept_as, row_score, grouping = _verified_kept_as(
            all_hashes, all_probes, radius, grey, colour, neighbours, min_cosine, mirrors,
            verify_threshold, device, area, keep, len(hashes), partitioning, fit_rows,
            max_false_share, seed)
    else:
        labels = find_groups(all_hashes, radius, all_probes, **partitioning)
        kept_as = choose_kept(labels, area, keep, len(hashes))
        row_score = np.full(len(all_hashes), np.nan, np.float32)
        grouping = {"verified": False}
    grouping["partitions"] = parts
    kept_as, row_score = kept_as[: len(hashes)], row_score[: len(hashes)]
    labels = kept_as
    timings["group"] = time.perf_counter() - clock
    removed = np.flatnonzero(kept_as != np.arange(len(hashes)))
    group_sizes = Counter(labels.tolist())
    largest = max(group_sizes.values())
    if len(hashes) >= 50 and largest / len(hashes) > max_bucket_share:
        raise DcganDataError(
            f"degenerate grouping: one group holds {largest} of {len(hashes)} images; "
            "refusing to remove them (raise --max-bucket-share if the images really are "
            "that alike)")

    params = {"stage": "dedup", "size": size, "radius": radius, "keep": keep,
              "probes": len(hashing.PROBES) if probe else 0, "neighbours": neighbours,
              "min_cosine": min_cosine if neighbours else None,
              "verified": verified, "verify_threshold": grouping.get("threshold"),
              "self_fit": bool(grouping.get("self_fit")),
              "max_false_share": max_false_share if grouping.get("self_fit") else None,
              "mirrors": mirrors,
              "against": str(against) if against else None, "source_rows": len(shards),
              "hashes_sha1": hashlib.sha1(all_hashes.tobytes()).hexdigest()}
    # refuses an OUT holding shards of another run, before anything is overwritten
    writer = None if dry_run else ShardWriter(out, (size, size, 3), params)

    # from here on, outputs are written (each file atomically)
    clock = time.perf_counter()
    if model_info.get("trained"):
        hashing.save_model(model, out / MODEL, {k: v for k, v in model_info.items()
                                               if k not in ("model", "trained")})
    with atomic_path(out / HASHES) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, hashes)
    keys = shards.keys()
    other_keys = other.keys() if other else []
    all_keys = keys + other_keys
    distances = hashing.popcount(hashes[removed] ^ all_hashes[kept_as[removed]])
    scores = [round(float(x), 2) if np.isfinite(x) else "" for x in row_score[removed]]
    write_csv(out / CSV, ["key", "duplicate_of", "distance", "score"],
              zip([encode_key(keys[i]) for i in removed],
                  [encode_key(all_keys[j]) for j in kept_as[removed]],
                  distances.tolist(), scores, strict=True), spreadsheet_safe=True)
    _write_sheet(out / SHEET, shards, other, removed, kept_as, labels, group_sizes)
    written = None if writer is None else _write_shards(writer, shards, kept_as, size,
                                                        engine)
    timings["write"] = time.perf_counter() - clock

    removed_by_other = int((kept_as[removed] >= len(hashes)).sum())
    report = {
        "source": str(src),
        "out": str(out),
        "dry_run": dry_run,
        "images": len(hashes),
        "kept": len(hashes) - len(removed),
        "removed": len(removed),
        "removed_as_duplicate_of_against": removed_by_other,
        "removed_share": round(len(removed) / len(hashes), 6),
        "groups_with_duplicates": sum(1 for s in group_sizes.values() if s > 1),
        "largest_groups": _largest_groups(group_sizes, all_keys, 10),
        "group_size_histogram": dict(sorted(Counter(group_sizes.values()).items())),
        "distance_histogram": dict(sorted(Counter(distances.tolist()).items())),
        "grouping": grouping,
        "parameters": {**params, "model": model_info.get("model"), "device": device,
                       "workers": engine.workers, "engine": engine.name,
                       "partitions": partitions, "seed": seed,
                       "max_bucket_share": max_bucket_share,
                       "config": asdict(model.config)},
        "model": model_info,
        "bits": stats,
        "against_images": len(all_hashes) - len(hashes),
        "output_shards": written,
        "ingest": ingest_report and {k: ingest_report.get(k) for k in
                                     ("images", "failed", "seconds") if k in ingest_report},
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "hash_images_per_s": round(len(all_hashes) / max(timings["hash"], 1e-9), 1),
        "files": {"hashes": HASHES, "duplicates": CSV, "sheet": SHEET,
                  "model": MODEL if model_info.get("trained") else model_info.get("model")},
    }
    write_json(out / REPORT, report)
    return report


def _check_codes(stats: dict[str, Any], grey: np.ndarray, colour: np.ndarray,
                 max_bucket_share: float) -> None:
    """Refuse a degenerate hash, unless the images themselves are all one image: then only
    --max-bucket-share 1 lets the run keep one of them."""
    if not ((grey == grey[0]).all() and (colour == colour[0]).all()):
        hashing.check_codes(stats, max_bucket_share=max_bucket_share)
    elif max_bucket_share < 1:
        raise DcganDataError(
            f"degenerate input: all {len(grey)} images are one image; refusing to remove all "
            "but one (--max-bucket-share 1 does it)")


def _scan_arrays(folder: Path, n: int, probe: bool
                 ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Hashes in memory; probe hashes and thumbnails (most of a row's bytes, read pair by
    pair) mapped from files in `folder`, so that millions of rows do not sit in the
    process's own memory."""
    hashes = np.empty((n, hashing.HASH_BYTES), np.uint8)
    probes = disk_array(folder, (n, len(hashing.PROBES), hashing.HASH_BYTES), np.uint8) \
        if probe else None
    grey = disk_array(folder, (n, verify.GREY, verify.GREY), np.uint8)
    colour = disk_array(folder, (n, verify.COLOUR, verify.COLOUR, 3), np.uint8)
    return hashes, probes, grey, colour


def _scan(hasher: hashing.Hasher, shards: ShardSet, engine: Engine, desc: str,
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
    return (codes, moved, *verify.thumbnails(rows))


def _verified_kept_as(hashes: np.ndarray, probes: np.ndarray | None, radius: int,
                      grey: np.ndarray, colour: np.ndarray, neighbours: int,
                      min_cosine: float, mirrors: bool, threshold: float | None, device: str,
                      area: np.ndarray, keep: str, protected: int, partitioning: dict[str, Any],
                      self_fit: selffit.FitRows | None, max_false_share: float, seed: int
                      ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Candidates from every generator, verified; the kept row of each row and its score.
    With `self_fit` (enough rows to learn from), the decision is the model fitted on them."""
    clock = time.perf_counter()
    a, b, proposed = candidate_pairs(hashes, probes, radius, grey, neighbours, mirrors,
                                     device, min_cosine, **partitioning)
    proposing = time.perf_counter() - clock
    # the fixed model's looks run at its own threshold when the fitted model decides
    verifier = Verifier(grey, colour, None if self_fit else threshold, mirrors, device,
                        keep_features=self_fit is not None)
    scores = verifier(a, b)
    verifying = time.perf_counter() - clock - proposing
    decider: Verifier | RunTimeDecider = verifier
    estimates = None
    if self_fit is not None and len(a):  # no candidate pair: nothing to decide
        model, neighbourhood, scores, estimates = selffit.fit(
            a, b, scores, verifier.last_features, self_fit,
            partial(scored_with_features, mirrors=mirrors, device=device), max_false_share,
            seed)
        decider = RunTimeDecider(verifier, model, neighbourhood, self_fit.texture, threshold,
                                 a, b)
    fitting = time.perf_counter() - clock - proposing - verifying
    kept_as, row_score, split = verified_groups(len(hashes), a, b, scores, decider, area,
                                                keep, protected)
    return kept_as, row_score, {
        "verified": True,
        "threshold": round(decider.threshold, 3) if np.isfinite(decider.threshold) else None,
        "decision": "fitted on this dataset" if estimates else "fixed model",
        "self_fit": estimates,
        "candidates": proposed, "verified_pairs": int((scores >= decider.threshold).sum()),
        "pairs_scored": verifier.scored, "pairs_aligned": verifier.aligned,
        "pairs_unoverlaid": verifier.unoverlaid,
        "pairs_passed_chroma_matched": verifier.chroma_matched,
        "second_look_skipped": verifier.second_look_skipped, **split,
        "seconds": {"candidates": round(proposing, 3), "verification": round(verifying, 3),
                    "self_fit": round(fitting, 3),
                    "groups": round(time.perf_counter() - clock - proposing - verifying -
                                    fitting, 3)}}


def read_kept_as(out: str | os.PathLike, keys: list[str]) -> np.ndarray:
    """The row kept in place of each row (its own index if kept), read back from
    OUT/duplicates.csv; `keys` are the rows' keys in order (SRC's, then --against's)."""
    index = {key: i for i, key in enumerate(keys)}
    kept_as = np.arange(len(keys))
    with open(Path(out) / CSV, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            kept_as[index[row["key"]]] = index[row["duplicate_of"]]
    return kept_as


def _largest_groups(group_sizes: Counter, keys: list[str], n: int) -> list[dict[str, Any]]:
    return [{"size": size, "first": keys[label]}
            for label, size in group_sizes.most_common(n) if size > 1]


def _write_sheet(path: Path, shards: ShardSet, other: ShardSet | None, removed: np.ndarray,
                 kept_as: np.ndarray, labels: np.ndarray, group_sizes: Counter,
                 pairs: int = 48) -> None:
    """Removed | kept pairs side by side, largest groups first, for a visual check; no sheet
    (and none left from an earlier run) when nothing was removed."""
    if not len(removed):
        path.unlink(missing_ok=True)
        return
    size = -np.array([group_sizes[labels[i]] for i in removed])
    shown = removed[np.lexsort((removed, labels[removed], size))][:pairs]
    left = shards.load(shown)
    partners = kept_as[shown]
    right = np.empty_like(left)
    ours = partners < len(shards)
    right[ours] = shards.load(partners[ours])
    if other is not None and (~ours).any():
        right[~ours] = other.load(partners[~ours] - len(shards))
    gap = np.full((len(left), left.shape[1], 2, 3), 255, np.uint8)
    save_png(path, contact_sheet(np.concatenate([left, gap, right], axis=2), cols=4, pad=6))


def _write_shards(writer: ShardWriter, shards: ShardSet, kept_as: np.ndarray, size: int,
                  engine: Engine) -> int:
    """The kept rows, one output shard per input shard, each written by the worker that made
    it (finished shards are skipped: a re-run resumes); the manifest last."""
    units = [(s, np.flatnonzero(kept_as[lo:hi] == np.arange(lo, hi)))
             for s, (lo, hi) in enumerate(zip(shards.offsets[:-1].tolist(),
                                              shards.offsets[1:].tolist(), strict=True))
             if not writer.is_done(s)]
    lost = Failures()
    with progress(total=len(shards), initial=len(shards) - sum(
            shards.shards[s]["rows"] for s, _ in units), desc="write") as bar:
        for (s, _), entry in run_units(write_kept_unit, units, engine,
                                       (shards, writer.target, size)):
            if isinstance(entry, UnitError):
                lost.add(entry.reason, f"shard {s}: {entry.detail}")
                continue
            writer.add(entry)
            bar.update(shards.shards[s]["rows"])
    if lost.counts:
        raise DcganDataError(f"dedup: {lost.as_dict()['failed_by_reason']} shards failed to "
                             f"write, e.g. {next(iter(lost.examples.values()))[0]}; a re-run "
                             "writes the missing ones")
    writer.finish(shards.num_shards, {"stage": "dedup", "source": str(shards.path)})
    return shards.num_shards


def write_kept_unit(context: tuple[ShardSet, ShardTarget, int], unit: tuple[int, np.ndarray]
                    ) -> dict[str, Any]:
    """Input shard s's kept rows (`local`: their indices in it), unit (s, local), written as
    output shard s; its entry."""
    shards, target, size = context
    s, local = unit
    images = shards.shard(s)[local]
    if images.shape[1:3] != (size, size):
        images = np.stack([resize_square(r, size) for r in images]) if len(local) \
            else np.zeros((0, size, size, 3), np.uint8)
    keys = shards.shard_keys(s)
    rows = shards.shards[s]["rows"]
    return target.write(s, images, [keys[i] for i in local], shards.shard_hw(s)[local],
                        {"input_rows": rows, "kept": len(local), "removed": rows - len(local)})
