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

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dcgan_data.audit.calibration import Calibrated, calibrate, quantiles, verdict
from dcgan_data.audit.features import MODEL, Features, get_model
from dcgan_data.audit.figures import write_distances, write_nearest
from dcgan_data.audit.inputs import (
    Images,
    calibration_images,
    check_paths,
    open_training,
    read_generated,
)
from dcgan_data.audit.options import AuditOptions, Holdout, parse_holdout
from dcgan_data.audit.report import AuditFiles, AuditParameters, AuditReport
from dcgan_data.audit.rerank import CONTEXT, SHIFT, rerank, without_repeats
from dcgan_data.audit.search import (
    MAX_HASH_CANDIDATES,
    Candidates,
    found_by_hash,
    hash_distances,
    scan_training,
)
from dcgan_data.core.devices import resolve_device
from dcgan_data.core.errors import InputError
from dcgan_data.core.files import write_csv
from dcgan_data.core.shards import ShardSet, encode_key
from dcgan_data.core.stage import Phases
from dcgan_data.engines.local import LocalEngine
from dcgan_data.engines.runner import Engine, make_engine
from dcgan_data.hashmodel import hashing

CSV = "audit.csv"
REPORT = "audit_report.json"
NEAREST = "nearest.png"
DISTANCES = "distances.png"
SHOWN = 32  # sample / nearest training image pairs in NEAREST


def audit(
    generated: str | os.PathLike,
    train: str | os.PathLike,
    out: str | os.PathLike,
    options: AuditOptions | None = None,
    *,
    config: hashing.HashConfig | None = None,
    engine: Engine | str | None = None,
    **settings: Any,
) -> AuditReport:
    """Audit `generated` against the training shards `train`; write OUT/audit.csv,
    audit_report.json, nearest.png and distances.png. Returns the report. `options` (or
    its fields as keyword arguments) say how; `config` is for a hash model trained here (no
    --model, none from a dedup stage). The scan of the training rows runs as units on
    `engine` (local processes, `workers` of them, or Ray); on a GPU it runs in this process."""
    options = (options or AuditOptions()).replace(**settings)
    generated, train, out = Path(generated), Path(train), Path(out)
    holdout = parse_holdout(options.holdout)
    check_paths(out, [generated, train])
    device = resolve_device(options.device)
    phases = Phases()
    with phases.timed("read"):  # all that can refuse the input, before `out` is written
        read = _read(generated, train, holdout, options, device, config)
    with phases.timed("scan"):
        scan_engine = make_engine(engine, options.workers) if device == "cpu" else LocalEngine(1)
        scanned = _scan(read, options.neighbours, device, scan_engine)
    with phases.timed("rerank"):
        ranked = rerank(read.shards, scanned.crops, scanned.candidates.per_query(),
                        read.model.config)
        rows, distances, repeated = without_repeats(*ranked, scanned.own_rows >= 0)
    calibrated = calibrate(rows, distances, len(read.queries.rows), options.alpha)
    with phases.timed("write"):
        hash_distance = hash_distances(scanned.hashes, scanned.train_hashes, calibrated.nearest)
        shown = _write(out, read, calibrated, hash_distance, options.seed)
    report = _report((generated, train, out), holdout, options, device, scan_engine.name,
                     read, scanned, calibrated, repeated, shown, phases)
    report.write(out / REPORT)
    return report


@dataclass
class Read:
    """What the audit reads: the training shards, the hash model, the images to check and
    the calibration images (with the training row each one is, -1: none)."""

    shards: ShardSet
    model: hashing.HashAutoencoder
    model_info: dict[str, Any]
    queries: Images
    real: Images
    own_rows: np.ndarray


def _read(generated: Path, train: Path, holdout: Holdout, options: AuditOptions, device: str,
          config: hashing.HashConfig | None) -> Read:
    shards = open_training(train)
    size = shards.shape[0]
    model_path = Path(options.model_path) if options.model_path is not None else None
    model, model_info = get_model(train, shards, model_path, device, options.seed, config)
    real, own_rows = calibration_images(holdout, shards, size, options.seed, device)
    if len(shards) < 2:
        raise InputError(f"--train {train}: {len(shards)} image(s); the audit needs at least "
                         "two in its index to tell a copy from a near neighbour")
    queries = read_generated(generated, options.n, size, options.seed, device,
                             options.checkpoint)
    return Read(shards, model, model_info, queries, real, own_rows)


@dataclass
class Scanned:
    """Every query (the images to check, then the calibration images): its 32x32 crop, its
    hash, the training row it is (-1: none) and its candidates; and every row's hash."""

    crops: np.ndarray
    hashes: np.ndarray
    own_rows: np.ndarray
    candidates: Candidates
    train_hashes: np.ndarray


def _scan(read: Read, neighbours: int, device: str, engine: Engine) -> Scanned:
    crops = hashing.to_hash_crops(np.concatenate([read.queries.rows, read.real.rows]))
    features = Features(read.model, device)
    hashes, probes, codes = features(crops)
    own_rows = np.r_[np.full(len(read.queries.rows), -1, np.int64), read.own_rows]
    candidates = Candidates(hashes, probes, codes, neighbours, own_rows)
    train_hashes = scan_training(read.shards, features, candidates, engine)
    return Scanned(crops, hashes, own_rows, candidates, train_hashes)


def _write(out: Path, read: Read, calibrated: Calibrated, hash_distance: np.ndarray,
           seed: int) -> bool:
    """audit.csv, the trained hash model if any, nearest.png (when any sample has a nearest
    row; returns whether it does) and distances.png."""
    keys = read.shards.keys()
    (sample_d, _), (sample_r, _) = calibrated.distance, calibrated.relative
    nearest, copy = calibrated.nearest, calibrated.copy
    write_csv(out / CSV, ["sample", "nearest_key", "hash_distance", "distance",
                          "relative_distance", "copy"],
              ([encode_key(name), encode_key(keys[row]) if row >= 0 else "", int(h), f"{d:.4f}",
                f"{r:.4f}", int(c)]
               for name, row, h, d, r, c in zip(read.queries.names, nearest, hash_distance,
                                                  sample_d, sample_r, copy, strict=True)),
              spreadsheet_safe=True)
    if read.model_info["trained"]:
        hashing.save_model(read.model, out / MODEL, {"source_rows": len(read.shards),
                                                     "seed": seed})
    shown = np.lexsort((sample_d, np.nan_to_num(sample_r, nan=np.inf)))[:SHOWN]
    shown = shown[nearest[shown] >= 0]
    if len(shown):
        write_nearest(out / NEAREST, read.queries.rows[shown], read.shards.load(nearest[shown]),
                      sample_d[shown], sample_r[shown], copy[shown])
    count, copies = len(copy), int(copy.sum())
    write_distances(out / DISTANCES, calibrated.distance, calibrated.relative,
                    calibrated.threshold,
                    f"{copies} of {count} samples are copies ({copies / count:.2%}); "
                    f"P(a sample's relative distance < a calibration image's) = "
                    f"{calibrated.closer:.2f}")
    return bool(len(shown))


def _report(paths: tuple[Path, Path, Path], holdout: Holdout, options: AuditOptions,
            device: str, engine: str, read: Read, scanned: Scanned, calibrated: Calibrated,
            repeated: np.ndarray, shown: bool, phases: Phases) -> AuditReport:
    count, copies = len(calibrated.copy), int(calibrated.copy.sum())
    (sample_d, holdout_d), (sample_r, holdout_r) = calibrated.distance, calibrated.relative
    # each image's spatial spread of grey levels, per channel: a flat colour has none
    contrast = scanned.crops.reshape(len(scanned.crops), -1, 3).std(axis=1).mean(axis=1)
    generated, train, out = paths
    return AuditReport(
        generated=str(generated), train=str(train), out=str(out), samples=count,
        copies=copies, copy_fraction=round(copies / count, 6),
        closer_than_holdout=round(calibrated.closer, 4),
        expected_false_copies=round(calibrated.alpha_used * count, 1),
        verdict=verdict(copies, count, calibrated.alpha_used, calibrated.closer,
                        calibrated.usable, calibrated.distance,
                        (contrast[:count], contrast[count:])),
        calibration_warning=calibrated.warning,
        training_images=len(read.shards), indexed_images=len(read.shards),
        holdout_images=len(read.real.rows),
        holdout_source=str(holdout) if isinstance(holdout, Path) else
        "training rows, each measured against the index without itself",
        holdout_repeated_in_training=int(repeated.sum()),
        holdout_called_copies=int((np.nan_to_num(holdout_r, nan=np.inf)
                                   < calibrated.threshold).sum()),
        holdout_keys=read.real.names,
        threshold=round(calibrated.threshold, 4), alpha=options.alpha,
        alpha_effective=round(calibrated.alpha_used, 6),
        sample_distance_quantiles=quantiles(sample_d),
        holdout_distance_quantiles=quantiles(holdout_d),
        sample_relative_quantiles=quantiles(sample_r),
        holdout_relative_quantiles=quantiles(holdout_r),
        samples_without_candidate=int((calibrated.nearest < 0).sum()),
        nearest_found_by_hash=int(found_by_hash(scanned.candidates, calibrated.nearest).sum()),
        input=read.queries.info,
        parameters=AuditParameters(
            n=options.n, holdout=str(holdout), alpha=options.alpha,
            neighbours=options.neighbours, max_hash_candidates=MAX_HASH_CANDIDATES,
            context=CONTEXT, shift=SHIFT, seed=options.seed, device=device,
            checkpoint=options.checkpoint, engine=engine),
        model=read.model_info,
        timings_s=phases.rounded(3),
        files=AuditFiles(table=CSV, nearest=NEAREST if shown else None, distances=DISTANCES),
    )
