"""Check what `make pipelines` built from the bundled sample; exit 1 naming every problem.

    python pipelines/check.py build/sample

Checks that each stage's report agrees with the shards it wrote, that dedup found the
planted duplicates at the expected precision, that sample grids were written, that the
status tables name every item's fate, and that each report.html loads in headless Chromium
with every picture and no raw dict text (a screenshot is saved beside it).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from dcgan_data.core.images import decode_image
from dcgan_data.core.shards import ShardSet
from dcgan_data.core.status import read_table
from dcgan_data.report.browser import browser_check

# The bundled sample is small (a few hundred planted pairs): these floors leave room for
# chance, not for a broken stage.
LSUN_MIN_PRECISION = 0.97
LSUN_MIN_RECALL = 0.70  # measured 0.87 with probes (0.40 with equal hashes alone)
FACES_MIN_PRECISION = 0.99
HASH_FD_MAX_RATIO = 0.6  # the demo's training: last / first evaluation (measured ~0.3)


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.figures: list[str] = []

    def expect(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)

    def dedup(self, shards_in: Path, out: Path) -> list[dict[str, str]]:
        report = json.loads((out / "dedup_report.json").read_text())
        removed = rows(out / "duplicates.csv")
        kept = ShardSet(out)
        self.expect(report["images"] == len(ShardSet(shards_in)),
                    f"{out}: report images {report['images']} != input shards")
        self.expect(report["kept"] == len(kept), f"{out}: report kept != {len(kept)} rows")
        self.expect(report["removed"] == len(removed) == report["images"] - report["kept"],
                    f"{out}: removed {report['removed']} != duplicates.csv {len(removed)} rows")
        self.expect(not {r["key"] for r in removed} & set(kept.keys()),
                    f"{out}: a removed key is still in the kept shards")
        self.expect((out / "duplicates.png").exists() or not removed, f"{out}: no duplicates.png")
        return removed

    def training(self, out: Path) -> None:
        report = json.loads((out / "train" / "train_report.json").read_text())
        self.expect(report["step"] == report["total_steps"] and not report["interrupted"],
                    f"{out}/train: stopped at step {report['step']} of {report['total_steps']}")
        metrics = (out / "train" / "metrics.jsonl").read_text().splitlines()
        self.expect(len(metrics) > 0, f"{out}/train: metrics.jsonl is empty")
        fd = [m["hash_fd"] for m in map(json.loads, metrics) if "hash_fd" in m]
        if len(fd) >= 2:  # a run evaluated along the way must show it learned
            self.figures.append(f"{out}/train: hash_fd {fd[0]:.1f} -> {fd[-1]:.1f}")
            self.expect(fd[-1] < HASH_FD_MAX_RATIO * fd[0],
                        f"{out}/train: hash_fd fell only from {fd[0]:.1f} to {fd[-1]:.1f}")
        size = json.loads((out / "train" / "config.json").read_text())["size"]
        grid, _ = decode_image((out / "samples.png").read_bytes())
        self.expect(min(grid.shape[:2]) >= 8 * size,
                    f"{out}/samples.png: {grid.shape} too small for 8x8 {size} px images")
        self.expect(grid.std() > 5, f"{out}/samples.png is flat")

    def page(self, out: Path) -> None:
        check = browser_check(out / "report.html", out / "report_screenshot.png")
        self.expect(check.images_ok >= 8 and check.images_broken == 0,
                    f"{out}/report.html: {check.images_ok} pictures loaded, "
                    f"{check.images_broken} broken")
        self.expect(check.raw_dicts == 0,
                    f"{out}/report.html: {check.raw_dicts} raw dict(s) outside collapsed parts")
        self.figures.append(f"{out}/report.html: {check.images_ok} pictures load in chromium, "
                            f"no raw dicts; screenshot {out}/report_screenshot.png")

    def lsun(self, sample: Path) -> None:
        out = sample / "lsun"
        ingest = json.loads((out / "ingested" / "ingest_report.json").read_text())
        truth = rows(sample / "duplicates_truth.csv")
        bad = {r["key"] for r in rows(sample / "bad_keys.csv")}
        self.expect(ingest["written"] == len(ShardSet(out / "ingested")),
                    "ingest: report written != shard rows")
        self.expect({f["key"] for f in ingest["failed_items"]} == bad,
                    f"ingest: failed keys {ingest['failed_items']} != the sample's broken keys")
        fates = read_table(out / "ingested" / ingest["status_table"])
        self.expect(len(fates) == ingest["read"]
                    and {r["key"] for r in fates if r["status"] != "ok"} == bad,
                    "ingest: the status table does not name the sample's broken keys")
        removed = self.dedup(out / "ingested", out / "dedup")
        original = {r["key"]: r["duplicate_of"] for r in truth}
        group = lambda key: original.get(key, key)  # noqa: E731 - a one-line lookup
        right = sum(group(r["key"]) == group(r["duplicate_of"]) for r in removed)
        precision = right / len(removed) if removed else 0.0
        recall = right / len(truth)
        self.figures.append(f"lsun dedup: {len(removed)} removed, precision {precision:.3f}, "
                            f"recall {recall:.3f} of {len(truth)} planted copies")
        self.expect(precision >= LSUN_MIN_PRECISION,
                    f"lsun dedup precision {precision:.3f} < {LSUN_MIN_PRECISION}")
        self.expect(recall >= LSUN_MIN_RECALL,
                    f"lsun dedup recall {recall:.3f} < {LSUN_MIN_RECALL}")
        self.training(out)
        self.page(out)

    def faces(self, sample: Path) -> None:
        out = sample / "faces"
        report = json.loads((out / "faces" / "faces_report.json").read_text())
        detections = rows(out / "faces" / "faces.csv")
        shards = ShardSet(out / "faces")
        kept = [d for d in detections if d["kept"] == "1"]
        self.expect(report["kept"] == len(shards) == len(kept),
                    f"faces: report kept {report['kept']}, shards {len(shards)}, "
                    f"faces.csv kept {len(kept)}")
        self.expect(report["boxes"] == len(detections), "faces: report boxes != faces.csv rows")
        for reason in ("http_404", "malformed"):
            self.expect(report["failed_by_reason"].get(reason) == 1,
                        f"faces: expected one {reason}, got {report['failed_by_reason']}")
        fates = read_table(out / "faces" / report["status_table"])
        failed = sum(r["status"] != "ok" for r in fates)
        self.expect(len(fates) == report["entries"] + report["failed_by_reason"]["malformed"]
                    and failed == report["failed"],
                    f"faces: status table has {len(fates)} rows, {failed} failed")
        self.expect(len(shards) >= 50, f"faces: only {len(shards)} faces kept")
        removed = self.dedup(out / "faces", out / "dedup")
        planted = {(r["url"], r["duplicate_of"]) for r in rows(sample / "crawl" /
                                                               "planted_duplicates.csv")}
        source = lambda key: key.rsplit("#", 1)[0]  # noqa: E731 - row key is URL#index
        right = [r for r in removed if (source(r["key"]), source(r["duplicate_of"])) in planted]
        precision = len(right) / len(removed) if removed else 1.0
        self.figures.append(f"faces dedup: {len(removed)} removed, {len(right)} of "
                            f"{len(planted)} planted duplicates found, precision "
                            f"{precision:.3f}")
        self.expect(precision >= FACES_MIN_PRECISION,
                    f"faces dedup precision {precision:.3f} < {FACES_MIN_PRECISION}")
        self.expect(len(right) >= 1, "faces dedup found none of the planted duplicates")
        self.training(out)
        self.page(out)


def main() -> None:
    sample = Path(sys.argv[1] if len(sys.argv) > 1 else "build/sample")
    checker = Checker()
    for pipeline in (checker.lsun, checker.faces):
        try:
            pipeline(sample)
        except (OSError, KeyError, ValueError) as exc:
            checker.problems.append(f"{pipeline.__name__}: {type(exc).__name__}: {exc}")
    for figure in checker.figures:
        print(figure)
    for problem in checker.problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    print(f"pipelines check: {len(checker.problems)} problem(s)")
    sys.exit(1 if checker.problems else 0)


if __name__ == "__main__":
    main()
