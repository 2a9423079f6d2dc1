"""Benchmark: the hash model's training time against the previous version's, at equal quality.

    python bench/hash_training.py [--train-rows 200000] [--seed 0] [--sweep 500 1000]

Both models train on the same crops: `--train-rows` random crops of the sample photos (200,000
is what dedup samples from any source of 200,000 rows or more, so a 1M- or 3M-row run trains
exactly like this). *previous*: `dcgan_data/hashing.py` of commit 95c8ff3, read from git and
run unchanged (the corruption as one batched torch `grid_sample` warp and a brightness gain,
fresh Gaussian pixel noise each step, 600 to 4,000 steps); *current*: this version's defaults.
Same run, same process, one after the other. Quality: each model is given
to `dedup --model` on the tuning and held-out near-duplicate sets (tools/neardup_sets.py),
scored with the paper's rule (equal hashes: the hash model alone decides) and at the defaults
(candidates verified). Writes bench/out/hash_training/results.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import subprocess
import sys
import time
import types
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tools"))

from dedup import scores  # noqa: E402  (bench/dedup.py)
from dedup_scale import make_set  # noqa: E402
from neardup_sets import build  # noqa: E402

from dcgan_data.core import processes  # noqa: E402
from dcgan_data.core.shards import ShardSet, ShardWriter  # noqa: E402
from dcgan_data.dedup import stage as dd  # noqa: E402
from dcgan_data.dedup import write  # noqa: E402
from dcgan_data.hashmodel import hashing  # noqa: E402

OUT = ROOT / "bench" / "out" / "hash_training"
PREVIOUS = "95c8ff3"  # the last version before this recipe: grid_sample corruption, <= 4,000 steps


def previous_hashing() -> types.ModuleType:
    """dcgan_data/hashing.py as it was at PREVIOUS, read from git and imported as is."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{PREVIOUS}:dcgan_data/hashing.py"],
                            capture_output=True, text=True)
    if source.returncode:
        sys.exit(f"cannot read the previous version from git ({source.stderr.strip()}): "
                 "run this bench in a clone with the project's history")
    # it imports the core modules by their paths of that time
    for name in ("errors", "files", "images"):
        core = importlib.import_module(f"dcgan_data.core.{name}")
        sys.modules.setdefault(f"dcgan_data.{name}", core)
    module = types.ModuleType("hashing_previous")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source.stdout, f"{PREVIOUS}:hashing.py", "exec"), module.__dict__)
    return module


def train(crops: np.ndarray, name: str) -> tuple[hashing.HashAutoencoder, dict]:
    if name == "previous":
        version = previous_hashing()
        return version.train_hash_model(crops, version.HashConfig())
    config = hashing.HashConfig()
    if name != "current":  # "current at N steps"
        steps = int(name.rsplit(" ", 2)[1])
        config = replace(config, min_steps=steps, max_steps=steps)
    return hashing.train_hash_model(crops, config)


def quality(model_path: Path, which: str, seed: int) -> dict:
    rows, truth, kinds = build(which, seed, 30)
    src = OUT / which / "src"
    shutil.rmtree(OUT / which, ignore_errors=True)
    writer = ShardWriter(src, rows.shape[1:], {"bench": which})
    keys = [f"img{i:06d}" for i in range(len(rows))]
    writer.write(0, rows, keys)
    writer.finish(1)
    out = {}
    for rule, options in (("paper rule", {"probe": False, "neighbours": 0, "verify": False}),
                          ("defaults", {})):
        target = OUT / which / rule.replace(" ", "_")
        dd.dedup(src, target, dry_run=True, hash_model=model_path, **options)
        result = scores(write.read_kept_as(target, keys), truth, kinds)["no_flat"]
        out[rule] = {k: result[k] for k in ("precision", "recall", "f1")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-rows", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", type=int, nargs="*", default=[],
                        help="also train the current recipe for these step counts")
    args = parser.parse_args()
    processes.reuse_freed_memory()  # as dedup runs training: both variants alike
    OUT.mkdir(parents=True, exist_ok=True)
    source = OUT / "train_src"
    shutil.rmtree(source, ignore_errors=True)
    make_set(source, args.train_rows, 0.0, args.seed)
    crops = hashing.sample_crops(ShardSet(source), args.train_rows,
                                 np.random.default_rng(args.seed))
    results: dict = {"train_rows": args.train_rows, "variants": {}}
    names = ["current", "previous", *(f"current at {n} steps" for n in args.sweep)]
    for name in names:
        uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        start = time.perf_counter()
        model, stats = train(crops, name)
        seconds = time.perf_counter() - start
        path = OUT / f"{name.replace(' ', '_')}.pt"
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
