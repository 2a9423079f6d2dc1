"""A folder of image files, read as they are named below it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from dcgan_data.core.images import ImageError
from dcgan_data.ingest.sources.base import Read

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}


class FolderSource:
    """Image files below a folder, named by their path relative to it, in sorted order."""

    kind = "folder"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def items(self) -> list[str]:
        return [p.relative_to(self.path).as_posix() for p in image_files(self.path)]

    def read_many(self, items: Sequence[str]) -> list[Read]:
        out: list[Read] = []
        for item in items:
            try:
                out.append((self.path / item).read_bytes())
            except FileNotFoundError:
                out.append(None)
            except OSError as exc:  # permission denied, an I/O error: there, but unreadable
                out.append(ImageError("unreadable", exc.strerror or str(exc)))
        return out


def image_files(folder: Path) -> list[Path]:
    """Image files (by suffix) anywhere below `folder`, sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                  and p.is_file())
