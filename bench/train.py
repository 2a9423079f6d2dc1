"""Training speed of `dcgan-data train` against a plain reference loop, and the data-feed cost.

    python bench/train.py [--rounds 3] [--steps 2]

Same architecture (dcgan_data.train.model at size 64, ngf = ndf = 64), batch 128, fp32, all cores.
Each variant runs in a process of its own (so each has the memory allocator its program would
have), and the variants take turns step by step so that load from other processes on the
machine hits them alike:
  reference  a plain loop in the style of the widely used PyTorch DCGAN example: eager, NCHW,
             D ends in a Sigmoid and BCELoss, three D forwards per step (real; fake.detach();
             fake again for G), D's weight gradients computed in G's backward too, z ~ N(0,1).
             Its data is handed over as float tensors already in memory (no decoding), so the
             ratio is the training loop alone.
  reference+alloc  the reference in a process with the trainer's allocator setting
             (processes.reuse_freed_memory), to show how much of the gap that setting is.
  ours       the trainer's loop body in a process set up as `dcgan-data train` sets up its
             own (processes.reuse_freed_memory; feed.BatchFeed over memory-mapped shards,
             to_model_input, train_step): channels_last, BCE with logits, D frozen for G's
             backward, fused Adam.
  ours-plain ours with torch's own layers where the model has its matrix-product ones
             (dcgan_data.train.cpu_layers): what those layers gain.
  ours-mem   the same train_step on one float batch already in memory (no feed at all):
             ours-mem / ours step time is the data-feed overhead (1.0 = free).
  ours-amp   ours with --amp (bf16 autocast; this CPU has AVX512-BF16), for reference.
Then one end-to-end `trainer.train` run on the shards, whose metrics.jsonl images/s should
agree with `ours`, and the physical limit: the convolution FLOPs of our step divided by the
best step time, against the speed of a large fp32 matrix product on the same cores.

With --example PATH (pytorch/examples' dcgan/main.py, from a clone of that repository) the two
programs also run as users run them, each a fresh process, taking turns: the example with
`--dataset folder` on the same images exported as PNG files (its ImageFolder + DataLoader with
its default 2 workers, batch 128, ngf = ndf = 64, --niter epochs), and `dcgan-data train` on
the shards for the same number of steps. torchvision does not import beside torch 2.13.0, so
the example runs on tools/torchvision_shim (ImageFolder, the four transforms and save_image
written on PIL, as torchvision does them for 8-bit RGB files); the example's own file is run
unchanged. Each program runs for several epoch counts (by default 1, 3 and 25, the example's
default --niter): the difference between the shortest and the longest gives its wall and CPU
seconds per step (the whole process tree: DataLoader workers included) with the start-up and
end costs (imports, model set-up, final checkpoint and evaluation) taken out; both are
reported, and the end-to-end ratio at every count but the shortest.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dcgan_data.core import processes
from dcgan_data.core.images import save_png
from dcgan_data.core.shards import ShardSet
from dcgan_data.testing.photos import random_crops, write_shards
from dcgan_data.train import feed
from dcgan_data.train import stage as trainer
from dcgan_data.train.cpu_layers import Conv4x4, ConvTranspose4x4, Projection, Readout
from dcgan_data.train.model import build, draw_z, to_model_input
from dcgan_data.train.options import TrainOptions
from dcgan_data.train.step import make_adam, step_seed, train_step

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "train"
SIZE, WIDTH, BATCH, NZ = 64, 64, 128, 100


def make_shards(path: Path, count: int) -> ShardSet:
    """count random 64px crops of the sample photos, in shards of 1024 rows."""
    images = random_crops(count, SIZE, lambda rng, h, w: int(rng.integers(min(h, w) // 4,
                                                                          min(h, w) + 1)))
    shutil.rmtree(path, ignore_errors=True)
    write_shards(path, images, [f"crop{i}" for i in range(count)], rows_per_shard=1024,
                 params={"bench": True})
    return ShardSet(path)


def plain_layers(model: nn.Module) -> nn.Module:
    """`model` with its matrix-product layers (dcgan_data.train.cpu_layers) swapped for torch's
    own, as the example has them; same weights."""
    for name, layer in model.named_children():
        if isinstance(layer, (Conv4x4, ConvTranspose4x4, Projection, Readout)):
            kind = nn.ConvTranspose2d if isinstance(layer, nn.ConvTranspose2d) else nn.Conv2d
            plain = kind(layer.in_channels, layer.out_channels, 4, layer.stride,
                         layer.padding, bias=False)
            plain.load_state_dict(layer.state_dict())
            setattr(model, name, plain)
        else:
            plain_layers(layer)
    return model


class Reference:
    """The example-style loop: one step = D on real, D on fake.detach(), D on fake for G."""

    def __init__(self, data: torch.Tensor):
        torch.manual_seed(0)
        g, d = build(SIZE, NZ, WIDTH, WIDTH)
        self.g, d = plain_layers(g), plain_layers(d)
        self.d = nn.Sequential(d, nn.Sigmoid())
        self.criterion = nn.BCELoss()
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.data = data

    def step(self, i: int) -> None:
        real = self.data[torch.randint(len(self.data), (BATCH,))]
        label = torch.full((BATCH,), 1.0)
        self.d.zero_grad()
        err_real = self.criterion(self.d(real).view(-1), label)
        err_real.backward()
        fake = self.g(torch.randn(BATCH, NZ, 1, 1))
        label.fill_(0.0)
        err_fake = self.criterion(self.d(fake.detach()).view(-1), label)
        err_fake.backward()
        self.opt_d.step()
        self.g.zero_grad()
        label.fill_(1.0)
        err_g = self.criterion(self.d(fake).view(-1), label)
        err_g.backward()
        self.opt_g.step()


class Ours:
    """The trainer's loop body, fed from the shards (or from one batch already in memory)."""

    def __init__(self, shards: ShardSet, amp: bool = False, in_memory: bool = False,
                 plain: bool = False):
        torch.manual_seed(0)
        g, d = build(SIZE, NZ, WIDTH, WIDTH)
        if plain:
            g, d = plain_layers(g), plain_layers(d)
        self.g = g.to(memory_format=torch.channels_last)
        self.d = d.to(memory_format=torch.channels_last)
        self.d_params = list(self.d.parameters())
        cfg = TrainOptions()
        self.opt_g, self.opt_d = make_adam(self.g, cfg), make_adam(self.d, cfg)
        self.amp = torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp)
        self.shards = shards
        self.feed = feed.BatchFeed(shards, torch.device("cpu"), "stream")
        self.z_gen = torch.Generator()
        self.feed_seconds = 0.0  # main-thread time spent getting batches
        self.fixed = (to_model_input(torch.from_numpy(shards.load(np.arange(BATCH))))
                      if in_memory else None)

    def step(self, i: int) -> None:
        if self.fixed is not None:
            real = self.fixed
        else:
            rows = feed.batch_rows(i, len(self.shards), BATCH, 0, 1, seed=0)
            next_rows = feed.batch_rows(i + 1, len(self.shards), BATCH, 0, 1, seed=0)
            start = time.perf_counter()
            real = to_model_input(self.feed.get(rows, next_rows))
            self.feed_seconds += time.perf_counter() - start
        self.z_gen.manual_seed(step_seed(0, i, 0))
        z = draw_z(BATCH, NZ, "uniform", self.z_gen, torch.device("cpu"))
        train_step(self.g, self.d, self.d, self.d_params, self.opt_g, self.opt_d, real,
                           z, self.amp)


def conv_macs(model: nn.Module, x: torch.Tensor) -> list[int]:
    """Multiply-adds of each convolution of `model` in one forward pass on x, in order."""
    macs: list[int] = []

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        k = module.kernel_size[0] * module.kernel_size[1]
        if isinstance(module, nn.ConvTranspose2d):  # every input value is spread over C_out k^2
            macs.append(inputs[0].numel() * module.out_channels * k)
        else:
            macs.append(output.numel() * module.in_channels * k)

    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return macs


def step_flops() -> float:
    """Convolution FLOPs of one of our steps: G forward; D forward on real, fake, fake again;
    D's backward on real and on fake (weight and input gradients, none for the data); D's
    input gradients only in G's backward; G's weight and input gradients (none for z). A
    backward pass per gradient costs what the forward costs."""
    g, d = build(SIZE, NZ, WIDTH, WIDTH)
    g_macs = conv_macs(g, torch.zeros(BATCH, NZ))
    d_macs = conv_macs(d, torch.zeros(BATCH, 3, SIZE, SIZE))
    g_all, d_all = sum(g_macs), sum(d_macs)
    macs = (g_all + 3 * d_all + 2 * (2 * d_all - d_macs[0]) + d_all + (2 * g_all - g_macs[0]))
    return 2.0 * macs


def matmul_flops_per_s(side: int = 4096, repeats: int = 5) -> float:
    """The machine's fp32 matrix-product speed (best of `repeats`), the practical bound for
    convolution-bound training."""
    a, b = torch.randn(side, side), torch.randn(side, side)
    best = float("inf")
    for _ in range(repeats + 1):  # the first warms up
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2.0 * side**3 / best


def make_variant(name: str, shards: ShardSet) -> Reference | Ours:
    if name.startswith("reference"):
        return Reference(to_model_input(torch.from_numpy(shards.load())).contiguous())
    return Ours(shards, amp=name == "ours-amp", in_memory=name == "ours-mem",
                plain=name == "ours-plain")


def worker(name: str, path: str, threads: int, conn: Connection) -> None:
    """One variant in its own process: a step per message, answering (wall s, CPU s)."""
    torch.set_num_threads(threads)
    if name != "reference":  # the reference runs as the example does, with the default
        processes.reuse_freed_memory()
    variant = make_variant(name, ShardSet(path))
    variant.step(0)  # warm-up: allocator, oneDNN kernel choice
    if isinstance(variant, Ours):
        variant.feed_seconds = 0.0
    conn.send("ready")
    while (step := conn.recv()) is not None:
        start, cpu_start = time.perf_counter(), time.process_time()
        variant.step(step)
        conn.send((time.perf_counter() - start, time.process_time() - cpu_start,
                   getattr(variant, "feed_seconds", 0.0)))


def timed(command: list[str], log: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run a program to its end: (wall seconds, CPU seconds of it and every process it
    waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(log, "w") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def example_vs_ours(example: Path, images: int, epochs: tuple[int, ...], rounds: int) -> dict:
    """pytorch/examples' dcgan/main.py against `dcgan-data train`, both as users run them."""
    shards = make_shards(OUT / "example_shards", images)
    folder = OUT / "example_png" / "all"  # ImageFolder wants a class folder
    shutil.rmtree(folder.parent, ignore_errors=True)
    folder.mkdir(parents=True)
    for row, image in enumerate(shards.load()):
        save_png(folder / f"{row:06d}.png", image)
    per_epoch = images // BATCH
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tools" / "torchvision_shim")}
    tool = str(Path(sys.executable).with_name("dcgan-data"))
    # the first run of ours trains the quality figure's hash model and caches the real side
    # beside the shards once; every measured run then pays only its own evaluation
    shutil.rmtree(OUT / "ours_warm", ignore_errors=True)
    timed([tool, "train", str(shards.path), "-o", str(OUT / "ours_warm"), "--steps", "1",
           "--ngf", str(WIDTH), "--ndf", str(WIDTH), "--batch-size", str(BATCH)],
          OUT / "ours_warm.log")
    results: dict[str, dict[int, list[tuple[float, float]]]] = {
        "example": {e: [] for e in epochs}, "ours": {e: [] for e in epochs}}
    for r in range(rounds):
        for n in epochs:
            run = OUT / f"example_run_{n}"
            shutil.rmtree(run, ignore_errors=True)
            results["example"][n].append(timed(
                [sys.executable, str(example), "--dataset", "folder", "--dataroot",
                 str(folder.parent), "--imageSize", str(SIZE), "--batchSize", str(BATCH),
                 "--ngf", str(WIDTH), "--ndf", str(WIDTH), "--niter", str(n),
                 "--manualSeed", "0", "--outf", str(run)], run.with_suffix(".log"), env))
            run = OUT / f"ours_run_{n}"
            shutil.rmtree(run, ignore_errors=True)
            results["ours"][n].append(timed(
                [tool, "train", str(shards.path), "-o", str(run), "--steps",
                 str(n * per_epoch), "--ngf", str(WIDTH), "--ndf", str(WIDTH),
                 "--batch-size", str(BATCH)], run.with_suffix(".log")))
        print(f"example round {r + 1}/{rounds}: " + ", ".join(
            f"{name} {n * per_epoch} steps {runs[n][-1][0]:.0f} s" for name, runs in
            results.items() for n in epochs), flush=True)
    short, long = epochs[0], epochs[-1]
    steps = (long - short) * per_epoch
    figures: dict = {"images": images, "steps": [n * per_epoch for n in epochs],
                     "example": str(example)}
    for name, runs in results.items():
        per_step = [((b[0] - a[0]) / steps, (b[1] - a[1]) / steps)
                    for a, b in zip(runs[short], runs[long], strict=True)]
        figures[name] = {
            **{f"end_to_end_s_{n * per_epoch}_steps": [round(w, 1) for w, _ in runs[n]]
               for n in epochs[1:]},
            **{f"cpu_s_{n * per_epoch}_steps": [round(c, 1) for _, c in runs[n]]
               for n in epochs[1:]},
            "wall_s_per_step": [round(w, 2) for w, _ in per_step],
            "cpu_s_per_step": [round(c, 2) for _, c in per_step],
            "fixed_wall_s": [round(a[0] - short * per_epoch * p[0], 1)
                             for a, p in zip(runs[short], per_step, strict=True)]}
    ratio = lambda key: [round(e / o, 2) for e, o in zip(  # noqa: E731
        figures["example"][key], figures["ours"][key], strict=True)]
    for n in epochs[1:]:
        figures[f"speedup_end_to_end_{n * per_epoch}_steps"] = ratio(
            f"end_to_end_s_{n * per_epoch}_steps")
        figures[f"speedup_cpu_end_to_end_{n * per_epoch}_steps"] = ratio(
            f"cpu_s_{n * per_epoch}_steps")
    figures["speedup_wall_per_step"] = ratio("wall_s_per_step")
    figures["speedup_cpu_per_step"] = ratio("cpu_s_per_step")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per variant per round")
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--example", type=Path, default=None,
                        help="pytorch/examples' dcgan/main.py: also run it against us")
    parser.add_argument("--example-images", type=int, default=1024)
    parser.add_argument("--example-epochs", type=int, nargs="+", default=(1, 3, 25),
                        help="epoch counts to run each program for, shortest first (25: the "
                        "example's default --niter)")
    parser.add_argument("--example-rounds", type=int, default=2)
    parser.add_argument("--example-only", action="store_true",
                        help="skip the step-by-step variants")
    args = parser.parse_args()
    if args.example is not None:
        if not args.example.is_file():
            sys.exit(f"--example {args.example}: no such file; clone pytorch/examples and "
                     "pass its dcgan/main.py")
        OUT.mkdir(parents=True, exist_ok=True)
        load_before = os.getloadavg()
        result = {"load_average_before": load_before, **example_vs_ours(
            args.example, args.example_images, tuple(args.example_epochs),
            args.example_rounds), "load_average_after": os.getloadavg()}
        print(json.dumps(result, indent=2))
        (OUT / "example_result.json").write_text(json.dumps(result, indent=2) + "\n")
        if args.example_only:
            return
    else:
        print("pytorch/examples dcgan/main.py: not run (pass --example PATH/dcgan/main.py)")
    cores = len(os.sched_getaffinity(0))
    load_before = os.getloadavg()[0]  # other processes on the machine skew every figure
    torch.set_num_threads(cores)
    make_shards(OUT / "shards", args.images)

    names = ["reference", "reference+alloc", "ours", "ours-plain", "ours-mem", "ours-amp"]
    context = multiprocessing.get_context("spawn")
    pipes, processes = {}, []
    for name in names:
        ours, theirs = context.Pipe()
        process = context.Process(target=worker, args=(name, str(OUT / "shards"), cores, theirs))
        process.start()
        pipes[name] = ours
        processes.append(process)
        assert ours.recv() == "ready"  # one at a time: start-ups do not overlap the timing
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu_times: dict[str, list[float]] = {name: [] for name in names}
    feed_seconds = 0.0
    step = 1
    for r in range(args.rounds):
        for _ in range(args.steps):  # one step of each in turn: load changes hit all alike
            for name in names:
                pipes[name].send(step)
                wall, cpu, feed = pipes[name].recv()
                times[name].append(wall)
                cpu_times[name].append(cpu)
                feed_seconds = feed if name == "ours" else feed_seconds
            step += 1
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{n} {statistics.median(t):.2f} s/step" for n, t in times.items()), flush=True)
    for name in names:
        pipes[name].send(None)
    for process in processes:
        process.join()
    matmul_rate = matmul_flops_per_s()  # alone, after the variants: the physical limit

    # the real thing, end to end: trainer.train on the same shards
    run = OUT / "run"
    shutil.rmtree(run, ignore_errors=True)
    e2e_steps = args.rounds * args.steps + 2
    trainer.train(OUT / "shards", run, device="cpu", ngf=WIDTH, ndf=WIDTH, batch_size=BATCH,
                  steps=e2e_steps, log_every=1, sample_every=10_000, ckpt_every=10_000)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    e2e = max(m["images_per_s"] for m in lines[1:])

    # best step: other processes only ever slow a step down, so the fastest is the least
    # disturbed; the median is kept beside it
    per_s = {name: BATCH / min(t) for name, t in times.items()}
    median_per_s = {name: BATCH / statistics.median(t) for name, t in times.items()}
    per_cpu_s = {name: BATCH / min(t) for name, t in cpu_times.items()}
    result = {
        "cpu_threads": cores, "load_average_before_after": [load_before, os.getloadavg()[0]],
        "torch": torch.__version__, "batch": BATCH, "size": SIZE,
        "ngf_ndf": WIDTH, "images_per_s_best_step": {k: round(v, 1) for k, v in per_s.items()},
        "images_per_s_median_step": {k: round(v, 1) for k, v in median_per_s.items()},
        "images_per_cpu_s": {k: round(v, 1) for k, v in per_cpu_s.items()},
        "train_end_to_end_images_per_s": round(e2e, 1),
        "speedup_ours_vs_reference": round(per_s["ours"] / per_s["reference"], 2),
        "speedup_ours_vs_reference_alloc": round(per_s["ours"] / per_s["reference+alloc"], 2),
        "speedup_ours_vs_reference_median": round(median_per_s["ours"]
                                                  / median_per_s["reference"], 2),
        "speedup_end_to_end_vs_reference": round(e2e / per_s["reference"], 2),
        "speedup_amp_vs_reference": round(per_s["ours-amp"] / per_s["reference"], 2),
        "speedup_matmul_layers": round(per_s["ours"] / per_s["ours-plain"], 2),
        "feed_ratio_shards_vs_in_memory": round(per_s["ours"] / per_s["ours-mem"], 3),
        "feed_share_of_step": round(feed_seconds / sum(times["ours"]), 4),
        "step_conv_gflop": round(step_flops() / 1e9, 1),
        "ours_conv_gflop_per_s_best_step": round(step_flops() / min(times["ours"]) / 1e9, 1),
        "matmul_fp32_gflop_per_s": round(matmul_rate / 1e9, 1),
        "ours_vs_matmul_speed": round(step_flops() / min(times["ours"]) / matmul_rate, 2),
    }
    print(json.dumps(result, indent=2))
    (OUT / "result.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
