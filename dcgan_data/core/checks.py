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
POSITIVE = Range(0, low_open=True)

TRAIN = {  # dcgan_data.train.stage.TrainConfig; BatchNorm needs a batch of 2
    "nz": COUNT, "threads": COUNT, "ngf": COUNT, "ndf": COUNT, "batch_size": Range(2, integer=True),
    "lr": POSITIVE, "beta1": Range(0, 1, high_open=True), "steps": COUNT, "epochs": POSITIVE,
    "seed": SEED, "log_every": COUNT, "sample_every": COUNT, "ckpt_every": COUNT,
    "keep_every": Range(0, integer=True), "num_samples": COUNT, "eval_every": COUNT,
    "eval_images": Range(2, integer=True),
}
SAMPLE = {"n": COUNT, "frames": Range(2, integer=True), "seed": SEED,
          "images": Range(2, integer=True)}  # images: fid's
