"""What a run starts from: its checked inputs, opened as shards, and its hash model."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dcgan_data.core.errors import InputError
from dcgan_data.core.shards import ShardSet, is_shard_dir
from dcgan_data.dedup.options import DedupOptions
from dcgan_data.dedup.write import MODEL
from dcgan_data.engines.runner import Engine
from dcgan_data.hashmodel import hashing


@dataclass
class Inputs:
    """SRC (and --against) as shards, and the side of the output rows."""

    shards: ShardSet
    other: ShardSet | None  # --against's rows: never removed, they only remove ours
    ingest_report: dict[str, Any] | None  # SRC's ingest, when it was no shard directory
    size: int

    @property
    def keys(self) -> list[str]:
        """Every row's key: SRC's, then --against's."""
        return self.shards.keys() + (self.other.keys() if self.other else [])


def open_inputs(src: Path, out: Path, options: DedupOptions, device: str, engine: Engine
                ) -> Inputs:
    """Everything that can refuse the input, before anything is written to `out`: the
    --hash-model is read, a source that is no shard directory is ingested."""
    if options.hash_model is not None:
        hashing.load_model(options.hash_model, device)
    shards, ingest_report = open_input(src, out / "ingested", options.size or 64, engine)
    other = open_input(options.against, out / "against_ingested", 64, engine)[0] \
        if options.against else None
    if len(shards) == 0:
        raise InputError(f"{src}: no images to de-duplicate")
    size = output_size(options.size, shards)
    if other is not None and len(other) == 0:
        raise InputError(f"--against {options.against}: holds no images")
    return Inputs(shards, other, ingest_report, size)


def open_input(src: str | os.PathLike, cache: Path, size: int, engine: Engine
               ) -> tuple[ShardSet, dict[str, Any] | None]:
    """A shard directory as is; any other source (LSUN LMDB, folder of images) is ingested
    into `cache` first (resumable). Returns the shards and the ingest report, if any."""
    src = Path(src)
    if not src.exists():
        raise InputError(f"{src}: no such file or directory")
    if is_shard_dir(src):
        return ShardSet(src), None
    from dcgan_data.ingest.stage import ingest

    report = ingest(src, cache, size=size, engine=engine)
    return ShardSet(cache), report


def output_size(size: int | None, shards: ShardSet) -> int:
    """The side of the output rows: the shards' own unless --size says otherwise; a larger
    side would only enlarge the rows, which is refused."""
    side = int(shards.shape[0])
    if size is None:
        return side
    if size > side:
        raise InputError(f"--size {size}: {shards.path} holds {side} px images; dedup does not "
                         f"enlarge them (ingest the source at {size} px, or leave --size out)")
    return size


def check_paths(src: Path, out: Path, against: Path | None, dry_run: bool) -> None:
    """Refuse an OUT that is an input or a finished run a dry run would touch, and an
    --against that is SRC itself."""
    for other in (src, against):
        if other is not None and out.resolve() == other.resolve():
            raise InputError(f"-o {out} is an input; write the output somewhere else")
    if against is not None and against.exists() and src.exists() and \
            against.resolve() == src.resolve():
        raise InputError(f"--against {against} is SRC itself: every image would be a "
                         "duplicate of itself; name another shard set")
    if dry_run and (out / "manifest.json").exists():
        raise InputError(f"-o {out} holds a finished dedup; a dry run never touches a "
                         "finished output: choose another -o")


def hash_model(src: ShardSet, out: Path, model_path: Path | None, config: hashing.HashConfig,
               device: str, seed: int) -> tuple[hashing.HashAutoencoder, dict]:
    """The --model given, the one a previous run of this command saved in `out`, or a new
    one trained on the source."""
    if model_path is not None:
        model, info = hashing.load_model(model_path, device)
        return model, {"model": str(model_path), "trained": False, **info}
    saved = out / MODEL
    if saved.exists():  # resume: a re-run must hash exactly as the interrupted run did
        try:
            model, info = hashing.load_model(saved, device)
        except InputError:  # written by an older version of this tool: train afresh
            model, info = None, {}
        if model is not None and asdict(model.config) == asdict(config) \
                and info.get("source_rows") == len(src):
            return model, {"model": str(saved), "trained": False, "resumed": True, **info}
    if len(src) < 2:
        raise InputError(f"{src.path} holds {len(src)} image(s): too few to learn a hash "
                         "from; pass --model with a hash model trained on a larger set")
    rng = np.random.default_rng(seed)
    crops = hashing.sample_crops(src, config.max_train_images, rng)
    model, stats = hashing.train_hash_model(crops, config, device, seed)
    return model, {"model": str(saved), "trained": True, "source_rows": len(src),
                   "seed": seed, **stats}
