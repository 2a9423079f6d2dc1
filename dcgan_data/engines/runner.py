"""One runner for every stage's units: at most N in flight, results as they finish, a unit
that fails retried and then recorded, on local processes or on a Ray cluster.

A stage cuts its input into independent units (LMDB key ranges, crawl-list line ranges,
hash partitions) and hands them here with a function that turns one unit into a result.
The engine decides where that function runs (`engines.local`, `engines.ray`; `make_engine`
picks one by name). Either way the driver gets the same results and writes the same files
from them. A unit whose worker dies is run again; a unit whose function raises is run again
up to `retries` times, then yielded as a `UnitError` for the stage to record; a
DcganDataError (bad input, which every unit would meet) is raised at once.
`context` is a large read-only value (an image source) shipped once per worker, not once
per unit; the function is then called as fn(context, unit).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from dcgan_data.engines.options import EngineOptions

RETRIES = 2  # extra attempts for a unit whose worker died or whose function raised
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class UnitError:
    """A unit that failed every attempt: `reason` is "error" (its function raised) or
    "worker_lost" (the process running it died each time)."""

    reason: str
    detail: str
    attempts: int


class Engine:
    """Where units run. `run` yields (unit, result or UnitError) as units finish."""

    name = "engine"
    workers = 1

    def run(self, fn: Callable, units: list, context: Any = None, retries: int = RETRIES
            ) -> Iterator[tuple[Any, Any]]:
        raise NotImplementedError


class Attempts:
    """The units of one run still to submit, each with the attempts it has had: the first
    unit goes first, a retried one goes next."""

    def __init__(self, units: Iterable[Any], retries: int) -> None:
        self.todo = [(unit, 0) for unit in reversed(list(units))]  # a stack
        self.retries = retries

    def __len__(self) -> int:
        return len(self.todo)

    def next(self) -> tuple[Any, int]:
        return self.todo.pop()

    def push(self, unit: Any, attempts: int) -> Attempts:
        """Run `unit` next, counting the `attempts` it has had."""
        self.todo.append((unit, attempts))
        return self

    def failed(self, unit: Any, attempts: int, reason: str, exc: BaseException
               ) -> UnitError | None:
        """Queue `unit` again if it has attempts left (None); else its UnitError."""
        if attempts < self.retries:
            self.push(unit, attempts + 1)
            return None
        return UnitError(reason, describe(exc), attempts + 1)


def run_units(fn: Callable, units: Iterable, engine: Engine | str | None = None,
              context: Any = None, retries: int = RETRIES) -> Iterator[tuple[Any, Any]]:
    """(unit, fn(unit)) -- or fn(context, unit) when a context is given -- as units finish,
    on `engine`; a unit that failed every attempt comes back as a UnitError."""
    yield from make_engine(engine).run(fn, list(units), context, retries)


def make_engine(engine: Engine | str | None = None, workers: int | None = None,
                ray_address: str | None = None) -> Engine:
    """An engine from its name ("local", "ray"); an Engine is returned as it is."""
    if isinstance(engine, Engine):
        return engine
    from dcgan_data.engines.options import EngineOptions

    options = EngineOptions(**{k: v for k, v in (("engine", engine),
                                                 ("ray_address", ray_address)) if v})
    return engine_from(options, workers)


def engine_from(options: EngineOptions, workers: int | None = None) -> Engine:
    """The engine the options name, with `workers` processes (None: one per core)."""
    if options.engine == "ray":
        from dcgan_data.engines.ray import RayEngine

        return RayEngine(options.ray_address, workers)
    from dcgan_data.engines.local import LocalEngine

    return LocalEngine(workers)


def bounded_map(pool: Executor, fn: Callable[[T], R], items: Iterable[T], window: int
                ) -> Iterator[tuple[T, R]]:
    """(item, fn(item)) on `pool` as each finishes, with at most `window` submitted and not
    yet consumed, so results never pile up in memory ahead of the consumer."""
    todo, pending = iter(items), {}
    while True:
        while len(pending) < window:
            item = next(todo, None)
            if item is None:
                break
            pending[pool.submit(fn, item)] = item
        if not pending:
            return
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            yield pending.pop(future), future.result()


# ---------------------------------------------------------------------------- in workers

_NO_CONTEXT = object()
_context: Any = _NO_CONTEXT


def set_context(context_pickle: bytes) -> None:
    """Make the stage's context this process's (unpickling drops any handle the driver had
    open: LMDB environments must not be shared)."""
    global _context
    context = pickle.loads(context_pickle)
    _context = _NO_CONTEXT if context is None else context


def call(fn: Callable, unit: Any) -> Any:
    """`fn` on one unit, with this process's context if there is one."""
    return fn(unit) if _context is _NO_CONTEXT else fn(_context, unit)


def describe(exc: BaseException) -> str:
    """An exception in one line of at most 300 characters, for the failure record."""
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return text if len(text) <= 300 else text[:297] + "..."
