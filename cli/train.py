"""`dcgan-data train`, `sample` and `fid`: options from dcgan_data.train.options."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import click
from click.core import ParameterSource

from dcgan_data.train.options import (
    SIZES,
    FidOptions,
    Machine,
    SampleOptions,
    TrainOptions,
    TrainRun,
)
from dcgan_data_cli.names import hash_model_spelling
from dcgan_data_cli.options import option_from

FILE = click.Path(dir_okay=False)
# how an option's spelling or type differs from what its field gives
TRAIN_SPELLING: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "size": ((), {"type": click.Choice(SIZES)}),
    "eval_model": hash_model_spelling("eval_model", type=FILE),
    "inception_weights": ((), {"type": FILE}),
}


def _each_field(options: type, spelling: dict[str, tuple[tuple[str, ...], dict[str, Any]]]):
    """Every field of `options` as an option, in field order in --help."""

    def decorate(command):
        for field in reversed(dataclasses.fields(options)):
            decls, overrides = spelling.get(field.name, ((), {}))
            command = option_from(options, field.name, *decls, **overrides)(command)
        return command

    return decorate


def _machine(command):
    return option_from(Machine, "device")(option_from(Machine, "threads")(command))


def _chosen(ctx: click.Context, options: type) -> dict[str, Any]:
    """The fields of `options` given on the command line: the rest keep their defaults or,
    with --resume, the run's own settings."""
    return {f.name: ctx.params[f.name] for f in dataclasses.fields(options)
            if ctx.get_parameter_source(f.name) is not ParameterSource.DEFAULT}


@click.command()
@click.argument("data", type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
              help="Run directory to write.")
@option_from(TrainRun, "resume")
@_machine
@_each_field(TrainOptions, TRAIN_SPELLING)
@click.pass_context
def train(ctx: click.Context, data: str, out: str, resume: bool, device: str,
          threads: int | None, **_: Any) -> None:
    """Train the paper's DCGAN on a shard directory.

    Writes OUT/config.json, metrics.jsonl, samples/step_NNNNNN.png, loss.png and
    checkpoints/last.pt (every --ckpt-every steps, and on Ctrl-C or SIGTERM). For several
    GPUs: torchrun --nproc-per-node N -m dcgan_data train DATA -o OUT.
    """
    from dcgan_data.train.stage import train as run_train

    report = run_train(data, out, device=device, resume=resume, threads=threads,
                       **_chosen(ctx, TrainOptions))
    last = report.last
    if last is not None:
        figures = last.quality
        quality = (f" hash_fd {figures['hash_fd']:.2f} hash_kid {figures['hash_kid']:.3f}"
                   if "hash_fd" in figures else "")
        quality += f" FID {figures['fid']:.2f}" if "fid" in figures else ""
        click.echo(f"step {report.step}/{report.total_steps}: loss_D {last.loss_D:.3f} "
                   f"loss_G {last.loss_G:.3f} D(x) {last.D_x:.2f} D(G(z)) {last.D_G_z:.2f}"
                   f"{quality}, {last.images_per_s:.0f} images/s; run: {out}")
    if report.interrupted:
        click.echo(f"interrupted: checkpoint at step {report.step} in "
                   f"{report.checkpoint}; continue with --resume", err=True)
        sys.exit(128 + report.interrupted)


@click.command()
@click.argument("run", type=click.Path())
@click.option("-o", "--out", type=FILE, default="grid.png", show_default=True,
              help="PNG to write.")
@_each_field(SampleOptions, {"count": (("-n",), {})})
@_machine
def sample(run: str, out: str, device: str, threads: int | None, **settings: Any) -> None:
    """Draw images from a trained run's generator into one PNG grid."""
    from dcgan_data.train.sampling import write_grid

    _set_threads(threads)
    summary = write_grid(run, out, SampleOptions(**settings), device)
    click.echo(f"wrote {summary['images']} images of {summary['size']} px to {out} "
               f"(from {summary['checkpoint']})")


@click.command()
@click.argument("run", type=click.Path())
@_each_field(FidOptions, {"real": ((), {"required": True, "type": click.Path()}),
                          "hash_model": ((), {"type": FILE}),
                          "inception_weights": ((), {"type": FILE})})
@_machine
def fid(run: str, device: str, threads: int | None, **settings: Any) -> None:
    """Score a run's generator against real shards: hash_fd and hash_kid, and with
    --inception-weights FID and KID.

    hash_fd and hash_kid are FID's and KID's formulas in the dedup hash model's 128-unit code
    space (no download needed), not FID with Inception features: compare runs on the same
    data with them, not with published FIDs. Writes RUN/quality_report.json.
    """
    from dcgan_data.train.quality import evaluate_run

    _set_threads(threads)
    report = evaluate_run(run, FidOptions(**settings), device)
    inception = (f" FID {report['fid']:.3f} KID {report['kid']:.4f}" if "fid" in report
                 else "")
    click.echo(f"step {report['step']}: hash_fd {report['hash_fd']:.3f} hash_kid "
               f"{report['hash_kid']:.4f}{inception} ({report['eval_images']} generated vs "
               f"{report['real_images']} real images; {run}/quality_report.json)")


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
