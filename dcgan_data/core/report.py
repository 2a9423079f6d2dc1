"""Typed stage reports: a dataclass per stage whose `to_json()` writes the report's keys.

A stage fills its report's attributes and writes it with `write`; the report page reads it
back with `read` and shows attributes only, so a value a stage stops writing fails loudly in
the tests instead of showing as "-". Keys are today's: old reports and `pipelines/check.py`
keep working. A report read from an older version may lack newer keys: `read` leaves those
at their defaults unless `strict`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from dcgan_data.core.errors import InputError
from dcgan_data.core.files import write_json

R = TypeVar("R", bound="StageReport")


@dataclasses.dataclass
class StageReport:
    """Base of every stage's report. Nested reports are StageReport fields too."""

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready values, in field order."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls: type[R], data: dict[str, Any], strict: bool = False) -> R:
        """The report from its JSON; with `strict`, every field must be present."""
        hints = typing.get_type_hints(cls)
        values = {}
        for field in dataclasses.fields(cls):
            if field.name not in data:
                if strict or _required(field):
                    raise InputError(f"{cls.__name__}: the report has no {field.name!r}")
                continue
            values[field.name] = _typed(hints[field.name], data[field.name], strict)
        return cls(**values)

    def write(self, path: str | os.PathLike) -> Path:
        """Write the report as JSON, atomically."""
        write_json(path, self.to_json())
        return Path(path)

    @classmethod
    def read(cls: type[R], path: str | os.PathLike, strict: bool = False) -> R:
        return cls.from_json(json.loads(Path(path).read_text()), strict=strict)


def _required(field: dataclasses.Field) -> bool:
    return (field.default is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING)


def _plain(value: Any) -> Any:
    if isinstance(value, StageReport):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _report_class(hint: Any) -> type[StageReport] | None:
    """The StageReport class in a hint such as `Grouping` or `Grouping | None`."""
    if isinstance(hint, type) and issubclass(hint, StageReport):
        return hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            found = _report_class(arg)
            if found is not None:
                return found
    return None


def _typed(hint: Any, value: Any, strict: bool) -> Any:
    nested = _report_class(hint)
    if nested is not None and isinstance(value, dict):
        return nested.from_json(value, strict=strict)
    if typing.get_origin(hint) is list and isinstance(value, list):
        (item,) = typing.get_args(hint) or (Any,)
        inner = _report_class(item)
        if inner is not None:
            return [inner.from_json(v, strict=strict) for v in value]
    return value
