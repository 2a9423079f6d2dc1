"""dedup's outputs: the duplicates CSV, the contact sheet and the kept rows as shards."""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dcgan_data.core.errors import DcganDataError
from dcgan_data.core.files import atomic_path, progress, write_csv
from dcgan_data.core.images import contact_sheet, resize_square, save_png
from dcgan_data.core.shards import ShardSet, ShardTarget, ShardWriter, encode_key
from dcgan_data.core.stage import Failures, completed_units
from dcgan_data.engines.runner import Engine
from dcgan_data.hashmodel import hashing

if TYPE_CHECKING:
    from dcgan_data.dedup.decide import Decision
    from dcgan_data.dedup.inputs import Inputs
    from dcgan_data.dedup.options import DedupOptions
    from dcgan_data.dedup.scan import Rows

MODEL = "hash_model.pt"
HASHES = "hashes.npy"
CSV = "duplicates.csv"
REPORT = "dedup_report.json"
SHEET = "duplicates.png"


def run_parameters(options: DedupOptions, inputs: Inputs, rows: Rows, decision: Decision
                   ) -> dict[str, Any]:
    """What decided this output, as the shards' manifest records it: a re-run into the same
    OUT must match."""
    o, grouping = options, decision.grouping
    return {"stage": "dedup", "size": inputs.size, "radius": o.radius, "keep": o.keep,
            "probes": len(hashing.PROBES) if o.probe else 0, "neighbours": o.neighbours,
            "min_cosine": o.min_cosine if o.neighbours else None,
            "verified": o.verify, "verify_threshold": grouping.threshold,
            "self_fit": bool(grouping.self_fit),
            "max_false_share": o.max_false_share if grouping.self_fit else None,
            "mirrors": o.mirrors,
            "against": str(o.against) if o.against else None,
            "source_rows": len(inputs.shards),
            "hashes_sha1": hashlib.sha1(rows.hashes.tobytes()).hexdigest()}


def removed_distances(rows: Rows, decision: Decision) -> np.ndarray:
    """Hamming distance of each removed row's hash to its keeper's."""
    removed = decision.removed
    return hashing.popcount(rows.hashes[removed] ^ rows.hashes[decision.kept_as[removed]])


def write_outputs(out: Path, inputs: Inputs, rows: Rows, decision: Decision,
                  model: tuple[hashing.HashAutoencoder, dict[str, Any]],
                  writer: ShardWriter | None, engine: Engine) -> int | None:
    """The trained model, the hashes, duplicates.csv, the sheet and the kept rows' shards
    (none when `writer` is None, a dry run), each file atomically; the shards written."""
    hash_model, model_info = model
    if model_info.get("trained"):
        hashing.save_model(hash_model, out / MODEL, {k: v for k, v in model_info.items()
                                                    if k not in ("model", "trained")})
    with atomic_path(out / HASHES) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, rows.hashes[: rows.own])
    write_duplicates(out / CSV, inputs, rows, decision)
    write_sheet(out / SHEET, inputs.shards, inputs.other, decision.kept_as)
    if writer is None:
        return None
    return write_shards(writer, inputs.shards, decision.kept_as, inputs.size, engine)


def write_duplicates(path: Path, inputs: Inputs, rows: Rows, decision: Decision) -> None:
    """Every removed row's key, its keeper's key, their hash distance and the pair's score."""
    keys, all_keys = inputs.shards.keys(), inputs.keys
    removed, kept_as = decision.removed, decision.kept_as
    scores = [round(float(x), 2) if np.isfinite(x) else "" for x in decision.row_score[removed]]
    write_csv(path, ["key", "duplicate_of", "distance", "score"],
              zip([encode_key(keys[i]) for i in removed],
                  [encode_key(all_keys[j]) for j in kept_as[removed]],
                  removed_distances(rows, decision).tolist(), scores, strict=True),
              spreadsheet_safe=True)


def read_kept_as(out: str | os.PathLike, keys: list[str]) -> np.ndarray:
    """The row kept in place of each row (its own index if kept), read back from
    OUT/duplicates.csv; `keys` are the rows' keys in order (SRC's, then --against's)."""
    index = {key: i for i, key in enumerate(keys)}
    kept_as = np.arange(len(keys))
    with open(Path(out) / CSV, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            kept_as[index[row["key"]]] = index[row["duplicate_of"]]
    return kept_as


def write_sheet(path: Path, shards: ShardSet, other: ShardSet | None, kept_as: np.ndarray,
                pairs: int = 48) -> None:
    """Removed | kept pairs side by side, largest groups first, for a visual check; no sheet
    (and none left from an earlier run) when nothing was removed."""
    removed = np.flatnonzero(kept_as != np.arange(len(kept_as)))
    if not len(removed):
        path.unlink(missing_ok=True)
        return
    group_sizes = Counter(kept_as.tolist())
    size = -np.array([group_sizes[kept_as[i]] for i in removed])
    shown = removed[np.lexsort((removed, kept_as[removed], size))][:pairs]
    left = shards.load(shown)
    partners = kept_as[shown]
    right = np.empty_like(left)
    ours = partners < len(shards)
    right[ours] = shards.load(partners[ours])
    if other is not None and (~ours).any():
        right[~ours] = other.load(partners[~ours] - len(shards))
    gap = np.full((len(left), left.shape[1], 2, 3), 255, np.uint8)
    save_png(path, contact_sheet(np.concatenate([left, gap, right], axis=2), cols=4, pad=6))


def write_shards(writer: ShardWriter, shards: ShardSet, kept_as: np.ndarray, size: int,
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
        for (s, _), entry in completed_units(write_kept_unit, units, engine, lost,
                                             lambda unit: f"shard {unit[0]}",
                                             (shards, writer.target, size)):
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
