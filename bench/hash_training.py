"""Benchmark: the hash model's training time against the previous version's, at equal quality.

    python bench/hash_training.py [--train-rows 200000] [--seed 0]

Both models train on the same crops: `--train-rows` random crops of the sample photos (200,000
is what dedup samples from any source of 200,000 rows or more, so a 1M- or 3M-row run trains
exactly like this). *previous*: the corruption as one batched torch `grid_sample` warp and a
brightness gain, 600 to 4,000 steps (the version before OpenCV corruption); *current*: this
version's defaults. Same run, same process, one after the other. Quality: each model is given
to `dedup --model` on the tuning and held-out near-duplicate sets (bench/neardup_sets.py),
scored with the paper's rule (equal hashes: the hash model alone decides) and at the defaults
(candidates verified). Writes bench/out/hash_training/results.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from dedup import scores  # noqa: E402  (bench/dedup.py)
from dedup_scale import make_set  # noqa: E402
from neardup_sets import build  # noqa: E402

from dcgan_data import dedup as dd  # noqa: E402
from dcgan_data import hashing  # noqa: E402
from dcgan_data.shards import ShardSet, ShardWriter  # noqa: E402

OUT = ROOT / "bench" / "out" / "hash_training"
PREVIOUS_STEPS = {"min_steps": 600, "max_steps": 4000}


def grid_sample_corruption(crops: np.ndarray, config: hashing.HashConfig,
                           rng: np.random.Generator) -> torch.Tensor:
    """The previous version's corruption: a batched grid_sample warp, then a gain."""
    n = len(crops)

    def uniform(*shape: int) -> torch.Tensor:
        return torch.from_numpy(rng.uniform(-1, 1, shape).astype(np.float32))

    images = torch.from_numpy(crops).float().view(n, hashing.SIDE, hashing.SIDE, 3)
    scale = 1 - config.zoom * uniform(n).abs()
    shift = uniform(n, 2) * config.shift
    moved = hashing.warp(images.permute(0, 3, 1, 2), scale, shift)
    return moved.permute(0, 2, 3, 1).reshape(n, hashing.DIM) * (1 + config.gain * uniform(n, 1))


def train(crops: np.ndarray, previous: bool) -> tuple[hashing.HashAutoencoder, dict]:
    config = hashing.HashConfig()
    current_corruption = hashing.corrupt
    if previous:
        config = replace(config, **PREVIOUS_STEPS)
        hashing.corrupt = grid_sample_corruption  # train_hash_model looks it up per call
    try:
        return hashing.train_hash_model(crops, config)
    finally:
        hashing.corrupt = current_corruption


def quality(model_path: Path, which: str, seed: int) -> dict:
    rows, truth, kinds = build(which, seed, 30)
    src = OUT / which / "src"
    shutil.rmtree(OUT / which, ignore_errors=True)
    writer = ShardWriter(src, rows.shape[1:], {"bench": which})
    keys = [f"img{i:06d}" for i in range(len(rows))]
    writer.write(0, rows, keys)
    writer.finish(1)
    out = {}
    for rule, options in (("paper rule", {"probe": False, "neighbours": 0, "verified": False}),
                          ("defaults", {})):
        target = OUT / which / rule.replace(" ", "_")
        dd.dedup(src, target, dry_run=True, model_path=model_path, **options)
        result = scores(dd.read_kept_as(target, keys), truth, kinds)["no_flat"]
        out[rule] = {k: result[k] for k in ("precision", "recall", "f1")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rows", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    source = OUT / "train_src"
    shutil.rmtree(source, ignore_errors=True)
    make_set(source, args.train_rows, 0.0, args.seed)
    crops = hashing.sample_crops(ShardSet(source), args.train_rows,
                                 np.random.default_rng(args.seed))
    results: dict = {"train_rows": args.train_rows, "variants": {}}
    for name, previous in (("current", False), ("previous", True)):
        uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        start = time.perf_counter()
        model, stats = train(crops, previous)
        seconds = time.perf_counter() - start
        path = OUT / f"{name}.pt"
        hashing.save_model(model, path)
        results["variants"][name] = {"uptime": uptime, "seconds": round(seconds, 1),
                                     "steps": stats["steps"],
                                     "seconds_per_step": round(seconds / stats["steps"], 4),
                                     "final_loss": stats["final_loss"],
                                     "quality": {w: quality(path, w, args.seed)
                                                 for w in ("tuning", "held-out")}}
        print(name, json.dumps(results["variants"][name]), flush=True)
    variants = results["variants"]
    results["speedup"] = round(variants["previous"]["seconds"] / variants["current"]["seconds"], 2)
    results["speedup_per_step"] = round(variants["previous"]["seconds_per_step"]
                                        / variants["current"]["seconds_per_step"], 2)
    shutil.rmtree(source, ignore_errors=True)
    OUT.joinpath("results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: results[k] for k in ("speedup", "speedup_per_step")}))


if __name__ == "__main__":
    main()
