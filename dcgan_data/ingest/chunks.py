"""How ingest makes a shard in two steps, so that a shard of any size decodes on every worker
at once and no process ever holds a whole shard:
  1. decode: the unit runner (local processes or a Ray cluster) decodes and crops each chunk
     of CHUNK items of the shard; its worker writes the rows to a chunk file (.npy, then a
     .json of its keys and notes, written last) in a chunk folder in OUT;
  2. join: once all its chunks are written, the chunks are streamed, in order, into the
     shard (`ShardTarget.write_blocks`: no decoding, one chunk in memory) and deleted; by
     the driver while the workers decode on, or on a Ray cluster by a worker.
A killed run keeps its finished chunks; a run with other options discards them.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dcgan_data.core.errors import DcganDataError
from dcgan_data.core.files import atomic_path, progress, read_json, remove_folders, write_json
from dcgan_data.core.images import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    center_crop_resize,
    decode_pixels,
    read_header,
)
from dcgan_data.core.shards import ShardTarget, ShardWriter, shard_stem
from dcgan_data.core.stage import Failures
from dcgan_data.engines.local import LocalEngine
from dcgan_data.engines.runner import Engine, UnitError, run_units
from dcgan_data.ingest.sources import Source

CHUNK = 256  # items per task: big enough to amortise IPC, small enough to balance load
CHUNKS = ".ingest-chunks-"  # + a digest of the run's params: the decoded chunks, until joined


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


def chunk_folder(writer: ShardWriter) -> Path:
    """This run's chunk folder in OUT, named by its params; other runs' folders removed
    (call holding OUT's lock)."""
    params = json.dumps(writer.params, sort_keys=True).encode("utf-8", "backslashreplace")
    folder = writer.target.out_dir / (CHUNKS + hashlib.sha1(params).hexdigest()[:16])
    remove_folders(folder.parent, CHUNKS, keep=folder)
    folder.mkdir(exist_ok=True)
    return folder


def plan_chunks(units: list[Sequence[str]], writer: ShardWriter, folder: Path
                ) -> dict[int, list[tuple[str, Sequence[str]]]]:
    """Each shard still to write: its chunks, as (file stem in `folder`, items). A chunk is
    named by its items' range in the shard, so that a chunk cut another way is not taken."""
    chunks = {}
    for u, items in enumerate(units):
        if not writer.is_done(u):
            chunks[u] = [(str(folder / f"{shard_stem(u)}.items-{c}-{c + len(part)}"), part)
                         for c in range(0, len(items), CHUNK) for part in [items[c : c + CHUNK]]]
    return chunks


def decode(tasks: list[tuple], source: Source, engine: Engine, lost: Failures,
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


def join(chunks: dict[int, list[str]], writer: ShardWriter, engine: Engine, lost: Failures
         ) -> None:
    """Join each shard's chunks (shard: chunk stems) into the shard, on `engine`."""
    for (index, _), entry in run_units(join_chunks, list(chunks.items()), engine,
                                       context=writer.target):
        if isinstance(entry, UnitError):
            lost.add(entry.reason, f"shard {index}, joining its chunks: {entry.detail}")
        else:
            writer.add(entry)


def plan_tasks(chunks: dict[int, list[tuple[str, Sequence[str]]]], size: int, max_pixels: int
               ) -> list[tuple[int, str, Sequence[str], int, int]]:
    """The decode tasks of the chunks no earlier run finished (a killed run's are kept)."""
    return [(u, stem, part, size, max_pixels) for u, parts in chunks.items()
            for stem, part in parts if not Path(stem + ".json").exists()]


def make_shards(chunks: dict[int, list[tuple[str, Sequence[str]]]], tasks: list[tuple],
                source: Source, writer: ShardWriter, engine: Engine) -> None:
    """Decode `tasks` and join every shard of `chunks` whose chunks are all in; a unit that
    failed stops the run (DcganDataError) once the other shards are written."""
    lost, stems = Failures(), {u: [stem for stem, _ in parts] for u, parts in chunks.items()}
    # Joining reads and writes files. On this machine the driver joins each shard as soon as
    # its chunks are in, while the workers decode on; on a Ray cluster the workers join, so
    # that the pixels never pass through the driver's node.
    on_ray = engine.name == "ray"
    broken = decode(tasks, source, engine, lost, None if on_ray else lambda u: writer.add(
        join_chunks(writer.target, (u, stems[u]))))
    join({u: s for u, s in stems.items() if u not in broken and not writer.is_done(u)},
         writer, engine if on_ray else LocalEngine(1), lost)
    if lost.counts:
        raise DcganDataError(f"ingest: {lost.as_dict()['failed_by_reason']} units failed, e.g. "
                             f"{next(iter(lost.examples.values()))[0]}; the other shards are "
                             "written and a re-run redoes the missing ones")
