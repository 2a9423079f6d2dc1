"""The run directory rank 0 writes: config.json, metrics.jsonl, samples/, progression.png,
loss.png and checkpoints/."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from dcgan_data.core.errors import InputError
from dcgan_data.core.files import atomic_write_text
from dcgan_data.core.images import contact_sheet, decode_image, save_png
from dcgan_data.core.plots import plot_losses
from dcgan_data.core.shards import ShardSet
from dcgan_data.train.checkpoint import load_checkpoint, save_checkpoint
from dcgan_data.train.model import draw_z, generate
from dcgan_data.train.quality import Evaluator, InceptionSpace
from dcgan_data.train.report import RunConfig


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

    def __init__(self, run: Path, config: RunConfig, shards: ShardSet, start: int):
        cfg = config.settings
        self.run, self.cfg, self.shards = run, cfg, shards
        # loaded first: a missing or wrong file stops the run before it writes anything
        self.inception = (InceptionSpace(cfg.inception_weights, config.device)
                          if cfg.inception_weights else None)
        self.metrics_path = run / "metrics.jsonl"
        self.history = read_metrics(self.metrics_path, start)  # drop lines past the checkpoint
        atomic_write_text(self.metrics_path, "".join(json.dumps(m) + "\n" for m in self.history))
        config.write(run / "config.json")
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

