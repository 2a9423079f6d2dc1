"""Benchmark: `dcgan-data dedup` against perceptual hashes, on near duplicates of real photos
whose true groups are known: the tuning set and a held-out set made with AugLy
(tools/neardup_sets.py).

    python bench/dedup.py [--per-photo 30] [--seed 0]

For each set: `dedup` at its defaults (training the hash model included, timed), the same
model with `--mirrors` and with the paper's rule (`--paper-rule`: equal hashes); imagehash's
pHash, dHash, aHash and wHash with every threshold 0-20 (the best by F1 is reported, and pHash
at 10, imagededup's documented default for its PHash, which computes the same hash). Scores
are over duplicate pairs (both images in one group), read from what the stage wrote
(`duplicates.csv`); mirror copies are scored apart (`mirror_recall`); every figure is given
with and without the flat colours and gradients. Writes bench/out/dedup/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from neardup_sets import build  # noqa: E402

from dcgan_data.core.shards import ShardWriter  # noqa: E402
from dcgan_data.dedup import grouping, write  # noqa: E402
from dcgan_data.dedup import stage as dd  # noqa: E402
from dcgan_data.testing.neardup import MIRROR, pair_scores  # noqa: E402

OUT = ROOT / "bench" / "out" / "dedup"
PEER_HASHES = ("phash", "dhash", "average_hash", "whash")
IMAGEDEDUP_DEFAULT = 10  # imagededup's max_distance_threshold default for its hashes


def scores(labels: np.ndarray, truth: np.ndarray, kinds: list[str]) -> dict:
    """P/R/F1 without mirror copies, with and without flat images, recall by edit kind, and
    the share of mirror copies put with their original."""
    kinds_array = np.array(kinds)
    out = {}
    for name, keep in (("all", kinds_array != MIRROR),
                       ("no_flat", (kinds_array != MIRROR) & (kinds_array != "flat"))):
        result = pair_scores(labels[keep], truth[keep])
        out[name] = {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}
    copies = [kind not in ("original", "flat") for kind in kinds]
    out["recall_by_edit"], out["copies_by_edit"] = recall_by_edit(labels, truth, kinds, copies)
    return out


def recall_by_edit(labels: np.ndarray, truth: np.ndarray, kinds: list[str], copies: list[bool]
                   ) -> tuple[dict[str, float], dict[str, int]]:
    """For each edit kind, the share of its copies put in their original's group (the row of
    kind "original" in their true group), and how many copies it has (to pool seeds)."""
    original = {g: i for i, (g, k) in enumerate(zip(truth, kinds, strict=True))
                if k == "original"}
    hits: dict[str, list[bool]] = defaultdict(list)
    for i, (g, kind) in enumerate(zip(truth, kinds, strict=True)):
        if copies[i]:
            hits[kind].append(bool(labels[i] == labels[original[g]]))
    return ({k: round(float(np.mean(v)), 3) for k, v in sorted(hits.items())},
            {k: len(v) for k, v in sorted(hits.items())})


def peer_codes(rows: np.ndarray, method: str) -> np.ndarray:
    import imagehash
    from PIL import Image

    function = getattr(imagehash, method)
    return np.stack([np.packbits(function(Image.fromarray(r)).hash.ravel()) for r in rows])


def peer_labels(codes: np.ndarray, threshold: int) -> np.ndarray:
    padded = np.pad(codes, ((0, 0), (0, 16 - codes.shape[1])))
    return grouping.find_groups(np.ascontiguousarray(padded), threshold)


def run_set(name: str, rows: np.ndarray, truth: np.ndarray, kinds: list[str]) -> dict:
    src, out = OUT / name / "src", OUT / name / "out"
    shutil.rmtree(OUT / name, ignore_errors=True)
    writer = ShardWriter(src, rows.shape[1:], {"bench": name})
    keys = [f"img{i:06d}" for i in range(len(rows))]
    writer.write(0, rows, keys)
    writer.finish(1)
    start = time.perf_counter()
    report = dd.dedup(src, out, dry_run=True)
    seconds = time.perf_counter() - start
    model = out / dd.MODEL
    variants = {"defaults": {}, "--mirrors": {"mirrors": True},
                "--paper-rule": {"probe": False, "neighbours": 0, "verify": False},
                "--paper-rule with probes": {"neighbours": 0, "verify": False}}
    result: dict = {"images": len(rows), "methods": {}}
    for variant, options in variants.items():
        variant_out = out if not options else OUT / name / variant.strip("-").replace(" ", "_")
        if options:
            dd.dedup(src, variant_out, dry_run=True, hash_model=model, **options)
        labels = write.read_kept_as(variant_out, keys)
        result["methods"][f"dedup {variant}"] = scores(labels, truth, kinds)
    kinds_array = np.array(kinds)
    mirrors = [i for i, k in enumerate(kinds) if k == MIRROR]
    for variant in ("defaults", "--mirrors"):
        labels = write.read_kept_as(out if variant == "defaults" else OUT / name / "mirrors", keys)
        original = {g: i for i, (g, k) in enumerate(zip(truth, kinds, strict=True))
                    if k == "original"}
        result["methods"][f"dedup {variant}"]["mirror_recall"] = round(float(np.mean(
            [labels[i] == labels[original[truth[i]]] for i in mirrors])), 3) if mirrors else None
    result["methods"]["dedup defaults"].update(
        seconds_end_to_end=round(seconds, 1), images_per_s_end_to_end=round(len(rows) / seconds, 1),
        timings_s=report["timings_s"], grouping=report["grouping"])
    for method in PEER_HASHES:
        start = time.perf_counter()
        codes = peer_codes(rows, method)
        rate = len(rows) / (time.perf_counter() - start)
        sweep = {t: scores(peer_labels(codes, t), truth, kinds) for t in range(0, 21)}
        best = max(sweep, key=lambda t: sweep[t]["all"]["f1"])
        result["methods"][f"{method} best (<= {best})"] = {**sweep[best], "threshold": best,
                                                          "images_per_s": round(rate, 1)}
        if method == "phash":
            result["methods"][f"phash <= {IMAGEDEDUP_DEFAULT} (imagededup default)"] = \
                sweep[IMAGEDEDUP_DEFAULT]
            best_precise = max((t for t in sweep if sweep[t]["all"]["precision"] >= 0.99),
                               default=0)
            result["methods"][f"phash <= {best_precise} (highest recall at P >= 0.99)"] = \
                sweep[best_precise]
    del kinds_array
    result["methods"].update(external_peers(rows, truth, kinds, OUT / name / "png"))
    return result


def external_peers(rows: np.ndarray, truth: np.ndarray, kinds: list[str], folder: Path) -> dict:
    """imagededup, cleanvision and fastdup (tools/dedup_peers.py) in the PEERS_PYTHON
    environment: for each, its documented default and its best threshold by F1."""
    python = os.environ.get("PEERS_PYTHON")
    if not python:
        print("PEERS_PYTHON not set: imagededup, cleanvision and fastdup skipped", flush=True)
        return {}
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(rows):
        Image.fromarray(row).save(folder / f"{i:06d}.png")
    answer = folder.with_suffix(".json")
    subprocess.run([python, str(ROOT / "tools" / "dedup_peers.py"), str(folder), str(len(rows)),
                    str(answer)], check=True, stdout=subprocess.DEVNULL)
    out = {}
    defaults = {"imagededup phash": "10", "cleanvision": "defaults", "fastdup": "defaults (0.96)"}
    for method, sweep in json.loads(answer.read_text()).items():
        if "error" in sweep:
            out[f"{method} (did not run)"] = {"error": sweep["error"]}
            continue
        scored = {t: scores(np.array(labels), truth, kinds) for t, labels in sweep.items()}
        out[f"{method} {defaults[method]} (default)"] = scored[defaults[method]]
        best = max(scored, key=lambda t: scored[t]["no_flat"]["f1"])  # flats aside: their best
        out[f"{method} best without flats ({best})"] = scored[best]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-photo", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results = {"uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
               "cpu_threads": os.cpu_count(), "seed": args.seed, "sets": {}}
    for which in ("tuning", "held-out"):
        start = time.perf_counter()
        rows, truth, kinds = build(which, args.seed, args.per_photo)
        print(f"{which}: {len(rows)} images, {sum(k not in ('original', 'flat') for k in kinds)} "
              f"copies ({time.perf_counter() - start:.0f}s to build)", flush=True)
        results["sets"][which] = run_set(which, rows, truth, kinds)
        print_set(which, results["sets"][which])
    results["uptime_after"] = subprocess.run(["uptime"], capture_output=True,
                                             text=True).stdout.strip()
    OUT.joinpath("results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {OUT / 'results.json'}")


def print_set(which: str, result: dict) -> None:
    print(f"\n{which} set ({result['images']} images)")
    print(f"{'method':48s} {'P':>6s} {'R':>6s} {'F1':>6s}   {'P':>6s} {'R':>6s}  (no flats)")
    for name, r in result["methods"].items():
        if "error" in r:
            print(f"{name:48s} {r['error']}")
            continue
        a, f = r["all"], r["no_flat"]
        print(f"{name:48s} {a['precision']:6.3f} {a['recall']:6.3f} {a['f1']:6.3f}   "
              f"{f['precision']:6.3f} {f['recall']:6.3f}")
    for name, r in result["methods"].items():
        if name.startswith(("dedup defaults", "phash best", "fastdup best")):
            print(f"recall by edit, {name}: {r['recall_by_edit']}")


if __name__ == "__main__":
    main()
