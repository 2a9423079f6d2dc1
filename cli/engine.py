"""`--engine` and `--ray-address`: where a stage's units run (see dcgan_data.engines)."""

from __future__ import annotations

from dcgan_data.engines.options import EngineOptions
from dcgan_data_cli.options import option_from


def engine_options(command):
    """Add --engine and --ray-address to a stage command."""
    command = option_from(EngineOptions, "ray_address", metavar="auto|HOST:PORT")(command)
    return option_from(EngineOptions, "engine")(command)
