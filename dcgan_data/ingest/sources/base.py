"""What every source is: a list of item names and batched reads of their bytes.

A source lists its items (string names, in a stable order) and reads their bytes in
batches: None for an item that is gone, an ImageError for one that cannot be read.
Sources pickle without open handles, so worker processes can each read their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from dcgan_data.core.images import ImageError

Read = bytes | ImageError | None  # one item's bytes, or why there are none


class Source(Protocol):
    kind: str
    path: Path

    def items(self) -> list[str]: ...

    def read_many(self, items: Sequence[str]) -> list[Read]: ...


class Lazy:
    """Pickles the arguments it was made with (`pickled`) and nothing built from them."""

    pickled: tuple[str, ...] = ("path",)

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.pickled}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)
