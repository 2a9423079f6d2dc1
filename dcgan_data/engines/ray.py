"""The Ray engine: units as tasks on a Ray cluster."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from dcgan_data.core.errors import DcganDataError
from dcgan_data.engines.runner import RETRIES, Attempts, Engine

RAY_MISSING = "--engine ray needs Ray: pip install 'ray>=2.9' (in a clone: pip install -e '.[ray]')"


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
        attempts = Attempts(units, retries)
        pending: dict[Any, tuple[Any, int]] = {}
        try:
            while attempts or pending:
                while attempts and len(pending) < 2 * self.workers:
                    unit, tries = attempts.next()
                    pending[task.remote(fn, shared, unit)] = (unit, tries)
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    unit, tries = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        if isinstance(getattr(exc, "cause", None), DcganDataError):
                            raise exc.cause from None
                        lost = not isinstance(exc, ray.exceptions.RayTaskError)
                        result = attempts.failed(unit, tries, "worker_lost" if lost else "error",
                                                 exc)
                        if result is None:
                            continue
                    yield unit, result
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)


_ray_contexts: dict[str, Any] = {}


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
