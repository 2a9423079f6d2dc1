"""Numeric ranges: `Range`, the one check every numeric option goes through, and the ranges
several stages share.

Each setting's range is stated once, beside its default, in its stage's options dataclass
(`<stage>/options.py`, via `core.options.setting`); the dataclass checks it when built, so
Python callers are protected as well as the command line, whose option types are built from
the same fields. NaN and infinities are refused everywhere: no option of this package means
anything at NaN, and an infinite one only hangs or overflows later.

This module imports neither torch nor click: `dcgan-data --help` reads it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from dcgan_data.core.errors import InputError


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


# --- ranges several stages share -----------------------------------------------------------

SEED = Range(0, 2**32 - 1, integer=True)  # numpy's legacy seeding takes 32 bits
COUNT = Range(1, integer=True)  # workers, processes, rows, images
SIDE = Range(8, integer=True, even=True)  # a square image's side in px
POSITIVE = Range(0, low_open=True)

