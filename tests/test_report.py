"""The pipeline's HTML summary, rendered in headless Chromium."""

import os
import re
import shutil

import pytest

from conftest import PHOTOS
from dcgan_data.errors import InputError
from dcgan_data.ingest import ingest
from dcgan_data.report import browser_image_tally, build_report, write_report


@pytest.fixture
def run_dir(tmp_path):
    (tmp_path / "photos").mkdir()
    for photo in PHOTOS[:4]:
        shutil.copy(photo, tmp_path / "photos")
    ingest(tmp_path / "photos", tmp_path / "run" / "ingested", workers=1)
    train = tmp_path / "run" / "train"
    (train / "samples").mkdir(parents=True)
    shutil.copy(tmp_path / "run" / "ingested" / "contact_sheet.png", train / "loss.png")
    shutil.copy(tmp_path / "run" / "ingested" / "contact_sheet.png",
                train / "samples" / "step_000010.png")
    (train / "metrics.jsonl").write_text('{"step": 10, "loss_D": 1.2, "loss_G": 0.7}\n')
    return tmp_path / "run"


def test_report_gathers_figures_and_pictures(run_dir):
    page = write_report(run_dir).read_text()
    assert "ingest_report.json" in page and "<th>written</th><td>4</td>" in page
    assert "last loss_D" in page
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources == ["ingested/contact_sheet.png", "train/loss.png",
                       "train/samples/step_000010.png"]
    assert all((run_dir / s).exists() for s in sources)


def test_report_elsewhere_links_relative_to_itself(run_dir, tmp_path):
    page = write_report(run_dir, tmp_path / "pages" / "r.html").read_text()
    assert '<img src="../run/ingested/contact_sheet.png"' in page


def test_report_of_nothing_is_an_error(tmp_path):
    with pytest.raises(InputError, match="no stage reports"):
        build_report(tmp_path)


@pytest.fixture
def chromium():
    """Skip outside CI when chromium is missing; in CI (make test installs it) never skip."""
    if shutil.which("chromium") is None and not os.environ.get("CI"):
        pytest.skip("chromium not installed (make test installs it)")


def test_every_image_loads_in_chromium(run_dir, chromium):
    page = write_report(run_dir)
    assert browser_image_tally(page) == (3, 0)
    (run_dir / "train" / "loss.png").unlink()  # the check must be able to fail
    assert browser_image_tally(page) == (2, 1)


def test_report_verb_checks_pictures(run_dir, chromium):
    from click.testing import CliRunner

    from dcgan_data_cli.main import cli

    result = CliRunner().invoke(cli, ["report", str(run_dir), "--check"])
    assert result.exit_code == 0 and "all 3 pictures load" in result.output
    (run_dir / "ingested" / "contact_sheet.png").write_bytes(b"not a png")
    result = CliRunner().invoke(cli, ["report", str(run_dir), "--check"])
    assert result.exit_code == 1 and "1 of 3 pictures do not load" in result.output
