"""`--engine` and `--ray-address`: where a stage's units run (see dcgan_data.engines.units)."""

from __future__ import annotations

import click

from dcgan_data.engines.units import DEFAULT_ENGINE, ENGINES


def engine_options(command):
    """Add --engine and --ray-address to a stage command."""
    command = click.option(
        "--ray-address", default=None, metavar="auto|HOST:PORT",
        help="The Ray cluster to join (`auto`: the one this node belongs to)  "
             "[default: start Ray on this machine]")(command)
    return click.option(
        "--engine", type=click.Choice(ENGINES), default=DEFAULT_ENGINE, show_default=True,
        help="Run the units on local processes or on a Ray cluster (the output directory "
             "must then be a path every node can write).")(command)
