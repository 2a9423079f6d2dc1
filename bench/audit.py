"""Benchmark: `dcgan-data audit` on a planted memoriser, on real DCGANs that did and did not
memorise, and at scale.

    python bench/audit.py [--parts planted,copies,real,scale] [--copies-rows 300,100000]
                          [--scale-rows 1000000]

planted: distinct crops of the sample photos and skimage.data images (overlapping each other
  by at most half) split into a training set and unseen real images. A stand-in generator
  outputs 1,000 edited copies of training rows (JPEG q75, WebP q80, brightness +-10%, blur, a
  1-3 px shift) and 600 unseen real images; calibration uses other unseen real images
  (--holdout FOLDER). Scores: precision and recall of the copies, and how often an unseen
  image is called a copy. The hash model is trained on the training set (300 steps).
copies: copies planted over the whole of a training set of each --copies-rows size (32x32
  2x2 mosaics of random crops of the photos, or with --copies-set crops the crops of scale
  below, which repeat themselves): an equal number of each kind (exact, JPEG
  q75, a 1-2 px shift, brightness +-10%, blur, Gaussian noise) of distinct random rows, and
  as many unseen crops. Audited with the default calibration (training rows, each without
  itself) and with --holdout FOLDER of other unseen crops. Scores: precision, recall per
  kind, and recall of the copies whose originals the audit before leave-one-out calibration
  kept out of its index.
real: the paper's DCGAN at --size px (widths --ngf, --ndf) trained on CPU on 16 training
  images, each batch all 16, for many steps (it memorises them) and on the whole training set
  for few steps; a narrow D, because one as wide as G wins outright on 16 images and G's
  samples decay into noise instead of converging on the training images. Each is audited
  with 2,000 samples against its own training set, calibrated on the same unseen real
  images. On an oversubscribed box run it on one core (`taskset -c 1`):
  the trainer uses one torch thread per core it may run on, and two threads that wait on each
  other while a third process holds a core are several times slower than one.
scale: 10,000 generated images against a training set of --scale-rows 32x32 rows (random
  crops of the photos, flipped and recoloured), timed end to end in a subprocess (the CLI),
  with its peak anonymous memory (RssAnon, sampled every 0.2 s: the shards are memory-mapped
  and their page cache is not the audit's) and a linear projection to 3M rows.
Writes bench/out/audit/results.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from dcgan_data.audit import stage as audit  # noqa: E402
from dcgan_data.audit.options import AuditOptions  # noqa: E402
from dcgan_data.audit.planted import planted_memoriser  # noqa: E402
from dcgan_data.core.images import decode_image, encode_image  # noqa: E402
from dcgan_data.core.shards import ShardWriter  # noqa: E402
from dcgan_data.hashmodel import hashing  # noqa: E402

OUT = ROOT / "bench" / "out" / "audit"
SKIMAGE = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
           "immunohistochemistry", "retina", "cat", "brick", "grass", "gravel", "horse", "coins"]
HASH = hashing.HashConfig(min_steps=300, max_steps=300)


def load_photos() -> list[np.ndarray]:
    import skimage.data

    photos = [decode_image(p.read_bytes())[0]
              for p in sorted((ROOT / "pipelines" / "sample" / "photos").glob("*.jpg"))]
    for name in SKIMAGE:
        image = getattr(skimage.data, name)()
        if image.ndim == 3 and image.shape[2] == 3:
            photos.append(image)
    return photos


def write_shards(out: Path, images: np.ndarray, prefix: str = "img",
                 rows_per_shard: int = 65_536) -> Path:
    writer = ShardWriter(out, images.shape[1:], {"bench": "audit"})
    starts = range(0, len(images), rows_per_shard)
    for index, start in enumerate(starts):
        part = images[start : start + rows_per_shard]
        writer.write(index, part, [f"{prefix}{start + i:07d}" for i in range(len(part))])
    writer.finish(len(starts))
    return out


def write_folder(out: Path, images: np.ndarray) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(images):
        (out / f"real{i:05d}.png").write_bytes(encode_image(row, "png"))
    return out


def scores(table: Path, copy_of: np.ndarray, edits: list[str]) -> dict:
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    called = np.array([r["copy"] == "1" for r in rows])
    truth = copy_of >= 0
    hits = int((called & truth).sum())
    names = np.array(edits)
    return {
        "precision": round(hits / max(int(called.sum()), 1), 4),
        "recall": round(hits / int(truth.sum()), 4),
        "unseen_called_copy": round(float((called & ~truth).sum() / (~truth).sum()), 4),
        "copies": int(truth.sum()), "unseen": int((~truth).sum()),
        "recall_by_edit": {e: round(float(called[names == e].mean()), 3)
                           for e in sorted(set(edits)) if e != "none"},
    }


def shared_model(rows: np.ndarray, path: Path) -> None:
    """The hash model of an earlier part of this bench (trained on that part's training set,
    crops of the same photos), else one trained on `rows` and kept for the later parts: on a
    loaded 2-core box a hash model takes many minutes to train."""
    if not (OUT / "hash_model.pt").exists():
        model, _ = hashing.train_hash_model(hashing.to_hash_crops(rows), HASH, "cpu")
        hashing.save_model(model, OUT / "hash_model.pt")
    shutil.copyfile(OUT / "hash_model.pt", path)


def bench_planted(photos: list[np.ndarray], work: Path) -> dict:
    planted = planted_memoriser(photos, per_photo=60, copies=1000, fakes=600, unseen=600,
                                seed=0)
    train = write_shards(work / "train", planted.train)
    generated = write_shards(work / "generated", planted.generated, "gen")
    unseen = write_folder(work / "unseen", planted.unseen)
    clock = time.perf_counter()
    shared_model(planted.train, work / "hash_model.pt")
    report = audit.audit(generated, train, work / "out", holdout=unseen,
                         model_path=work / "hash_model.pt", device="cpu")
    result = {"training_images": len(planted.train),
              "hash_model_s": round(time.perf_counter() - clock, 1),
              **scores(work / "out" / audit.CSV, planted.copy_of, planted.edits),
              "threshold": report.threshold, "alpha_effective": report.alpha_effective,
              "closer_than_holdout": report.closer_than_holdout,
              "timings_s": report.timings_s}
    # the default calibration: rows of the training set, each without itself
    report = audit.audit(generated, train, work / "out_rows", holdout=200,
                         model_path=work / "hash_model.pt", device="cpu")
    result["holdout_200_training_rows"] = {
        **scores(work / "out_rows" / audit.CSV, planted.copy_of, planted.edits),
        "threshold": report.threshold, "alpha_effective": report.alpha_effective}
    return result


def bench_real(photos: list[np.ndarray], work: Path, steps_handful: int, steps_full: int,
               size: int, ngf: int, ndf: int) -> dict:
    import torch

    from dcgan_data.train import stage as trainer

    planted = planted_memoriser(photos, per_photo=60, copies=0, fakes=0, unseen=600,
                                size=size, seed=1)
    unseen = write_folder(work / "unseen", planted.unseen)
    full = write_shards(work / "full", planted.train)
    handful = write_shards(work / "handful", planted.train[:16])
    shared_model(planted.train, work / "hash_model.pt")
    net = {"ngf": ngf, "ndf": ndf, "eval_model": str(work / "hash_model.pt")}
    result = {}
    for name, data, steps, batch in (("handful", handful, steps_handful, 16),
                                     ("full", full, steps_full, 64)):
        clock = time.perf_counter()
        trainer.train(data, work / f"run_{name}", device="cpu", steps=steps, batch_size=batch,
                      sample_every=max(steps // 4, 1), ckpt_every=10**6, eval_every=10**6,
                      **net)
        train_s = time.perf_counter() - clock
        report = audit.audit(work / f"run_{name}", data, work / f"audit_{name}", n=2000,
                             holdout=unseen, model_path=work / "hash_model.pt", device="cpu")
        result[name] = {"training_images": report.training_images, "steps": steps,
                        "batch_size": batch, "size": size, "ngf": ngf, "ndf": ndf,
                        "train_s": round(train_s, 1),
                        "copies": report.copies, "copy_fraction": report.copy_fraction,
                        "expected_false_copies": report.expected_false_copies,
                        "holdout_called_copies": report.holdout_called_copies,
                        "holdout_images": report.holdout_images,
                        "threshold": report.threshold,
                        "alpha_effective": report.alpha_effective,
                        "closer_than_holdout": report.closer_than_holdout,
                        "verdict": report.verdict,
                        "sample_relative_q50": report.sample_relative_quantiles["q50"],
                        "holdout_relative_q50": report.holdout_relative_quantiles["q50"],
                        "audit_timings_s": report.timings_s,
                        "torch_threads": torch.get_num_threads(),  # as the trainer set them
                        "sample_distance_q50": report.sample_distance_quantiles["q50"],
                        "holdout_distance_q50": report.holdout_distance_quantiles["q50"]}
    return result


def halvings(photo: np.ndarray) -> list[np.ndarray]:
    """The photo and its successive halvings (area-averaged) down to a side of 32."""
    levels = [photo]
    while min(levels[-1].shape[:2]) >= 64:
        h, w = levels[-1].shape[:2]
        levels.append(cv2.resize(levels[-1], (w // 2, h // 2), interpolation=cv2.INTER_AREA))
    return levels


def scale_rows(photos: list[np.ndarray], count: int, seed: int, border: int = 0,
               side_out: int = 32) -> np.ndarray:
    """`count` 32x32 random crops of the photos, flipped and recoloured at random. A crop is
    resampled (bilinear, at its exact position and scale) from the halving of its photo where
    it is 32-63 px wide: a large crop costs no more than a small one, and crops whose corners
    differ by less than a pixel of that halving are not identical rows. With `border`, each
    crop comes with that many more of its output pixels on every side (for shifted copies);
    `side_out` other than 32 renders the same crops at that size."""
    rng = np.random.default_rng(seed)
    pyramids = [halvings(p) for p in photos]
    step_out, side_out = side_out, side_out + 2 * border
    out = np.empty((count, side_out, side_out, 3), np.uint8)
    for i in range(count):
        levels = pyramids[int(rng.integers(len(photos)))]
        h, w = levels[0].shape[:2]
        side = int(rng.integers(24, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        level = min(max(side.bit_length() - 6, 0), len(levels) - 1)  # side >> level < 64
        step = side / 2**level / step_out  # pixels of the halving per output pixel
        # output pixel (u, v) <- halving pixel (u * step + x0, v * step + y0), centres aligned
        x0, y0 = (x / 2**level + step / 2 - 0.5 - border * step,
                  y / 2**level + step / 2 - 0.5 - border * step)
        crop = cv2.warpAffine(levels[level], np.float32([[step, 0, x0], [0, step, y0]]),
                              (side_out, side_out), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out[i] = crop[:, :, rng.permutation(3)]
    return out


COPY_KINDS = ("exact", "jpeg_q75", "shift_1_2px", "brightness_10pct", "slight_blur", "noise")
BORDER = 2  # the shifted copies move 1-2 px


def mosaic_rows(photos: list[np.ndarray], count: int, seed: int) -> np.ndarray:
    """`count` (32 + 2 BORDER)-px images, each a 2x2 mosaic of independent random crops (18 px
    renderings of `scale_rows` crops), whose 32 px centre is the row. Random crops of a few
    dozen photos repeat themselves: at 100,000 rows a tenth of new crops lie within 2.5 grey
    levels of a training crop, as near as an edited copy. A mosaic of four independent crops
    does not, as a de-duplicated training set does not."""
    half = 16 + BORDER
    quads = scale_rows(photos, 4 * count, seed, side_out=half).reshape(count, 2, 2, half,
                                                                       half, 3)
    return np.ascontiguousarray(quads.transpose(0, 1, 3, 2, 4, 5).reshape(count, 2 * half,
                                                                            2 * half, 3))


def plant_copy(framed: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A copy of the training row at the centre of `framed` (32 + 2 BORDER px a side)."""
    from dcgan_data.testing.neardup import NAMED_ONLY, TRANSFORMS

    row = framed[BORDER : BORDER + 32, BORDER : BORDER + 32]
    if kind == "exact":
        return row.copy()
    if kind == "shift_1_2px":
        dy, dx = 0, 0
        while dy == dx == 0:  # each axis -2..2, not both 0
            dy, dx = (int(v) for v in rng.integers(-BORDER, BORDER + 1, 2))
        return framed[BORDER + dy : BORDER + dy + 32, BORDER + dx : BORDER + dx + 32].copy()
    if kind == "brightness_10pct":
        kind = str(rng.choice(["brighter_10pct", "darker_10pct"]))
    return {**TRANSFORMS, **NAMED_ONLY}[kind](np.ascontiguousarray(row), rng)


def old_held_out(total: int, seed: int = 0) -> np.ndarray:
    """The rows the audit kept out of its index before it calibrated leave-one-out (2,000,
    at most a third), as it drew them."""
    count = max(1, min(2000, total // 3))
    return np.sort(np.random.default_rng(seed).choice(total, count, replace=False))


def copy_scores(table: Path, copy_of: np.ndarray, kinds: list[str], old: np.ndarray) -> dict:
    """Precision over all samples (a false copy is an unseen crop, of no kind), recall per
    kind, and recall of the copies of rows the old audit held out."""
    result = scores(table, copy_of, kinds)
    with open(table, newline="") as f:
        called = np.array([r["copy"] == "1" for r in csv.DictReader(f)])
    was_out = np.isin(copy_of, old) & (copy_of >= 0)
    result["copies_of_old_held_out_rows"] = int(was_out.sum())
    result["recall_of_old_held_out_rows"] = round(float(called[was_out].mean()), 4) \
        if was_out.any() else None
    result["false_copies"] = int((called & (copy_of < 0)).sum())
    return result


def bench_copies(photos: list[np.ndarray], work: Path, rows: int, per_kind: int,
                 mosaic: bool) -> dict:
    rng = np.random.default_rng(rows)
    train = work / f"train_{rows}"
    framed_sources = {}
    copies = min(per_kind * len(COPY_KINDS), rows)
    sources = np.sort(rng.choice(rows, copies, replace=False))  # over the whole set
    per = 65_536
    writer = ShardWriter(train, (32, 32, 3), {"bench": "audit-copies"})
    for index, start in enumerate(range(0, rows, per)):
        framed = mosaic_rows(photos, min(per, rows - start), rows + index) if mosaic else \
            scale_rows(photos, min(per, rows - start), rows + index, border=BORDER)
        writer.write(index, np.ascontiguousarray(framed[:, BORDER:-BORDER, BORDER:-BORDER]),
                     [f"img{start + i:07d}" for i in range(len(framed))])
        mine = sources[(sources >= start) & (sources < start + len(framed))]
        framed_sources.update({int(s): framed[s - start] for s in mine})
    writer.finish(len(range(0, rows, per)))
    kinds = [COPY_KINDS[i % len(COPY_KINDS)] for i in range(copies)]
    planted = [plant_copy(framed_sources[int(s)], k, rng) for s, k in zip(sources, kinds,
                                                                            strict=True)]
    unseen = mosaic_rows(photos, 2 * copies, 10**7 + rows) if mosaic else \
        scale_rows(photos, 2 * copies, 10**7 + rows, border=BORDER)
    unseen = np.ascontiguousarray(unseen[:, BORDER:-BORDER, BORDER:-BORDER])
    order = rng.permutation(2 * copies)
    generated = np.concatenate([np.stack(planted), unseen[:copies]])[order]
    copy_of = np.r_[sources, np.full(copies, -1)][order]
    names = [(kinds + ["none"] * copies)[i] for i in order]
    write_shards(work / "generated", generated, "gen")
    folder = write_folder(work / "unseen", unseen[copies:])
    model_path = work / "hash_model.pt"
    shared_model(scale_rows(photos, 20_000, 7), model_path)
    old = old_held_out(rows)
    result = {"set": "mosaics" if mosaic else "crops", "training_images": rows,
              "copies": copies, "unseen_samples": copies,
              "copies_of_old_held_out_rows": int(np.isin(sources, old).sum())}
    for name, holdout in (("training_rows_leave_one_out", AuditOptions().holdout),
                          ("folder_of_unseen", folder)):
        clock = time.perf_counter()
        report = audit.audit(work / "generated", train, work / f"out_{name}", holdout=holdout,
                             model_path=model_path, device="cpu")
        result[name] = {"wall_s": round(time.perf_counter() - clock, 1),
                        **copy_scores(work / f"out_{name}" / audit.CSV, copy_of, names, old),
                        "calibration_images": report.holdout_images,
                        "calibration_repeated_in_training":
                            report.holdout_repeated_in_training,
                        "threshold": report.threshold,
                        "alpha_effective": report.alpha_effective,
                        "verdict": report.verdict, "timings_s": report.timings_s}
    return result


def peak_anon_memory(pid: int, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    peak[0] = max(peak[0], int(line.split()[1]) * 1024)
        except OSError:
            return
        time.sleep(0.2)


def bench_scale(photos: list[np.ndarray], work: Path, rows: int) -> dict:
    train = work / f"train_{rows}"
    if not (train / "manifest.json").exists():
        shutil.rmtree(train, ignore_errors=True)
        writer = ShardWriter(train, (32, 32, 3), {"bench": "audit-scale"})
        per = 65_536
        for index, start in enumerate(range(0, rows, per)):
            part = scale_rows(photos, min(per, rows - start), seed=index)
            writer.write(index, part, [f"row{start + i:08d}" for i in range(len(part))])
        writer.finish(len(range(0, rows, per)))
    generated = work / "generated"
    if not (generated / "manifest.json").exists():
        write_shards(generated, scale_rows(photos, 10_000, seed=10**6), "gen")
    model_path = work / "hash_model.pt"
    shared_model(scale_rows(photos, 20_000, 7), model_path)
    out = work / "out"
    command = [str(Path(sys.executable).parent / "dcgan-data"), "audit", str(generated),
               "--train", str(train), "-o", str(out), "--model", str(model_path),
               "--device", "cpu"]
    clock = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(command)
    stop, peak = threading.Event(), [0]
    watcher = threading.Thread(target=peak_anon_memory, args=(process.pid, stop, peak))
    watcher.start()
    code = process.wait()
    stop.set()
    watcher.join()
    seconds = time.perf_counter() - clock
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if code:
        raise SystemExit(f"audit failed with exit code {code}")
    report = json.loads((out / audit.REPORT).read_text())
    timings = report["timings_s"]
    per_row = timings["scan"] / rows
    fixed = seconds - timings["scan"]
    # the scan grows with the rows, the rest (read, re-rank, write) with the samples only
    return {"training_rows": rows, "samples": report["samples"], "seconds": round(seconds, 1),
            "cpu_seconds": round(cpu, 1), "timings_s": timings, "peak_anon_bytes": peak[0],
            "projected_1M_seconds": round(fixed + per_row * 1_000_000, 1),
            "projected_3M_seconds": round(fixed + per_row * 3_000_000, 1),
            "projected_3M_cpu_seconds": round(cpu * (fixed + per_row * 3_000_000) / seconds, 1),
            "projected_3M_anon_bytes": int(peak[0] + 17 * (3_000_000 - rows)),
            "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="planted,copies,real,scale")
    parser.add_argument("--copies-rows", default="300,100000",
                        help="training set sizes of the copies part")
    parser.add_argument("--copies-per-kind", type=int, default=100)
    parser.add_argument("--copies-set", choices=["mosaics", "crops"], default="mosaics",
                        help="training rows of the copies part: 2x2 mosaics of random crops "
                             "(no near-twins), or the random crops themselves")
    parser.add_argument("--scale-rows", type=int, default=1_000_000)
    parser.add_argument("--steps-handful", type=int, default=10_000)
    parser.add_argument("--steps-full", type=int, default=150)
    parser.add_argument("--size", type=int, default=32, help="image side of the real runs")
    parser.add_argument("--ngf", type=int, default=64, help="G's width in the real runs")
    parser.add_argument("--ndf", type=int, default=16, help="D's width in the real runs")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results_path = OUT / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    photos = load_photos()
    for part in args.parts.split(","):
        work = OUT / part
        if part != "scale":
            shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        up = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        clock = time.perf_counter()
        if part == "planted":
            results[part] = bench_planted(photos, work)
        elif part == "copies":
            results[part] = {}
            for rows in (int(r) for r in args.copies_rows.split(",")):
                sub = work / str(rows)
                sub.mkdir()
                results[part][str(rows)] = bench_copies(photos, sub, rows,
                                                        args.copies_per_kind,
                                                        args.copies_set == "mosaics")
                results[part][str(rows)]["uptime_after"] = subprocess.run(
                    ["uptime"], capture_output=True, text=True).stdout.strip()
        elif part == "real":
            results[part] = bench_real(photos, work, args.steps_handful, args.steps_full,
                                       args.size, args.ngf, args.ndf)
        elif part == "scale":
            results[part] = bench_scale(photos, work, args.scale_rows)
        else:
            raise SystemExit(f"unknown part {part!r}")
        results[part]["uptime_before"] = up
        results[part]["wall_s"] = round(time.perf_counter() - clock, 1)
        print(json.dumps({part: results[part]}, indent=2))
        results_path.write_text(json.dumps(results, indent=2) + "\n")
    os.sync()


if __name__ == "__main__":
    main()
