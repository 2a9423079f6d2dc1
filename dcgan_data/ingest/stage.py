"""Ingest: any image source -> fixed-size shards, resumably, on several processes.

The source's items are split into units of `rows_per_shard` items; unit i becomes shard i,
made from chunks decoded on every worker at once and joined in order (chunks.py).
Phases: open (the source and its units) -> plan (the shard writer, the chunks left to
decode) -> decode (and join) -> finish (the manifest, written last) -> report (labels.csv,
the status table, the report, a contact sheet). A killed run keeps its finished shards and
chunks and redoes only the rest; a re-run with other options discards the chunks.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dcgan_data.core import status
from dcgan_data.core.errors import InputError
from dcgan_data.core.files import locks_output, write_csv
from dcgan_data.core.shards import ShardSet, ShardWriter, rows_per_shard_of
from dcgan_data.core.stage import Phases
from dcgan_data.engines.runner import Engine, make_engine
from dcgan_data.ingest.chunks import chunk_folder, make_shards, plan_chunks, plan_tasks
from dcgan_data.ingest.inspect import write_contact_sheet
from dcgan_data.ingest.options import IngestOptions
from dcgan_data.ingest.report import STATUS_COLUMNS, IngestReport, shard_counts, status_rows
from dcgan_data.ingest.sources import Source, open_source

REPORT = "ingest_report.json"
STATUS = "ingest_status"  # + status.extension(): one row per source key
SHEET = "contact_sheet.png"
LABELS = "labels.csv"  # key,label (export.LABELS): the class folders of an ImageFolder layout


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
    the report (IngestReport's JSON), also written to out/ingest_report.json, with a
    contact sheet.
    """
    options = (options or IngestOptions()).replace(**settings)  # refused before OUT is made
    _check_not_inside(Path(src), Path(out))
    return _ingest(src, out, options, engine).to_json()


@locks_output("out")
def _ingest(src: str | os.PathLike, out: str | os.PathLike, options: IngestOptions,
            engine: Engine | str | None) -> IngestReport:
    phases = Phases()
    with phases.timed("open"):
        engine = make_engine(engine, options.workers)
        source = open_source(src, options.local_root, options.max_bytes)
        items = source.items()
        if not items:
            raise InputError(f"{src}: no images found")
        rows = options.rows_per_shard or rows_per_shard_of((options.size, options.size, 3))
        units = [items[i : i + rows] for i in range(0, len(items), rows)]
    with phases.timed("plan"):
        writer = _shard_writer(out, source, items, rows, options)
        resumed = sum(writer.is_done(i) for i in range(len(units)))
        folder = chunk_folder(writer)
        chunks = plan_chunks(units, writer, folder)
        tasks = plan_tasks(chunks, options.size, options.max_pixels)
    with phases.timed("decode"):
        make_shards(chunks, tasks, source, writer, engine)
    with phases.timed("finish"):
        shutil.rmtree(folder)
        writer.finish(len(units), {"stage": "ingest", "source": str(src)})
    seconds, decoded = phases.elapsed(), sum(len(t[2]) for t in tasks)
    with phases.timed("report"):
        report = shard_counts(writer.notes(), IngestReport(
            source=str(source.path), source_kind=source.kind, out=str(out), size=options.size,
            shards=len(units), shards_resumed=resumed, seconds=round(seconds, 3),
            engine=engine.name, workers=engine.workers,
            chunks_resumed=sum(map(len, chunks.values())) - len(tasks),
            images_per_s=round(decoded / seconds, 1) if seconds > 0 else None))
        _write_outputs(report, source, units, writer, Path(out))
    return report


def _shard_writer(out: str | os.PathLike, source: Source, items: list[str], rows: int,
                  options: IngestOptions) -> ShardWriter:
    """The writer of the shards, its params naming what makes them (a re-run with other
    params starts over)."""
    digest = hashlib.sha1("\n".join(items).encode("utf-8", "backslashreplace")).hexdigest()
    size = options.size
    return ShardWriter(out, (size, size, 3), {
        "stage": "ingest", "size": size, "rows_per_shard": rows,
        "max_pixels": options.max_pixels, "source_items": len(items), "source_digest": digest,
        # what a Hugging Face dataset's path cells may read
        **({"local_root": str(options.local_root or ""), "max_bytes": options.max_bytes}
           if source.kind == "hf" else {}),
    })


def _write_outputs(report: IngestReport, source: Source, units: list[Sequence[str]],
                   writer: ShardWriter, out: Path) -> None:
    """labels.csv, the status table, the report and the contact sheet."""
    shards = ShardSet(out)
    report.label_classes = write_folder_labels(source, shards)
    report.status_table = status.write_table(
        out / STATUS, STATUS_COLUMNS, status_rows(units, shards, writer.notes())).name
    report.write(out / REPORT)
    write_contact_sheet(shards, out / SHEET)


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


def _check_not_inside(src: Path, out: Path) -> None:
    # a re-run would read the first run's outputs (its contact sheet, say) as images
    if out.resolve() == src.resolve() or out.resolve().is_relative_to(src.resolve()):
        raise InputError(f"-o {out} is inside the source {src}; write the shards elsewhere")
