"""Export a shard directory into the formats other trainers read.

  folder      PNG files in torchvision ImageFolder's layout: DEST/<label>/NNNNNNNN.png, or
              DEST/images/NNNNNNNN.png without labels; DEST/index.csv maps files to keys.
  webdataset  DEST/shard-NNNNN.tar of NNNNNNNN.png + NNNNNNNN.json (source key, label,
              source size), as the `webdataset` library reads them.
  stylegan    DEST/dataset.zip in StyleGAN2-ADA / StyleGAN3's layout: 00000/img00000000.png
              (1000 images a folder) and dataset.json mapping each file to its class index
              (labels null when the shards have none, or not every row has one);
              `train.py --data DEST/dataset.zip`. Parts are staged as zips in DEST/staging/.
  hf          DEST/data/train-NNNNN-of-NNNNN.parquet, a Hugging Face `datasets` dataset with
              an Image column and key / label / source size columns.

Images are PNG (lossless) everywhere, so each format gives back the shards' exact pixels.
Keys go out as keys.txt holds them (`shards.encode_key`: printable text as it is, anything
else, such as an LMDB key's raw bytes, as %XX; `shards.decode_key` gives the key back), so a
binary key fits every format; index.csv's text cells are also made spreadsheet-safe.
Rows are exported in parts of `rows_per_part`; each part is written atomically and recorded
in DEST/.export_state.json, so a killed export resumes at the first unfinished part.
Phases: open (the shards, their rows and labels, the state of an earlier run) -> write (each
part left) -> finish (what needs every part) -> report. The writers are in formats.py.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path
from typing import Any

from dcgan_data.core.errors import InputError
from dcgan_data.core.files import LOCK_FILE, locks_output, progress, read_json, write_json
from dcgan_data.core.shards import ShardSet
from dcgan_data.core.stage import Phases
from dcgan_data.export.formats import STYLEGAN_ZIP, WRITERS
from dcgan_data.export.options import FORMATS, ExportOptions
from dcgan_data.export.report import ExportLabels, ExportReport
from dcgan_data.export.rows import LABELS, Rows

REPORT = "export_report.json"
STATE = ".export_state.json"


def export(src: str | os.PathLike, dest: str | os.PathLike, format: str | None = None,
           options: ExportOptions | None = None, **settings: Any) -> dict[str, Any]:
    """Export the shard directory `src` into `dest` in `format` (one of FORMATS), in parts of
    `rows_per_part` rows, encoding PNGs on `threads` threads (default: one per core): fields
    of `options`, or keyword `settings`. Resumes a cut-short run.

    Returns the report (ExportReport's JSON), also written to dest/export_report.json.
    """
    if format is not None:
        settings["format"] = format
    options = (options or ExportOptions()).replace(**settings)  # refused before DEST is made
    if options.format is None:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}; none was given")
    return _export(src, dest, options).to_json()


@locks_output("dest")
def _export(src: str | os.PathLike, dest: str | os.PathLike, options: ExportOptions
            ) -> ExportReport:
    phases, dest, fmt, per_part = Phases(), Path(dest), options.format, options.rows_per_part
    with phases.timed("open"):
        shards = ShardSet(src)
        rows = Rows(shards, options.threads)
        bounds = [(a, min(len(shards), a + per_part)) for a in range(0, len(shards), per_part)]
        state = _open_state(dest, _params(src, shards, options))
        writer = WRITERS[fmt](dest, rows, len(bounds))
        todo = [p for p in range(len(bounds)) if str(p) not in state["parts"]]
    with phases.timed("write"):
        written = _write_parts(writer, bounds, todo, state, dest, fmt)
    with phases.timed("finish"):
        writer.finish()
    seconds = phases.seconds["write"] + phases.seconds["finish"]
    now = sum(bounds[p][1] - bounds[p][0] for p in todo)
    report = ExportReport(
        format=fmt, source=str(src), out=str(dest), rows=len(shards),
        shape=list(shards.shape), parts=len(bounds), parts_resumed=len(bounds) - len(todo),
        rows_exported_now=now, bytes_written=sum(s["bytes"] for s in state["parts"].values()),
        labels=_labels(rows), seconds=round(seconds, 3), threads=rows.threads,
        images_per_s=round(now / seconds, 1) if now and seconds else None,
        mb_per_s=round(written / seconds / 1e6, 2) if now and seconds else None)
    if fmt == "stylegan":
        report.zip = str(dest / STYLEGAN_ZIP)
        report.stylegan_labels = "class indices" if writer.labelled else (
            None if rows.labels is None else "omitted: some rows have no label")
    report.write(dest / REPORT)
    return report


def _write_parts(writer: Any, bounds: list[tuple[int, int]], todo: list[int],
                 state: dict[str, Any], dest: Path, fmt: str) -> int:
    """Write the parts `todo`, recording each in the state file as it is done; the bytes
    written."""
    written = 0
    done_rows = bounds[-1][1] - sum(bounds[p][1] - bounds[p][0] for p in todo) if bounds else 0
    with progress(total=bounds[-1][1] if bounds else 0, initial=done_rows,
                  desc=f"export {fmt}") as bar:
        for p in todo:
            size = writer.write_part(p, *bounds[p])
            state["parts"][str(p)] = {"rows": bounds[p][1] - bounds[p][0], "bytes": size}
            write_json(dest / STATE, state)
            written += size
            bar.update(bounds[p][1] - bounds[p][0])
    return written


def _params(src: str | os.PathLike, shards: ShardSet, options: ExportOptions
            ) -> dict[str, Any]:
    """What makes the export: a re-run with other params is refused, not resumed."""
    return {"format": options.format, "source": str(Path(src).resolve()),
            "manifest_sha1": hashlib.sha1((shards.path / "manifest.json").read_bytes())
            .hexdigest(), "labels_sha1": _labels_digest(shards),
            "rows_per_part": options.rows_per_part}


def _labels(rows: Rows) -> ExportLabels | None:
    if rows.labels is None:
        return None
    return ExportLabels(classes=len(rows.classes),
                        rows_by_label=dict(Counter(n or "" for n in rows.labels).most_common()),
                        rows_without_label=int((rows.targets < 0).sum()))


def _labels_digest(shards: ShardSet) -> str | None:
    path = shards.path / LABELS
    return hashlib.sha1(path.read_bytes()).hexdigest() if path.exists() else None


def _open_state(dest: Path, params: dict[str, Any]) -> dict[str, Any]:
    path = dest / STATE
    if path.exists():
        state = read_json(path)
        if state.get("params") != params:
            raise InputError(f"{dest} holds an export of other shards or options "
                             f"({state.get('params')}); choose another output or delete it")
        return state
    if any(p.name != LOCK_FILE for p in dest.iterdir()):
        raise InputError(f"{dest}: not empty and not an export in progress; "
                         "choose another output directory")
    state = {"params": params, "parts": {}}
    write_json(path, state)
    return state
