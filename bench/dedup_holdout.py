"""Benchmark: `dcgan-data dedup` against pHash on the held-out near-duplicate sets of issue 33
(tools/holdout_sets.py builds them): the whole precision-recall curve of each, per set and
per edit kind.

    python bench/dedup_holdout.py [--sets augly-dev albu-dev] [--thresholds -2 -1 0 2 3 5]
                                  [--dedup-args "--min-cosine 0.5"]
    python bench/dedup_holdout.py --final      # the FINAL sets: only for the final figures

For each set: `dcgan-data dedup SET/images -o OUT --dry-run` at its defaults, then at each
`--verify-threshold` of --thresholds (on the rows and hash model the default run made, so
that only the decision differs), each with --dedup-args added; imagehash's pHash at Hamming
<= 2..14 on the same 64x64 rows dedup ingested, and on the 256 px files. Groups are the
connected components of the pairs (dedup: each removed row with the row duplicates.csv says
it duplicates). Scores: pair precision and recall (a pair is right when both images come
from one original, or their pixels are identical); recall of each edit kind (a copy counts
when it is in its original's group); for each hard-negative kind, how many negatives were
put in a group; and the share of removed images with no true copy in their group. Writes
bench/out/holdout/results_<set>.json.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tools"))

from dedup import peer_codes, recall_by_edit  # noqa: E402
from dedup_peers import components  # noqa: E402
from holdout_sets import OUT, ensure_set  # noqa: E402

from dcgan_data.core.files import write_json  # noqa: E402
from dcgan_data.core.shards import ShardSet  # noqa: E402
from dcgan_data.testing.neardup import pair_scores  # noqa: E402

DEV_SETS = ("augly-dev", "albu-dev")
FINAL_SETS = ("augly-final", "albu-final")
THRESHOLDS = (-2.0, -1.0, 0.0, 2.0, 3.0, 5.0)  # around the default verification threshold
PHASH_THRESHOLDS = range(2, 15)
PRECISE = 0.99  # the precision a user needs: recall is compared there


class Truth:
    """truth.csv of a set, in the order of `keys` (dedup's row keys, the file names).
    Images whose pixels are identical are one group: a crop of a plain white area is the
    same image as another such crop, whichever photo or place it was cut from, and no
    method can or should keep both (`as_built` keeps the groups truth.csv gives)."""

    def __init__(self, folder: Path, keys: list[str], as_built: bool = False):
        with open(folder / "truth.csv", newline="", encoding="utf-8") as f:
            rows = {r["file"]: r for r in csv.DictReader(f)}
        ordered = [rows[Path(k).name] for k in keys]
        self.files = [r["file"] for r in ordered]
        self.group = np.array([int(r["group"]) for r in ordered])
        self.role = [r["role"] for r in ordered]
        self.kind = [r["kind"] for r in ordered]
        self.built = self.group  # the groups as built: a copy's original is in its own
        if not as_built:
            self.group = self._joined_identical(folder / "images")

    @property
    def identical_joined(self) -> int:
        """How many groups were joined to another by identical pixels."""
        return len(np.unique(self.built)) - len(np.unique(self.group))

    def _joined_identical(self, images: Path) -> np.ndarray:
        """The groups with those of pixel-identical images joined (each image's component)."""
        from PIL import Image

        first_of_pixels: dict[bytes, int] = {}
        first_of_group: dict[int, int] = {}
        pairs = []
        for i, (name, group) in enumerate(zip(self.files, self.group.tolist(), strict=True)):
            with Image.open(images / name) as image:
                pixels = np.asarray(image.convert("RGB"))
            digest = hashlib.sha1(pixels.tobytes() + str(pixels.shape).encode()).digest()
            pairs += [(i, first_of_pixels.setdefault(digest, i)),
                      (i, first_of_group.setdefault(group, i))]
        return np.array(components(len(self.files), pairs))


def scores(labels: np.ndarray, kept: np.ndarray, truth: Truth) -> dict:
    """Pair P/R/F1, recall by edit kind, negatives grouped by kind, and removed images with
    no true copy in their group; `kept` marks the image each group keeps."""
    result = {k: round(v, 4) if isinstance(v, float) else v
              for k, v in pair_scores(labels, truth.group).items()}
    result["recall_by_kind"], result["copies_by_kind"] = recall_by_edit(
        labels, truth.built, truth.kind, [r == "copy" for r in truth.role])
    # a negative counts when its group holds an image of another (joined) truth group
    pairs = set(zip(labels.tolist(), truth.group.tolist(), strict=True))
    mixed = Counter(label for label, _ in pairs)  # truth groups in each found group
    negatives = [i for i, r in enumerate(truth.role) if r == "negative"]
    result["negatives_grouped"] = {
        kind: int(sum(mixed[labels[i]] > 1 for i in negatives if truth.kind[i] == kind))
        for kind in sorted({truth.kind[i] for i in negatives})}
    # a removed image has a true copy in its group when another member shares its truth group
    together = Counter(zip(labels.tolist(), truth.group.tolist(), strict=True))
    removed = np.flatnonzero(~kept)
    alone = sum(together[labels[i], truth.group[i]] == 1 for i in removed)
    result.update(removed=len(removed), removed_without_true_copy=int(alone),
                  false_removal_share=round(alone / len(removed), 4) if len(removed) else 0.0)
    return result


def dedup_labels(out: Path, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Components of duplicates.csv's pairs, and which rows were kept."""
    index = {key: i for i, key in enumerate(keys)}
    with open(out / "duplicates.csv", newline="", encoding="utf-8") as f:
        pairs = [(index[r["key"]], index[r["duplicate_of"]]) for r in csv.DictReader(f)]
    kept = np.ones(len(keys), bool)
    kept[[a for a, _ in pairs]] = False
    return np.array(components(len(keys), pairs)), kept


def hash_labels(codes: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray]:
    """Components of the pairs within `threshold` bits; each keeps its first image."""
    bits = np.unpackbits(codes, axis=1)
    distance = bits.shape[1] - (bits @ bits.T.astype(np.int32) +
                                (1 - bits) @ (1 - bits).T.astype(np.int32))
    a, b = np.nonzero(np.triu(distance <= threshold, 1))
    labels = np.array(components(len(codes), list(zip(a.tolist(), b.tolist(), strict=True))))
    first = {}
    for i, label in enumerate(labels):
        first.setdefault(label, i)
    return labels, np.array([first[label] == i for i, label in enumerate(labels)])


def code_digest() -> str:
    """A digest of this checkout's library and CLI code: a run is reused only by the same code."""
    digest = hashlib.sha1()
    # the json files too: the verification model's weights live in dcgan_data/dedup/
    library = ROOT / "dcgan_data"
    for path in sorted([*library.rglob("*.py"), *library.rglob("*.json"),
                        *(ROOT / "cli").rglob("*.py")]):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def run_dedup(src: Path, out: Path, options: list[str]) -> dict:
    """Run dedup into `out`, or reuse what a finished run of the same command and the same
    code left there."""
    command = shlex.join(["dcgan-data", "dedup", str(src), "-o", str(out), "--dry-run",
                          *options])
    done = out / "bench_run.json"
    same = {"command": command, "code": code_digest()}
    if not (done.exists() and
            {k: json.loads(done.read_text()).get(k) for k in same} == same):
        subprocess.run(["rm", "-rf", str(out)], check=True)
        # the dedup of this checkout, as the scoring here imports
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dcgan_data", *shlex.split(command)[1:]],
                       check=True, stdout=subprocess.DEVNULL, env=env)
        write_json(done, {**same, "seconds": round(time.perf_counter() - start, 1)})
    report = json.loads((out / "dedup_report.json").read_text())
    return {**json.loads(done.read_text()),
            "verify_threshold": report["grouping"].get("threshold")}


def variant(extra: list[str]) -> str:
    """A name for the runs and results of one set of --dedup-args ('' for none)."""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in "_".join(extra)).strip("_")


def run_set(name: str, thresholds: list[float], extra: list[str], workers: int) -> dict:
    folder = ensure_set(name)
    runs = OUT / "runs" / "_".join(filter(None, [name, variant(extra)]))
    common = ["--workers", str(workers), *extra]
    default = run_dedup(folder / "images", runs / "default", common)
    ingested = ShardSet(runs / "default" / "ingested")
    keys = ingested.keys()
    truth = Truth(folder, keys)
    methods: dict[str, dict] = {}
    labels, kept = dedup_labels(runs / "default", keys)
    methods["dedup default"] = {**scores(labels, kept, truth), **default}
    for t in thresholds:
        out = runs / f"t{t:g}"
        run = run_dedup(runs / "default" / "ingested", out,
                        ["--verify-threshold", str(t), "--model",
                         str(runs / "default" / "hash_model.pt"), *common])
        labels, kept = dedup_labels(out, keys)
        methods[f"dedup t={t:g}"] = {**scores(labels, kept, truth), **run}
    import imagehash
    from PIL import Image

    hashes = {"phash64": peer_codes(ingested.load(), "phash"),
              "phash256": np.stack([np.packbits(imagehash.phash(Image.open(
                  folder / "images" / f)).hash.ravel()) for f in truth.files])}
    for method, codes in hashes.items():
        for t in PHASH_THRESHOLDS:
            methods[f"{method} <={t}"] = {**scores(*hash_labels(codes, t), truth),
                                          "threshold": t}
    counts = {role: truth.role.count(role) for role in ("original", "copy", "negative")}
    as_built = Truth(folder, keys, as_built=True)
    dedup_as_built = scores(*dedup_labels(runs / "default", keys), as_built)
    return {"images": len(keys), **counts, "groups_joined_by_identical_pixels":
            truth.identical_joined, "dedup_default_by_truth_as_built": {
                k: dedup_as_built[k] for k in ("precision", "recall")},
            "methods": methods, "summary": summary(methods)}


def best_precise(methods: dict, prefix: str) -> tuple[str | None, float]:
    """The method of this family with the highest recall at precision >= PRECISE."""
    fits = [(m["recall"], name) for name, m in methods.items()
            if name.startswith(prefix) and m["precision"] >= PRECISE]
    return (max(fits)[1], max(fits)[0]) if fits else (None, 0.0)


def summary(methods: dict) -> dict:
    dedup_name, dedup_recall = best_precise(methods, "dedup")
    phash_name, phash_recall = best_precise(methods, "phash")
    default = methods["dedup default"]
    return {"dedup_default": {"precision": default["precision"], "recall": default["recall"],
                              "verify_threshold": default["verify_threshold"]},
            f"dedup_best_at_p{PRECISE}": {"method": dedup_name, "recall": dedup_recall},
            f"phash_best_at_p{PRECISE}": {"method": phash_name, "recall": phash_recall},
            "recall_ratio": round(dedup_recall / phash_recall, 3) if phash_recall else None}


def print_set(name: str, result: dict) -> None:
    methods = result["methods"]
    built = result["dedup_default_by_truth_as_built"]
    print(f"\n{name}: {result['images']} images ({result['original']} originals, "
          f"{result['copy']} copies, {result['negative']} hard negatives); "
          f"{result['groups_joined_by_identical_pixels']} groups joined by identical pixels "
          f"(dedup default by the groups as built: P {built['precision']:.3f} "
          f"R {built['recall']:.3f})")
    print(f"{'method':18s} {'P':>6s} {'R':>6s} {'F1':>6s} {'removed':>8s} {'no copy':>8s}"
          f" {'negatives grouped':>18s}")
    for method, r in methods.items():
        print(f"{method:18s} {r['precision']:6.3f} {r['recall']:6.3f} {r['f1']:6.3f} "
              f"{r['removed']:8d} {r['false_removal_share']:8.3f} "
              f"{sum(r['negatives_grouped'].values()):18d}")
    s = result["summary"]
    shown = ["dedup default", s[f"dedup_best_at_p{PRECISE}"]["method"],
             s[f"phash_best_at_p{PRECISE}"]["method"],
             max((m for m in methods if m.startswith("phash")),
                 key=lambda m: methods[m]["f1"])]
    shown = list(dict.fromkeys(m for m in shown if m))
    print(f"\nrecall by kind (copies)   {' '.join(f'{m:>15s}' for m in shown)}")
    for kind, count in methods["dedup default"]["copies_by_kind"].items():
        print(f"{kind:20s} {count:4d} " +
              " ".join(f"{methods[m]['recall_by_kind'][kind]:15.2f}" for m in shown))
    print("negatives grouped")
    for kind in methods["dedup default"]["negatives_grouped"]:
        print(f"{kind:25s} " + " ".join(f"{methods[m]['negatives_grouped'][kind]:15d}"
                                        for m in shown))


def summary_line(name: str, result: dict) -> str:
    s = result["summary"]
    d, dp, pp = s["dedup_default"], s[f"dedup_best_at_p{PRECISE}"], s[f"phash_best_at_p{PRECISE}"]
    ratio = f"{s['recall_ratio']:.2f}x" if s["recall_ratio"] is not None else "n/a"
    return (f"{name}: dedup default (threshold {d['verify_threshold']}) P {d['precision']:.3f} "
            f"R {d['recall']:.3f}; best recall at P >= {PRECISE}: dedup {dp['recall']:.3f} "
            f"({dp['method']}), pHash {pp['recall']:.3f} ({pp['method']}); ratio {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", default=None,
                        help=f"default: {' '.join(DEV_SETS)} ({' '.join(FINAL_SETS)} with --final)")
    parser.add_argument("--final", action="store_true",
                        help="score the FINAL sets (kept untouched until the final figures)")
    parser.add_argument("--thresholds", nargs="*", type=float, default=list(THRESHOLDS),
                        help="--verify-threshold values run besides the default")
    parser.add_argument("--dedup-args", default="", help="more dedup options, one string")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    sets = args.sets or list(FINAL_SETS if args.final else DEV_SETS)
    if any(s in FINAL_SETS for s in sets) and not args.final:
        sys.exit("the FINAL sets are scored only with --final (they are kept for the final "
                 "figures)")
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    lines = []
    for name in sets:
        result = run_set(name, args.thresholds, shlex.split(args.dedup_args), args.workers)
        result.update(uptime_before=uptime, dedup_args=args.dedup_args)
        tag = "_".join(filter(None, [name, variant(shlex.split(args.dedup_args))]))
        write_json(OUT / f"results_{tag}.json", result)
        print_set(name, result)
        lines.append(summary_line(name, result))
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
