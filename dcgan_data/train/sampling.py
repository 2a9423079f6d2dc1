"""Images from a trained generator: a grid of samples, or latent walks (the paper's figure 4)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcgan_data.core.devices import resolve_device
from dcgan_data.core.errors import InputError
from dcgan_data.core.files import check_output
from dcgan_data.core.images import contact_sheet, save_png
from dcgan_data.train.checkpoint import load_networks
from dcgan_data.train.model import Generator, draw_z, generate
from dcgan_data.train.options import SampleOptions

# a grid is drawn whole in memory, then encoded as one PNG: bound its pixels (16,384 images
# at 64 px)
MAX_GRID_PIXELS = 2**26


def checkpoint_path(run: str | os.PathLike, checkpoint: str | None = None) -> Path:
    """RUN/checkpoints/last.pt, or the named checkpoint (a path, or a name in RUN/checkpoints)."""
    run = Path(run)
    if checkpoint is None:
        path = run / "checkpoints" / "last.pt"
        if not path.exists():
            raise InputError(f"{run}: no checkpoints/last.pt (is it a training run directory?)")
        return path
    if Path(checkpoint).exists():
        return Path(checkpoint)
    return run / "checkpoints" / checkpoint


def load_generator(path: str | os.PathLike, device: str = "cpu") -> tuple[Generator, dict]:
    """G from a checkpoint, in inference mode, and the run's config."""
    nets, ckpt = load_networks(path, ("G",))
    return nets["G"].to(device).eval(), ckpt["config"]


@torch.no_grad()
def sample_images(g: Generator, cfg: dict, n: int, seed: int = 0) -> np.ndarray:
    """n images (N, H, W, 3) uint8 from z drawn as in training, a bounded batch at a time."""
    z = draw_z(n, cfg["nz"], cfg["z_dist"], torch.Generator().manual_seed(seed),
               torch.device("cpu"))
    return generate(g, z)


@torch.no_grad()
def walk_images(g: Generator, cfg: dict, rows: int, frames: int = 10,
                seed: int = 0) -> np.ndarray:
    """rows latent walks, each `frames` images on the straight line between two random z."""
    gen = torch.Generator().manual_seed(seed)
    a = draw_z(rows, cfg["nz"], cfg["z_dist"], gen, torch.device("cpu"))
    b = draw_z(rows, cfg["nz"], cfg["z_dist"], gen, torch.device("cpu"))
    t = torch.linspace(0, 1, frames).view(1, frames, 1)
    z = (a[:, None] * (1 - t) + b[:, None] * t).reshape(rows * frames, cfg["nz"])
    return generate(g, z)


def write_grid(run: str | os.PathLike, out: str | os.PathLike,
               options: SampleOptions | None = None, device: str = "auto",
               **settings: Any) -> dict:
    """Write a PNG of `count` samples, or of `count` latent walks of `frames` steps (the
    settings: `options`, changed by any SampleOptions fields given as keywords); returns a
    summary."""
    options = (options or SampleOptions()).replace(**settings)
    check_output(out, directory=False, option="-o")
    device = resolve_device(device)
    path = checkpoint_path(run, options.checkpoint)
    g, cfg = load_generator(path, device)
    n = options.count
    images = n * (options.frames if options.interpolate else 1)
    if images * cfg["size"] ** 2 > MAX_GRID_PIXELS:
        raise InputError(f"-n {n}: {images:,} images of {cfg['size']} px do not fit one grid "
                         f"(at most {MAX_GRID_PIXELS // cfg['size'] ** 2:,} of this size)")
    if options.interpolate:
        sheet = contact_sheet(walk_images(g, cfg, n, options.frames, options.seed),
                              cols=options.frames)
    else:
        sheet = contact_sheet(sample_images(g, cfg, n, options.seed))
    save_png(out, sheet)
    return {"checkpoint": str(path), "out": str(out), "images": images, "size": cfg["size"]}
