"""What every export format writes about the rows: keys, labels, source sizes, PNG bytes."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from dcgan_data.core.errors import InputError
from dcgan_data.core.files import from_spreadsheet_text
from dcgan_data.core.shards import ShardSet, encode_key

LABELS = "labels.csv"  # key,label: written by `faces` when the crawl list names people
READ_BATCH = 1024  # rows copied out of the memory maps at a time


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
