"""One work unit of the faces stage: a range of crawl-list lines, fetched on threads,
decoded, searched for faces and cut into crops, then written as one shard (and its status
part) by the worker that ran it. A bad image is recorded with its reason, never raised."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dcgan_data.core import status
from dcgan_data.core.files import atomic_write_bytes
from dcgan_data.core.images import ImageError, decode_image, sniff_format
from dcgan_data.core.shards import ShardTarget
from dcgan_data.core.stage import Failures, Phases
from dcgan_data.faces.crawl_list import Entry, Unit, read_unit
from dcgan_data.faces.detect import Box, cached_detector, kept_crops
from dcgan_data.faces.fetch import FetchError, fetch_many
from dcgan_data.faces.options import FaceOptions

STATUS_COLUMNS = ["line", "url", "label", "status", "detail", "width", "height", "faces_found",
                  "faces_kept"]
COUNTS = ("fetched", "decoded", "with_face", "with_kept_face", "boxes", "kept")


@dataclass
class UnitResult:
    images: np.ndarray  # N x size x size x 3
    keys: list[str]
    source_hw: np.ndarray  # N x 2
    notes: dict[str, Any]
    status: list[list]  # one STATUS_COLUMNS row per list line, in line order


@dataclass
class _Found:
    """What one decoded image gave: its kept crops and their keys, a faces.csv row per box."""

    crops: list[np.ndarray]
    keys: list[str]
    rows: list[list]
    label: str | None
    shape: tuple[int, int]


def faces_unit(crawl: Path, unit: Unit, options: FaceOptions) -> UnitResult:
    """Fetch, decode, detect and crop one unit of crawl lines. Never raises for a bad image."""
    start = time.perf_counter()
    entries, malformed = read_unit(crawl, unit, options.url_col, options.label_col)
    work = _UnitWork(unit, options)
    work.refuse_listed(entries, malformed)
    fresh = [entry for entry in entries if entry.line not in work.repeats]
    for entry, got, seconds in fetch_many(fresh, options.fetch, options.workers):
        work.image(entry, got, seconds)
    return work.result(len(entries), len(malformed), time.perf_counter() - start)


def faces_shard(crawl: Path, target: ShardTarget, unit: Unit, options: FaceOptions
                ) -> dict[str, Any]:
    """One unit made and written by the worker that ran it: its status part first (a unit
    whose shard is written has its status rows too), then its shard. Returns the shard's
    entry (counts and notes), not its images."""
    result = faces_unit(crawl, unit, options)
    status.write_table(status.part_stem(target.out_dir, unit.index), STATUS_COLUMNS,
                       [result.status])
    return target.write(unit.index, result.images, result.keys, result.source_hw, result.notes)


def _fate(line: int, source: str | None, label: str | None, fate: str,
          detail: str | None) -> list:
    """A STATUS_COLUMNS row, its image columns (width.. faces_kept) still empty."""
    return [line, source, label, fate, detail, None, None, None, None]


class _UnitWork:
    """One unit's record so far: each line's fate, each image's crops, counts and the
    thread-seconds of each step (fetch, decode, detect, crop)."""

    def __init__(self, unit: Unit, options: FaceOptions):
        self.unit, self.options = unit, options
        self.repeats = dict(unit.repeats)
        self.detector = cached_detector(options.detector, options.min_face)
        self.min_score = options.score_threshold()
        self.tally = Failures()
        self.phases = Phases()
        self.counts: Counter[str] = Counter()
        self.fates: dict[int, list] = {}  # line -> its status row
        self.found: dict[int, _Found] = {}  # line -> what its image gave

    def refuse_listed(self, entries: list[Entry], malformed: list[tuple[int, str]]) -> None:
        """Record the malformed lines, and the lines naming an image an earlier line named."""
        for line, reason in malformed:
            self.tally.add("malformed", f"line {line}: {reason}")
            self.fates[line] = _fate(line, None, None, "malformed", reason)
        for entry in entries:
            if entry.line in self.repeats:
                detail = f"as line {self.repeats[entry.line]}"
                self.tally.add("repeated_url", f"line {entry.line}: {detail}")
                self.fates[entry.line] = _fate(entry.line, entry.source, entry.label,
                                               "repeated_url", detail)

    def image(self, entry: Entry, got: bytes | FetchError, fetch_seconds: float) -> None:
        """Decode, detect and crop one fetched image (or record why there is none)."""
        # fetch_many timed the fetch on its thread
        self.phases.seconds["fetch"] = self.phases.seconds.get("fetch", 0.0) + fetch_seconds
        where = f"line {entry.line}: {entry.source[:200]}"
        fate = self.fates[entry.line] = _fate(entry.line, entry.source, entry.label, "ok", None)
        if isinstance(got, FetchError):
            self.tally.add(got.reason, f"{where} ({got.detail})" if got.detail else where)
            fate[3:5] = got.reason, got.detail or None
            return
        self.counts["fetched"] += 1
        if self.options.keep_originals is not None:
            _keep_original(self.options.keep_originals, self.unit, entry.line, got)
        rgb = self._decoded(got, where, fate)
        boxes = None if rgb is None else self._detected(rgb, where, fate)
        if rgb is None or boxes is None:
            return
        with self.phases.timed("crop"):
            crops, keys, rows = kept_crops(rgb, boxes, entry.source, self.options,
                                           self.min_score)
            self.found[entry.line] = _Found(crops, keys, rows, entry.label, rgb.shape[:2])
            fate[7:9] = len(boxes), len(crops)
            self.counts.update(with_face=bool(boxes), with_kept_face=bool(crops),
                               boxes=len(boxes), kept=len(crops))

    def _decoded(self, data: bytes, where: str, fate: list) -> np.ndarray | None:
        with self.phases.timed("decode"):
            try:
                rgb, _ = decode_image(data, self.options.max_pixels)
            except ImageError as exc:
                self.tally.add(exc.reason, f"{where} ({exc.detail})")
                fate[3:5] = exc.reason, exc.detail
                return None
        self.counts["decoded"] += 1
        fate[5:7] = rgb.shape[1], rgb.shape[0]
        return rgb

    def _detected(self, rgb: np.ndarray, where: str, fate: list) -> list[Box] | None:
        with self.phases.timed("detect"):
            try:
                return self.detector.detect(rgb)
            except Exception as exc:  # a detector bug on one odd image must not end the run
                detail = f"{type(exc).__name__}: {exc}"
                self.tally.add("detector_error", f"{where} ({detail})")
                fate[3:5] = "detector_error", detail
                return None

    def result(self, listed: int, malformed: int, wall: float) -> UnitResult:
        """The unit's crops, keys and notes, in line order whatever order fetches ended in."""
        found = [self.found[line] for line in sorted(self.found)]
        keys = [key for f in found for key in f.keys]
        notes = {
            "unit": self.unit.index,
            "first_line": self.unit.first_line,
            "lines": self.unit.lines,
            "lines_sha1": self.unit.digest,
            "entries": listed,
            "malformed": malformed,
            **{name: self.counts[name] for name in COUNTS},
            "failed": dict(self.tally.counts),
            "failed_examples": self.tally.examples,
            "seconds": self.phases.rounded(3),
            "wall_seconds": round(wall, 3),
            "detections": [row for f in found for row in f.rows],
            "labels": [[key, f.label] for f in found if f.label is not None for key in f.keys],
        }
        size = self.options.size
        return UnitResult(
            images=np.asarray([c for f in found for c in f.crops], np.uint8
                              ).reshape(-1, size, size, 3),
            keys=keys,
            source_hw=np.asarray([f.shape for f in found for _ in f.crops], np.int32
                                 ).reshape(-1, 2),
            notes=notes,
            status=[self.fates[line] for line in sorted(self.fates)],
        )


def _keep_original(folder: Path, unit: Unit, line: int, data: bytes) -> None:
    fmt = sniff_format(data[:16]) or "bin"
    ext = "jpg" if fmt == "jpeg" else fmt
    atomic_write_bytes(folder / f"{unit.index:05d}" / f"{line:09d}.{ext}", data)
