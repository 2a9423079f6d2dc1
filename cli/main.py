"""The `dcgan-data` command: a group of verbs, each a thin wrapper around the library.

Verb modules are imported only when needed, and import the library inside their command
functions, so `dcgan-data --help` does not pay for torch or OpenCV.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from dcgan_data import __version__
from dcgan_data.core.errors import DcganDataError

OWN_LOGGERS = ("dcgan_data", "dcgan_data_cli")

# verb -> "module:attribute" of its click command
COMMANDS = {
    "pack": "dcgan_data_cli.ingest:pack",
    "ingest": "dcgan_data_cli.ingest:ingest",
    "inspect": "dcgan_data_cli.ingest:inspect",
    "dedup": "dcgan_data_cli.dedup:dedup",
    "faces": "dcgan_data_cli.faces:faces",
    "train": "dcgan_data_cli.train:train",
    "sample": "dcgan_data_cli.train:sample",
    "fid": "dcgan_data_cli.train:fid",
    "report": "dcgan_data_cli.report:report",
    "audit": "dcgan_data_cli.audit:audit",
    "export": "dcgan_data_cli.export:export",
    "export-weights": "dcgan_data_cli.export:export_weights",
}


class VerbGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self.get_command(ctx, name) is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # verb not built yet in this checkout
                return None
            raise
        return getattr(module, attr)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            sys.exit(130)
        except DcganDataError as exc:
            if ctx.meta.get("verbose"):
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except Exception as exc:  # one line for the user, the traceback with -v
            if ctx.meta.get("verbose"):
                raise
            click.echo(f"error: {type(exc).__name__}: {exc} (run with -v for the traceback)",
                       err=True)
            sys.exit(1)


@click.group(cls=VerbGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dcgan-data")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging, and tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """Prepare image datasets for DCGAN training, and train the DCGAN.

    The data pipeline of Radford, Metz & Chintala (ICLR 2016): LSUN ingest,
    semantic-hash de-duplication, face crops from a web crawl, and a 64x64 DCGAN.
    """
    ctx.meta["verbose"] = verbose
    # other libraries (faiss's loader, PIL's chunk reader) say only warnings and errors;
    # -v and -q move the tool's own loggers
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)


def main() -> None:
    cli(prog_name="dcgan-data")


if __name__ == "__main__":
    main()
