"""Train the paper's DCGAN straight from a shard directory, on CPU, one GPU or many.

    dcgan-data train shards/ -o runs/bedrooms --steps 20000
    dcgan-data train shards/ -o runs/bedrooms --resume          # continue from last.pt
    torchrun --nproc-per-node 8 -m dcgan_data train shards/ -o runs/bedrooms   # DDP

Under torchrun each process drives one GPU (cuda:LOCAL_RANK; gloo on CPU) with its own batch
of --batch-size images, so the effective batch is N times larger as usual with DDP. DDP
averages the gradients; BatchNorm statistics stay per process (per batch, as in the paper).
Only rank 0 writes the run directory. Ctrl-C or SIGTERM (torchrun forwards both) makes every
rank stop after the same step (under DDP the next --log-every step); rank 0 writes
checkpoints/last.pt first.

Data: the uint8 shards are never decoded per step. On CUDA the whole dataset is copied into
GPU memory when it fits (--feed memory) and batches are gathered there; otherwise (--feed
stream, and always on CPU by default) each batch is gathered from the memory-mapped shards one
step ahead in a background thread, through pinned memory on CUDA. Pixels become floats in
[-1, 1] on the device. The batch of step s and the z of step s are functions of (seed, step,
rank) alone, so a resumed run sees exactly the batches and noise the uninterrupted run would.

One step, as in the paper (Adam 2e-4, beta1 0.5, batch 128, BCE on D's logit):
  D: one forward on the real batch and one on G(z) (separate batches, so separate BatchNorm
     statistics), loss = BCE(D(x), 1) + BCE(D(G(z)), 0), one Adam step.
  G: the updated D on the same G(z), non-saturating loss BCE(D(G(z)), 1), one Adam step;
     D's weights are frozen for this backward, so no gradient for them is computed.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import logging
import math
import os
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dcgan_data.devices import resolve_device
from dcgan_data.errors import InputError
from dcgan_data.files import atomic_path, atomic_write_text, locks_output, progress, write_json
from dcgan_data.images import contact_sheet, save_png
from dcgan_data.model import SIZES, build
from dcgan_data.plots import plot_losses
from dcgan_data.shards import ShardSet

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "dcgan-data-checkpoint"
ARCHITECTURE = ("size", "nz", "ngf", "ndf")  # a checkpoint only loads into the same ones


@dataclass
class TrainConfig:
    size: int = 64  # image side; must match the shards
    nz: int = 100
    ngf: int = 128  # G's last hidden layer width; 8*ngf channels at 4x4 for size 64
    ndf: int = 128
    batch_size: int = 128  # per process
    lr: float = 2e-4
    beta1: float = 0.5
    z_dist: str = "uniform"  # uniform in [-1, 1] as in the paper, or "normal"
    steps: int | None = None  # total steps; when None, --epochs decides
    epochs: float = 5.0
    seed: int = 0
    amp: bool = False  # bf16 autocast (CUDA; also on CPUs with bf16 units)
    compile: bool = False  # torch.compile G and D
    feed: str = "auto"  # memory | stream | auto (memory on CUDA when it fits, else stream)
    log_every: int = 10
    sample_every: int = 500
    ckpt_every: int = 1000
    keep_every: int = 0  # also keep checkpoints/step_NNNNNN.pt every this many steps
    num_samples: int = 64  # images in each samples/step_NNNNNN.png, from one fixed z


# --------------------------------------------------------------------------------------------
# set-up: processes, device, data, configuration


def setup_processes(device_name: str) -> tuple[int, int, int, torch.device]:
    """(rank, world_size, local_rank, device); joins the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device_name = resolve_device(device_name)
    if device_name == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once
    else:
        device = torch.device("cpu")
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, (cores or 1) // local_world))  # every core, shared out
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, local_rank, device


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


def resolve_config(options: dict[str, Any], shards: ShardSet,
                   checkpoint: dict | None) -> TrainConfig:
    """Defaults, then the checkpoint's settings when resuming, then the options given."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(options) - known
    if unknown:
        raise TypeError(f"unknown training options: {sorted(unknown)}")
    base = dataclasses.asdict(TrainConfig(size=shards.shape[0]))
    if checkpoint is not None:
        saved = checkpoint["config"]
        for key in ARCHITECTURE:
            if key in options and options[key] != saved[key]:
                raise InputError(f"--resume: the run was trained with {key}={saved[key]}, "
                                 f"not {key}={options[key]}; drop the option or use a new -o")
        base.update({k: v for k, v in saved.items() if k in known})
    if "steps" in options:
        base["epochs"] = None
    elif "epochs" in options:
        base["steps"] = None  # --epochs on resume replaces the run's --steps
    base.update(options)
    cfg = TrainConfig(**base)
    if cfg.size != shards.shape[0]:
        raise InputError(f"--size {cfg.size}, but {shards.path} holds {shards.shape[0]}x"
                         f"{shards.shape[1]} images; re-ingest at --size {cfg.size} or drop it")
    if cfg.z_dist not in ("uniform", "normal"):
        raise InputError(f"--z-dist {cfg.z_dist}: choose uniform or normal")
    if cfg.feed not in ("auto", "memory", "stream"):
        raise InputError(f"--feed {cfg.feed}: choose auto, memory or stream")
    if cfg.batch_size < 2:
        raise InputError("--batch-size must be at least 2 (BatchNorm needs a batch)")
    if cfg.steps is None and (cfg.epochs is None or cfg.epochs <= 0):
        raise InputError("give --steps or a positive --epochs")
    return cfg


# --------------------------------------------------------------------------------------------
# data: which rows each step trains on, and getting them onto the device


def batch_rows(step: int, rows: int, batch: int, rank: int, world: int, seed: int) -> np.ndarray:
    """Row indices of this rank's batch at `step`: a fresh permutation every epoch, the last
    partial batch dropped, each rank its own slice. A pure function, hence exact resumes."""
    per_epoch = rows // (batch * world)
    epoch, k = divmod(step, per_epoch)
    order = _epoch_order(rows, seed, epoch)
    start = (k * world + rank) * batch
    return np.sort(order[start : start + batch])  # sorted: reads walk the shards forwards


_orders: dict[tuple[int, int, int], np.ndarray] = {}


def _epoch_order(rows: int, seed: int, epoch: int) -> np.ndarray:
    key = (rows, seed, epoch)
    if key not in _orders:
        _orders.clear()  # one epoch's order at a time
        _orders[key] = np.random.default_rng([seed, epoch]).permutation(rows)
    return _orders[key]


class BatchFeed:
    """uint8 batches (B, H, W, 3) on the device, gathered by global row index.

    memory: the whole dataset copied once into device memory; batches are gathered there.
    stream: rows gathered from the memory-mapped shards (page cache) one step ahead in a
    thread, into pinned memory when the device is a GPU, then copied asynchronously.
    """

    def __init__(self, shards: ShardSet, device: torch.device, mode: str):
        self.shards, self.device = shards, device
        if mode == "auto":
            mode = "memory" if device.type == "cuda" and _fits_on_gpu(shards, device) else "stream"
        self.mode = mode
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="batch-feed")
        self.ahead: tuple[np.ndarray, Any] | None = None
        self.data = None
        if mode == "memory":
            self.data = torch.empty((len(shards), *shards.shape), dtype=torch.uint8, device=device)
            chunk = 8192
            for i, array in progress(shards.iter_shards(), total=shards.num_shards,
                                     desc="loading shards", unit="shard"):
                start = int(shards.offsets[i])
                for j in range(0, len(array), chunk):
                    rows = torch.from_numpy(np.array(array[j : j + chunk]))
                    self.data[start + j : start + j + len(rows)].copy_(rows)

    def _gather(self, rows: np.ndarray) -> torch.Tensor:
        batch = torch.from_numpy(self.shards.load(rows))
        return batch.pin_memory() if self.device.type == "cuda" else batch

    def get(self, rows: np.ndarray, next_rows: np.ndarray | None = None) -> torch.Tensor:
        if self.data is not None:
            return self.data[torch.from_numpy(rows).to(self.device)]
        if self.ahead is not None and np.array_equal(self.ahead[0], rows):
            batch = self.ahead[1].result()
        else:
            batch = self._gather(rows)
        self.ahead = None
        if next_rows is not None:
            self.ahead = (next_rows, self.pool.submit(self._gather, next_rows))
        return batch.to(self.device, non_blocking=True)

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def _fits_on_gpu(shards: ShardSet, device: torch.device) -> bool:
    free, _ = torch.cuda.mem_get_info(device)
    need = len(shards) * int(np.prod(shards.shape))
    return need < 0.6 * free  # leave room for the models, activations and the allocator


def to_model_input(batch: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1]. The permuted view is already channels_last."""
    x = batch.permute(0, 3, 1, 2).float()
    return x.mul_(2.0 / 255.0).sub_(1.0).contiguous(memory_format=torch.channels_last)


def draw_z(n: int, nz: int, dist: str, generator: torch.Generator,
           device: torch.device) -> torch.Tensor:
    if dist == "normal":
        return torch.randn(n, nz, generator=generator, device=device)
    return torch.rand(n, nz, generator=generator, device=device).mul_(2).sub_(1)


def step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def to_uint8_images(x: torch.Tensor) -> np.ndarray:
    """G's output (N, 3, H, W) in [-1, 1] -> uint8 RGB (N, H, W, 3) on the CPU."""
    x = (x.float() + 1.0).mul_(127.5).round_().clamp_(0, 255)
    return x.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


# --------------------------------------------------------------------------------------------
# one training step


def reuse_freed_memory() -> bool:
    """Keep freed tensor memory in the process for reuse (Linux glibc; elsewhere a no-op).

    glibc serves every allocation above 32 MB with a fresh mmap and unmaps it when freed, and a
    DCGAN step on CPU allocates such blocks all the time (one 128 x 64 x 32 x 32 activation is
    33.5 MB). Each one then pays a page fault per 4 KB on first touch, which made element-wise
    ops (LeakyReLU backward, BatchNorm) 3-5x slower than memory allows. With mmap off and a high
    trim threshold, freed blocks go back to the heap and the next step reuses them. The cost:
    the process keeps its peak memory until it exits. Returns whether it was applied.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))


def make_adam(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
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
# checkpoints


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """A checkpoint written by this trainer, or an InputError saying what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        first_line = (str(exc).splitlines() or [""])[0][:120]
        raise InputError(f"{path}: unreadable checkpoint ({type(exc).__name__}: "
                         f"{first_line})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not a dcgan-data checkpoint")
    missing = {"step", "config", "data_rows", "G", "D", "opt_G", "opt_D", "rng"} - set(ckpt)
    if missing:
        raise InputError(f"{path}: incomplete checkpoint (no {', '.join(sorted(missing))})")
    return ckpt


def rng_states() -> dict:
    states = {"torch": torch.get_rng_state(), "numpy": _numpy_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np_state = dict(states["numpy"])
    np_state["state"] = {"key": np.array(np_state["state"]["key"], np.uint32),
                         "pos": np_state["state"]["pos"]}
    np.random.set_state(np_state)
    random.setstate(states["python"])
    cuda = states.get("cuda", [])
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)  # (a box with other GPUs keeps its own states)


def _numpy_state() -> dict:
    state = np.random.get_state(legacy=False)  # plain values, so weights_only loading works
    state["state"] = {"key": state["state"]["key"].tolist(), "pos": int(state["state"]["pos"])}
    return state


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
    g.eval()
    with torch.no_grad():
        images = to_uint8_images(g(z))
    g.train()
    save_png(path, contact_sheet(images))


# --------------------------------------------------------------------------------------------
# the run


class StopFlag:
    """Set by SIGINT/SIGTERM; the loop checks it after each step and checkpoints first."""

    def __init__(self):
        self.signum = 0

    def __call__(self, signum, frame):
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, keep the last checkpoint
        self.signum = signum

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self  # only the main thread may set handlers; signals then act as usual
            return
        previous = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


@locks_output("out")  # one run per output directory
def train(data: str | os.PathLike, out: str | os.PathLike, device: str = "auto",
          resume: bool = False, **options: Any) -> dict:
    """Train on the shards in `data`, writing the run to `out`. Returns the run's summary.

    `options` are TrainConfig fields the user gave; the rest come from the defaults or, with
    `resume`, from the run's checkpoint. The summary says `interrupted` (the signal number)
    when SIGINT/SIGTERM stopped the run; last.pt then holds the step it stopped at.
    """
    rank, world, _, device_ = setup_processes(device)
    if device_.type == "cpu":
        reuse_freed_memory()  # the trainer owns the process while it trains
    shards = open_shards(data)
    run = Path(out)
    last = run / "checkpoints" / "last.pt"
    checkpoint = None
    if resume and last.exists():
        checkpoint = load_checkpoint(last)  # on the CPU: RNG states must stay there
    elif last.exists():
        raise InputError(f"{run} already holds a run; pass --resume to continue it "
                         "or choose another -o")
    cfg = resolve_config(options, shards, checkpoint)
    per_epoch = len(shards) // (cfg.batch_size * world)
    if per_epoch == 0:
        raise InputError(f"{data} holds {len(shards)} images, fewer than one batch of "
                         f"{cfg.batch_size} x {world} process(es); lower --batch-size")
    total = cfg.steps if cfg.steps is not None else math.ceil(cfg.epochs * per_epoch)
    is_writer = rank == 0

    # models: the paper's init from the seeded global RNG, identical on every rank
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    g_model, d_model = build(cfg.size, cfg.nz, cfg.ngf, cfg.ndf)
    g_model = g_model.to(device_, memory_format=torch.channels_last)
    d_model = d_model.to(device_, memory_format=torch.channels_last)
    opt_g, opt_d = make_adam(g_model, cfg), make_adam(d_model, cfg)
    start = 0
    if checkpoint is not None:
        try:
            g_model.load_state_dict(checkpoint["G"])
            d_model.load_state_dict(checkpoint["D"])
            opt_g.load_state_dict(checkpoint["opt_G"])
            opt_d.load_state_dict(checkpoint["opt_D"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise InputError(f"{last}: does not fit this model ({str(exc)[:120]})") from None
        if checkpoint["data_rows"] != len(shards):
            raise InputError(f"--resume: the run was trained on {checkpoint['data_rows']} "
                             f"images, {data} holds {len(shards)}")
        set_rng_states(checkpoint["rng"])
        start = int(checkpoint["step"])

    # what the loop calls: DDP wrappers (gradient all-reduce), compiled if asked
    g, d, d_frozen = g_model, d_model, d_model
    if world > 1:
        ids = [device_.index] if device_.type == "cuda" else None
        g = nn.parallel.DistributedDataParallel(g_model, device_ids=ids)
        d = nn.parallel.DistributedDataParallel(d_model, device_ids=ids)
    if cfg.compile:
        g, d, d_frozen = torch.compile(g), torch.compile(d), torch.compile(d_model)
    amp = torch.autocast(device_.type, dtype=torch.bfloat16, enabled=cfg.amp)
    feed = BatchFeed(shards, device_, cfg.feed)
    z_gen = torch.Generator(device=device_)
    fixed_z = draw_z(cfg.num_samples, cfg.nz, cfg.z_dist,
                     torch.Generator().manual_seed(cfg.seed), torch.device("cpu")).to(device_)

    metrics_path = run / "metrics.jsonl"
    history: list[dict] = []
    if is_writer:
        history = read_metrics(metrics_path, start)
        atomic_write_text(metrics_path, "".join(json.dumps(m) + "\n" for m in history))
        write_json(run / "config.json", {
            **dataclasses.asdict(cfg), "data": str(Path(data).resolve()),
            "data_rows": len(shards), "device": str(device_), "world_size": world,
            "feed": feed.mode, "total_steps": total, "steps_per_epoch": per_epoch,
            "torch": torch.__version__})

    def checkpoint_state(step: int) -> dict:
        return {"format": CHECKPOINT_FORMAT, "version": 1, "step": step,
                "config": dataclasses.asdict(cfg), "data_rows": len(shards),
                "G": g_model.state_dict(), "D": d_model.state_dict(),
                "opt_G": opt_g.state_dict(), "opt_D": opt_d.state_dict(),
                "rng": rng_states()}

    def write_checkpoint(step: int) -> None:
        state = checkpoint_state(step)
        save_checkpoint(last, state)
        if cfg.keep_every and step % cfg.keep_every == 0:
            save_checkpoint(run / "checkpoints" / f"step_{step:06d}.pt", state)

    stop = StopFlag()
    d_params = list(d_model.parameters())
    log.info("training %d -> %d steps on %d images (%s, feed %s, %d process(es))",
             start, total, len(shards), device_, feed.mode, world)
    bar = progress(total=total, initial=start, unit="step", desc="train", disable=not is_writer
                   or None)
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
                stats = train_step(g, d, d_frozen, d_params, opt_g, opt_d, real, z, amp)
                step += 1
                images_seen += cfg.batch_size * world
                bar.update(1)

                if step % cfg.log_every == 0 or step == total:
                    values = stats.tolist()  # the one host sync per log interval
                    now = time.perf_counter()
                    entry = {"step": step, "loss_D": values[0], "loss_G": values[1],
                             "D_x": values[2], "D_G_z": values[3],
                             "images_per_s": images_seen / (now - tick)}
                    images_seen, tick = 0, now
                    if is_writer:
                        history.append(entry)
                        with open(metrics_path, "a", encoding="utf-8") as f:
                            f.write(json.dumps(entry) + "\n")
                        bar.set_postfix(loss_D=f"{values[0]:.3f}", loss_G=f"{values[1]:.3f}")
                if is_writer and (step % cfg.sample_every == 0 or step == total):
                    write_samples(g_model, fixed_z, run / "samples" / f"step_{step:06d}.png")
                    plot_losses(history, run / "loss.png")
                # under DDP the ranks agree on stopping at log steps (it costs a sync)
                stopping = (_any_rank(stop.signum, world, device_)
                            if world == 1 or step % cfg.log_every == 0 else 0)
                keep = cfg.keep_every and step % cfg.keep_every == 0
                if is_writer and (step % cfg.ckpt_every == 0 or keep or step == total or stopping):
                    write_checkpoint(step)
                if stopping:
                    summary["interrupted"] = stopping
                    break
    finally:
        bar.close()
        feed.close()
        if world > 1:
            torch.distributed.destroy_process_group()

    summary.update({"step": step, "total_steps": total, "last": history[-1] if history else None,
                    "checkpoint": str(last)})
    if is_writer:
        plot_losses(history, run / "loss.png")
        write_json(run / "train_report.json", summary)
    return summary


def _any_rank(signum: int, world: int, device: torch.device) -> int:
    """The stop signal if any rank got one, so that every rank stops after the same step."""
    if world == 1:
        return signum
    flag = torch.tensor([signum], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return int(flag.item())
