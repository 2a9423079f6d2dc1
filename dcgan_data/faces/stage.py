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
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

from dcgan_data.core import status
from dcgan_data.core.errors import DcganDataError, InputError
from dcgan_data.core.files import locks_output, progress, write_csv
from dcgan_data.core.shards import ShardSet, ShardWriter
from dcgan_data.core.stage import Failures, Phases, completed_units
from dcgan_data.engines.runner import Engine, make_engine
from dcgan_data.faces.crawl_list import Unit, mark_repeats, plan_units
from dcgan_data.faces.options import FaceOptions
from dcgan_data.faces.plain_list import plain_list
from dcgan_data.faces.report import FacesParams, ThisRun, faces_report
from dcgan_data.faces.unit import STATUS_COLUMNS, faces_shard
from dcgan_data.ingest.stage import write_contact_sheet

STATUS = "faces_status"  # + status.extension()
SHEET_FACES = 256


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
    phases = Phases()
    if options.fetch.base_dir == Path():  # relative paths are read from beside the list
        options = options.replace(fetch=options.fetch.replace(base_dir=crawl.resolve().parent))
    with phases.timed("plan"):
        listing, units = _plan(crawl, out_dir, options)
    params = FacesParams.of(crawl, options)
    writer = ShardWriter(out_dir, (options.size, options.size, 3), params.to_json())
    todo = [u for u in units if not _unit_done(writer, u)]
    engine = make_engine(engine, options.processes)
    with phases.timed("units"):
        processed = _run(listing, writer, units, todo, options, engine)
    writer.finish(len(units), info={"stage": "faces", "crawl": str(crawl)})
    notes = [writer.entries[u.index]["notes"] for u in units]
    with phases.timed("tables"):
        _write_tables(out_dir, notes)
        status_table = status.join_parts(out_dir, [u.index for u in units], out_dir / STATUS,
                                         STATUS_COLUMNS).name
        sheet = _write_sheet(out_dir)
    run = ThisRun(units_run=len(todo), entries=processed["entries"],
                  fetched=processed["fetched"], wall_seconds=phases.seconds["units"],
                  engine=engine.name)
    report = faces_report(notes, params, options, run, status_table, sheet)
    report.write(out_dir / "faces_report.json")
    return report.to_json()


def _plan(crawl: Path, out_dir: Path, options: FaceOptions) -> tuple[Path, list[Unit]]:
    """The list as plain text (a compressed list's decompressed copy, a Parquet list's copy
    as JSON lines) and its units, each knowing its lines that repeat an earlier image."""
    columns = options.url_col, options.label_col
    listing = plain_list(crawl, out_dir, *columns, options.max_list_bytes)
    units = mark_repeats(listing, plan_units(listing, options.lines_per_shard, *columns),
                         *columns)
    if not units:
        raise InputError(f"{crawl}: no entries (every line is blank or a comment)")
    return listing, units


def _run(listing: Path, writer: ShardWriter, units: list[Unit], todo: list[Unit],
         options: FaceOptions, engine: Engine) -> Counter[str]:
    """Run the units not done yet; each worker writes its unit's shard. Returns the entries
    and images fetched this run."""
    done_before = sum(u.lines for u in units) - sum(u.lines for u in todo)
    bar = progress(total=sum(u.lines for u in units), initial=done_before, unit="line",
                   desc="faces")
    processed: Counter[str] = Counter()
    lost = Failures()
    run = partial(faces_shard, listing, writer.target, options=options)
    try:
        for unit, entry in completed_units(run, todo, engine, lost, _unit_lines):
            writer.add(entry)
            processed["entries"] += entry["notes"]["entries"]
            processed["fetched"] += entry["notes"]["fetched"]
            bar.update(unit.lines)
    finally:
        bar.close()
    if lost.counts:  # no shard for these: the manifest waits for a re-run
        raise DcganDataError(f"faces: {lost.as_dict()['failed_by_reason']} units failed, e.g. "
                             f"{next(iter(lost.examples.values()))[0]}; the other shards are "
                             "written and a re-run redoes the missing ones")
    return processed


def _unit_lines(unit: Unit) -> str:
    return f"shard {unit.index}, lines {unit.first_line}..{unit.first_line + unit.lines - 1}"


def _unit_done(writer: ShardWriter, unit: Unit) -> bool:
    # A unit whose lines changed since it was written (an edited list) is done again.
    entry = writer.entries.get(unit.index)
    return (entry is not None and entry["notes"].get("lines_sha1") == unit.digest
            and status.find(status.part_stem(writer.out_dir, unit.index)) is not None)


def _write_tables(out_dir: Path, notes: list[dict]) -> None:
    write_csv(out_dir / "faces.csv", ["source", "x", "y", "w", "h", "score", "kept"],
              (row for n in notes for row in n["detections"]), spreadsheet_safe=True)
    labels = [row for n in notes for row in n["labels"]]
    if labels:
        write_csv(out_dir / "labels.csv", ["key", "label"], labels, spreadsheet_safe=True)


def _write_sheet(out_dir: Path) -> str | None:
    written = write_contact_sheet(ShardSet(out_dir), out_dir / "faces.png", SHEET_FACES)
    return "faces.png" if written else None
