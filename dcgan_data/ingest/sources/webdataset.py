"""webdataset's .tar shards: every image member of one .tar or of a folder of them."""

from __future__ import annotations

import os
import tarfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from dcgan_data.core.errors import InputError
from dcgan_data.core.images import ImageError
from dcgan_data.ingest.sources.base import Lazy, Read
from dcgan_data.ingest.sources.folder import IMAGE_SUFFIXES


class WebDatasetSource(Lazy):
    """Every image member (by suffix) of one .tar or of the .tar files in a folder, in file
    then member order. Items are member names, `tarname/member` with several tars; the n-th
    member of a name already seen is `name#n` (n >= 2). A hard link reads the member it
    names; a symlink or a device is an item that fails with its reason."""

    kind = "webdataset"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.tars = [self.path] if self.path.is_file() else sorted(self.path.glob("*.tar"))
        if not self.tars:
            raise InputError(f"{self.path}: no .tar shards here")
        self._index: dict[str, tuple[Path, int, int] | ImageError] | None = None

    def _members(self) -> dict[str, tuple[Path, int, int] | ImageError]:
        if self._index is None:
            index: dict[str, tuple[Path, int, int] | ImageError] = {}
            seen: Counter[str] = Counter()
            for tar in self.tars:
                prefix = f"{tar.name}/" if len(self.tars) > 1 else ""
                try:
                    for name, where in _tar_images(tar):
                        seen[prefix + name] += 1
                        n = seen[prefix + name]
                        index[prefix + name + (f"#{n}" if n > 1 else "")] = where
                except (OSError, tarfile.TarError) as exc:
                    raise InputError(f"{tar}: unreadable tar ({exc})") from None
            self._index = index
        return self._index

    def items(self) -> list[str]:
        return list(self._members())

    def read_many(self, items: Sequence[str]) -> list[Read]:
        members, out, files = self._members(), [], {}
        try:
            for item in items:
                where = members.get(item)
                if not isinstance(where, tuple):
                    out.append(where)
                    continue
                tar, offset, size = where
                if tar not in files:
                    files[tar] = open(tar, "rb")
                files[tar].seek(offset)
                data = files[tar].read(size)
                out.append(data if len(data) == size else None)  # a truncated tar
        finally:
            for f in files.values():
                f.close()
        return out


def _tar_images(tar: Path) -> Iterator[tuple[str, tuple[Path, int, int] | ImageError]]:
    """Each image member (by suffix) of a tar, in order, with where its bytes lie (tar, data
    offset, size: from the headers alone, tarfile seeks past the data) or why none are read."""
    files: dict[str, tuple[Path, int, int]] = {}  # name -> its latest file: hard links' targets
    with tarfile.open(tar, "r:") as archive:
        for m in archive:
            where: tuple[Path, int, int] | ImageError
            if m.isfile():
                where = files[m.name] = (tar, m.offset_data, m.size)
            elif m.islnk():
                where = files.get(m.linkname) or ImageError(
                    "link_target_missing", f"hard link to {m.linkname!r}, no file of that name "
                    "before it")
                if isinstance(where, tuple):
                    files[m.name] = where
            elif m.issym():
                where = ImageError("symlink", f"links to {m.linkname!r}; links are not followed")
            else:
                where = ImageError("not_a_file", f"a tar member of type {m.type!r}")
            if not m.isdir() and Path(m.name).suffix.lower() in IMAGE_SUFFIXES:
                yield m.name, where
