"""The stand-in quality figure (hash_fd, hash_kid): its formulas, its cache, and that it tells a
trained generator from an untrained one and from a collapsed one, on real photos."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dcgan_data.core.shards import ShardSet
from dcgan_data.testing.photos import photo_crops, write_shards
from dcgan_data.train import quality
from dcgan_data.train import stage as trainer
from dcgan_data.train.model import build, draw_z, generate
from dcgan_data.train.sampling import load_generator
from dcgan_data_cli.main import cli

EVAL = 256
pytestmark = pytest.mark.timeout(1800)  # the run fixture trains a GAN; a loaded box is slow


@pytest.fixture(scope="module")
def photos():
    """256 real-photo crops at 32 px to train on."""
    return photo_crops(256, size=32, seed=5)


@pytest.fixture(scope="module")
def data(photos, tmp_path_factory):
    return write_shards(tmp_path_factory.mktemp("q") / "shards", photos, rows_per_shard=128)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "run"
    trainer.train(data, out, device="cpu", ngf=16, ndf=16, batch_size=32, steps=120,
                  log_every=10, eval_every=40, eval_images=EVAL, sample_every=1000)
    return out


def test_frechet_distance_matches_the_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=5), rng.normal(size=5)
    a, b = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
    expected = ((m1 - m2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert quality.frechet_distance(m1, np.diag(a), m2, np.diag(b)) == pytest.approx(expected)
    x = rng.normal(size=(400, 8))
    assert abs(quality.kernel_distance(x[:200], x[200:], subset=200)) < 0.05
    assert quality.kernel_distance(x[:200], x[200:] + 1, subset=200) > 0.5


def test_trained_beats_untrained_and_collapsed_generators(run, data):
    evaluator = quality.Evaluator(ShardSet(data), images=EVAL)
    trained, _ = load_generator(run / "checkpoints" / "last.pt")
    torch.manual_seed(1)
    untrained, _ = build(32, 100, 16, 16)
    one_z = draw_z(1, 100, "uniform", torch.Generator().manual_seed(3), torch.device("cpu"))
    scores = {"trained": evaluator(trained, "uniform"),
              "untrained": evaluator(untrained, "uniform"),
              "collapsed": evaluator.scores(generate(trained, one_z.expand(EVAL, 100)))}
    held_out = evaluator.scores(photo_crops(EVAL, size=32, seed=9))  # other crops, same photos
    fd = {name: s["hash_fd"] for name, s in scores.items()}
    assert held_out["hash_fd"] < fd["trained"] < fd["untrained"]
    assert fd["trained"] < fd["collapsed"]
    # KID tells real images from all three, but a generator this briefly trained (120 small
    # steps) not reliably from an untrained one: the test asserts only what holds
    assert held_out["hash_kid"] < 0.5 * min(s["hash_kid"] for s in scores.values())


def test_evaluations_go_into_metrics_and_fall_over_the_run(run):
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == list(range(10, 121, 10))  # one line per log step
    scored = [m for m in lines if "hash_fd" in m]
    assert [m["step"] for m in scored] == [40, 80, 120]
    assert all(m["eval_images"] == EVAL for m in scored)
    assert scored[-1]["hash_fd"] < scored[0]["hash_fd"]


def test_real_statistics_are_cached_beside_the_shards_keyed_by_their_checksums(
        data, photos, tmp_path, monkeypatch):
    quality.Evaluator(ShardSet(data), images=EVAL)  # the model and stats exist by now
    assert (data / quality.STATS).is_file() and (data / quality.OWN_MODEL).is_file()
    calls = []
    real_codes = quality.CodeSpace.codes
    monkeypatch.setattr(quality.CodeSpace, "codes",
                        lambda self, images: calls.append(len(images)) or real_codes(self, images))
    quality.Evaluator(ShardSet(data), images=EVAL)
    assert calls == []  # the real side came from the cache

    other = write_shards(tmp_path / "other", photos[::-1], rows_per_shard=128)  # same count
    (other / quality.OWN_MODEL).write_bytes((data / quality.OWN_MODEL).read_bytes())
    (other / quality.STATS).write_bytes((data / quality.STATS).read_bytes())
    quality.Evaluator(ShardSet(other), images=EVAL)
    assert sum(calls) == 256  # other checksums: recomputed, not served the copied cache


def test_fid_verb_scores_a_finished_run(run, data):
    result = CliRunner().invoke(cli, ["fid", str(run), "--real", str(data), "--images", "64",
                                      "--device", "cpu"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "hash_fd" in result.output and "64 generated vs 256 real images" in result.output
    report = json.loads((run / "quality_report.json").read_text())
    assert report["step"] == 120 and report["hash_fd"] > 0
    result = CliRunner().invoke(cli, ["fid", str(run), "--real", str(run)])
    assert result.exit_code == 2 and "not a shard directory" in result.output


class FakeInception(torch.nn.Module):
    """Inception's calling convention (uint8 NCHW of any size, return_features=True ->
    (N, 2048)) on a tiny network: the plumbing is tested, the figure is meaningless."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8 * 4 * 4, quality.INCEPTION_FEATURES)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = torch.nn.functional.interpolate(x.float() / 255, size=(32, 32), mode="bilinear")
        x = torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 4)
        features = self.fc(x.flatten(1))
        return features if return_features else features[:, :1008]


class WrongFeatures(torch.nn.Module):
    """The calling convention, not the features: 10 per image."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return x.float().flatten(1)[:, :10]


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("inception") / quality.INCEPTION_FILE
    torch.jit.save(torch.jit.script(FakeInception()), str(path))
    return path


def test_inception_fid_goes_into_metrics_and_its_real_side_is_cached(data, inception_file,
                                                                     tmp_path):
    result = CliRunner().invoke(cli, [
        "train", str(data), "-o", str(tmp_path / "run"), "--ngf", "8", "--ndf", "8",
        "--batch-size", "16", "--steps", "20", "--eval-every", "10", "--eval-images", "64",
        "--inception-weights", str(inception_file), "--device", "cpu"],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "FID" in result.output
    scored = [m for m in map(json.loads, (tmp_path / "run/metrics.jsonl").read_text()
                             .splitlines()) if "hash_fd" in m]
    assert [m["step"] for m in scored] == [10, 20]
    assert all(m["fid"] > 0 and np.isfinite(m["kid"]) for m in scored)
    with np.load(data / quality.INCEPTION_STATS) as cached:
        assert cached["features"].shape[1] == quality.INCEPTION_FEATURES
        assert cached["scale"].tolist() == [1.0] * quality.INCEPTION_FEATURES  # FID unscaled
    # the figure is the Frechet distance of the network's features, as computed by hand
    space = quality.InceptionSpace(inception_file)
    real = space.codes(ShardSet(data).load())
    fake = space.codes(photo_crops(64, size=32, seed=9))
    expected = quality.frechet_distance(real.mean(0), np.cov(real, rowvar=False),
                                        fake.mean(0), np.cov(fake, rowvar=False))
    evaluator = quality.Evaluator(ShardSet(data), images=64, inception=space)
    assert evaluator.scores(photo_crops(64, size=32, seed=9))["fid"] == pytest.approx(expected)


def test_fid_verb_adds_inception_fid(run, data, inception_file):
    result = CliRunner().invoke(cli, ["fid", str(run), "--real", str(data), "--images", "64",
                                      "--inception-weights", str(inception_file),
                                      "--device", "cpu"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((run / "quality_report.json").read_text())
    assert report["fid"] > 0 and report["inception_weights"] == str(inception_file)
    assert f"FID {report['fid']:.3f}" in result.output


def test_missing_or_wrong_inception_weights_stop_before_the_first_step(data, tmp_path):
    wrong = tmp_path / "wrong.pt"
    torch.jit.save(torch.jit.script(WrongFeatures()), str(wrong))
    for path, message in [(tmp_path / "absent.pt", "no such file; download"),
                          (wrong, "not (1, 2048)"),
                          (data / "manifest.json", "not the TorchScript Inception file")]:
        out = tmp_path / f"run_{path.stem}"
        result = CliRunner().invoke(cli, [
            "train", str(data), "-o", str(out), "--ngf", "8", "--ndf", "8", "--batch-size",
            "16", "--steps", "5", "--inception-weights", str(path), "--device", "cpu"])
        assert result.exit_code == 2, result.output
        assert message in result.output and "--inception-weights" in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert not (out / "checkpoints").exists() and not (out / "metrics.jsonl").exists()
    result = CliRunner().invoke(cli, ["fid", str(out), "--real", str(data),
                                      "--inception-weights", str(tmp_path / "absent.pt")])
    assert result.exit_code == 2 and "no such file; download" in result.output
