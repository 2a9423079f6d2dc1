"""Scale-out: the unit runner on Ray against local processes, and partitioned grouping
against the single pass.

    .venv/bin/python bench/scale.py [--images 12000] [--lines 240] [--hash-rows 65536]
                                    [--stages ingest,faces,dedup_hash] [--rows 3000000]
                                    [--moves 28] [--partitions 4,16,64] [--repeats 2]

1. Runner overhead: `ingest` (an LSUN-format LMDB of --images 256px JPEGs of real photos)
   and `faces` (a crawl list of --lines local paths to the sample photos) on the local
   engine and on a Ray started here, both with --workers processes, alternating, --repeats
   times; images/s and the ratio Ray/local. Ray's start-up (ray.init and its first worker
   processes) is timed on its own and left out. Then dedup's hashing pass (hashes, 27 probe
   hashes and thumbnails of --hash-rows rows: the ingested rows repeated, in shards of 8,192;
   an untrained hash model, the speed does not depend on the weights) on both engines,
   rows/s and the ratio. This part
   runs inside a network namespace holding only loopback (`unshare -n`), so that Ray binds
   nothing else.
2. Grouping: --rows synthetic rows of --moves 16-byte hashes each (a hash and its probes,
   random, with one row in 20 made to share a hash with another), in a .npy file. Each
   method runs in its own process, reporting its peak resident memory (VmHWM) and that
   peak less the process's size before the work (the interpreter, numpy and torch):
   single    `partition.shared_hash_pairs` on the hashes loaded into memory (as dedup holds
             them), P=1: one sort;
   P=...     `partition.shared_hash_pairs` on the file (a memmap), partitions in sequence.
   The groups (`dedup.connected` over the edges) must be equal.
3. The projection to 100M rows on N nodes, from the rates measured in 2.
--part ingest-memory (not in "all"): `ingest` of the --images LMDB at the default shard size
   (one shard of up to 65,536 64 px rows) on --workers local processes, each run in a fresh
   process, --repeats times: images/s and the driver's peak memory (see `ingest_child`).

Writes bench/out/scale.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "scale"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not carried over from
    the parent that forked it)."""
    return status_mb("VmHWM")


def status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmHWM, RssAnon, ...), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


# ---------------------------------------------------------------------------- 1. runner


def noop(unit):
    return unit


def build_inputs(images: int, lines: int) -> tuple[Path, Path]:
    spec = importlib.util.spec_from_file_location("bench_ingest", ROOT / "bench" / "ingest.py")
    bench_ingest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_ingest)
    lmdb_dir = OUT / f"lsun_{images}_lmdb"
    if not lmdb_dir.exists():
        bench_ingest.build_lmdb(lmdb_dir, images)
    photos = sorted((ROOT / "pipelines/sample/faces").glob("*.jpg"))
    photos += sorted((ROOT / "pipelines/sample/photos").glob("*.jpg"))
    crawl = OUT / "crawl.txt"
    crawl.write_text("".join(f"{photos[i % len(photos)]}\n" for i in range(lines)))
    return lmdb_dir, crawl


def runner(args) -> dict:
    from dcgan_data.dedup.scan import scan, scan_arrays
    from dcgan_data.engines.local import LocalEngine
    from dcgan_data.engines.ray import RayEngine
    from dcgan_data.engines.runner import run_units
    from dcgan_data.faces.options import FaceOptions, FetchOptions
    from dcgan_data.faces.stage import faces
    from dcgan_data.hashmodel import hashing
    from dcgan_data.ingest.stage import ingest

    lmdb_dir, crawl = build_inputs(args.images, args.lines)
    start = time.perf_counter()
    ray_engine = RayEngine(None, args.workers)
    init = time.perf_counter() - start
    start = time.perf_counter()
    list(run_units(noop, range(4 * args.workers), ray_engine))
    warm = time.perf_counter() - start
    engines = {"local": LocalEngine(args.workers), "ray": ray_engine}
    stages = args.stages.split(",")
    runs = {f"{stage}_{name}": [] for stage in stages for name in engines}
    # the crawl list names the sample photos by absolute path, outside the list's folder
    options = FaceOptions(fetch=FetchOptions(local_root=ROOT / "pipelines" / "sample"))
    hasher = hashing.Hasher(hashing.HashAutoencoder(hashing.HashConfig()), "cpu", probes=True)
    for _ in range(args.repeats):
        for name, engine in engines.items() if "ingest" in stages else ():
            out = OUT / f"ingest_{name}"
            shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            report = ingest(lmdb_dir, out, rows_per_shard=1024, engine=engine)
            runs[f"ingest_{name}"].append(report["read"] / (time.perf_counter() - t))
        for name, engine in engines.items() if "faces" in stages else ():
            out = OUT / f"faces_{name}"
            shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            report = faces(crawl, out, options, lines_per_shard=16, engine=engine)
            runs[f"faces_{name}"].append(report["fetched"] / (time.perf_counter() - t))
        if "dedup_hash" not in stages:
            continue
        shards = hash_input(OUT / "ingest_local", args.hash_rows)
        for name, engine in engines.items():
            t = time.perf_counter()
            scan(hasher, shards, engine, "hash",
                 scan_arrays(OUT, len(shards), hasher.slopes is not None), 0)
            runs[f"dedup_hash_{name}"].append(len(shards) / (time.perf_counter() - t))
    result = {"uptime": uptime(), "workers": args.workers, "images": args.images,
              "lines": args.lines, "hash_rows": args.hash_rows,
              "ray_init_seconds": round(init, 2),
              "ray_first_workers_seconds": round(warm, 2)}
    for stage in stages:
        local, ray = runs[f"{stage}_local"], runs[f"{stage}_ray"]
        result[stage] = {"local_images_per_s": [round(v, 1) for v in local],
                         "ray_images_per_s": [round(v, 1) for v in ray],
                         "ray_over_local": [round(r / v, 3) for r, v in zip(ray, local,
                                                                              strict=True)]}
    return result


def ingest_child(args) -> dict:
    """One ingest at the default shard size in this (fresh) process: images/s, and the
    driver's peak memory: VmHWM, which also counts the pages of the LMDB that listing its
    keys maps in (the kernel's to drop), and the peak of its own (anonymous) memory,
    sampled every 10 ms, both less their values before the work."""
    from dcgan_data.engines.local import LocalEngine
    from dcgan_data.ingest.stage import ingest

    out = OUT / "ingest_memory"
    shutil.rmtree(out, ignore_errors=True)
    baseline, anon = peak_mb(), [status_mb("RssAnon")]
    done = threading.Event()

    def sample():
        while not done.wait(0.01):
            anon.append(status_mb("RssAnon"))

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    report = ingest(OUT / f"lsun_{args.images}_lmdb", out, engine=LocalEngine(args.workers))
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return {"images_per_s": round(report["read"] / seconds, 1), "shards": report["shards"],
            "driver_hwm_mb": round(peak_mb() - baseline),
            "driver_anon_peak_mb": round(max(anon) - anon[0])}


def ingest_memory(args) -> dict:
    build_inputs(args.images, args.lines)
    runs = []
    for _ in range(args.repeats):
        run = subprocess.run([sys.executable, __file__, "--part", "ingest-child", "--images",
                              str(args.images), "--workers", str(args.workers)],
                             capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit(f"ingest failed:\n{run.stderr[-3000:]}")
        runs.append(json.loads(run.stdout.strip().splitlines()[-1]))
        print(json.dumps(runs[-1]), flush=True)
    return {"uptime": uptime(), "images": args.images, "workers": args.workers, "runs": runs}


def hash_input(ingested: Path, rows: int):
    """`rows` rows of the ingested shards, repeated, in shards of 8,192 (made once)."""
    from dcgan_data.core.shards import ShardSet, ShardWriter

    out = OUT / f"hash_input_{rows}"
    if not (out / "manifest.json").exists():
        images = ShardSet(ingested).load()
        writer = ShardWriter(out, images.shape[1:], {"bench": "scale"})
        for index, first in enumerate(range(0, rows, 8192)):
            picks = np.arange(first, min(rows, first + 8192)) % len(images)
            writer.write(index, images[picks], [f"row{first + i}" for i in range(len(picks))])
        writer.finish(index + 1)
    return ShardSet(out)


def in_loopback_namespace() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def runner_isolated(args) -> dict:
    """Run part 1 in a fresh network namespace holding only loopback."""
    result_file = OUT / "scale_runner.json"
    result_file.unlink(missing_ok=True)
    command = (f"ip link set lo up && exec {sys.executable} {Path(__file__).resolve()} "
               f"--part runner-child --images {args.images} --lines {args.lines} "
               f"--workers {args.workers} --repeats {args.repeats} "
               f"--hash-rows {args.hash_rows} --stages {args.stages}")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    run = subprocess.run(["unshare", "-n", "sh", "-c", command], env=env)
    if run.returncode != 0 or not result_file.exists():
        return {"skipped": "could not run Ray in a loopback-only namespace (unshare -n needs "
                           f"root); exit {run.returncode}"}
    return json.loads(result_file.read_text())


# ---------------------------------------------------------------------------- 2. grouping


def make_probes(path: Path, rows: int, moves: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    probes = np.lib.format.open_memmap(path, "w+", np.uint8, (rows, moves, 16))
    step = 200_000
    for first in range(0, rows, step):
        probes[first:first + step] = rng.integers(0, 256, (min(step, rows - first), moves, 16),
                                                  dtype=np.uint8)
    planted = rows // 20
    src, dst = rng.integers(0, rows, planted), rng.integers(0, rows, planted)
    probes[dst, rng.integers(0, moves, planted)] = probes[src, rng.integers(0, moves, planted)]
    probes.flush()
    del probes


def group_child(method: str, path: Path, labels_out: Path) -> dict:
    """One grouping method, in this (fresh) process: edges, time, peak memory, phase times."""
    from dcgan_data.dedup import partition
    from dcgan_data.dedup.grouping import connected
    from dcgan_data.engines.local import LocalEngine

    phases = {"route": 0.0, "partitions": 0.0}

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                phases[name] += time.perf_counter() - t
        return wrapper

    baseline = peak_mb()  # the interpreter and the imports (torch, through dedup)
    start = time.perf_counter()
    if method == "single":
        probes = np.load(path)
        a, b = partition.shared_hash_pairs(probes, 1)
        rows, moves = probes.shape[:2]
        del probes
    else:
        partition.route = timed("route", partition.route)
        partition.pairs_in_partition = timed("partitions", partition.pairs_in_partition)
        probes = np.load(path, mmap_mode="r")
        rows, moves = probes.shape[:2]
        a, b = partition.shared_hash_pairs(probes, int(method), LocalEngine(1),
                                           spill_dir=OUT)
    seconds = time.perf_counter() - start
    peak = peak_mb()
    np.save(labels_out, connected(rows, a, b))
    return {"method": method, "seconds": round(seconds, 1), "peak_mb": round(peak),
            "baseline_mb": round(baseline), "work_mb": round(peak - baseline),
            "edges": int(len(a)), "records": rows * moves,
            **({"phase_seconds": {k: round(v, 1) for k, v in phases.items()}}
               if method != "single" else {})}


def grouping(args) -> dict:
    path = OUT / f"probes_{args.rows}x{args.moves}.npy"
    if not path.exists():
        make_probes(path, args.rows, args.moves)
    methods = ["single", *args.partitions.split(",")]
    results, labels = [], {}
    for method in methods:
        labels[method] = OUT / f"labels_{method}.npy"
        run = subprocess.run([sys.executable, __file__, "--part", "group-child", "--method",
                              method, "--probes", str(path), "--labels", str(labels[method])],
                             capture_output=True, text=True)
        if run.returncode != 0:
            raise SystemExit(f"{method} failed:\n{run.stderr[-3000:]}")
        results.append(json.loads(run.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    want = np.load(labels["single"])
    same = {m: bool(np.array_equal(np.load(labels[m]), want)) for m in methods[1:]}
    for p in labels.values():
        p.unlink()
    return {"uptime": uptime(), "rows": args.rows, "moves": args.moves,
            "bytes": path.stat().st_size, "results": results, "same_groups": same}


def projection(group: dict, rows: int = 100_000_000, memory_gib: int = 16) -> dict:
    """Hours for `rows` rows on N nodes of this box's kind (2 cores), from the measured rates:
    routing as done today (one driver process reads every row), partitions in parallel."""
    from dcgan_data.dedup.partition import WORKING_BYTES, auto_partitions

    timed = [r for r in group["results"] if "phase_seconds" in r]
    best = max(timed, key=lambda r: int(r["method"]))  # most partitions: smallest units
    route_rate = best["records"] / best["phase_seconds"]["route"]
    sort_rate = best["records"] / best["phase_seconds"]["partitions"]
    records = rows * group["moves"]
    parts = auto_partitions(rows, group["moves"], memory_gib << 30)
    single = next(r for r in group["results"] if r["method"] == "single")
    out = {"rows": rows, "records": records, "route_records_per_s": round(route_rate),
           "partition_records_per_s_per_core": round(sort_rate),
           "spill_gb": round(records * 24 / 1e9, 1),
           "auto_partitions_at_16_gib": parts,
           "partition_memory_gb": round(records / parts * WORKING_BYTES / 1e9, 2),
           "single_pass_memory_gb": round(single["work_mb"] / 1024 * rows / group["rows"], 1),
           "hours": {}}
    for nodes in (1, 4, 16):
        route = records / route_rate
        sort = records / (sort_rate * nodes * 2)
        out["hours"][f"{nodes}_nodes"] = {"route": round(route / 3600, 2),
                                          "partitions": round(sort / 3600, 2)}
    return out


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12000)
    parser.add_argument("--lines", type=int, default=240)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hash-rows", type=int, default=65536)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--stages", default="ingest,faces,dedup_hash",
                        help="the stages part 1 runs (dedup_hash needs ingest's output)")
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--moves", type=int, default=28)
    parser.add_argument("--partitions", default="4,16,64")
    parser.add_argument("--part", default="all",
                        choices=["all", "runner", "grouping", "runner-child", "group-child",
                                 "ingest-memory", "ingest-child"])
    parser.add_argument("--method")
    parser.add_argument("--probes", type=Path)
    parser.add_argument("--labels", type=Path)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.part == "group-child":
        print(json.dumps(group_child(args.method, args.probes, args.labels)))
        return
    if args.part == "ingest-child":
        print(json.dumps(ingest_child(args)))
        return
    if args.part == "ingest-memory":
        result = ingest_memory(args)
        (ROOT / "bench" / "out" / "scale_ingest_memory.json").write_text(json.dumps(result))
        return
    if args.part == "runner-child":
        if not in_loopback_namespace():
            raise SystemExit("the runner part runs Ray: only inside a loopback-only namespace")
        (OUT / "scale_runner.json").write_text(json.dumps(runner(args), indent=2))
        return
    result = {}
    if args.part in ("all", "runner"):
        result["runner"] = runner_isolated(args)
        print(json.dumps(result["runner"], indent=2), flush=True)
    if args.part in ("all", "grouping"):
        result["grouping"] = grouping(args)
        result["projection"] = projection(result["grouping"])
        print(json.dumps({k: result[k] for k in ("grouping", "projection")}, indent=2))
    path = ROOT / "bench" / "out" / f"scale{'' if args.part == 'all' else '_' + args.part}.json"
    path.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
