"""`dcgan-data audit`: a planted memoriser is caught (copies of any training row, those it
calibrates on included), unseen real images are not, a calibration too small for --alpha is
named, bad input is refused with one line and exit 2 before anything is written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dcgan_data.audit import stage as audit
from dcgan_data.audit.calibration import calibration_warning, closer_share, copy_threshold
from dcgan_data.audit.features import MODEL
from dcgan_data.audit.planted import Planted, planted_memoriser
from dcgan_data.audit.rerank import relative_distances, shift_distance
from dcgan_data.core.images import encode_image
from dcgan_data.engines.local import LocalEngine
from dcgan_data.hashmodel import hashing
from dcgan_data.testing.photos import PHOTOS, load_photo, write_shards
from dcgan_data_cli.main import cli

FAST = hashing.HashConfig(min_steps=200, max_steps=200, batch_size=256)
HEADER = ["sample", "nearest_key", "hash_distance", "distance", "relative_distance", "copy"]


def photos() -> list[np.ndarray]:
    import skimage.data

    extra = [getattr(skimage.data, name)() for name in
             ("astronaut", "coffee", "chelsea", "rocket", "cat", "brick", "grass", "gravel")]
    return [load_photo(p) for p in PHOTOS] + [e for e in extra if e.ndim == 3]


@pytest.fixture(scope="module")
def planted() -> Planted:
    return planted_set()


def planted_set() -> Planted:
    return planted_memoriser(photos(), per_photo=18, copies=150, fakes=150, unseen=150,
                                   seed=3)


@pytest.fixture(scope="module")
def dirs(planted, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("audit")
    train = write_shards(root / "train", planted.train)
    generated = write_shards(root / "generated", planted.generated,
                             [f"gen{i:04d}" for i in range(len(planted.generated))])
    unseen = root / "unseen"
    unseen.mkdir()
    for i, row in enumerate(planted.unseen):
        (unseen / f"real{i:04d}.png").write_bytes(encode_image(row, "png"))
    crops = hashing.to_hash_crops(planted.train)
    model, _ = hashing.train_hash_model(crops, FAST, "cpu", seed=0)
    hashing.save_model(model, root / "hash_model.pt")
    return {"root": root, "train": train, "generated": generated, "unseen": unseen,
            "model": root / "hash_model.pt"}


def read_table(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == HEADER
        return list(reader)


def test_planted_memoriser_is_caught_and_unseen_images_are_not(planted, dirs):
    out = dirs["root"] / "out_planted"
    report = audit.audit(dirs["generated"], dirs["train"], out, holdout=dirs["unseen"],
                         model_path=dirs["model"], device="cpu")
    rows = read_table(out / audit.CSV)
    assert len(rows) == len(planted.generated) == report.samples
    called = np.array([r["copy"] == "1" for r in rows])
    truth = planted.copy_of >= 0
    hits = int((called & truth).sum())
    precision, recall = hits / max(called.sum(), 1), hits / truth.sum()
    false_copy_rate = (called & ~truth).sum() / (~truth).sum()
    assert precision >= 0.99 and recall >= 0.95, (precision, recall)
    assert false_copy_rate <= 0.01
    # a copy's nearest training image is its original
    nearest = np.array([r["nearest_key"] for r in rows])
    originals = np.array([f"img{i:06d}" for i in planted.copy_of])
    assert (nearest[truth] == originals[truth]).mean() >= 0.97
    assert report.copies == int(called.sum())
    assert report.holdout_images == len(planted.unseen)
    assert report.closer_than_holdout > 0.6
    assert "samples lie nearer single training images than real images do" in \
        report.verdict
    for name in (audit.REPORT, audit.NEAREST, audit.DISTANCES):
        assert (out / name).stat().st_size > 1000
    assert json.loads((out / audit.REPORT).read_text())["copies"] == report.copies


def test_unseen_images_alone_are_not_copies(planted, dirs):
    out = dirs["root"] / "out_clean"
    report = audit.audit(dirs["unseen"], dirs["train"], out, holdout=60,
                         model_path=dirs["model"], device="cpu")
    assert report.copy_fraction <= 0.02
    assert report.holdout_images == 60 and report.indexed_images == len(planted.train)
    assert "samples lie no nearer the training set than real images do" in report.verdict


def edited_copies(rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each row copied with one edit, in turn: exact, JPEG q75, 10% brighter, blurred."""
    from dcgan_data.testing.neardup import NAMED_ONLY, TRANSFORMS

    rng = np.random.default_rng(0)
    edits = ["exact", "jpeg_q75", "brighter_10pct", "slight_blur"]
    kinds = [edits[i % len(edits)] for i in range(len(rows))]
    edit = {**TRANSFORMS, **NAMED_ONLY, "exact": lambda rgb, rng: rgb.copy()}
    return np.stack([edit[k](row, rng) for k, row in zip(kinds, rows, strict=True)]), kinds


def test_copies_of_the_rows_it_calibrates_on_are_found(planted, dirs, tmp_path):
    # the rows drawn for calibration used to be kept out of the index: their copies were
    # never found. Every row is indexed now; each calibration row just skips itself.
    calibration = np.sort(np.random.default_rng(0).choice(len(planted.train), 120, False))
    copies, _ = edited_copies(planted.train[calibration])
    generated = write_shards(tmp_path / "generated", copies)
    report = audit.audit(generated, dirs["train"], tmp_path / "out", holdout=120,
                         model_path=dirs["model"], device="cpu", seed=0)
    assert report.holdout_keys == [f"img{i:06d}" for i in calibration]
    rows = read_table(tmp_path / "out" / audit.CSV)
    assert np.mean([r["copy"] == "1" for r in rows]) >= 0.95
    originals = [f"img{i:06d}" for i in calibration]
    assert np.mean([r["nearest_key"] == o for r, o in zip(rows, originals, strict=True)]) >= 0.95
    assert report.indexed_images == len(planted.train)


def test_rows_repeated_in_the_training_set_do_not_blind_the_calibration(planted, dirs,
                                                                       tmp_path):
    # a fifth of the rows twice: left out alone, each such calibration row would find its
    # twin at distance 0, the threshold would fall to 0 and no copy could be called
    rng = np.random.default_rng(1)
    twice = rng.choice(len(planted.train), len(planted.train) // 5, replace=False)
    train = write_shards(tmp_path / "train", np.concatenate([planted.train,
                                                             planted.train[twice]]))
    sources = rng.choice(len(planted.train), 60, replace=False)
    copies, _ = edited_copies(planted.train[sources])
    generated = write_shards(tmp_path / "generated", copies)
    report = audit.audit(generated, train, tmp_path / "out", holdout=10**6,  # every row
                         model_path=dirs["model"], device="cpu")
    assert report.holdout_repeated_in_training >= 2 * len(twice) * 0.9
    assert report.threshold > 0.05
    assert report.copies >= 0.95 * len(sources)


def test_scan_on_worker_processes_equals_one_process(planted, dirs, tmp_path):
    # shards of 100 rows: several units, which the workers finish in any order
    train = write_shards(tmp_path / "train", planted.train, rows_per_shard=100)
    tables = []
    for engine in (LocalEngine(1), LocalEngine(2)):
        out = tmp_path / f"out_{engine.workers}"
        report = audit.audit(dirs["generated"], train, out, holdout=dirs["unseen"],
                             model_path=dirs["model"], device="cpu", engine=engine)
        assert report.parameters.engine == "local"
        tables.append((out / audit.CSV).read_bytes())
    assert tables[0] == tables[1]


def test_cli_on_a_training_run_draws_samples(dirs, tmp_path):
    from dcgan_data.train import stage as trainer

    small = write_shards(tmp_path / "small", audit_rows(dirs)[:64])
    run = tmp_path / "run"
    trainer.train(small, run, device="cpu", steps=2, ngf=8, ndf=8, batch_size=16)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["audit", str(run), "--train", str(small), "-o", str(out),
                                      "-n", "40", "--holdout", "0.25", "--model",
                                      str(dirs["model"]), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "audit:" in result.output
    rows = read_table(out / audit.CSV)
    assert [r["sample"] for r in rows] == [f"sample{i:06d}" for i in range(40)]
    report = json.loads((out / audit.REPORT).read_text())
    assert report["input"]["kind"] == "run" and report["holdout_images"] == 16
    # an untrained generator's grey is called what it is, not "nearer" the training set
    assert "samples are nearly flat" in report["verdict"]
    assert "nearer single" not in report["verdict"]
    assert "a generator that copies nothing would get about 2 " in report["verdict"]
    # 16 calibration images cannot honour alpha 0.01: said, with what to pass instead
    assert report["alpha_effective"] == pytest.approx(1 / 17, abs=1e-6)
    assert "needs at least 99 calibration images and 16 were usable" in \
        report["calibration_warning"]
    assert "--alpha 0.059" in report["calibration_warning"]


def audit_rows(dirs) -> np.ndarray:
    from dcgan_data.core.shards import ShardSet

    return ShardSet(dirs["train"]).load()


def test_without_a_model_it_uses_the_dedup_stage_model_or_trains_one(dirs, tmp_path):
    train = write_shards(tmp_path / "dedup", audit_rows(dirs)[:200])
    (tmp_path / "elsewhere").mkdir()
    moved = tmp_path / "elsewhere" / "hash_model.pt"
    moved.write_bytes(dirs["model"].read_bytes())
    (train / "dedup_report.json").write_text(json.dumps({"model": {"model": str(moved)}}))
    report = audit.audit(dirs["unseen"], train, tmp_path / "a", n=20, device="cpu")
    assert report.model == {"model": str(moved), "trained": False}
    (train / "dedup_report.json").unlink()
    report = audit.audit(dirs["unseen"], train, tmp_path / "b", n=20, device="cpu",
                         config=hashing.HashConfig(min_steps=20, max_steps=20))
    assert report.model["trained"] and (tmp_path / "b" / MODEL).exists()


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["audit", *args])
    return result.exit_code, result.output


def test_bad_input_is_one_line_exit_2_and_writes_nothing(dirs, tmp_path):
    train, model = str(dirs["train"]), str(dirs["model"])
    empty = tmp_path / "empty"
    empty.mkdir()
    no_ckpt = tmp_path / "run"
    (no_ckpt / "checkpoints").mkdir(parents=True)
    wrong = hashing.HashAutoencoder(hashing.HashConfig())
    state = {k: v for k, v in wrong.state_dict().items()}
    state["encoder.weight"] = torch.zeros(128, 16 * 16 * 3)  # a model for 16x16 crops
    payload = {"format": hashing.FORMAT, "version": hashing.VERSION,
               "config": hashing.HashConfig().__dict__, "state_dict": state, "info": {}}
    torch.save(payload, tmp_path / "model16.pt")
    cases = {
        "no checkpoint": [str(no_ckpt), "--train", train, "--model", model],
        "empty folder": [str(empty), "--train", train, "--model", model],
        "-n 0": [str(dirs["generated"]), "--train", train, "--model", model, "-n", "0"],
        "model for another size": [str(dirs["generated"]), "--train", train, "--model",
                                   str(tmp_path / "model16.pt")],
        "train not shards": [str(dirs["generated"]), "--train", str(empty), "--model", model],
        "bad holdout": [str(dirs["generated"]), "--train", train, "--model", model,
                        "--holdout", "-3"],
    }
    for name, args in cases.items():
        out = tmp_path / f"out_{name.replace(' ', '_')}"
        code, output = run_cli(*args, "-o", str(out))
        assert code == 2, (name, output)
        assert output.startswith("error: ") and output.count("\n") == 1, (name, output)
        assert not out.exists(), name


def test_generated_of_another_size_is_resized_and_says_so(dirs, tmp_path, caplog):
    rows = audit_rows(dirs)[:30, ::2, ::2]  # 32x32 against 64x64 training rows
    small = write_shards(tmp_path / "small", np.ascontiguousarray(rows))
    report = audit.audit(small, dirs["train"], tmp_path / "out", holdout=60,
                         model_path=dirs["model"], device="cpu")
    assert report.input["resized_from"] == 32
    assert "resizing" in caplog.text
    # exact training rows, only resized twice: found as copies
    table = read_table(tmp_path / "out" / audit.CSV)
    assert np.mean([r["copy"] == "1" for r in table]) >= 0.9


def test_copy_rule_is_conformal():
    held_out = np.arange(1, 1000, dtype=np.float32)  # 999 held-out distances
    threshold, alpha = copy_threshold(held_out, 0.01)
    assert alpha == pytest.approx(10 / 1000) and threshold == 10  # closer than the 10th
    assert (held_out < threshold).mean() <= 0.01
    threshold, alpha = copy_threshold(held_out[:20], 0.001)  # too few for alpha
    assert threshold == 1 and alpha == pytest.approx(1 / 21)
    assert calibration_warning(999, 0.01, 0.01) is None
    # 20 images give at best alpha 1/21: the warning's suggested alpha is then honoured
    warning = calibration_warning(20, 0.001, 1 / 21)
    assert "needs at least 999 calibration images and 20 were usable" in warning
    assert "--alpha 0.048" in warning and copy_threshold(held_out[:20], 0.048)[1] <= 0.048
    assert closer_share(np.zeros(5), held_out) == 1.0
    assert closer_share(held_out, held_out) == pytest.approx(0.5)


def test_shift_distance_aligns_shifted_copies_and_relative_distance():
    rng = np.random.default_rng(0)
    scene = torch.from_numpy(rng.uniform(0, 255, (1, 3, 40, 40)).astype(np.float32))
    scene = torch.nn.functional.avg_pool2d(scene, 3, 1, 1)  # some spatial correlation
    a = scene[:, :, 4:36, 4:36]
    shifted = scene[:, :, 6:38, 3:35]  # 2 px down, 1 left
    other = torch.roll(scene, 11, 3)[:, :, 4:36, 4:36]
    assert shift_distance(a, shifted).item() < 0.1  # float32 rounding only
    assert shift_distance(a, other).item() > 10
    ranked = np.array([[1.0, 10, 10, 10, 10, 10], [9, 10, 10, 10, 10, 10],
                       [5, np.inf, np.inf, np.inf, np.inf, np.inf]], np.float32)
    relative = relative_distances(ranked)
    assert relative[0] == pytest.approx(0.1) and relative[1] == pytest.approx(0.9)
    assert np.isnan(relative[2])


def test_report_reads_typed_and_builds_the_page_section(dirs, tmp_path):
    from dcgan_data.audit.report import AuditReport
    from dcgan_data.audit.section import audit_section
    from dcgan_data.core.errors import InputError
    from dcgan_data.report.html import Page, Stage, Summary

    out = tmp_path / "out"
    audit.audit(dirs["unseen"], dirs["train"], out, n=20, holdout=60, alpha=0.05,
                model_path=dirs["model"], device="cpu")
    path = out / audit.REPORT
    written = json.loads(path.read_text())
    assert "calibration_warning" not in written  # 60 images honour alpha 0.05: no warning
    report = AuditReport.read(path, strict=True)  # every attribute the page reads is written
    assert report.to_json() == written
    assert report.samples == 20 and report.files.table == audit.CSV
    summary = Summary()
    section = audit_section(Page(tmp_path, tmp_path / "page.html"),
                            Stage("audit", out, written, path, path.stat().st_mtime), summary)
    assert section.title.startswith("Audit")
    headline = dict(section.headline)  # every scalar attribute, read typed
    assert headline["copies"] == str(report.copies) and headline["verdict"] == report.verdict
    assert headline["samples"] == "20"
    assert summary.cards == [(str(report.copies), "samples that copy a training image",
                              f"{100 * report.copy_fraction:.1f}% of 20 samples")]
    del written["copies"]
    with pytest.raises(InputError, match="no 'copies'"):
        AuditReport.from_json(written, strict=True)
