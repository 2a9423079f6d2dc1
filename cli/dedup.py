"""`dcgan-data dedup`: remove near-duplicate images (candidates from the DCGAN paper's semantic
hash and a perceptual descriptor, each pair verified on the images)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from dcgan_data.dedup.options import DedupOptions, parse_partitions
from dcgan_data.hashmodel.options import HashConfig
from dcgan_data_cli.engine import engine_options
from dcgan_data_cli.names import hash_model_spelling
from dcgan_data_cli.options import option_from

# the hash model's training settings dedup offers (the rest keep HashConfig's defaults)
HASH_SETTINGS = ("epochs", "min_steps", "max_steps", "max_train_images", "batch_size", "lr",
                 "dropout", "code_noise")


def _partitions(ctx: click.Context, param: click.Parameter, value: str) -> int | str:
    return parse_partitions("--partitions", value)


def _path(dest: str, *decls: str, **overrides):
    return option_from(DedupOptions, dest, *decls, type=click.Path(path_type=Path), **overrides)


def _options(command):
    """Every DedupOptions field as an option, then the hash model's settings."""
    for name in reversed(HASH_SETTINGS):
        command = option_from(HashConfig, name)(command)
    decls, overrides = hash_model_spelling("hash_model", "--model")  # --model: its old name
    special = {
        "hash_model": _path("hash_model", *decls, **overrides),
        "against": _path("against"),
        "partitions": option_from(DedupOptions, "partitions", callback=_partitions,
                                  metavar="N|auto", show_default=False),
    }
    for field in reversed(dataclasses.fields(DedupOptions)):
        command = special.get(field.name, option_from(DedupOptions, field.name))(command)
    return command


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="Output directory: kept shards, duplicates.csv, dedup_report.json, "
                   "duplicates.png, hashes.npy, hash_model.pt.")
@_options
@engine_options
def dedup(src: Path, out: Path, engine: str, ray_address: str | None, **settings) -> None:
    """De-duplicate SRC (a shard directory, an LSUN LMDB or a folder of images) into OUT.

    Trains the paper's 3072-128-3072 denoising autoencoder on 32x32 crops (or loads
    --hash-model) and hashes every image to 128 bits; proposes candidate pairs from equal hashes,
    probe hashes and nearest neighbours by a perceptual descriptor; verifies each pair on
    the images, keeps one image per verified group and writes the kept images as shards.
    """
    from dcgan_data.dedup.stage import dedup as run
    from dcgan_data.engines.runner import make_engine

    config = HashConfig(**{name: settings.pop(name) for name in HASH_SETTINGS})
    options = DedupOptions(**settings)
    report = run(src, out, options, config=config,
                 engine=make_engine(engine, options.workers, ray_address))
    where = "dry run, no shards written" if options.dry_run else f"shards in {out}"
    click.echo(f"dedup: kept {report['kept']} of {report['images']} images, removed "
               f"{report['removed']} in {report['groups_with_duplicates']} groups "
               f"({where}); report {out / 'dedup_report.json'}")
