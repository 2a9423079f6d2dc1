"""Command-line options built from a stage's options dataclass (dcgan_data.core.options).

`option_from(Options, "radius")` gives the click option `--radius` with the field's
default, help and range; the field is the only place they are stated. Each option built here
remembers its field (`options_field`), so a test can check every verb against its dataclass.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from dcgan_data.core.options import option_name
from dcgan_data_cli.numbers import Checked


def _field(options: type, name: str) -> dataclasses.Field:
    for field in dataclasses.fields(options):
        if field.name == name:
            return field
    raise KeyError(f"{options.__name__} has no field {name!r}")


def _shown_default(field: dataclasses.Field) -> str | None:
    text = field.metadata.get("default_text")
    if text is not None:
        return text
    if field.default is None or field.default is False or field.default == "":
        return None
    return str(field.default)


def option_from(options: type, name: str, *decls: str, **overrides: Any):
    """click.option for field `name` of `options` (extra spellings such as "-n" in `decls`)."""
    field = _field(options, name)
    meta, default = field.metadata, field.default
    spelled = option_name(name)
    # a required option gets no default: click then still enforces it
    kwargs: dict[str, Any] = {} if overrides.get("required") else {"default": default}
    if isinstance(default, bool):
        negative = meta.get("flag")
        decl = f"{spelled}/{negative}" if negative else spelled
        if not negative:
            kwargs["is_flag"] = True
        params = [*decls, decl, name]
    else:
        params = [*decls, spelled, name]
        if meta.get("choices"):
            kwargs["type"] = click.Choice(list(meta["choices"]))
        elif meta.get("allowed") is not None:
            kwargs["type"] = Checked(meta["allowed"])
    helps = [meta["help"]]
    if meta.get("allowed") is not None:
        helps.append(f"[{meta['allowed'].describe()}]")
    shown = _shown_default(field)
    if shown is not None:
        helps.append(f"[default: {shown}]")
    kwargs["help"] = "  ".join(helps)
    kwargs.update(overrides)
    option = click.option(*params, **kwargs)

    def decorate(f):
        f = option(f)
        f.__click_params__[-1].options_field = (options, name)
        return f

    return decorate
