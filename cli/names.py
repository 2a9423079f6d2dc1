"""One name for an option across the verbs; the names it had before still work, unlisted."""

from __future__ import annotations

import click


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
