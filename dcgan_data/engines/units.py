"""The names stages imported from here before the engines were split (runner, local, ray)."""

from dcgan_data.engines.local import LocalEngine
from dcgan_data.engines.ray import RAY_MISSING, RayEngine
from dcgan_data.engines.runner import (
    RETRIES,
    Engine,
    UnitError,
    bounded_map,
    engine_from,
    make_engine,
    run_units,
)

__all__ = ["RAY_MISSING", "RETRIES", "Engine", "LocalEngine", "RayEngine", "UnitError",
           "bounded_map", "engine_from", "make_engine", "run_units"]
