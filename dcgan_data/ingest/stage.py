"""Ingest: any image source -> fixed-size shards, resumably, on several processes.

The source's items are split into units of `rows_per_shard` items; unit i becomes shard i.
A shard is made in two steps, so that a shard of any size decodes on every worker at once
and no process ever holds a whole shard:
  1. decode: the unit runner (`units`: local processes or a Ray cluster) decodes and crops
     each chunk of CHUNK items of the shard; its worker writes the rows to a chunk file
     (.npy, then a .json of its keys and notes, written last) in a chunk folder in OUT;
  2. join: once all its chunks are written, the chunks are streamed, in order, into the
     shard (`ShardTarget.write_blocks`: no decoding, one chunk in memory) and deleted; by
     the driver while the workers decode on, or on a Ray cluster by a worker.
The driver writes the manifest last. A killed run keeps its finished shards and chunks
and redoes only the rest; a re-run with other options discards the chunks.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dcgan_data.core import status
from dcgan_data.core.errors import DcganDataError, InputError
from dcgan_data.core.files import (
    atomic_path,
    locks_output,
    progress,
    read_json,
    remove_folders,
    write_csv,
    write_json,
)
from dcgan_data.core.images import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    center_crop_resize,
    contact_sheet,
    decode_pixels,
    read_header,
    save_png,
    sniff_format,
)
from dcgan_data.core.shards import (
    ShardSet,
    ShardTarget,
    ShardWriter,
    encode_key,
    is_shard_dir,
    rows_per_shard_of,
    shard_stem,
)
from dcgan_data.core.stage import Failures
from dcgan_data.engines.units import (
    Engine,
    LocalEngine,
    UnitError,
    make_engine,
    run_units,
)
from dcgan_data.ingest.options import IngestOptions, InspectOptions
from dcgan_data.ingest.sources import Source, open_source

CHUNK = 256  # items per task: big enough to amortise IPC, small enough to balance load
CHUNKS = ".ingest-chunks-"  # + a digest of the run's params: the decoded chunks, until joined
REPORT = "ingest_report.json"
STATUS = "ingest_status"  # + status.extension(): one row per source key
STATUS_COLUMNS = ["key", "status", "detail", "width", "height"]
SHEET = "contact_sheet.png"
LABELS = "labels.csv"  # key,label (export.LABELS): the class folders of an ImageFolder layout


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


def decode_chunk(source: Source, task: tuple[int, str, list[str], int, int]) -> int:
    """Decode one chunk's items into its chunk files (rows, then keys and notes); how many
    items it read."""
    _, stem, items, size, max_pixels = task
    part = crop_items(source, items, size, max_pixels)
    with atomic_path(stem + ".npy") as tmp:
        with open(tmp, "wb") as f:
            np.save(f, part["images"])
    write_json(stem + ".json", {k: part[k] for k in ("keys", "failed", "converted", "read")}
               | {"hw": part["hw"]})
    return part["read"]


def join_chunks(target: ShardTarget, task: tuple[int, list[str]]) -> dict[str, Any]:
    """Write shard `index` from its chunk files, in order, then delete them; its entry."""
    index, stems = task
    parts = [read_json(stem + ".json") for stem in stems]
    notes = {"read": sum(p["read"] for p in parts),
             "failed": [f for p in parts for f in p["failed"]],
             "converted": [c for p in parts for c in p["converted"]]}
    blocks = (np.load(stem + ".npy", mmap_mode="r") for stem in stems)
    hw = np.asarray([xy for p in parts for xy in p["hw"]], np.int32).reshape(-1, 2)
    entry = target.write_blocks(index, blocks, [k for p in parts for k in p["keys"]], hw, notes)
    for stem in stems:
        Path(stem + ".npy").unlink(missing_ok=True)
        Path(stem + ".json").unlink(missing_ok=True)
    return entry


def _chunk_folder(writer: ShardWriter) -> Path:
    """This run's chunk folder in OUT, named by its params; other runs' folders removed
    (call holding OUT's lock)."""
    params = json.dumps(writer.params, sort_keys=True).encode("utf-8", "backslashreplace")
    folder = writer.target.out_dir / (CHUNKS + hashlib.sha1(params).hexdigest()[:16])
    remove_folders(folder.parent, CHUNKS, keep=folder)
    folder.mkdir(exist_ok=True)
    return folder


def ingest(src: str | os.PathLike, out: str | os.PathLike,
           options: IngestOptions | None = None, engine: Engine | str | None = None,
           **settings: Any) -> dict[str, Any]:
    """Turn an LSUN LMDB, a folder of images, webdataset shards or a Hugging Face dataset
    into size x size shards in `out` (`options`, or its fields as keyword `settings`).

    `engine` runs the decoding and the writing of the shards ("local" processes, `workers`
    of them, or "ray").
    `local_root` and `max_bytes` bound the files that a Hugging Face dataset's path cells
    may name (default: below the dataset's folder).
    `rows_per_shard` defaults to as many rows as fit in shards.DEFAULT_SHARD_BYTES. Returns
    the report, also written to out/ingest_report.json, with a contact sheet.
    """
    options = (options or IngestOptions()).replace(**settings)  # refused before OUT is made
    return _ingest(src, out, options, engine)


@locks_output("out")
def _ingest(src: str | os.PathLike, out: str | os.PathLike, options: IngestOptions,
            engine: Engine | str | None) -> dict[str, Any]:
    size, max_pixels = options.size, options.max_pixels
    local_root, max_bytes = options.local_root, options.max_bytes
    rows_per_shard = options.rows_per_shard
    rows_per_shard = rows_per_shard or rows_per_shard_of((size, size, 3))
    _check_not_inside(Path(src), Path(out))
    start = time.perf_counter()
    engine = make_engine(engine, options.workers)
    source = open_source(src, local_root, max_bytes)
    items = source.items()
    if not items:
        raise InputError(f"{src}: no images found")
    units = [items[i : i + rows_per_shard] for i in range(0, len(items), rows_per_shard)]
    digest = hashlib.sha1("\n".join(items).encode("utf-8", "backslashreplace")).hexdigest()
    writer = ShardWriter(out, (size, size, 3), {
        "stage": "ingest", "size": size, "rows_per_shard": rows_per_shard,
        "max_pixels": max_pixels, "source_items": len(items), "source_digest": digest,
        # what a Hugging Face dataset's path cells may read
        **({"local_root": str(local_root or ""), "max_bytes": max_bytes}
           if source.kind == "hf" else {}),
    })
    resumed = [i for i in range(len(units)) if writer.is_done(i)]
    folder = _chunk_folder(writer)
    chunks = _chunks(units, writer, folder)
    tasks = [(u, stem, part, size, max_pixels) for u, parts in chunks.items()
             for stem, part in parts
             if not Path(stem + ".json").exists()]  # a chunk a killed run finished is kept
    lost, stems = Failures(), {u: [stem for stem, _ in parts] for u, parts in chunks.items()}
    # Joining reads and writes files. On this machine the driver joins each shard as soon as
    # its chunks are in, while the workers decode on; on a Ray cluster the workers join, so
    # that the pixels never pass through the driver's node.
    on_ray = engine.name == "ray"
    broken = _decode(tasks, source, engine, lost, None if on_ray else lambda u: writer.add(
        join_chunks(writer.target, (u, stems[u]))))
    _join({u: s for u, s in stems.items() if u not in broken and not writer.is_done(u)},
          writer, engine if on_ray else LocalEngine(1), lost)
    if lost.counts:
        raise DcganDataError(f"ingest: {lost.as_dict()['failed_by_reason']} units failed, e.g. "
                             f"{next(iter(lost.examples.values()))[0]}; the other shards are "
                             "written and a re-run redoes the missing ones")
    shutil.rmtree(folder)
    writer.finish(len(units), {"stage": "ingest", "source": str(src)})

    seconds = time.perf_counter() - start
    todo_items = sum(len(t[2]) for t in tasks)
    report = _report(writer.notes(), source, out, size, len(units), len(resumed))
    report.update(seconds=round(seconds, 3), engine=engine.name, workers=engine.workers,
                  chunks_resumed=sum(map(len, chunks.values())) - len(tasks),
                  images_per_s=round(todo_items / seconds, 1) if seconds > 0 else None)
    shards = ShardSet(out)
    report["label_classes"] = write_folder_labels(source, shards)
    report["status_table"] = status.write_table(
        Path(out) / STATUS, STATUS_COLUMNS, _status_rows(units, shards, writer.notes())).name
    write_json(Path(out) / REPORT, report)
    write_contact_sheet(shards, Path(out) / SHEET)
    return report


def write_folder_labels(source: Source, shards: ShardSet) -> int:
    """For a folder laid out as torchvision's ImageFolder (SRC/CLASS/.../image, no image
    directly in SRC), write labels.csv naming each row's class folder; returns the number of
    classes (0, and no file, for any other source)."""
    keys = shards.keys()
    if source.kind != "folder" or not keys or not all("/" in key for key in keys):
        return 0
    labels = [key.split("/", 1)[0] for key in keys]
    write_csv(shards.path / LABELS, ["key", "label"], zip(keys, labels, strict=True))
    return len(set(labels))


def _chunks(units: list[Sequence[str]], writer: ShardWriter, folder: Path
            ) -> dict[int, list[tuple[str, Sequence[str]]]]:
    """Each shard still to write: its chunks, as (file stem in `folder`, items). A chunk is
    named by its items' range in the shard, so that a chunk cut another way is not taken."""
    chunks = {}
    for u, items in enumerate(units):
        if not writer.is_done(u):
            chunks[u] = [(str(folder / f"{shard_stem(u)}.items-{c}-{c + len(part)}"), part)
                         for c in range(0, len(items), CHUNK) for part in [items[c : c + CHUNK]]]
    return chunks


def _decode(tasks: list[tuple], source: Source, engine: Engine, lost: Failures,
            decoded: Callable[[int], Any] | None = None) -> set[int]:
    """Run the decode tasks, calling `decoded(shard)` when the last of a shard's tasks is
    done; the shards that lost a chunk (recorded in `lost`)."""
    broken, left = set(), Counter(task[0] for task in tasks)
    with progress(total=sum(len(t[2]) for t in tasks), desc="ingest") as bar:
        for task, read in run_units(decode_chunk, tasks, engine, context=source):
            if isinstance(read, UnitError):  # its shard cannot be whole: a re-run redoes it
                lost.add(read.reason, f"shard {task[0]}, items {task[2][0]}..: {read.detail}")
                broken.add(task[0])
                continue
            bar.update(read)
            left[task[0]] -= 1
            if decoded and not left[task[0]] and task[0] not in broken:
                decoded(task[0])
    return broken


def _join(chunks: dict[int, list[str]], writer: ShardWriter, engine: Engine, lost: Failures
          ) -> None:
    """Join each shard's chunks (shard: chunk stems) into the shard, on `engine`."""
    for (index, _), entry in run_units(join_chunks, list(chunks.items()), engine,
                                       context=writer.target):
        if isinstance(entry, UnitError):
            lost.add(entry.reason, f"shard {index}, joining its chunks: {entry.detail}")
        else:
            writer.add(entry)


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


def inspect(path: str | os.PathLike, options: InspectOptions | None = None, **settings: Any
            ) -> tuple[dict[str, Any], np.ndarray | None]:
    """Summarise a shard directory (verifying checksums) or an image source (decoding a
    sample of `options.sample` items at `options.size` px).

    Returns the summary and a contact sheet (None if there is nothing to show).
    """
    options = (options or InspectOptions()).replace(**settings)
    sample, size = options.sample, options.size
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
