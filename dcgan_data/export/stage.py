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
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from dcgan_data.core.errors import InputError, require
from dcgan_data.core.files import (
    LOCK_FILE,
    atomic_path,
    atomic_write_bytes,
    check_output,
    from_spreadsheet_text,
    locks_output,
    progress,
    read_json,
    write_csv,
    write_json,
)
from dcgan_data.core.shards import ShardSet, encode_key
from dcgan_data.export.options import FORMATS, ExportOptions, ExportWeightsOptions

LABELS = "labels.csv"  # key,label: written by `faces` when the crawl list names people
REPORT = "export_report.json"
STATE = ".export_state.json"
STYLEGAN_ZIP = "dataset.zip"
READ_BATCH = 1024  # rows copied out of the memory maps at a time
NAME_BYTES = 200  # a label's folder name at most (file systems allow 255 bytes)


def row_labels(shards: ShardSet) -> list[str | None] | None:
    """Each row's label from the shard directory's labels.csv (None where a row has none),
    or None when there is no labels.csv. Its cells are read as `faces` writes them (one
    leading "'" of a spreadsheet-safe cell removed); a key given two labels is refused."""
    path = shards.path / LABELS
    if not path.exists():
        return None
    table: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            if not {"key", "label"} <= set(reader.fieldnames or []):
                raise InputError(f"{path}: needs a header line with columns key and label "
                                 f"(found {reader.fieldnames})")
            for row in reader:
                key, label = (from_spreadsheet_text(row[c] or "") for c in ("key", "label"))
                if table.setdefault(key, label) != label:
                    raise InputError(f"{path}: line {reader.line_num}: key {key!r} is labelled "
                                     f"{label!r} here and {table[key]!r} before; give each "
                                     "key one label")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise InputError(f"{path}: not a CSV table ({exc})") from None
    return [table.get(key) for key in shards.keys()]


class Rows:
    """What every format writes about the rows: key, label, class index, source size, and
    the rows themselves as PNG bytes."""

    def __init__(self, shards: ShardSet, threads: int | None = None):
        self.shards = shards
        self.threads = threads or os.cpu_count() or 1
        self.keys = shards.keys()
        self.hw = shards.source_hw()
        self.labels = row_labels(shards)
        names = sorted({n for n in self.labels or [] if n is not None})
        self.classes = names
        index = {name: i for i, name in enumerate(names)}
        self.targets = (None if self.labels is None else
                        np.array([index.get(n, -1) for n in self.labels], np.int64))

    def meta(self, i: int) -> dict[str, Any]:
        return {
            "index": i,
            "key": encode_key(self.keys[i]),
            "label": None if self.labels is None else self.labels[i],
            "class": None if self.targets is None else int(self.targets[i]),
            "source_height": int(self.hw[i][0]),
            "source_width": int(self.hw[i][1]),
        }

    def pngs(self, start: int, stop: int) -> Iterator[tuple[int, bytes]]:
        """(row, PNG bytes) for rows start..stop-1, in order, encoded on `threads` threads
        (OpenCV releases the GIL while it encodes)."""
        from dcgan_data.core.images import encode_png  # OpenCV: not loaded for the CLI's --help

        with ThreadPoolExecutor(self.threads) as pool:
            for a in range(start, stop, READ_BATCH):
                b = min(stop, a + READ_BATCH)
                encoded = pool.map(encode_png, self.shards.load(np.arange(a, b)))
                yield from zip(range(a, b), encoded, strict=True)


# ---------------------------------------------------------------------------- formats
# Each writer writes one part (rows start..stop) atomically and returns the bytes it wrote;
# `finish` writes what needs every part (an index, a zip).


class FolderWriter:
    def __init__(self, dest: Path, rows: Rows, parts: int):
        self.dest, self.rows = dest, rows
        self.folders: dict[str | None, str] = {}
        if rows.labels is None:
            self.folders[None] = "images"
        else:
            used: set[str] = set()
            for name in rows.classes + [None]:
                folder = _unique(_safe_name(name) if name is not None else "unlabelled", used)
                self.folders[name] = folder

    def file(self, i: int) -> str:
        label = None if self.rows.labels is None else self.rows.labels[i]
        return f"{self.folders[label]}/{i:08d}.png"

    def write_part(self, part: int, start: int, stop: int) -> int:
        written = 0
        for i, data in self.rows.pngs(start, stop):
            atomic_write_bytes(self.dest / self.file(i), data)
            written += len(data)
        return written

    def finish(self) -> None:
        rows = ([self.file(m["index"]), m["key"], m["label"] or "", m["source_height"],
                 m["source_width"]] for m in map(self.rows.meta, range(len(self.rows.keys))))
        write_csv(self.dest / "index.csv", ["file", "key", "label", "source_height",
                                            "source_width"], rows, spreadsheet_safe=True)


class WebDatasetWriter:
    def __init__(self, dest: Path, rows: Rows, parts: int):
        self.wds = require("webdataset", "--format webdataset")
        self.dest, self.rows = dest, rows

    def write_part(self, part: int, start: int, stop: int) -> int:
        with atomic_path(self.dest / f"shard-{part:05d}.tar") as tmp:
            with open(tmp, "wb") as f, self.wds.TarWriter(f) as tar:
                for i, data in self.rows.pngs(start, stop):
                    tar.write({"__key__": f"{i:08d}", "png": data,
                               "json": json.dumps(self.rows.meta(i)).encode("utf-8")})
            return tmp.stat().st_size

    def finish(self) -> None:
        pass


class StyleGanWriter:
    """Each part's PNGs go into their own zip in DEST/staging/; once all are there they are
    copied into DEST/dataset.zip (stored, uncompressed, as dataset_tool.py writes it)."""

    def __init__(self, dest: Path, rows: Rows, parts: int):
        self.dest, self.rows, self.parts = dest, rows, parts
        self.staging = dest / "staging"
        # StyleGAN reads labels for every image or for none; int labels are class indices
        self.labelled = rows.targets is not None and bool((rows.targets >= 0).all())

    @staticmethod
    def file(i: int) -> str:
        return f"{i // 1000:05d}/img{i:08d}.png"

    def part_zip(self, part: int) -> Path:
        return self.staging / f"part-{part:05d}.zip"

    def write_part(self, part: int, start: int, stop: int) -> int:
        with atomic_path(self.part_zip(part)) as tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
                for i, data in self.rows.pngs(start, stop):
                    z.writestr(self.file(i), data)
            return tmp.stat().st_size

    def finish(self) -> None:
        # The zip is renamed into place whole, so once it exists only the cleanup may be
        # left to do, however far an earlier run's cleanup got.
        if (self.dest / STYLEGAN_ZIP).exists():
            shutil.rmtree(self.staging, ignore_errors=True)
            return
        n = len(self.rows.keys)
        labels = ([[self.file(i), int(self.rows.targets[i])] for i in range(n)]
                  if self.labelled else None)
        with atomic_path(self.dest / STYLEGAN_ZIP) as tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
                for part in range(self.parts):
                    with zipfile.ZipFile(self.part_zip(part)) as staged:
                        for name in staged.namelist():
                            z.writestr(name, staged.read(name))
                z.writestr("dataset.json", json.dumps({"labels": labels}))
        shutil.rmtree(self.staging, ignore_errors=True)


class HfWriter:
    def __init__(self, dest: Path, rows: Rows, parts: int):
        self.datasets = require("datasets", "--format hf")
        self.parquet = require("pyarrow.parquet", "--format hf")
        self.dest, self.rows, self.parts = dest, rows, parts
        d = self.datasets
        columns = {"image": d.Image(), "key": d.Value("string")}
        if rows.targets is not None:
            columns["label"] = d.ClassLabel(names=rows.classes)
        columns.update(source_height=d.Value("int32"), source_width=d.Value("int32"),
                       index=d.Value("int64"))
        self.features = d.Features(columns)

    def write_part(self, part: int, start: int, stop: int) -> int:
        table: dict[str, list] = {name: [] for name in self.features}
        for i, data in self.rows.pngs(start, stop):
            meta = self.rows.meta(i)
            table["image"].append({"bytes": data, "path": f"{i:08d}.png"})
            for name in self.features:
                if name != "image":
                    table[name].append(meta["class" if name == "label" else name])
        # the Arrow table carries the features (Image, ClassLabel) in its schema metadata,
        # which load_dataset reads back from the parquet file
        data = self.datasets.Dataset.from_dict(table, features=self.features).data.table
        name = f"data/train-{part:05d}-of-{self.parts:05d}.parquet"
        with atomic_path(self.dest / name) as tmp:
            self.parquet.write_table(data, tmp)
            return tmp.stat().st_size

    def finish(self) -> None:
        pass


WRITERS = {"folder": FolderWriter, "webdataset": WebDatasetWriter,
           "stylegan": StyleGanWriter, "hf": HfWriter}


def _safe_name(label: str) -> str:
    """A label as a folder name: no path separators or controls, at most NAME_BYTES bytes of
    UTF-8 (cut on a character boundary)."""
    name = re.sub(r"[/\\\x00-\x1f]", "_", label).strip().lstrip(".")
    name = name.encode("utf-8")[:NAME_BYTES].decode("utf-8", "ignore")
    return name or "_"


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{name}~{n}"
    used.add(candidate)
    return candidate


# ---------------------------------------------------------------------------- the stage


def export(src: str | os.PathLike, dest: str | os.PathLike, format: str | None = None,
           options: ExportOptions | None = None, **settings: Any) -> dict[str, Any]:
    """Export the shard directory `src` into `dest` in `format` (one of FORMATS), in parts of
    `rows_per_part` rows, encoding PNGs on `threads` threads (default: one per core): fields
    of `options`, or keyword `settings`. Resumes a cut-short run.

    Returns the report, also written to dest/export_report.json.
    """
    if format is not None:
        settings["format"] = format
    options = (options or ExportOptions()).replace(**settings)  # refused before DEST is made
    if options.format is None:
        raise InputError(f"export: choose a format ({', '.join(FORMATS)})")
    return _export(src, dest, options)


@locks_output("dest")
def _export(src: str | os.PathLike, dest: str | os.PathLike, options: ExportOptions
            ) -> dict[str, Any]:
    fmt, rows_per_part, threads = options.format, options.rows_per_part, options.threads
    shards = ShardSet(src)
    dest = Path(dest)
    rows = Rows(shards, threads)
    bounds = [(a, min(len(shards), a + rows_per_part))
              for a in range(0, len(shards), rows_per_part)]
    params = {"format": fmt, "source": str(Path(src).resolve()),
              "manifest_sha1": hashlib.sha1((shards.path / "manifest.json").read_bytes())
              .hexdigest(), "labels_sha1": _labels_digest(shards),
              "rows_per_part": rows_per_part}
    state = _open_state(dest, params)
    writer = WRITERS[fmt](dest, rows, len(bounds))
    todo = [p for p in range(len(bounds)) if str(p) not in state["parts"]]

    start = time.perf_counter()
    written = 0
    done_rows = len(shards) - sum(bounds[p][1] - bounds[p][0] for p in todo)
    with progress(total=len(shards), initial=done_rows, desc=f"export {fmt}") as bar:
        for p in todo:
            size = writer.write_part(p, *bounds[p])
            state["parts"][str(p)] = {"rows": bounds[p][1] - bounds[p][0], "bytes": size}
            write_json(dest / STATE, state)
            written += size
            bar.update(bounds[p][1] - bounds[p][0])
    writer.finish()
    seconds = time.perf_counter() - start

    exported_now = sum(bounds[p][1] - bounds[p][0] for p in todo)
    report = {
        "stage": "export",
        "format": fmt,
        "source": str(src),
        "out": str(dest),
        "rows": len(shards),
        "shape": list(shards.shape),
        "parts": len(bounds),
        "parts_resumed": len(bounds) - len(todo),
        "rows_exported_now": exported_now,
        "bytes_written": sum(s["bytes"] for s in state["parts"].values()),
        "labels": None if rows.labels is None else {
            "classes": len(rows.classes),
            "rows_by_label": dict(Counter(n or "" for n in rows.labels).most_common()),
            "rows_without_label": int((rows.targets < 0).sum()),
        },
        "seconds": round(seconds, 3),
        "threads": rows.threads,
        "images_per_s": round(exported_now / seconds, 1) if exported_now and seconds else None,
        "mb_per_s": round(written / seconds / 1e6, 2) if exported_now and seconds else None,
    }
    if fmt == "stylegan":
        report["zip"] = str(dest / STYLEGAN_ZIP)
        report["stylegan_labels"] = "class indices" if writer.labelled else (
            None if rows.labels is None else "omitted: some rows have no label")
    write_json(dest / REPORT, report)
    return report


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


# ---------------------------------------------------------------------------- weights


def export_weights(run: str | os.PathLike, out: str | os.PathLike,
                   options: ExportWeightsOptions | None = None, **settings: Any
                   ) -> dict[str, Any]:
    """Write a run's G and D as pytorch/examples' DCGAN reads them: out/netG.pth and
    out/netD.pth, state dicts of an `nn.Sequential` named `main`.

    Our layers are the examples' layers in the same order (D's final Sigmoid has no weights,
    so our logit D becomes their probability D unchanged); only the attribute name differs.
    At --size 64 their `main.py --netG netG.pth --netD netD.pth --ngf N --ndf N` loads them.
    """
    options = (options or ExportWeightsOptions()).replace(**settings)
    import torch

    from dcgan_data.train.checkpoint import load_networks
    from dcgan_data.train.sampling import checkpoint_path

    out = Path(out)
    check_output(out, directory=True, option="-o")
    path = checkpoint_path(run, options.checkpoint)
    nets, ckpt = load_networks(path, ("G", "D"))  # refused here, before anything is written
    files = {}
    for net, model in nets.items():
        state = {("main." + k.removeprefix("net.")): v for k, v in model.state_dict().items()}
        target = out / f"net{net}.pth"
        with atomic_path(target) as tmp:
            torch.save(state, tmp)
        files[f"net{net}"] = str(target)
    cfg = ckpt["config"]
    info = {"checkpoint": str(path), "step": ckpt["step"], **files,
            **{k: cfg[k] for k in ("size", "nz", "ngf", "ndf")},
            "examples_compatible": cfg["size"] == 64}
    write_json(out / "weights.json", info)
    return info
