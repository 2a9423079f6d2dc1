"""Where a stage's units run: the engine's settings (`--engine`, `--ray-address`).

Imports neither torch nor Ray: `dcgan-data VERB --help` reads it."""

from __future__ import annotations

from dataclasses import dataclass

from dcgan_data.core.errors import InputError
from dcgan_data.core.options import StageOptions, setting


@dataclass(frozen=True)
class EngineOptions(StageOptions):
    engine: str = setting("local", "Run the units on local processes or on a Ray cluster (the "
                                   "output directory must then be a path every node can "
                                   "write).", choices=("local", "ray"))
    ray_address: str | None = setting(None, "The Ray cluster to join (`auto`: the one this "
                                            "node belongs to).",
                                      default_text="start Ray on this machine")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ray_address and self.engine != "ray":
            raise InputError("--ray-address needs --engine ray")
