"""One name for an option across the verbs; the names it had before still work, unlisted."""

from __future__ import annotations

from typing import Any

import click

from dcgan_data.core.options import option_name

HASH_MODEL = "--hash-model"  # the trained hash model's option, in every verb


class Renamed(click.Option):
    """An option whose `old_names` are accepted but left out of --help."""

    def __init__(self, *args, old_names: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.old_names = old_names

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        names = self.opts
        self.opts = [name for name in names if name not in self.old_names]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = names


def hash_model_spelling(field: str, *old_names: str, **overrides: Any
                        ) -> tuple[tuple[str, ...], dict[str, Any]]:
    """(extra spellings, overrides) for `option_from` of the field naming a trained hash
    model: HASH_MODEL in every verb; `old_names` and the field's own spelling still work,
    unlisted."""
    spelled = option_name(field)
    decls = ((HASH_MODEL,) if spelled != HASH_MODEL else ()) + old_names
    hidden = tuple(name for name in (*old_names, spelled) if name != HASH_MODEL)
    return decls, {"cls": Renamed, "old_names": hidden, **overrides}
