"""Training checkpoints: the models, optimisers, RNG states and the data they were trained on.

A checkpoint is written whole or not at all (a temporary file, then a rename), so a run killed
mid-write, or one that finds the disk full, keeps its previous last.pt.
"""

from __future__ import annotations

import errno
import io
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcgan_data.core.errors import DcganDataError, InputError
from dcgan_data.core.files import atomic_path
from dcgan_data.train.model import SIZES, Discriminator, Generator

FORMAT = "dcgan-data-checkpoint"
REQUIRED = {"step", "config", "data_rows", "G", "D", "opt_G", "opt_D", "rng"}


def save_checkpoint(path: Path, state: dict) -> None:
    """Write `state` atomically; a full disk is a one-line error naming the device."""
    buffer = io.BytesIO()
    torch.save(state, buffer)  # serialised in memory, so a failed write is a plain OSError
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DcganDataError(
            f"no space left on {mount_point(path.parent)} writing {path} (step "
            f"{state.get('step')}); the previous checkpoint is kept: free some space and "
            "continue with --resume") from None


def mount_point(path: Path) -> str:
    """The mount point of the file system holding `path` (how users know a device)."""
    path = Path(os.path.abspath(path))
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return str(path)


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
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise InputError(f"{path}: not a dcgan-data checkpoint")
    missing = REQUIRED - set(ckpt)
    if missing:
        raise InputError(f"{path}: incomplete checkpoint (no {', '.join(sorted(missing))})")
    return ckpt


def model_config(ckpt: dict, path: str | os.PathLike) -> dict:
    """The checkpoint's config, once the settings that build its networks (size, nz, ngf,
    ndf, z_dist) are checked: an InputError names each one missing or unusable."""
    cfg = ckpt["config"]
    if not isinstance(cfg, dict):
        raise InputError(f"{path}: its config is not a mapping of settings")
    bad = [f"{key} {cfg[key]!r}" if key in cfg else f"no {key}"
           for key in ("size", "nz", "ngf", "ndf")
           if not (type(cfg.get(key)) is int and cfg[key] >= 1)]
    if not bad and cfg["size"] not in SIZES:
        bad.append(f"size {cfg['size']} (not one of {', '.join(map(str, SIZES))})")
    if cfg.get("z_dist") not in ("uniform", "normal"):
        bad.append(f"z_dist {cfg['z_dist']!r}" if "z_dist" in cfg else "no z_dist")
    if bad:
        raise InputError(f"{path}: its config cannot build the networks ({'; '.join(bad)})")
    return cfg


def load_networks(path: str | os.PathLike, nets: tuple[str, ...] = ("G",)
                  ) -> tuple[dict[str, torch.nn.Module], dict]:
    """The networks `nets` ("G", "D") the checkpoint's config builds, its weights loaded into
    them (every tensor must fit), and the checkpoint: weights trained under another config
    are refused here, before anything uses them."""
    ckpt = load_checkpoint(path)
    cfg = model_config(ckpt, path)
    build = {"G": lambda: Generator(cfg["size"], cfg["nz"], cfg["ngf"]),
             "D": lambda: Discriminator(cfg["size"], cfg["ndf"])}
    built = {}
    for name in nets:
        built[name] = build[name]()
        try:
            built[name].load_state_dict(ckpt[name])
        except (RuntimeError, TypeError, AttributeError, ValueError) as exc:
            first = (str(exc).splitlines() or [""])[0][:160]
            raise InputError(f"{path}: {name}'s weights do not fit the networks its config "
                             f"builds (size {cfg['size']}, nz {cfg['nz']}, ngf {cfg['ngf']}, "
                             f"ndf {cfg['ndf']}): {first}") from None
    return built, ckpt


def check_same_data(ckpt: dict, rows: int, checksum: str, data: str | os.PathLike) -> None:
    """Refuse to resume on other data: the manifest's checksums must match the checkpoint's
    (an equal row count is not enough: a re-ingest or another dedup keeps it, often)."""
    if ckpt["data_rows"] != rows:
        raise InputError(f"--resume: the run was trained on {ckpt['data_rows']} images, "
                         f"{data} holds {rows}")
    saved = ckpt.get("data_checksum")
    if saved is not None and saved != checksum:
        raise InputError(f"--resume: {data} is not the data the run was trained on (its "
                         "shard checksums differ from the checkpoint's); use the same shards "
                         "or a new -o")


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
