"""Stage options as dataclasses: each field's default, allowed range and help, stated once.

A stage's `options.py` declares its options with `setting(...)`; `StageOptions.__post_init__`
refuses a value outside its range or choices (NaN and infinities included) with an
`InputError` before the stage starts, so Python callers are checked as the command line is.
The CLI builds its options from the same fields (`dcgan_data_cli.options.option_from`):
defaults and help are never restated there.

Imports neither torch nor click: `dcgan-data VERB --help` reads these classes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from dcgan_data.core.checks import Range
from dcgan_data.core.errors import InputError


def setting(default: Any, help: str, allowed: Range | None = None,
            choices: Sequence[str] | None = None, flag: str | None = None,
            default_text: str | None = None) -> Any:
    """A dataclass field that is also a command-line option.

    `allowed`: the numeric range (None: not a number, or unbounded text); `choices`: the
    allowed strings; `flag`: for a bool, the option's negative spelling when both exist
    ("--verify/--no-verify"), or "" for a plain on-switch; `default_text`: how `--help`
    shows a default that is computed (e.g. "one per core")."""
    metadata = {"help": help, "allowed": allowed, "choices": tuple(choices) if choices else None,
                "flag": flag, "default_text": default_text}
    if isinstance(default, (list, dict, set)):
        raise TypeError("a setting's default must be immutable (use a tuple)")
    return dataclasses.field(default=default, metadata=metadata)


def option_name(field_name: str) -> str:
    """The command-line spelling of a field: `max_false_share` -> `--max-false-share`, `n` ->
    `-n`."""
    if len(field_name) == 1:
        return f"-{field_name}"
    return "--" + field_name.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class StageOptions:
    """Base of every stage's options: checks each field against its range and choices."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            allowed, choices = field.metadata.get("allowed"), field.metadata.get("choices")
            if value is None and field.default is None:
                continue  # an optional value left unset: the stage picks it
            if allowed is not None:
                allowed.check(option_name(field.name), value)
            if choices is not None and value not in choices:
                raise InputError(f"{option_name(field.name)} must be one of "
                                 f"{', '.join(choices)}, not {value!r}")

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every field's default, by name."""
        return {f.name: f.default for f in dataclasses.fields(cls)}

    def replace(self, **changes: Any) -> StageOptions:
        """A copy with `changes`, checked again."""
        return dataclasses.replace(self, **changes)
