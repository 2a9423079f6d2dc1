"""The skeleton every stage runs on: timed phases, the failure record, and the unit loop.

A stage's entry function (`<stage>/stage.py`) holds its output directory with
`core.files.locks_output`, runs named phases under `Phases.timed`, sends its units through
`completed_units` (failed units recorded in a `Failures`, the rest yielded), and writes its
typed report (`core.report.StageReport.write`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from dcgan_data.engines.runner import Engine, UnitError, run_units

U = TypeVar("U")
EXAMPLES_PER_REASON = 5


class Failures:
    """The failure record of every stage: exact counts by reason, the first few examples of
    each. `as_dict()` gives {"failed", "failed_by_reason", "failed_examples"}."""

    def __init__(self, examples: int = EXAMPLES_PER_REASON) -> None:
        self.limit = examples
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def add(self, reason: str, example: str, count: int = 1) -> None:
        self.counts[reason] += count
        kept = self.examples.setdefault(reason, [])
        if len(kept) < self.limit:
            kept.append(example)

    def merge(self, record: dict[str, Any]) -> None:
        """Add another record (from `as_dict`, e.g. one unit's) to this one."""
        for reason, count in record["failed_by_reason"].items():
            self.counts[reason] += count
            kept = self.examples.setdefault(reason, [])
            kept += record["failed_examples"].get(reason, [])[: max(0, self.limit - len(kept))]

    def as_dict(self) -> dict[str, Any]:
        ranked = [reason for reason, _ in self.counts.most_common()]
        return {
            "failed": sum(self.counts.values()),
            "failed_by_reason": {r: self.counts[r] for r in ranked},
            "failed_examples": {r: self.examples.get(r, []) for r in ranked},
        }


class Phases:
    """Seconds spent in each named phase of a run, in the order the phases ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.started = time.perf_counter()

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        clock = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - clock

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.started

    def rounded(self, digits: int = 2) -> dict[str, float]:
        return {name: round(s, digits) for name, s in self.seconds.items()}


def completed_units(fn: Callable, units: list[U], engine: Engine, lost: Failures,
                    where: Callable[[U], str], context: Any = None
                    ) -> Iterator[tuple[U, Any]]:
    """Run `units` on `engine`, yielding (unit, result) as each finishes; a unit that failed
    every attempt is recorded in `lost`, named by `where(unit)`, and not yielded (its output
    is missing, so a re-run redoes it)."""
    for unit, result in run_units(fn, units, engine, context=context):
        if isinstance(result, UnitError):
            lost.add(result.reason, f"{where(unit)}: {result.detail}")
            continue
        yield unit, result
