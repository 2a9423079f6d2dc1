"""Every verb's options come from its stage's options dataclass: same default, stated once."""

from __future__ import annotations

import dataclasses

import click
import pytest

from dcgan_data_cli.main import cli

# options that are no setting of a stage: where to write, how much to print
NOT_SETTINGS = {"out", "help", "verbose", "version"}


def verbs() -> dict[str, click.Command]:
    ctx = click.Context(cli)
    return {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}


def commands() -> list[tuple[str, click.Command]]:
    """Every verb, and each subcommand of a verb that is a group, as "verb sub"."""
    found = []
    for name, command in verbs().items():
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            found += [(f"{name} {sub}", command.get_command(ctx, sub))
                      for sub in command.list_commands(ctx)]
        else:
            found.append((name, command))
    return found


@pytest.mark.parametrize("verb,command", commands(), ids=[v for v, _ in commands()])
def test_every_option_default_is_its_options_field(verb, command):
    options = [p for p in command.params
               if isinstance(p, click.Option) and p.name not in NOT_SETTINGS]
    assert options, verb
    for option in options:
        source = getattr(option, "options_field", None)
        assert source is not None, f"{verb} {option.opts[0]}: not built from an options field"
        owner, name = source
        field = next(f for f in dataclasses.fields(owner) if f.name == name)
        if option.required:
            continue  # no default to compare: the user must give it
        assert option.default == field.default, (verb, option.opts[0])
