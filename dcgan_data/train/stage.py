"""Train the paper's DCGAN straight from a shard directory, on CPU, one GPU or many.

    dcgan-data train shards/ -o runs/bedrooms --steps 20000
    dcgan-data train shards/ -o runs/bedrooms --resume          # continue from last.pt
    torchrun --nproc-per-node 8 -m dcgan_data train shards/ -o runs/bedrooms   # DDP

Under torchrun each process drives one GPU with its own batch of --batch-size images, so the
effective batch is N times larger as usual with DDP. DDP averages the gradients; BatchNorm
statistics stay per process (per batch, as in the paper). Only rank 0 writes the run directory
and evaluates. Ctrl-C or SIGTERM makes every rank stop after the same step (under DDP the next
--log-every step); rank 0 writes checkpoints/last.pt first.

The batches (feed.py) and the z of step s are functions of (seed, step, rank) alone, so a
resumed run (checkpoint.py) sees exactly the batches and noise the uninterrupted run would.
Every --eval-every steps rank 0 scores G against the data (quality.py: hash_fd, hash_kid; also
fid, kid with --inception-weights).

One step, as in the paper (Adam 2e-4, beta1 0.5, batch 128, BCE on D's logit):
  D: one forward on the real batch and one on G(z) (separate batches, so separate BatchNorm
     statistics), loss = BCE(D(x), 1) + BCE(D(G(z)), 0), one Adam step.
  G: the updated D on the same G(z), non-saturating loss BCE(D(G(z)), 1), one Adam step;
     D's weights are frozen for this backward, so no gradient for them is computed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dcgan_data.core.errors import InputError
from dcgan_data.core.files import atomic_write_text, locks_output, progress, write_json
from dcgan_data.core.images import contact_sheet, decode_image, save_png
from dcgan_data.core.plots import plot_losses
from dcgan_data.core.processes import StopFlag, any_rank, reuse_freed_memory, setup_processes
from dcgan_data.core.shards import ShardSet
from dcgan_data.train.checkpoint import (
    FORMAT,
    check_same_data,
    load_checkpoint,
    rng_states,
    save_checkpoint,
    set_rng_states,
)
from dcgan_data.train.feed import BatchFeed, batch_rows, data_checksum
from dcgan_data.train.model import build, draw_z, generate, to_model_input
from dcgan_data.train.options import EPOCHS, SIZES, TrainOptions, TrainRun
from dcgan_data.train.quality import Evaluator, InceptionSpace

log = logging.getLogger(__name__)

ARCHITECTURE = ("size", "nz", "ngf", "ndf")  # a checkpoint only loads into the same ones
FEW_IMAGES = 1000  # below this a GAN learns little more than blur, noise or copies


# --------------------------------------------------------------------------------------------
# set-up: data and configuration


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


# --------------------------------------------------------------------------------------------
# one training step


def step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])

def make_adam(model: nn.Module, cfg: TrainOptions) -> torch.optim.Optimizer:
    """Adam(lr, beta1, 0.999), fused into one kernel where torch has it (CPU: torch >= 2.4);
    on CPU the per-parameter loop costs as much as a tenth of a step."""
    try:
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999),
                                fused=True)
    except RuntimeError:
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))


def train_step(g: nn.Module, d: nn.Module, d_frozen: nn.Module, d_params: list[nn.Parameter],
               opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               real: torch.Tensor, z: torch.Tensor, amp: contextlib.AbstractContextManager
               ) -> torch.Tensor:
    """One D step then one G step; returns [loss_D, loss_G, D(x), D(G(z))] (no host sync)."""
    with amp:
        fake = g(z)
        logit_real = d(real)
        logit_fake = d(fake.detach())
        loss_d = (F.binary_cross_entropy_with_logits(logit_real, torch.ones_like(logit_real))
                  + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake)))
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()

    for p in d_params:  # the G step needs gradients through D, not for D's weights
        p.requires_grad_(False)
    with amp:
        logit_g = d_frozen(fake)
        loss_g = F.binary_cross_entropy_with_logits(logit_g, torch.ones_like(logit_g))
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    for p in d_params:
        p.requires_grad_(True)

    d_x = torch.sigmoid(logit_real.detach().float()).mean()
    d_g_z = torch.sigmoid(logit_fake.detach().float()).mean()
    return torch.stack([loss_d.detach().float(), loss_g.detach().float(), d_x, d_g_z])

# --------------------------------------------------------------------------------------------
# run directory: metrics, samples, loss curve


def read_metrics(path: Path, up_to_step: int) -> list[dict]:
    """Metric lines of a run up to a step (later ones came after its last checkpoint)."""
    if not path.exists():
        return []
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("step", math.inf) <= up_to_step:
                lines.append(entry)
    return lines


def write_samples(g: nn.Module, z: torch.Tensor, path: Path) -> None:
    """A grid of G's images for the fixed z (BatchNorm in inference mode)."""
    save_png(path, contact_sheet(generate(g, z)))


def write_progression(samples: Path, path: Path, grids: int = 6) -> None:
    """Up to `grids` sample grids, evenly spaced over the run so far, side by side and each
    headed by its step: how the same z's images changed as G learned."""
    files = sorted(samples.glob("step_*.png"))
    if not files:
        return
    picks = [files[round(i)] for i in np.linspace(0, len(files) - 1, min(grids, len(files)))]
    columns = []
    for file in dict.fromkeys(picks):
        grid, _ = decode_image(file.read_bytes())
        head = np.full((24, grid.shape[1], 3), 255, np.uint8)
        cv2.putText(head, f"step {int(file.stem.split('_')[1])}", (4, 17),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        columns.append(np.concatenate([head, grid]))
    height = max(c.shape[0] for c in columns)
    columns = [np.pad(c, ((0, height - c.shape[0]), (0, 8), (0, 0)), constant_values=255)
               for c in columns]
    save_png(path, np.concatenate(columns, axis=1))


# --------------------------------------------------------------------------------------------
# the run


@dataclass
class Models:
    """G and D with their optimisers, and what the loop calls: DDP wrappers (gradient
    all-reduce) and torch.compile'd versions when asked; the bare modules are checkpointed."""

    g_model: nn.Module
    d_model: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    g: nn.Module
    d: nn.Module
    d_frozen: nn.Module


def build_models(cfg: TrainOptions, device: torch.device, world: int) -> Models:
    """The paper's init from the seeded global RNG, identical on every rank."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    g_model, d_model = build(cfg.size, cfg.nz, cfg.ngf, cfg.ndf,
                             cpu_fast_path=device.type == "cpu")
    g_model = g_model.to(device, memory_format=torch.channels_last)
    d_model = d_model.to(device, memory_format=torch.channels_last)
    g, d, d_frozen = g_model, d_model, d_model
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        g = nn.parallel.DistributedDataParallel(g_model, device_ids=ids)
        d = nn.parallel.DistributedDataParallel(d_model, device_ids=ids)
    if cfg.compile:
        g, d, d_frozen = torch.compile(g), torch.compile(d), torch.compile(d_model)
    return Models(g_model, d_model, make_adam(g_model, cfg), make_adam(d_model, cfg),
                  g, d, d_frozen)


def restore(models: Models, ckpt: dict, path: Path) -> int:
    """Load a checkpoint's weights, optimiser and RNG states; returns its step."""
    try:
        models.g_model.load_state_dict(ckpt["G"])
        models.d_model.load_state_dict(ckpt["D"])
        models.opt_g.load_state_dict(ckpt["opt_G"])
        models.opt_d.load_state_dict(ckpt["opt_D"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise InputError(f"{path}: does not fit this model ({str(exc)[:120]})") from None
    set_rng_states(ckpt["rng"])
    return int(ckpt["step"])


def existing_checkpoint(run: Path, resume: bool) -> dict | None:
    last = run / "checkpoints" / "last.pt"
    if resume and last.exists():
        return load_checkpoint(last)  # on the CPU: RNG states must stay there
    if last.exists():
        raise InputError(f"{run} already holds a run; pass --resume to continue it "
                         "or choose another -o")
    return None


class RunDir:
    """What rank 0 writes: config.json, metrics.jsonl, samples/, loss.png, checkpoints/."""

    def __init__(self, run: Path, cfg: TrainOptions, shards: ShardSet, start: int,
                 info: dict[str, Any]):
        self.run, self.cfg, self.shards = run, cfg, shards
        # loaded first: a missing or wrong file stops the run before it writes anything
        self.inception = (InceptionSpace(cfg.inception_weights, info["device"])
                          if cfg.inception_weights else None)
        self.metrics_path = run / "metrics.jsonl"
        self.history = read_metrics(self.metrics_path, start)  # drop lines past the checkpoint
        atomic_write_text(self.metrics_path, "".join(json.dumps(m) + "\n" for m in self.history))
        write_json(run / "config.json", {**dataclasses.asdict(cfg), **info,
                                         "torch": torch.__version__})
        self.fixed_z = draw_z(cfg.num_samples, cfg.nz, cfg.z_dist,
                              torch.Generator().manual_seed(cfg.seed), torch.device("cpu"))
        self.evaluator: Evaluator | None = None

    def log(self, entry: dict) -> None:
        self.history.append(entry)
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def evaluate(self, g: nn.Module) -> dict[str, float]:
        with torch.random.fork_rng(devices=[]):  # training a hash model seeds torch's RNG
            if self.evaluator is None:  # the real side: cached beside the shards after once
                self.evaluator = Evaluator(self.shards, self.cfg.eval_model,
                                           self.cfg.eval_images, inception=self.inception)
            return self.evaluator(g, self.cfg.z_dist, self.cfg.seed)

    def samples(self, step: int, g: nn.Module) -> None:
        write_samples(g, self.fixed_z, self.run / "samples" / f"step_{step:06d}.png")
        write_progression(self.run / "samples", self.run / "progression.png")
        plot_losses(self.history, self.run / "loss.png")

    def checkpoint(self, step: int, state: dict) -> None:
        save_checkpoint(self.run / "checkpoints" / "last.pt", state)
        if self.cfg.keep_every and step % self.cfg.keep_every == 0:
            save_checkpoint(self.run / "checkpoints" / f"step_{step:06d}.pt", state)


def checkpoint_state(step: int, cfg: TrainOptions, shards: ShardSet, models: Models) -> dict:
    return {"format": FORMAT, "version": 1, "step": step, "config": dataclasses.asdict(cfg),
            "data_rows": len(shards), "data_checksum": data_checksum(shards),
            "G": models.g_model.state_dict(), "D": models.d_model.state_dict(),
            "opt_G": models.opt_g.state_dict(), "opt_D": models.opt_d.state_dict(),
            "rng": rng_states()}


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


def train(data: str | os.PathLike, out: str | os.PathLike, options: TrainOptions | None = None,
          device: str = "auto", resume: bool = False, threads: int | None = None,
          **settings: Any) -> dict:
    """Train on the shards in `data`, writing the run to `out`. Returns the run's summary.

    `options` and `settings` (TrainOptions fields, as keywords) are the settings chosen; the
    rest come from the defaults or, with `resume`, from the run's checkpoint. `threads`: torch
    threads per process on a CPU [default: the cores shared out]. The summary says
    `interrupted` (the signal number) when SIGINT/SIGTERM stopped the run; last.pt then holds
    the step it stopped at.
    """
    run = TrainRun(device=device, threads=threads, resume=resume)
    return _train(data, out, run, given_settings(options, settings))


@locks_output("out")  # one run per output directory
def _train(data: str | os.PathLike, out: str | os.PathLike, machine: TrainRun,
           options: dict[str, Any]) -> dict:
    device, threads, resume = machine.device, machine.threads, machine.resume
    rank, world, _, device_ = setup_processes(device, threads)
    if device_.type == "cpu":
        reuse_freed_memory()  # the trainer owns the process while it trains
    shards = open_shards(data)
    run = Path(out)
    ckpt = existing_checkpoint(run, resume)
    cfg = resolve_config(options, shards, ckpt)
    per_epoch = len(shards) // (cfg.batch_size * world)
    if per_epoch == 0:
        raise InputError(f"{data} holds {len(shards)} images, fewer than one batch of "
                         f"{cfg.batch_size} x {world} process(es); lower --batch-size")
    total = cfg.steps if cfg.steps is not None else math.ceil(cfg.epochs * per_epoch)
    models = build_models(cfg, device_, world)
    start = 0
    if ckpt is not None:
        check_same_data(ckpt, len(shards), data_checksum(shards), data)
        start = restore(models, ckpt, run / "checkpoints" / "last.pt")
    feed = BatchFeed(shards, device_, cfg.feed)
    writer = RunDir(run, cfg, shards, start, {
        "data": str(Path(data).resolve()), "data_rows": len(shards), "device": str(device_),
        "threads": torch.get_num_threads(),
        "world_size": world, "feed": feed.mode, "total_steps": total,
        "steps_per_epoch": per_epoch}) if rank == 0 else None
    log.info("training %d -> %d steps on %d images (%s, feed %s, %d process(es))",
             start, total, len(shards), device_, feed.mode, world)
    if rank == 0 and len(shards) < FEW_IMAGES:
        log.warning("only %d training images: a GAN needs thousands (the DCGAN paper used "
                    "3 million bedrooms); with this few expect blurred noise or copies of "
                    "the training images", len(shards))

    amp = torch.autocast(device_.type, dtype=torch.bfloat16, enabled=cfg.amp)
    d_params = list(models.d_model.parameters())
    z_gen = torch.Generator(device=device_)
    stop = StopFlag()
    bar = progress(total=total, initial=start, unit="step", desc="train", disable=writer is None
                   or None)
    slowdown = RateWatch(torch.get_num_threads()) if device_.type == "cpu" else None
    step, images_seen, tick = start, 0, time.perf_counter()
    summary: dict[str, Any] = {"run": str(run), "start_step": start, "interrupted": 0}
    try:
        with stop.installed():
            while step < total:
                rows = batch_rows(step, len(shards), cfg.batch_size, rank, world, cfg.seed)
                next_rows = (batch_rows(step + 1, len(shards), cfg.batch_size, rank, world,
                                        cfg.seed) if step + 1 < total else None)
                real = to_model_input(feed.get(rows, next_rows))
                z_gen.manual_seed(step_seed(cfg.seed, step, rank))
                z = draw_z(cfg.batch_size, cfg.nz, cfg.z_dist, z_gen, device_)
                stats = train_step(models.g, models.d, models.d_frozen, d_params,
                                   models.opt_g, models.opt_d, real, z, amp)
                step += 1
                images_seen += cfg.batch_size * world
                bar.update(1)
                last = step == total
                evaluate = writer is not None and (step % cfg.eval_every == 0 or last)

                if step % cfg.log_every == 0 or last or evaluate:
                    values = stats.tolist()  # the one host sync per log interval
                    entry = {"step": step, "loss_D": values[0], "loss_G": values[1],
                             "D_x": values[2], "D_G_z": values[3],
                             "images_per_s": images_seen / (time.perf_counter() - tick)}
                    if evaluate:
                        with _doing(bar, "train: evaluating"):
                            entry.update(writer.evaluate(models.g_model))
                    images_seen, tick = 0, time.perf_counter()
                    if writer is not None:
                        writer.log(entry)
                        if slowdown is not None and (warning := slowdown(entry["images_per_s"])):
                            log.warning(warning)
                        bar.set_postfix(loss_D=f"{values[0]:.3f}", loss_G=f"{values[1]:.3f}")
                # under DDP the ranks agree on stopping at log steps (it costs a sync)
                stopping = (any_rank(stop.signum, world, device_)
                            if world == 1 or step % cfg.log_every == 0 else 0)
                if writer is not None and (step % cfg.sample_every == 0 or last or stopping):
                    writer.samples(step, models.g_model)
                keep = cfg.keep_every and step % cfg.keep_every == 0
                if writer is not None and (step % cfg.ckpt_every == 0 or keep or last
                                           or stopping):
                    with _doing(bar, "train: writing checkpoint"):
                        writer.checkpoint(step, checkpoint_state(step, cfg, shards, models))
                if stopping:
                    summary["interrupted"] = stopping
                    break
    finally:
        bar.close()
        feed.close()
        if world > 1:
            torch.distributed.destroy_process_group()

    history = writer.history if writer is not None else []
    summary.update({"step": step, "total_steps": total, "last": history[-1] if history else None,
                    "checkpoint": str(run / "checkpoints" / "last.pt")})
    if writer is not None:
        write_json(run / "train_report.json", summary)
    return summary
