"""The pipeline's dashboard page, built from real stage outputs and rendered in headless
Chromium: a summary, a section per stage with its plots, nothing raw outside collapsed parts."""

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dcgan_data.core import plots
from dcgan_data.core.errors import InputError
from dcgan_data.core.images import decode_image
from dcgan_data.dedup import stage as dd
from dcgan_data.faces.options import FaceOptions, FetchOptions
from dcgan_data.faces.stage import faces
from dcgan_data.hashmodel import hashing
from dcgan_data.ingest.stage import ingest
from dcgan_data.report.browser import browser_check
from dcgan_data.report.page import build_report, write_report
from dcgan_data.testing.photos import FACES, PHOTOS, photo_crops, write_shards
from dcgan_data.train import stage as trainer
from dcgan_data_cli.main import cli


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A pipeline folder written by the real stages: ingest (with broken files), faces (with
    a missing file and a malformed line), dedup (with planted copies) and a short training."""
    tmp = tmp_path_factory.mktemp("report")
    photos = tmp / "photos"
    photos.mkdir()
    for photo in PHOTOS[:6]:
        shutil.copy(photo, photos)
    (photos / "cut.jpg").write_bytes(PHOTOS[6].read_bytes()[:3000])
    (photos / "notes.jpg").write_text("not an image")
    run = tmp / "run"
    ingest(photos, run / "ingested", workers=1)

    crawl = tmp / "crawl.txt"
    crawl.write_text(f"{FACES[0]}\n{tmp / 'gone.jpg'}\na\tb\tc\n{PHOTOS[0]}\n")
    options = FaceOptions(detector="haar", fetch=FetchOptions(local_root=Path("/")))
    faces(crawl, run / "faces", options, processes=1)

    crops = photo_crops(200, seed=5)
    images = np.concatenate([crops, crops[:20]])  # 20 exact copies
    write_shards(tmp / "crops", images)
    dd.dedup(tmp / "crops", run / "dedup",
             config=hashing.HashConfig(min_steps=20, max_steps=20, batch_size=64))

    trainer.train(run / "dedup", run / "train", device="cpu", ngf=8, ndf=8, batch_size=16,
                  steps=10, log_every=1, sample_every=2, ckpt_every=10)
    return run


def visible_text(page: str) -> str:
    """The page's text outside <details>, <script> and <style>."""
    page = re.sub(r"<(details|script|style)\b.*?</\1>", "", page, flags=re.S)
    return re.sub(r"<[^>]+>", " ", page)


def test_every_stage_has_its_section_and_plots(run_dir):
    page = write_report(run_dir).read_text()
    for anchor in ("ingest", "faces", "dedup-dedup", "train-train"):
        assert f'<section id="{anchor}">' in page
    plotted = sorted(p.name for p in (run_dir / "report_files").glob("*.png"))
    assert plotted == ["dedup_dedup_bits.png", "dedup_dedup_distances.png",
                       "dedup_dedup_groups.png", "faces_faces_failures.png",
                       "faces_faces_sizes.png", "ingest_ingested_failures.png",
                       "train_train_dx.png", "train_train_losses.png"]
    for plot in plotted:
        rgb, _ = decode_image((run_dir / "report_files" / plot).read_bytes())
        assert rgb.shape[1] >= 600 and rgb.std() > 10  # drawn, not blank
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert all((run_dir / s).exists() for s in sources)
    for picture in ("ingested/contact_sheet.png", "faces/faces.png", "dedup/duplicates.png"):
        assert picture in sources
    # four sample grids side by side, spread from the first to the last of five
    assert [s for s in sources if "/samples/" in s] == [
        f"train/samples/step_{s:06d}.png" for s in (2, 4, 8, 10)]
    assert "train/loss.png" not in sources  # the same curves are drawn on the page


def test_summary_comes_first_with_the_key_figures(run_dir):
    page = build_report(run_dir)
    text = " ".join(visible_text(page).split())
    summary = text[:text.index("Time per stage")]
    assert "8 images in 6 written" in summary
    assert "2 failed in ingest" in summary and "not_an_image 1" in summary
    removed = json.loads((run_dir / "dedup" / "dedup_report.json").read_text())["removed"]
    assert removed >= 20  # the planted copies, and what a hash trained for a few steps merges
    assert f"{removed} removed as duplicates {100 * removed / 220:.1f}% of 220" in summary
    assert "3 images listed 2 failed:" in summary and "missing_file 1" in summary
    assert "1 faces kept" in summary
    assert "10 steps trained of 10" in summary
    for stage in ("Ingest", "Faces", "De-duplication (dedup)", "Training (train)"):
        assert f"{stage} " in text[text.index("Time per stage"):]


def test_no_raw_dicts_outside_collapsed_parts(run_dir):
    page = build_report(run_dir)
    text = visible_text(page)
    assert not re.search(r"[{\[]\s*['\"]?\w+['\"]?\s*:", text), text
    # the parameters and the raw figures are still there, collapsed
    assert page.count("<details>") >= 4 and "&quot;bit_rates&quot;: [" in page
    assert '<a href="faces/faces_status.parquet">' in page
    assert '<a href="ingested/ingest_status.parquet">' in page


def test_failed_items_are_listed_collapsed(run_dir):
    page = build_report(run_dir)
    listing = re.search(r"<details><summary>Failed keys: 2</summary>(.*?)</details>", page)
    assert listing and "cut.jpg" in listing[1] and "notes.jpg" in listing[1]


def test_extra_metric_columns_and_an_audit_stage_are_shown(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    metrics = [json.loads(line) for line in (run / "train" / "metrics.jsonl").open()]
    with open(run / "train" / "metrics.jsonl", "w") as f:
        for m in metrics:  # a quality figure logged every 4 steps, as an evaluation would be
            f.write(json.dumps({**m, "frechet": 100.0 / m["step"]} if m["step"] % 4 == 0
                               else m) + "\n")
    audit = run / "audit"
    audit.mkdir()
    plots.value_histogram([1.0, 2.0, 2.5], audit / "distances.png", "distances", "distance")
    shutil.copy(run / "dedup" / "duplicates.png", audit / "nearest.png")
    (audit / "audit_report.json").write_text(json.dumps({
        "stage": "audit", "samples": 200, "copies": 3, "copy_fraction": 0.015,
        "quantiles": {"samples": [0.1, 0.5], "holdout": [0.2, 0.6]}}))

    (run / "report_files").mkdir(exist_ok=True)
    (run / "report_files" / "a_stage_since_removed.png").write_bytes(b"old plot")
    record = run / "report_files" / "plots.json"  # as if an earlier report had drawn it
    drawn = json.loads(record.read_text()) if record.exists() else []
    record.write_text(json.dumps([*drawn, "a_stage_since_removed.png"]))
    page = write_report(run).read_text()
    assert (run / "report_files" / "train_train_frechet.png").exists()
    assert not (run / "report_files" / "a_stage_since_removed.png").exists()
    text = " ".join(visible_text(page).split())
    assert "frechet 25 at first, 12.5 at last" in text
    assert "12.5 frechet from 25 at the first evaluation" in text
    assert "3 samples that copy a training image 1.5% of 200 samples" in text
    assert '<section id="audit-audit">' in page
    for picture in ("audit/nearest.png", "audit/distances.png"):
        assert f'<img src="{picture}"' in page
    assert "quantiles" not in visible_text(page)


def test_report_elsewhere_links_relative_to_itself(run_dir, tmp_path):
    page = write_report(run_dir, tmp_path / "pages" / "r.html").read_text()
    assert '<img src="../../' in page or '<img src="../' in page
    assert (tmp_path / "pages" / "r_files" / "train_train_losses.png").exists()
    assert '<img src="r_files/train_train_losses.png"' in page


def test_report_of_nothing_is_an_error(tmp_path):
    with pytest.raises(InputError, match="no stage reports"):
        build_report(tmp_path)


def test_loss_png_is_a_matplotlib_plot(run_dir):
    rgb, _ = decode_image((run_dir / "train" / "loss.png").read_bytes())
    assert rgb.shape[:2] == (300, 600) and rgb.std() > 10


@pytest.fixture
def chromium():
    """Skip outside CI when chromium is missing; in CI (make test installs it) never skip."""
    if shutil.which("chromium") is None and not os.environ.get("CI"):
        pytest.skip("chromium not installed (make test installs it)")


def test_page_loads_in_chromium_with_a_screenshot(run_dir, tmp_path, chromium):
    run = tmp_path / "copy"  # a copy of the folder: everything is linked relatively
    shutil.copytree(run_dir, run)
    page = write_report(run)
    shot = tmp_path / "shot.png"
    check = browser_check(page, shot)
    assert check.images_ok >= 14 and check.images_broken == 0 and check.raw_dicts == 0
    rgb, _ = decode_image(shot.read_bytes())
    assert rgb.shape[1] == 1280 and rgb.shape[0] >= 1500 and rgb.std() > 10

    (run / "train" / "samples" / "step_000010.png").unlink()  # the check must be able to fail
    page.write_text(page.read_text().replace(
        "<h1>", '<p>{"stage": "dedup", "bits": [1, 2]}</p><h1>'))
    check = browser_check(page)
    assert check.images_broken == 1 and check.raw_dicts == 1


def test_report_verb_checks_pictures_and_raw_dicts(run_dir, tmp_path, chromium):
    run = tmp_path / "copy"
    shutil.copytree(run_dir, run)
    shot = tmp_path / "s.png"
    result = CliRunner().invoke(cli, ["report", str(run), "--check", "--screenshot", str(shot)])
    assert result.exit_code == 0, result.output
    assert "pictures load, no raw dicts" in result.output and shot.exists()
    (run / "ingested" / "contact_sheet.png").write_bytes(b"not a png")
    result = CliRunner().invoke(cli, ["report", str(run), "--check"])
    assert result.exit_code == 1 and "1 of" in result.output and "do not load" in result.output


def test_a_report_deletes_only_the_plots_it_drew_itself(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    report = {"stage": "ingest", "read": 3, "written": 1, "failed": 2,
              "failed_by_reason": {"corrupt": 2}}
    (out / "ingest_report.json").write_text(json.dumps(report))
    write_report(out, tmp_path / "PAGE.html")
    assets = tmp_path / "PAGE_files"
    assert (assets / "ingest_top_failures.png").exists()
    (assets / "mine.png").write_bytes(b"a user's own picture")
    (out / "ingest_report.json").write_text(json.dumps({**report, "failed": 0,
                                                        "failed_by_reason": {}}))
    write_report(out, tmp_path / "PAGE.html")
    assert not (assets / "ingest_top_failures.png").exists()  # its stage has none now
    assert (assets / "mine.png").read_bytes() == b"a user's own picture"


def test_an_odd_stage_report_shows_what_could_be_read_and_names_the_rest(tmp_path):
    out = tmp_path / "out"
    (out / "dedup").mkdir(parents=True)
    (out / "faces").mkdir()
    (out / "ingest_report.json").write_text(json.dumps({
        "stage": "ingest", "read": 5, "written": "many", "failed_by_reason": "lots",
        "failed_items": {"a": 1}, "images_per_s": 12.5}))
    (out / "dedup" / "dedup_report.json").write_text(json.dumps([1, 2]))
    (out / "faces" / "faces_report.json").write_text(json.dumps({
        "stage": "faces", "entries": 4, "failed_examples": {"timeout": 5}}))
    page = write_report(out).read_text()
    text = " ".join(visible_text(page).split())
    assert "images read 5" in text and "12.5 images/s" in text
    assert ("Not read from ingest_report.json: written: a number expected, str found; "
            "failed_by_reason: counts expected, str found; failed_items: a list of records "
            "expected, dict found") in text
    assert "Not read from dedup_report.json: not a JSON object (a list)" in text
    assert "Not read from faces_report.json: the faces section could not be drawn" in text
    assert "entries 4" in text  # the generic section's figures


def test_a_screenshot_needs_the_check_and_nothing_is_written_without_it(tmp_path):
    (tmp_path / "ingest_report.json").write_text(json.dumps({"stage": "ingest", "read": 1}))
    result = CliRunner().invoke(cli, ["report", str(tmp_path), "--screenshot",
                                      str(tmp_path / "s.png")])
    assert result.exit_code == 2 and "--screenshot needs --check" in result.output
    assert not (tmp_path / "report.html").exists()
    result = CliRunner().invoke(cli, ["report", str(tmp_path), "-o", str(tmp_path / "p.html")])
    assert result.exit_code == 0 and (tmp_path / "p.html").exists()


def test_a_section_that_cannot_read_its_typed_report_falls_back_to_the_generic_one(
        tmp_path, monkeypatch):
    from dcgan_data.core.report import StageReport
    from dcgan_data.report import page as report_page

    @dataclasses.dataclass
    class NeedsKept(StageReport):
        kept: int

    def typed_section(page, stage, summary):
        NeedsKept.from_json(stage.report)
        raise AssertionError("the report has no 'kept': from_json must refuse it")

    (tmp_path / "ingest_report.json").write_text(json.dumps({"stage": "ingest", "read": 7}))
    stage = report_page.find_stages(tmp_path)[0]
    html_page = report_page.Page(tmp_path, tmp_path / "report.html")
    monkeypatch.setattr(report_page, "section_function", lambda kind: typed_section)
    section = report_page.draw_section(html_page, stage, report_page.Summary())
    assert ("read", "7") in section.headline
    assert "InputError: NeedsKept: the report has no 'kept'" in stage.problems[0]


def test_a_misread_field_reaches_a_typed_report_as_unknown_not_as_its_default():
    from dcgan_data.core.report import StageReport
    from dcgan_data.report.page import readable_fields

    @dataclasses.dataclass
    class Counts(StageReport):
        read: int = 0
        written: int = 0

    readable, odd = readable_fields("ingest", {"read": 5, "written": "many"})
    report = Counts.from_json(readable)
    assert report.read == 5 and report.written is None
    assert odd == ["written: a number expected, str found"]
