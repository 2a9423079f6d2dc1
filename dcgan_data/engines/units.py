"""One runner for every stage's units: at most N in flight, results as they finish, a unit
that fails retried and then recorded, on local processes or on a Ray cluster.

A stage cuts its input into independent units (LMDB key ranges, crawl-list line ranges,
hash partitions) and hands them here with a function that turns one unit into a result.
The engine decides where that function runs:

- `local`: a pool of processes on this machine (in this process when `workers` is 1);
- `ray`: tasks on a Ray cluster (`address`: "auto", "HOST:PORT", or None to start Ray here).

Either way the driver gets the same results and writes the same files from them. A unit
whose worker dies is run again (Ray first retries it itself); a unit whose function raises
is run again up to `retries` times, then yielded as a `UnitError` for the stage to record;
a DcganDataError (bad input, which every unit would meet) is raised at once.
`context` is a large read-only value (an image source) shipped once per worker, not once
per unit; the function is then called as fn(context, unit).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

from dcgan_data.core.errors import DcganDataError, InputError

ENGINES = ("local", "ray")
DEFAULT_ENGINE = "local"
RETRIES = 2  # extra attempts for a unit whose worker died or whose function raised
T = TypeVar("T")
R = TypeVar("R")
RAY_MISSING = "--engine ray needs Ray: pip install 'ray>=2.9' (in a clone: pip install -e '.[ray]')"


# ---------------------------------------------------------------------------- failures


@dataclass(frozen=True)
class UnitError:
    """A unit that failed every attempt: `reason` is "error" (its function raised) or
    "worker_lost" (the process running it died each time)."""

    reason: str
    detail: str
    attempts: int


# ---------------------------------------------------------------------------- engines


class Engine:
    """Where units run. `run` yields (unit, result or UnitError) as units finish."""

    name = "engine"
    workers = 1

    def run(self, fn: Callable, units: list, context: Any = None, retries: int = RETRIES
            ) -> Iterator[tuple[Any, Any]]:
        raise NotImplementedError


class LocalEngine(Engine):
    """Processes on this machine; `workers` 1 runs in this process."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)

    def run(self, fn, units, context=None, retries=RETRIES):
        if self.workers <= 1 or len(units) <= 1:
            yield from self._run_here(fn, units, context, retries)
        else:
            yield from self._run_pool(fn, units, context, retries)

    def _run_here(self, fn, units, context, retries):
        _set_context(pickle.dumps(context))
        for unit in units:
            for attempt in range(1, retries + 2):
                try:
                    result = _call(fn, unit)
                    break
                except DcganDataError:  # bad input or options: every unit would fail alike
                    raise
                except Exception as exc:  # recorded, as a worker's would be
                    result = UnitError("error", _describe(exc), attempt)
            yield unit, result

    def _run_pool(self, fn, units, context, retries):
        todo = [(unit, 0) for unit in reversed(units)]  # a stack: the first unit pops first
        while todo:
            workers = min(self.workers, len(todo))
            lost = yield from self._one_pool(fn, todo, context, retries, workers)
            # The pool broke: a worker died (killed, out of memory) holding one of `lost`.
            # Each is run again alone, so that a death is charged to the unit that caused it.
            for unit, attempts in lost:
                while (yield from self._one_pool(fn, [(unit, attempts)], context, retries, 1)):
                    attempts += 1
                    if attempts > retries:
                        yield unit, UnitError("worker_lost", "its worker process died", attempts)
                        break

    def _one_pool(self, fn, todo, context, retries, workers):
        """Run `todo` on one pool until it is empty or the pool breaks; the units in flight
        when it broke."""
        # forkserver: workers start clean, without the driver's open LMDB environments,
        # OpenCV state or threads, which a fork would inherit
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"),
                                   initializer=_start_worker, initargs=(pickle.dumps(context),))
        pending: dict[Future, tuple[Any, int]] = {}
        try:
            while todo or pending:
                while todo and len(pending) < 2 * workers:
                    unit, attempts = todo.pop()
                    pending[pool.submit(_call, fn, unit)] = (unit, attempts)
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    unit, attempts = pending.pop(future)
                    error = future.exception()
                    if isinstance(error, BrokenProcessPool):
                        return (yield from _salvage(pending, [(unit, attempts)]))
                    if isinstance(error, DcganDataError):
                        raise error
                    if error is None:
                        yield unit, future.result()
                    elif attempts < retries:
                        todo.append((unit, attempts + 1))
                    else:
                        yield unit, UnitError("error", _describe(error), attempts + 1)
            return []
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _salvage(pending: dict[Future, tuple[Any, int]], lost: list) -> Iterator:
    """After a pool broke: yield the units that finished anyway, return the others."""
    for future, (unit, attempts) in pending.items():
        if future.done() and not future.cancelled() and future.exception() is None:
            yield unit, future.result()
        else:
            lost.append((unit, attempts))
    return lost


class RayEngine(Engine):
    """Tasks on a Ray cluster: `address` "auto" or "HOST:PORT" joins a running one, None
    starts Ray on this machine (with `workers` CPUs, default all)."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        ray = _import_ray()
        if not ray.is_initialized():
            if address:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            else:  # a Ray of this machine alone has no business on its external address
                # and, like the local engine's processes, runs at the user's priority (Ray
                # lowers its workers' by default, which starves them on a busy machine)
                os.environ.setdefault("RAY_worker_niceness", "0")
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                         _node_ip_address="127.0.0.1")
        self.ray = ray
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def run(self, fn, units, context=None, retries=RETRIES):
        ray = self.ray
        # Ray retries a task whose worker died; the driver re-submits one whose function raised
        task = ray.remote(_ray_call).options(max_retries=retries, retry_exceptions=False)
        shared = [ray.put(context)]  # in a list, so that workers get the reference, not a copy
        todo = [(unit, 0) for unit in reversed(units)]
        pending: dict[Any, tuple[Any, int]] = {}
        try:
            while todo or pending:
                while todo and len(pending) < 2 * self.workers:
                    unit, attempts = todo.pop()
                    pending[task.remote(fn, shared, unit)] = (unit, attempts)
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    unit, attempts = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        if isinstance(getattr(exc, "cause", None), DcganDataError):
                            raise exc.cause from None
                        lost = not isinstance(exc, ray.exceptions.RayTaskError)
                        if attempts < retries:
                            todo.append((unit, attempts + 1))
                            continue
                        result = UnitError("worker_lost" if lost else "error",
                                           _describe(exc), attempts + 1)
                    yield unit, result
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)


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


def make_engine(engine: Engine | str | None = None, workers: int | None = None,
                ray_address: str | None = None) -> Engine:
    """An engine from its name ("local", "ray"); an Engine is returned as it is."""
    if isinstance(engine, Engine):
        return engine
    name = engine or DEFAULT_ENGINE
    if name == "local":
        if ray_address:
            raise InputError("--ray-address needs --engine ray")
        return LocalEngine(workers)
    if name == "ray":
        return RayEngine(ray_address, workers)
    raise InputError(f"unknown engine {name!r} (choose from {', '.join(ENGINES)})")


def run_units(fn: Callable, units: Iterable, engine: Engine | str | None = None,
              context: Any = None, retries: int = RETRIES) -> Iterator[tuple[Any, Any]]:
    """(unit, fn(unit)) -- or fn(context, unit) when a context is given -- as units finish,
    on `engine`; a unit that failed every attempt comes back as a UnitError."""
    yield from make_engine(engine).run(fn, list(units), context, retries)


# ---------------------------------------------------------------------------- in workers

_NO_CONTEXT = object()
_context: Any = _NO_CONTEXT
_ray_contexts: dict[str, Any] = {}


def _set_context(context_pickle: bytes) -> None:
    # Unpickling drops any handle the driver had open (LMDB environments must not be shared).
    global _context
    context = pickle.loads(context_pickle)
    _context = _NO_CONTEXT if context is None else context


def _start_worker(context_pickle: bytes) -> None:
    _set_context(context_pickle)
    # A pool worker whose driver was killed (kill -9, OOM) would wait forever for work.
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (parent.join(), os._exit(1)), daemon=True).start()


def _call(fn: Callable, unit: Any) -> Any:
    return fn(unit) if _context is _NO_CONTEXT else fn(_context, unit)


def _ray_call(fn: Callable, shared: list, unit: Any) -> Any:
    import ray

    key = shared[0].hex()
    if key not in _ray_contexts:  # once per worker process, not once per unit
        _ray_contexts.clear()
        _ray_contexts[key] = ray.get(shared[0])
    context = _ray_contexts[key]
    return fn(unit) if context is None else fn(context, unit)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise DcganDataError(RAY_MISSING) from None
    return ray


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return text if len(text) <= 300 else text[:297] + "..."
