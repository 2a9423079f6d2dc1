"""`dcgan-data audit`: did a generator memorise its training images?"""

from __future__ import annotations

from pathlib import Path

import click

from dcgan_data.core.checks import AUDIT
from dcgan_data_cli.engine import engine_options
from dcgan_data_cli.names import hash_model_option
from dcgan_data_cli.numbers import number_option

# defaults live in dcgan_data.audit.stage; the CLI shows them without importing torch
SAMPLES, HOLDOUT, ALPHA, NEIGHBOURS = 10_000, "2000", 0.01, 10


def _holdout(ctx: click.Context, param: click.Parameter, value: str) -> int | float | Path:
    from dcgan_data.audit.stage import parse_holdout  # torch: not needed for --help

    return parse_holdout(value)


@click.command()
@click.argument("generated", type=click.Path(path_type=Path))
@click.option("--train", "train", type=click.Path(path_type=Path), required=True,
              help="The training shards the generator learnt from.")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="Output directory: audit.csv, audit_report.json, nearest.png, "
                   "distances.png.")
@number_option("-n", "count", allowed=AUDIT["n"], default=SAMPLES, show_default=True,
               help="Samples drawn from a run (or the first N images of a folder or shards).")
@click.option("--holdout", default=HOLDOUT, show_default=True, callback=_holdout,
              help="Real images for calibration: rows of --train, each measured against "
                   "the index without itself (a count, or a fraction below 1), or a folder or "
                   "shard directory of real images the generator never saw (better, where "
                   "you have one).")
@number_option("--alpha", allowed=AUDIT["alpha"], default=ALPHA, show_default=True,
               help="A sample is a copy when at most this share of the calibration images "
                    "are as close to the training set as it is; needs at least 1/alpha - 1 "
                    "of them (a warning says when there are fewer).")
@hash_model_option("model_path", ("--model",), type=click.Path(path_type=Path),
                   help="Hash model [default: the one the dedup stage of --train used, else one "
                   "trained on --train].")
@number_option("--neighbours", allowed=AUDIT["neighbours"], default=NEIGHBOURS,
               show_default=True,
               help="Nearest training images by code values checked per sample (besides "
                    "those sharing a hash).")
@click.option("--checkpoint", default=None,
              help="For a run: a checkpoint file or a name in RUN/checkpoints "
                   "[default: last.pt].")
@number_option("--seed", allowed=AUDIT["seed"], default=0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="auto: cuda when available, else cpu.")
@number_option("--workers", allowed=AUDIT["workers"],
               help="Processes scanning the training shards on CPU [default: all cores].")
@engine_options
def audit(generated: Path, train: Path, out: Path, count: int, holdout: str, alpha: float,
          model_path: Path | None, neighbours: int, checkpoint: str | None, seed: int,
          device: str, workers: int | None, engine: str, ray_address: str | None) -> None:
    """Check whether GENERATED copies images of the training shards.

    GENERATED is a training run (samples are drawn from its checkpoint), a folder of image
    files or a shard directory (from any generator). Each image is compared with its nearest
    training images (found by the semantic hash and by faiss on the hash's code values,
    then measured in pixels), and called a copy when it is closer than real images left
    out of the index are (see --holdout, --alpha).
    """
    from dcgan_data.audit.stage import audit as run
    from dcgan_data.engines.units import make_engine

    report = run(generated, train, out, n=count, holdout=holdout, alpha=alpha,
                 model_path=model_path, neighbours=neighbours, checkpoint=checkpoint,
                 device=device, seed=seed, engine=make_engine(engine, workers, ray_address))
    click.echo(f"audit: {report['verdict']}; report {out / 'audit_report.json'}")
