"""One writer per export format. Each writes one part (rows start..stop) atomically and
returns the bytes it wrote; `finish` writes what needs every part (an index, a zip)."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

from dcgan_data.core.errors import require
from dcgan_data.core.files import atomic_path, atomic_write_bytes, write_csv
from dcgan_data.export.rows import Rows

STYLEGAN_ZIP = "dataset.zip"
NAME_BYTES = 200  # a label's folder name at most (file systems allow 255 bytes)


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
