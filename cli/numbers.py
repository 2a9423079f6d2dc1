"""The click type of a number option: the range its options field states (core.checks.Range),
the one the library checks too (cli/options.py builds every option with it).

A value out of range (NaN and infinities included) is refused while the command line is
parsed, before anything runs, as an InputError: one line naming the option and its range,
exit 2.
"""

from __future__ import annotations

from typing import Any

import click

from dcgan_data.core.checks import Range


def option_name(param: click.Parameter | None) -> str:
    return max(param.opts, key=len) if param is not None and param.opts else "value"


class Checked(click.ParamType):
    """An int or float option that must lie in `allowed`."""

    def __init__(self, allowed: Range):
        self.allowed = allowed
        self.name = "integer" if allowed.integer else "float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        return self.allowed.parse(option_name(param), value)
