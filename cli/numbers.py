"""Number options built from the ranges in dcgan_data.core.checks, the ones the library checks.

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


def number_option(*decls: str, allowed: Range, help: str = "", **kwargs: Any):
    """click.option for a number in `allowed`; its help ends with the range."""
    shown = f"[{allowed.describe()}]"
    return click.option(*decls, type=Checked(allowed), help=f"{help}  {shown}" if help else shown,
                        **kwargs)
