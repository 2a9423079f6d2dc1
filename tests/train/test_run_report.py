"""The run's own files, read typed: a real short run's train_report.json and config.json read
strictly (every attribute the trainer must write), and its section of the report page built
from them."""

import json

import pytest

from dcgan_data.core.errors import InputError
from dcgan_data.report.html import Page, Stage, Summary
from dcgan_data.testing.photos import photo_crops, write_shards
from dcgan_data.train import stage as trainer
from dcgan_data.train.options import TrainOptions
from dcgan_data.train.report import MetricsRecord, RunConfig, TrainReport
from dcgan_data.train.section import train_section


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    shards = write_shards(root / "shards", photo_crops(48, size=32, seed=7), rows_per_shard=20)
    returned = trainer.train(shards, root / "train", device="cpu", threads=1, ngf=8, ndf=8,
                             batch_size=16, steps=4, log_every=1, sample_every=2,
                             eval_every=4, eval_images=32)
    return root, returned


def test_the_reports_are_read_strictly_and_give_back_their_files(run):
    root, returned = run
    folder = root / "train"
    report = TrainReport.read(folder / "train_report.json", strict=True)
    assert report == returned
    assert (report.start_step, report.step, report.total_steps, report.interrupted) == (0, 4,
                                                                                         4, 0)
    assert report.last.step == 4 and "hash_fd" in report.last.quality
    assert report.to_json() == json.loads((folder / "train_report.json").read_text())

    config = RunConfig.read(folder / "config.json", strict=True)
    assert config.settings.batch_size == 16 and config.settings.size == 32
    assert (config.data_rows, config.device, config.world_size, config.feed) == (48, "cpu", 1,
                                                                                 "stream")
    assert config.settings.feed == "stream"  # the feed in use, in the settings' place
    written = json.loads((folder / "config.json").read_text())
    assert list(config.to_json().items()) == list(written.items())  # keys in the same order

    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    records = [MetricsRecord.from_json(line, strict=True) for line in lines]
    assert [list(r.to_json().items()) for r in records] == [list(x.items()) for x in lines]
    assert [r.step for r in records] == [1, 2, 3, 4] and records[-1].D_x is not None
    assert "hash_fd" in records[-1].quality and not records[0].quality


def test_a_config_without_a_setting_is_refused_when_strict(run):
    root, _ = run
    written = json.loads((root / "train" / "config.json").read_text())
    del written["beta1"]
    assert RunConfig.from_json(written).settings.beta1 == TrainOptions.beta1
    with pytest.raises(InputError, match="no 'beta1'"):
        RunConfig.from_json(written, strict=True)


def test_the_section_shows_the_run(run):
    root, _ = run
    folder = root / "train"
    page = Page(root, root / "report.html")
    report = json.loads((folder / "train_report.json").read_text())
    summary = Summary()
    section = train_section(page, Stage("train", folder, report, folder / "train_report.json",
                                        0.0), summary)
    headline = dict(section.headline)
    assert headline["steps"] == "4 of 4"
    assert headline["data"] == "48 images, batch 16, on cpu"
    assert "hash_fd" in headline
    assert summary.cards[0][:2] == ("4", "steps trained")
    assert any("config.json" in link for link in section.links)
    # a run still training has no train_report.json: its step comes from metrics.jsonl
    running = train_section(page, Stage("train", folder, {}, None, 0.0), Summary())
    assert dict(running.headline)["steps"] == "4 of 4"
