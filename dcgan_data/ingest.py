"""Ingest: any image source -> fixed-size shards, resumably, on several processes.

The source's items are split into units of `rows_per_shard` items; unit i becomes shard i.
Units are independent; they are cut into small chunks that the unit runner (`units`: local
processes or a Ray cluster) decodes, and the driver writes each shard when its unit is
whole. A killed run keeps its finished shards and redoes only the unit it was in.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dcgan_data import status
from dcgan_data.errors import DcganDataError, InputError
from dcgan_data.files import locks_output, progress, write_json
from dcgan_data.images import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    center_crop_resize,
    contact_sheet,
    decode_pixels,
    read_header,
    save_png,
    sniff_format,
)
from dcgan_data.shards import (
    ShardSet,
    ShardWriter,
    encode_key,
    is_shard_dir,
    rows_per_shard_of,
)
from dcgan_data.sources import Source, open_source
from dcgan_data.units import Engine, Failures, UnitError, make_engine, run_units

CHUNK = 256  # items per task: big enough to amortise IPC, small enough to balance load
REPORT = "ingest_report.json"
STATUS = "ingest_status"  # + status.extension(): one row per source key
STATUS_COLUMNS = ["key", "status", "detail", "width", "height"]
SHEET = "contact_sheet.png"


def crop_items(
    source: Source, items: Sequence[str], size: int, max_pixels: int = DEFAULT_MAX_PIXELS
) -> dict[str, Any]:
    """Decode and center-crop `items`; failures are recorded, never raised."""
    crops, keys, hw, failed, converted = [], [], [], [], []
    for item, data in zip(items, source.read_many(items), strict=True):
        try:
            if data is None:
                raise ImageError("missing", "no value for this key")
            if isinstance(data, ImageError):
                raise data
            header = read_header(data, max_pixels)
            if min(header.width, header.height) < size:
                raise ImageError("too_small", f"{header.width}x{header.height} is smaller "
                                 f"than {size}px")
            # decoding at >= 2x the output keeps area resizing as sharp as from full size
            rgb, conversion = decode_pixels(data, header, keep_short_side=2 * size)
            crops.append(center_crop_resize(rgb, size))
        except ImageError as exc:
            failed.append({"key": item, "reason": exc.reason, "detail": exc.detail})
            continue
        keys.append(item)
        hw.append(header.upright_hw)
        if conversion:
            converted.append({"key": item, "conversion": conversion})
    images = np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8)
    return {"images": images, "keys": keys, "hw": np.asarray(hw, np.int32).reshape(-1, 2),
            "failed": failed, "converted": converted, "read": len(items)}


def _crop_task(source: Source, task: tuple[int, list[str], int, int]) -> dict[str, Any]:
    _, items, size, max_pixels = task
    return crop_items(source, items, size, max_pixels)


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "images": np.concatenate([p["images"] for p in parts]),
        "keys": [k for p in parts for k in p["keys"]],
        "hw": np.concatenate([p["hw"] for p in parts]),
        "notes": {
            "read": sum(p["read"] for p in parts),
            "failed": [f for p in parts for f in p["failed"]],
            "converted": [c for p in parts for c in p["converted"]],
        },
    }


@locks_output("out")
def ingest(
    src: str | os.PathLike,
    out: str | os.PathLike,
    size: int = 64,
    workers: int | None = None,
    rows_per_shard: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    engine: Engine | str | None = None,
) -> dict[str, Any]:
    """Turn an LSUN LMDB or a folder of images into size x size shards in `out`.

    `engine` runs the decoding ("local" processes, `workers` of them, or "ray").
    `rows_per_shard` defaults to as many rows as fit in shards.DEFAULT_SHARD_BYTES. Returns
    the report, also written to out/ingest_report.json, with a contact sheet.
    """
    if size < 8 or size % 2:
        raise InputError(f"--size must be an even number >= 8, not {size}")
    rows_per_shard = rows_per_shard or rows_per_shard_of((size, size, 3))
    if rows_per_shard < 1:
        raise InputError("--rows-per-shard must be at least 1")
    _check_not_inside(Path(src), Path(out))
    start = time.perf_counter()
    engine = make_engine(engine, workers)
    source = open_source(src)
    items = source.items()
    if not items:
        raise InputError(f"{src}: no images found")
    units = [items[i : i + rows_per_shard] for i in range(0, len(items), rows_per_shard)]
    digest = hashlib.sha1("\n".join(items).encode("utf-8", "backslashreplace")).hexdigest()
    writer = ShardWriter(out, (size, size, 3), {
        "stage": "ingest", "size": size, "rows_per_shard": rows_per_shard,
        "max_pixels": max_pixels, "source_items": len(items), "source_digest": digest,
    })
    resumed = [i for i in range(len(units)) if writer.is_done(i)]
    tasks = [(u, units[u][c : c + CHUNK], size, max_pixels)
             for u in range(len(units)) if not writer.is_done(u)
             for c in range(0, len(units[u]), CHUNK)]

    pending: dict[int, list[dict[str, Any]]] = defaultdict(list)
    lost, broken = Failures(), set()
    todo_items = sum(len(t[1]) for t in tasks)
    with progress(total=todo_items, desc="ingest") as bar:
        for task, part in run_units(_crop_task, tasks, engine, context=source):
            unit = task[0]
            if isinstance(part, UnitError):  # its shard cannot be whole: a re-run redoes it
                lost.add(part.reason, f"shard {unit}, items {task[1][0]}..: {part.detail}")
                broken.add(unit)
            if unit in broken:
                pending.pop(unit, None)
                continue
            pending[unit].append(part)
            bar.update(part["read"])
            if sum(p["read"] for p in pending[unit]) == len(units[unit]):
                shard = _merge(pending.pop(unit))
                writer.write(unit, shard["images"], shard["keys"], shard["hw"], shard["notes"])
    if lost.counts:
        raise DcganDataError(f"ingest: {lost.as_dict()['failed_by_reason']} units failed, e.g. "
                             f"{next(iter(lost.examples.values()))[0]}; the other shards are "
                             "written and a re-run redoes the missing ones")
    writer.finish(len(units), {"stage": "ingest", "source": str(src)})

    seconds = time.perf_counter() - start
    report = _report(writer.notes(), source, out, size, len(units), len(resumed))
    report.update(seconds=round(seconds, 3), engine=engine.name, workers=engine.workers,
                  images_per_s=round(todo_items / seconds, 1) if seconds > 0 else None)
    shards = ShardSet(out)
    report["status_table"] = status.write_table(
        Path(out) / STATUS, STATUS_COLUMNS, _status_rows(units, shards, writer.notes())).name
    write_json(Path(out) / REPORT, report)
    write_contact_sheet(shards, Path(out) / SHEET)
    return report


def _check_not_inside(src: Path, out: Path) -> None:
    # a re-run would read the first run's outputs (its contact sheet, say) as images
    if out.resolve() == src.resolve() or out.resolve().is_relative_to(src.resolve()):
        raise InputError(f"-o {out} is inside the source {src}; write the shards elsewhere")


def _report(notes: list[dict], source: Source, out, size: int, shards: int, resumed: int) -> dict:
    failed = [f for n in notes for f in n["failed"]]
    record = Failures()
    for f in failed:
        record.add(f["reason"], f"{f['key']} ({f['detail']})")
    converted = [c for n in notes for c in n["converted"]]
    read = sum(n["read"] for n in notes)
    return {
        "stage": "ingest",
        "source": str(source.path),
        "source_kind": source.kind,
        "out": str(out),
        "size": size,
        "read": read,
        "written": read - len(failed),
        **record.as_dict(),
        "failed_items": failed,
        "converted": dict(Counter(c["conversion"] for c in converted)),
        "converted_items": converted,
        "shards": shards,
        "shards_resumed": resumed,
    }


def _status_rows(units: list[Sequence[str]], shards: ShardSet, notes: list[dict]
                 ) -> Iterator[list[list]]:
    """Per unit, a STATUS_COLUMNS row for each of its keys in source order."""
    for index, items in enumerate(units):
        fates = {f["key"]: [encode_key(f["key"]), f["reason"], f["detail"], None, None]
                 for f in notes[index]["failed"]}
        hw = shards.shard_hw(index)
        for key, (height, width) in zip(shards.shard_keys(index), hw.tolist(), strict=True):
            fates[key] = [encode_key(key), "ok", None, width, height]
        yield [fates[key] for key in items]


def sample_rows(shards: ShardSet, n: int = 64) -> np.ndarray:
    """Up to n rows spread evenly over a shard set."""
    if len(shards) == 0:
        return np.zeros((0, *shards.shape), np.uint8)
    picks = np.unique(np.linspace(0, len(shards) - 1, min(n, len(shards))).round().astype(int))
    return shards.load(picks)


def write_contact_sheet(shards: ShardSet, path: str | os.PathLike, n: int = 64) -> bool:
    """A grid of up to n rows of `shards`, as PNG. False (no file) when the set is empty."""
    rows = sample_rows(shards, n)
    if len(rows) == 0:
        return False
    save_png(path, contact_sheet(rows))
    return True


def _format_name(data: bytes | ImageError | None) -> str:
    if isinstance(data, ImageError):
        return data.reason
    return (sniff_format(data) or "not_an_image") if data else "empty"


def _spread(values: np.ndarray) -> dict[str, float]:
    return {"min": int(values.min()), "median": float(np.median(values)), "max": int(values.max())}


def inspect(path: str | os.PathLike, sample: int = 64, size: int = 64
            ) -> tuple[dict[str, Any], np.ndarray | None]:
    """Summarise a shard directory (verifying checksums) or an image source (decoding a sample).

    Returns the summary and a contact sheet (None if there is nothing to show).
    """
    path = Path(path)
    if is_shard_dir(path):
        shards = ShardSet(path)
        problems = shards.verify()
        summary = {"kind": "shards", "path": str(path), "count": len(shards),
                   "shape": list(shards.shape), "shards": shards.num_shards,
                   "params": shards.manifest.get("params", {}),
                   "verified": not problems, "problems": problems}
        if problems:  # sampling rows from a broken shard would only raise
            return summary, None
        rows = sample_rows(shards, sample)
        return summary, contact_sheet(rows) if len(rows) else None
    source = open_source(path)
    items = source.items()
    picks = [items[int(i)] for i in np.unique(np.linspace(0, len(items) - 1, sample).round())
             ] if items else []
    formats = Counter(map(_format_name, source.read_many(picks)))
    part = crop_items(source, picks, size)
    hw = part["hw"]
    summary = {
        "kind": source.kind, "path": str(path), "count": len(items),
        "databases": [str(p) for p in getattr(source, "dbs", [])],
        "sampled": len(picks), "formats": dict(formats),
        "sample_failed": part["failed"],
        "sample_short_side": _spread(hw.min(1)) if len(hw) else None,
    }
    sheet = contact_sheet(part["images"]) if len(part["images"]) else None
    return summary, sheet
