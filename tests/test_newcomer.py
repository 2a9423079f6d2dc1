"""What a new user meets first: the make pipelines' inputs and re-runs, quiet logs, progress
in a log file, pictures that do not mislead, and the small words of the command line."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dcgan_data.testing.photos import PHOTOS, ROOT, photo_crops, write_shards

# A stand-in for dcgan-data in the make pipelines: it logs each call and writes the file that
# the stage's make target names, so the tests check make's decisions, not the stages.
FAKE_DCGAN = textwrap.dedent("""\
    #!{python}
    import sys
    from pathlib import Path
    verb, args = sys.argv[1], sys.argv[2:]
    with open({log!r}, "a") as f:
        f.write(" ".join(sys.argv[1:]) + "\\n")
    out = Path(args[args.index("-o") + 1])
    target = {{"ingest": "manifest.json", "dedup": "manifest.json", "faces": "manifest.json",
               "train": "train_report.json", "audit": "audit_report.json"}}.get(verb)
    if target:
        out.mkdir(parents=True, exist_ok=True)
        (out / target).write_text("{{}}")
    else:
        out.write_text("")
""")


def make_lsun(tmp_path: Path, *variables: str) -> list[str]:
    """Run `make lsun` with the stand-in; returns the verbs it ran, in order."""
    fake, log = tmp_path / "dcgan-data", tmp_path / "calls.log"
    if not fake.exists():
        fake.write_text(FAKE_DCGAN.format(python=sys.executable, log=str(log)))
        fake.chmod(0o755)
    log.write_text("")
    subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "lsun",
                    f"VENV={Path(sys.executable).parent.parent}", f"DCGAN={fake}",
                    f"OUT={tmp_path / 'out'}", *variables],
                   check=True, capture_output=True, text=True)
    return [line.split()[0] for line in log.read_text().splitlines()]


def test_make_lsun_takes_a_folder_of_photos_and_reruns_a_stage_whose_arguments_changed(
        tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for photo in PHOTOS[:3]:
        shutil.copy(photo, photos)
    everything = ["ingest", "dedup", "train", "sample", "audit", "report"]
    assert make_lsun(tmp_path, f"LSUN={photos}") == everything
    assert make_lsun(tmp_path, f"LSUN={photos}") == []
    assert make_lsun(tmp_path, f"LSUN={photos}", "DEVICE=cpu") == []  # changes no output
    assert make_lsun(tmp_path, f"LSUN={photos}", "DEDUP_ARGS=--radius 2") == everything[1:]
    assert make_lsun(tmp_path, f"LSUN={photos}", "DEDUP_ARGS=--radius 2") == []
    assert make_lsun(tmp_path, f"LSUN={photos}", "DEDUP_ARGS=--radius 2",
                     "STEPS=7") == everything[2:]
    assert make_lsun(tmp_path, f"LSUN={photos}", "STEPS=7", "SIZE=32") == everything


def test_make_lsun_without_an_input_says_what_it_wants(tmp_path):
    result = subprocess.run(["make", "-C", str(ROOT), "lsun", f"LSUN={tmp_path / 'none'}",
                             f"OUT={tmp_path / 'out'}"], capture_output=True, text=True)
    assert result.returncode == 2 and "folder of images" in result.stderr
    assert not (tmp_path / "out").exists()


def test_make_help_lists_the_variables_and_the_cpu_settings():
    text = subprocess.run(["make", "-s", "-C", str(ROOT), "help"], check=True,
                          capture_output=True, text=True).stdout
    for name in ("LSUN", "STEPS", "SIZE", "DEVICE", "TRAIN_ARGS", "DEDUP_ARGS", "AUDIT_ARGS"):
        assert f"  {name}" in text or f" {name}," in text, name
    assert "sized\nfor a GPU" in text.replace("sized ", "sized\n") and "20,000 steps" in text
    assert 'SIZE=32 STEPS=1500 TRAIN_ARGS="--ngf 32 --ndf 32 --batch-size 64"' in text


def dcgan_data(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The command as a user runs it, its stderr a pipe (not a terminal)."""
    return subprocess.run([sys.executable, "-m", "dcgan_data", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=600)


@pytest.fixture(scope="module")
def shards32(tmp_path_factory):
    return write_shards(tmp_path_factory.mktemp("newcomer") / "s32",
                        photo_crops(120, size=32, seed=11))


def test_dedup_prints_its_own_lines_and_progress_when_not_on_a_terminal(shards32, tmp_path):
    out = tmp_path / "dedup"
    result = dcgan_data("dedup", str(shards32), "-o", str(out), "--workers", "1",
                        env={"DCGAN_DATA_PROGRESS_SECONDS": "0.5"})
    assert result.returncode == 0, result.stderr
    assert "faiss" not in result.stderr and "Warning" not in result.stderr
    lines = result.stderr.splitlines()
    progress = [line for line in lines if line.startswith("train hash: ")]
    assert len(progress) >= 2 and progress[-1].startswith("train hash: 400/400 step, ")
    assert "step/s, ETA " in progress[0]
    # any other phase long enough to report says the same kind of line
    phase_line = re.compile(r"^[a-z -]+(: [a-z -]+)?: [\d,]+/[\d,]+ (img|pair|view), ")
    others = [line for line in lines if line not in progress and not phase_line.match(line)]
    assert all(line.startswith("INFO dcgan_data") for line in others), others

    from dcgan_data.train import stage as trainer
    trainer.train(out, tmp_path / "run", device="cpu", steps=1, ngf=8, ndf=8, batch_size=16,
                  eval_every=1000, eval_model=str(out / "hash_model.pt"))
    result = dcgan_data("audit", str(tmp_path / "run"), "--train", str(out), "-o",
                        str(tmp_path / "audit"), "-n", "32", "--holdout", "16", "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "faiss" not in result.stderr and "Warning" not in result.stderr


def test_verbose_raises_the_tools_loggers_not_other_libraries(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    from PIL import Image
    Image.new("RGB", (40, 30), (200, 10, 10)).save(folder / "red.png")
    result = dcgan_data("-v", "inspect", str(folder), "--sheet", str(tmp_path / "s.png"))
    assert result.returncode == 0, result.stderr
    assert "PIL" not in result.stderr and "STREAM" not in result.stderr


def test_a_faces_run_that_kept_no_face_exits_1_with_its_reason(tmp_path):
    crawl = tmp_path / "list.txt"
    crawl.write_text("".join(f"{p}\n" for p in [*PHOTOS[:2], tmp_path / "gone.jpg"]))
    result = dcgan_data("faces", str(crawl), "-o", str(tmp_path / "faces"), "--detector",
                        "haar", "--local-root", "/", "--processes", "1", "--min-face", "5000")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: faces: no face kept, so nothing to train on: no face of about --min-face "
        "5000 px or larger found in the 2 images decoded")


def test_an_ingest_that_wrote_no_image_exits_1_with_its_reason(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "notes.jpg").write_text("not an image")
    result = dcgan_data("ingest", str(tmp_path / "photos"), "-o", str(tmp_path / "s"),
                        "--workers", "1")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: ingest: no image written, so nothing to train on: all 1 failed: "
        "not_an_image 1")


def test_no_duplicates_means_no_sheet_and_the_report_says_so(tmp_path):
    from dcgan_data.core.shards import ShardSet
    from dcgan_data.dedup import stage as dd
    from dcgan_data.dedup import write
    from dcgan_data.report.page import build_report

    shards = ShardSet(write_shards(tmp_path / "s", photo_crops(4, size=32)))
    out = tmp_path / "run" / "dedup"
    out.mkdir(parents=True)
    sheet = out / dd.SHEET
    sheet.write_bytes(b"a sheet from an earlier run")
    write.write_sheet(sheet, shards, None, np.arange(4))  # every row kept as itself
    assert not sheet.exists()
    (out / "dedup_report.json").write_text(json.dumps(
        {"stage": "dedup", "images": 4, "kept": 4, "removed": 0,
         "files": {"sheet": dd.SHEET}}))
    page = build_report(tmp_path / "run")
    assert "no duplicates found" in page and "removed duplicates (left)" not in page


def test_a_run_evaluated_once_says_so_and_what_good_looks_like(tmp_path):
    from dcgan_data.report.page import build_report

    train = tmp_path / "run" / "train"
    train.mkdir(parents=True)
    records = [{"step": s, "loss_D": 1.0, "loss_G": 1.0, "D_x": 0.5, "D_G_z": 0.5,
                "images_per_s": 100.0} for s in (1, 2, 3)]
    records[-1].update(hash_fd=133.4, hash_kid=0.5)
    (train / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    page = build_report(tmp_path / "run")
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "from 133.4" not in text
    assert "133.4 hash_fd at the only evaluation (no trend yet); lower is better" in text
    assert "train_hash_fd" not in page  # a one-dot plot


def test_rate_watch_warns_once_when_training_collapses_and_names_the_fix():
    from dcgan_data.train.stage import RateWatch

    watch = RateWatch(threads=2)
    # warm-up, steady, one slow interval (a checkpoint), steady again: no warning
    assert [watch(r) for r in (300, 1100, 1050, 90, 1080, 1000)] == [None] * 6
    said = [watch(r) for r in (40, 30, 35, 20, 25, 30)]
    assert said[:2] == [None, None] and said[3:] == [None] * 3
    assert said[2].startswith("training slowed to 35 images/s from 1,100: ")
    assert "torch's 2 threads" in said[2] and "--resume --threads 1" in said[2]


def test_train_sample_and_fid_take_threads_and_a_tiny_set_is_called_tiny(tmp_path, caplog,
                                                                          monkeypatch):
    import torch
    from click.testing import CliRunner

    from dcgan_data.core import files
    from dcgan_data.train import stage as trainer
    from dcgan_data_cli.main import cli

    said = []  # what the train bar says while its step count stands at the end

    class Bar(files.LogProgress):
        def set_description_str(self, desc, refresh=True):
            said.append((self.n, desc))

    monkeypatch.setattr(trainer, "progress", lambda **kw: Bar(None, 30, **kw))

    data = write_shards(tmp_path / "s", photo_crops(40, size=32))
    run = tmp_path / "run"
    threads = torch.get_num_threads()
    try:
        result = CliRunner().invoke(cli, [
            "train", str(data), "-o", str(run), "--threads", "1", "--steps", "2", "--ngf", "8",
            "--ndf", "8", "--batch-size", "16", "--eval-every", "1000", "--device", "cpu"])
        assert result.exit_code == 0, result.output
        assert json.loads((run / "config.json").read_text())["threads"] == 1
        assert "only 40 training images: a GAN needs thousands" in caplog.text
        assert said == [(2, "train: evaluating"), (2, "train"),
                        (2, "train: writing checkpoint"), (2, "train")]
        torch.set_num_threads(threads)
        result = CliRunner().invoke(cli, ["sample", str(run), "-n", "4", "-o",
                                          str(tmp_path / "g.png"), "--threads", "1"])
        assert result.exit_code == 0 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert "--threads" in CliRunner().invoke(cli, ["fid", "--help"]).output


def test_the_small_words(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from dcgan_data_cli.main import cli

    def run(*args):
        return CliRunner().invoke(cli, [str(a) for a in args])

    photos = tmp_path / "photos"
    for name, photo in zip(["cats", "cats", "dogs"], PHOTOS[:3], strict=True):
        (photos / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, photos / name)
    (photos / "dogs" / "notes.jpg").write_text("not an image")
    result = run("ingest", photos, "-o", tmp_path / "s", "--workers", "1", "--size", "32")
    assert result.exit_code == 0, result.output
    assert "(1 failed: not_an_image 1; " in result.output and "{" not in result.output
    assert "labels.csv: each image's class folder (2 classes)" in result.output
    assert (tmp_path / "s" / "labels.csv").read_text() == (
        f"key,label\ncats/{PHOTOS[0].name},cats\ncats/{PHOTOS[1].name},cats\n"
        f"dogs/{PHOTOS[2].name},dogs\n")

    result = run("pack", PHOTOS[0], PHOTOS[1], PHOTOS[0], "-o", tmp_path / "lmdb")
    assert result.output.strip() == (f"packed 2 images into {tmp_path / 'lmdb'} (2 entries, 1 "
                                     "repeating an image given before, 0 failed)")
    result = run("pack", PHOTOS[0], "-o", tmp_path / "lmdb")
    assert "(2 entries, 1 already there, 0 failed)" in result.output

    result = run("export", tmp_path / "s", "-o", tmp_path / "e", "--format", "folder")
    assert result.exit_code == 0 and "(1 part, 0 already done;" in result.output

    monkeypatch.chdir(tmp_path)
    assert run("inspect", tmp_path / "s").exit_code == 0
    assert not list(tmp_path.glob("*.png"))  # no sheet unless --sheet names one

    for verb, old in (("dedup", "--model"), ("audit", "--model"), ("train", "--eval-model"),
                      ("fid", None)):
        text = run(verb, "--help").output
        assert "--hash-model" in text and (old is None or old not in text.replace(
            "--hash-model", "")), verb
    text = run("report", "--help").output
    assert "-o, --out FILE" in text and "--output" not in text
    old_name = run("report", tmp_path / "none", "--output", tmp_path / "r.html")
    assert "no such output folder" in old_name.output  # the old name still parses
    text = " ".join(run("dedup", "--help").output.split())
    for option in ("--batch-size INTEGER Crops per step", "--lr FLOAT Adam learning rate",
                   "--seed INTEGER Seed of the hash model's training"):
        assert option in text, option
