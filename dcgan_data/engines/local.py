"""The local engine: a pool of processes on this machine (in this process for one worker)."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from dcgan_data.core.errors import DcganDataError
from dcgan_data.engines.runner import (
    RETRIES,
    Attempts,
    Engine,
    UnitError,
    call,
    describe,
    set_context,
)


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
        set_context(pickle.dumps(context))
        for unit in units:
            for attempt in range(1, retries + 2):
                try:
                    result = call(fn, unit)
                    break
                except DcganDataError:  # bad input or options: every unit would fail alike
                    raise
                except Exception as exc:  # recorded, as a worker's would be
                    result = UnitError("error", describe(exc), attempt)
            yield unit, result

    def _run_pool(self, fn, units, context, retries):
        attempts = Attempts(units, retries)
        while attempts:
            workers = min(self.workers, len(attempts))
            lost = yield from self._one_pool(fn, attempts, context, workers)
            # The pool broke: a worker died (killed, out of memory) holding one of `lost`.
            # Each is run again alone, so that a death is charged to the unit that caused it.
            for unit, tries in lost:
                alone = Attempts([], retries)
                while (yield from self._one_pool(fn, alone.push(unit, tries), context, 1)):
                    tries += 1
                    if tries > retries:
                        yield unit, UnitError("worker_lost", "its worker process died", tries)
                        break

    def _one_pool(self, fn, attempts: Attempts, context, workers):
        """Run `attempts` on one pool until none is left or the pool breaks; the units in
        flight when it broke."""
        # forkserver: workers start clean, without the driver's open LMDB environments,
        # OpenCV state or threads, which a fork would inherit
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"),
                                   initializer=_start_worker, initargs=(pickle.dumps(context),))
        pending: dict[Future, tuple[Any, int]] = {}
        try:
            while attempts or pending:
                while attempts and len(pending) < 2 * workers:
                    unit, tries = attempts.next()
                    pending[pool.submit(call, fn, unit)] = (unit, tries)
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    unit, tries = pending.pop(future)
                    error = future.exception()
                    if isinstance(error, BrokenProcessPool):
                        return (yield from _salvage(pending, [(unit, tries)]))
                    if isinstance(error, DcganDataError):
                        raise error
                    if error is None:
                        yield unit, future.result()
                    elif (failure := attempts.failed(unit, tries, "error", error)) is not None:
                        yield unit, failure
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


def _start_worker(context_pickle: bytes) -> None:
    set_context(context_pickle)
    # A pool worker whose driver was killed (kill -9, OOM) would wait forever for work.
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (parent.join(), os._exit(1)), daemon=True).start()
