"""`dcgan-data audit`: did a generator memorise its training images?"""

from __future__ import annotations

from pathlib import Path

import click

from dcgan_data.audit.options import AuditInputs, AuditOptions, Holdout, parse_holdout
from dcgan_data_cli.engine import engine_options
from dcgan_data_cli.names import hash_model_spelling
from dcgan_data_cli.options import option_from

# what audit called it before: --model, --model-path
HASH_MODEL = hash_model_spelling("model_path", "--model", type=click.Path(path_type=Path))


def _holdout(ctx: click.Context, param: click.Parameter, value: str) -> Holdout:
    return parse_holdout(value)


@click.command()
@click.argument("generated", type=click.Path(path_type=Path))
@option_from(AuditInputs, "train", type=click.Path(path_type=Path), required=True)
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="Output directory: audit.csv, audit_report.json, nearest.png, "
                   "distances.png.")
@option_from(AuditOptions, "n")
@option_from(AuditOptions, "holdout", type=str, callback=_holdout)
@option_from(AuditOptions, "alpha")
@option_from(AuditOptions, "model_path", *HASH_MODEL[0], **HASH_MODEL[1])
@option_from(AuditOptions, "neighbours")
@option_from(AuditOptions, "checkpoint")
@option_from(AuditOptions, "seed")
@option_from(AuditOptions, "device")
@option_from(AuditOptions, "workers")
@engine_options
def audit(generated: Path, train: Path, out: Path, engine: str, ray_address: str | None,
          **settings) -> None:
    """Check whether GENERATED copies images of the training shards.

    GENERATED is a training run (samples are drawn from its checkpoint), a folder of image
    files or a shard directory (from any generator). Each image is compared with its nearest
    training images (found by the semantic hash and by faiss on the hash's code values,
    then measured in pixels), and called a copy when it is closer than real images left
    out of the index are (see --holdout, --alpha).
    """
    from dcgan_data.audit.stage import audit as run
    from dcgan_data.engines.runner import make_engine

    options = AuditOptions(**settings)
    report = run(generated, train, out, options,
                 engine=make_engine(engine, options.workers, ray_address))
    click.echo(f"audit: {report.verdict}; report {out / 'audit_report.json'}")
