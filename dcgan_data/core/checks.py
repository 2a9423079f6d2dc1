"""The allowed range of every numeric option, stated once, and the one check that applies it.

Each stage's library entry (a function decorated with `checked`, or an options dataclass
calling `check_values` from `__post_init__`) refuses a value outside its table before any
work starts, so Python callers are protected as well as the command line; the CLI builds its
option types from the same tables. NaN and infinities are refused everywhere: no option of
this package means anything at NaN, and an infinite one only hangs or overflows later.

This module imports neither torch nor click: `dcgan-data --help` reads these tables.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from dcgan_data.core.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Range:
    """Finite numbers between `low` and `high` (either may be None: unbounded)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # `low` itself is refused
    high_open: bool = False
    integer: bool = False
    even: bool = False  # (with `integer`) a multiple of 2

    def describe(self) -> str:
        """The range in words: "> 0", "between 1 and 512 (a whole number)"."""
        kind = ("an even whole number" if self.even else "a whole number" if self.integer
                else "")
        above = f"{'>' if self.low_open else '>='} {self.low}"
        below = f"{'<' if self.high_open else '<='} {self.high}"
        if self.low is None and self.high is None:
            return kind or "a finite number"
        if self.high is None:
            bounds = above
        elif self.low is None:
            bounds = below
        elif self.low_open or self.high_open:
            bounds = f"{above} and {below}"
        else:
            bounds = f"between {self.low} and {self.high}"
        return f"{bounds} ({kind})" if kind else bounds

    def holds(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if isinstance(value, numbers.Integral):
            if self.even and value % 2:
                return False
        elif self.integer or not math.isfinite(value):
            return False
        low_ok = self.low is None or (value > self.low if self.low_open else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.high_open
                                        else value <= self.high)
        return low_ok and high_ok

    def check(self, name: str, value: Any) -> Any:
        """`value` if it lies in the range, else an InputError naming the option `name` (as
        `option_name` spells it) and the range."""
        if not self.holds(value):
            shown = value if isinstance(value, numbers.Real) else repr(value)
            raise InputError(f"{name} must be {self.describe()}, not {shown}")
        return value

    def parse(self, name: str, text: str | float) -> float:
        """A number typed by the user (or a default), checked."""
        if isinstance(text, str):
            try:
                number = int(text) if self.integer else float(text)
            except ValueError:
                raise InputError(f"{name} must be {self.describe()}, not {text}") from None
            return self.check(name, number)
        return self.check(name, text)


def option_name(name: str) -> str:
    """A parameter's name as the command line spells the option: `-n`, `--max-bytes`."""
    return f"-{name}" if len(name) == 1 else f"--{name.replace('_', '-')}"


def check_values(values: Mapping[str, Any], ranges: Mapping[str, Range]) -> None:
    """Refuse the first value outside its range; None (the default) and names without a
    range pass."""
    for name, value in values.items():
        if name in ranges and value is not None:
            ranges[name].check(option_name(name), value)


def checked(ranges: Mapping[str, Range]) -> Callable[[F], F]:
    """Decorate a stage entry so that it checks its arguments (and its **options) against
    `ranges` before it runs. Put it above `locks_output`: a refused call creates nothing."""

    def decorate(stage: F) -> F:
        signature = inspect.signature(stage)
        spread = [p.name for p in signature.parameters.values() if p.kind == p.VAR_KEYWORD]

        @functools.wraps(stage)
        def run(*args: Any, **kwargs: Any) -> Any:
            given = dict(signature.bind(*args, **kwargs).arguments)
            for name in spread:
                given.update(given.pop(name, {}))
            check_values(given, ranges)
            return stage(*args, **kwargs)

        return run  # type: ignore[return-value]

    return decorate


# --- the ranges, one table per stage --------------------------------------------------------

SEED = Range(0, 2**32 - 1, integer=True)  # numpy's legacy seeding takes 32 bits
COUNT = Range(1, integer=True)  # workers, processes, rows, images
SIDE = Range(8, integer=True, even=True)  # a square image's side in px
MAX_RADIUS = 16  # beyond this the blocks get so short that the multi-index is brute force
POSITIVE = Range(0, low_open=True)

PACK = {"quality": Range(1, 100, integer=True), "short_side": Range(8, integer=True)}
INGEST = {"size": SIDE, "workers": COUNT, "rows_per_shard": COUNT, "max_pixels": COUNT,
          "max_bytes": COUNT,
          "sample": COUNT}  # sample: inspect's
HASH = {  # hashmodel.hashing.HashConfig: the hash model of dedup, audit and train's figure
    "epochs": POSITIVE, "min_steps": Range(0, integer=True), "max_steps": COUNT,
    "max_train_images": COUNT, "batch_size": Range(2, integer=True), "lr": POSITIVE,
    "weight_decay": Range(0), "dropout": Range(0, 1, high_open=True), "code_noise": Range(0),
    "pixel_noise": Range(0), "shift": Range(0), "zoom": Range(0, 1, high_open=True),
    "gain": Range(0), "contrast": Range(0), "saturation": Range(0), "grayscale": Range(0, 1),
    "level_power": Range(),
}
DEDUP = {
    "size": SIDE, "radius": Range(0, MAX_RADIUS, integer=True),
    "neighbours": Range(0, integer=True), "min_cosine": Range(-1, 1),
    "verify_threshold": Range(), "workers": COUNT, "seed": SEED,
    "max_bucket_share": Range(0, 1, low_open=True),
    "max_false_share": Range(0, 1, low_open=True, high_open=True),
}


def parse_partitions(name: str, value: int | str) -> int | str:
    """dedup's partitions: "auto", or a count (a number, or the text of one)."""
    if value == "auto":
        return value
    number = int(value) if isinstance(value, str) and value.isdecimal() else value
    if not COUNT.holds(number):
        raise InputError(f"{name} must be 'auto' or a whole number >= 1, not {value}")
    return number
FACES = {  # faces(), its FaceOptions and their FetchOptions
    "processes": Range(1, 256, integer=True), "lines_per_shard": COUNT,
    "workers": Range(1, 512, integer=True), "min_face": COUNT, "min_score": Range(),
    "margin": Range(0), "size": Range(8, integer=True), "max_pixels": COUNT,
    "timeout": Range(0.1), "retries": Range(0, 10, integer=True), "backoff": Range(0),
    "max_bytes": COUNT, "max_redirects": Range(0, 30, integer=True), "max_list_bytes": COUNT,
}
AUDIT = {"n": COUNT, "alpha": Range(0, 1, low_open=True, high_open=True), "neighbours": COUNT,
         "seed": SEED, "workers": COUNT}  # --holdout: dcgan_data.audit.stage.parse_holdout
EXPORT = {"rows_per_part": COUNT, "threads": COUNT}
