"""Train the paper's DCGAN straight from a shard directory, on CPU, one GPU or many.

    dcgan-data train shards/ -o runs/bedrooms --steps 20000
    dcgan-data train shards/ -o runs/bedrooms --resume          # continue from last.pt
    torchrun --nproc-per-node 8 -m dcgan_data train shards/ -o runs/bedrooms   # DDP

Under torchrun each process drives one GPU with its own batch of --batch-size images, so the
effective batch is N times larger as usual with DDP. DDP averages the gradients; BatchNorm
statistics stay per process (per batch, as in the paper). Only rank 0 writes the run directory
(rundir.py) and evaluates. Ctrl-C or SIGTERM makes every rank stop after the same step (under
DDP the next --log-every step); rank 0 writes checkpoints/last.pt first.

The batches (feed.py) and the z of step s are functions of (seed, step, rank) alone, so a
resumed run (checkpoint.py) sees exactly the batches and noise the uninterrupted run would.
Every --eval-every steps rank 0 scores G against the data (quality.py: hash_fd, hash_kid; also
fid, kid with --inception-weights). One step (step.py) is the paper's.

The run, top to bottom: `train` -> set up the processes -> open the shards -> the checkpoint
(with --resume) -> the settings -> the models -> the feed and the run directory -> `run_steps`
(each step: `next_batch` -> `train_step` -> `after_step`: log, evaluate, sample, checkpoint)
-> the report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dcgan_data.core.errors import InputError
from dcgan_data.core.files import locks_output, progress
from dcgan_data.core.processes import StopFlag, any_rank, reuse_freed_memory, setup_processes
from dcgan_data.core.shards import ShardSet
from dcgan_data.train.checkpoint import check_same_data
from dcgan_data.train.feed import BatchFeed, batch_rows, data_checksum
from dcgan_data.train.model import draw_z, to_model_input
from dcgan_data.train.options import EPOCHS, SIZES, TrainOptions, TrainRun
from dcgan_data.train.report import MetricsRecord, RunConfig, TrainReport
from dcgan_data.train.rundir import RunDir, existing_checkpoint
from dcgan_data.train.step import (
    Models,
    build_models,
    checkpoint_state,
    restore,
    step_seed,
    train_step,
)

log = logging.getLogger(__name__)

ARCHITECTURE = ("size", "nz", "ngf", "ndf")  # a checkpoint only loads into the same ones
FEW_IMAGES = 1000  # below this a GAN learns little more than blur, noise or copies


# --------------------------------------------------------------------------------------------
# the entry


def train(data: str | os.PathLike, out: str | os.PathLike, options: TrainOptions | None = None,
          device: str = "auto", resume: bool = False, threads: int | None = None,
          **settings: Any) -> TrainReport:
    """Train on the shards in `data`, writing the run to `out`. Returns the run's report.

    `options` and `settings` (TrainOptions fields, as keywords) are the settings chosen; the
    rest come from the defaults or, with `resume`, from the run's checkpoint. `threads`: torch
    threads per process on a CPU [default: the cores shared out]. The report says
    `interrupted` (the signal number) when SIGINT/SIGTERM stopped the run; last.pt then holds
    the step it stopped at.
    """
    machine = TrainRun(device=device, threads=threads, resume=resume)
    return _train(data, out, machine, given_settings(options, settings))


@locks_output("out")  # one run per output directory
def _train(data: str | os.PathLike, out: str | os.PathLike, machine: TrainRun,
           given: dict[str, Any]) -> TrainReport:
    rank, world, _, device = setup_processes(machine.device, machine.threads)
    if device.type == "cpu":
        reuse_freed_memory()  # the trainer owns the process while it trains
    shards = open_shards(data)
    run = Path(out)
    ckpt = existing_checkpoint(run, machine.resume)
    cfg = resolve_config(given, shards, ckpt)
    total, per_epoch = run_length(cfg, len(shards), world, data)
    models = build_models(cfg, device, world)
    start = 0
    if ckpt is not None:
        check_same_data(ckpt, len(shards), data_checksum(shards), data)
        start = restore(models, ckpt, run / "checkpoints" / "last.pt")
    feed = BatchFeed(shards, device, cfg.feed)
    writer = RunDir(run, RunConfig(
        cfg, data=str(Path(data).resolve()), data_rows=len(shards), device=str(device),
        threads=torch.get_num_threads(), world_size=world, feed=feed.mode, total_steps=total,
        steps_per_epoch=per_epoch, torch=torch.__version__), shards, start) if rank == 0 else None
    announce(start, total, shards, device, feed.mode, world, rank)
    loop = Loop(cfg, models, feed, len(shards), writer, device, rank, world, total)
    try:
        step, interrupted = run_steps(loop, start)
    finally:
        feed.close()
        if world > 1:
            torch.distributed.destroy_process_group()
    history = writer.history if writer is not None else []
    last = MetricsRecord.from_json(history[-1]) if history else None
    report = TrainReport(run=str(run), start_step=start, interrupted=interrupted, step=step,
                         total_steps=total, last=last,
                         checkpoint=str(run / "checkpoints" / "last.pt"))
    if writer is not None:
        report.write(run / "train_report.json")
    return report


# --------------------------------------------------------------------------------------------
# set-up: data and settings


def open_shards(data: str | os.PathLike) -> ShardSet:
    """The shard set, with every shard file opened once so a missing or cut file fails now."""
    shards = ShardSet(data)
    if len(shards) == 0:
        raise InputError(f"{data}: the shard directory holds no images")
    h, w, c = shards.shape
    if h != w or c != 3 or h not in SIZES:
        raise InputError(f"{data}: images are {h}x{w}x{c}; the DCGAN trains on "
                         f"{', '.join(map(str, SIZES))} px RGB squares (re-ingest with --size)")
    for _ in shards.iter_shards():
        pass
    return shards


def given_settings(options: TrainOptions | None, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings a caller chose: those of `options` that are set, then the keywords
    (checked here, so a bad one is refused before anything is opened)."""
    TrainOptions(**settings)
    chosen = dataclasses.asdict(options) if options is not None else {}
    return {**{k: v for k, v in chosen.items() if v is not None}, **settings}


def resolve_config(given: dict[str, Any], shards: ShardSet,
                   checkpoint: dict | None) -> TrainOptions:
    """The settings `given`, then with `resume` the checkpoint's, then the defaults."""
    base: dict[str, Any] = {"size": shards.shape[0]}
    if checkpoint is not None:
        saved = checkpoint["config"]
        for key in ARCHITECTURE:
            if key in given and given[key] != saved[key]:
                raise InputError(f"--resume: the run was trained with {key}={saved[key]}, "
                                 f"not {key}={given[key]}; drop the option or use a new -o")
        known = {f.name for f in dataclasses.fields(TrainOptions)}
        base.update({k: v for k, v in saved.items() if k in known})
    if "steps" in given:
        base["epochs"] = None
    elif "epochs" in given:
        base["steps"] = None  # --epochs on resume replaces the run's --steps
    base.update(given)
    if base.get("steps") is None and base.get("epochs") is None:
        base["epochs"] = EPOCHS
    cfg = TrainOptions(**base)
    if cfg.size != shards.shape[0]:
        raise InputError(f"--size {cfg.size}, but {shards.path} holds {shards.shape[0]}x"
                         f"{shards.shape[1]} images; re-ingest at --size {cfg.size} or drop it")
    return cfg


def run_length(cfg: TrainOptions, rows: int, world: int,
               data: str | os.PathLike) -> tuple[int, int]:
    """(total steps, steps per epoch) of the run."""
    per_epoch = rows // (cfg.batch_size * world)
    if per_epoch == 0:
        raise InputError(f"{data} holds {rows} images, fewer than one batch of "
                         f"{cfg.batch_size} x {world} process(es); lower --batch-size")
    total = cfg.steps if cfg.steps is not None else math.ceil(cfg.epochs * per_epoch)
    return total, per_epoch


def announce(start: int, total: int, shards: ShardSet, device: torch.device, feed: str,
             world: int, rank: int) -> None:
    log.info("training %d -> %d steps on %d images (%s, feed %s, %d process(es))",
             start, total, len(shards), device, feed, world)
    if rank == 0 and len(shards) < FEW_IMAGES:
        log.warning("only %d training images: a GAN needs thousands (the DCGAN paper used "
                    "3 million bedrooms); with this few expect blurred noise or copies of "
                    "the training images", len(shards))


# --------------------------------------------------------------------------------------------
# the loop


@dataclass
class Loop:
    """What every step reads, and the throughput since the last log line."""

    cfg: TrainOptions
    models: Models
    feed: BatchFeed
    rows: int  # images in the data
    writer: RunDir | None  # rank 0's; None on the other ranks
    device: torch.device
    rank: int
    world: int
    total: int
    images_seen: int = 0
    tick: float = field(default_factory=time.perf_counter)


def run_steps(loop: Loop, start: int) -> tuple[int, int]:
    """Train from step `start` to the end, or to the step a signal stops every rank at:
    returns (the last step, the signal number or 0)."""
    cfg, models = loop.cfg, loop.models
    amp = torch.autocast(loop.device.type, dtype=torch.bfloat16, enabled=cfg.amp)
    d_params = list(models.d_model.parameters())
    z_gen = torch.Generator(device=loop.device)
    stop = StopFlag()
    bar = progress(total=loop.total, initial=start, unit="step", desc="train",
                   disable=loop.writer is None or None)
    slowdown = RateWatch(torch.get_num_threads()) if loop.device.type == "cpu" else None
    step, stopping = start, 0
    try:
        with stop.installed():
            while step < loop.total and not stopping:
                real, z = next_batch(loop, step, z_gen)
                stats = train_step(models.g, models.d, models.d_frozen, d_params,
                                   models.opt_g, models.opt_d, real, z, amp)
                step += 1
                bar.update(1)
                stopping = after_step(loop, step, stats, stop, bar, slowdown)
    finally:
        bar.close()
    return step, stopping


def next_batch(loop: Loop, step: int, z_gen: torch.Generator) -> tuple[torch.Tensor,
                                                                        torch.Tensor]:
    """This rank's real batch of `step` (the next one's read ahead) and its z."""
    cfg = loop.cfg
    rows = batch_rows(step, loop.rows, cfg.batch_size, loop.rank, loop.world, cfg.seed)
    next_rows = (batch_rows(step + 1, loop.rows, cfg.batch_size, loop.rank, loop.world,
                            cfg.seed) if step + 1 < loop.total else None)
    real = to_model_input(loop.feed.get(rows, next_rows))
    z_gen.manual_seed(step_seed(cfg.seed, step, loop.rank))
    return real, draw_z(cfg.batch_size, cfg.nz, cfg.z_dist, z_gen, loop.device)


def after_step(loop: Loop, step: int, stats: torch.Tensor, stop: StopFlag, bar: Any,
               slowdown: RateWatch | None) -> int:
    """Log, evaluate, sample and checkpoint as the settings say at `step`; returns the signal
    every rank stops at after this step, or 0."""
    cfg, writer = loop.cfg, loop.writer
    loop.images_seen += cfg.batch_size * loop.world
    last = step == loop.total
    evaluate = writer is not None and (step % cfg.eval_every == 0 or last)
    if step % cfg.log_every == 0 or last or evaluate:
        log_line(loop, step, stats, evaluate, bar, slowdown)
    # under DDP the ranks agree on stopping at log steps (it costs a sync)
    stopping = (any_rank(stop.signum, loop.world, loop.device)
                if loop.world == 1 or step % cfg.log_every == 0 else 0)
    if writer is not None and (step % cfg.sample_every == 0 or last or stopping):
        writer.samples(step, loop.models.g_model)
    keep = cfg.keep_every and step % cfg.keep_every == 0
    if writer is not None and (step % cfg.ckpt_every == 0 or keep or last or stopping):
        with _doing(bar, "train: writing checkpoint"):
            writer.checkpoint(step, checkpoint_state(step, cfg, writer.shards, loop.models))
    return stopping


def log_line(loop: Loop, step: int, stats: torch.Tensor, evaluate: bool, bar: Any,
             slowdown: RateWatch | None) -> None:
    """One metrics.jsonl line (rank 0), with the quality figures when `evaluate`."""
    values = stats.tolist()  # the one host sync per log interval
    entry = MetricsRecord(step, *values,
                          images_per_s=loop.images_seen / (time.perf_counter() - loop.tick))
    if evaluate:
        with _doing(bar, "train: evaluating"):
            entry.quality.update(loop.writer.evaluate(loop.models.g_model))
    loop.images_seen, loop.tick = 0, time.perf_counter()
    if loop.writer is None:
        return
    loop.writer.log(entry.to_json())
    if slowdown is not None and (warning := slowdown(entry.images_per_s)):
        log.warning(warning)
    bar.set_postfix(loss_D=f"{values[0]:.3f}", loss_G=f"{values[1]:.3f}")


class RateWatch:
    """Says once when training runs far below its own best rate so far for several log
    intervals in a row: on a CPU shared with other busy processes, torch's threads wait on
    each other and a run can crawl at a few percent of its speed."""

    SLOW = 0.25  # a log interval this far below the best one is slow
    INTERVALS = 3  # slow ones in a row before saying so (one may be a checkpoint's)

    def __init__(self, threads: int):
        self.threads, self.best, self.slow, self.said = threads, 0.0, 0, False

    def __call__(self, images_per_s: float) -> str | None:
        """The warning, the first time the rate has collapsed; else None."""
        self.slow = self.slow + 1 if images_per_s < self.SLOW * self.best else 0
        self.best = max(self.best, images_per_s)
        if self.said or self.slow < self.INTERVALS:
            return None
        self.said = True
        return (f"training slowed to {images_per_s:,.0f} images/s from {self.best:,.0f}: "
                f"other processes are probably using the cores, and torch's {self.threads} "
                "threads wait on each other; stop it (Ctrl-C keeps a checkpoint) and go on "
                "with --resume --threads 1, or as many threads as there are idle cores")


@contextlib.contextmanager
def _doing(bar: Any, what: str) -> Iterator[None]:
    """The progress bar says what the run does while its step count stands still."""
    bar.set_description_str(what)
    try:
        yield
    finally:
        bar.set_description_str("train")
