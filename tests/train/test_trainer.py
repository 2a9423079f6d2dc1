"""The trainer on real-photo shards: a short run, exact resume, DDP on gloo, sampling, bad input.

Tiny widths, 32 px and a few steps keep the whole file near a minute on 2 cores.
"""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dcgan_data.core import processes
from dcgan_data.core.errors import InputError
from dcgan_data.core.images import decode_image
from dcgan_data.core.shards import ShardSet
from dcgan_data.testing.photos import ROOT, photo_crops, write_shards
from dcgan_data.train import feed, model
from dcgan_data.train import stage as trainer
from dcgan_data.train.checkpoint import load_checkpoint
from dcgan_data.train.options import TrainOptions
from dcgan_data.train.sampling import write_grid
from dcgan_data_cli.main import cli

TINY = dict(ngf=8, ndf=8, batch_size=16, log_every=1, sample_every=1000, ckpt_every=4)
TINY_ARGS = ["--ngf", "8", "--ndf", "8", "--batch-size", "16", "--device", "cpu"]


@pytest.fixture(scope="module")
def shards32(tmp_path_factory):
    """96 real-photo crops at 32 px in three shards (6 batches of 16 per epoch)."""
    out = tmp_path_factory.mktemp("shards") / "s32"
    return write_shards(out, photo_crops(96, size=32, seed=3), rows_per_shard=40)


@pytest.fixture(scope="module")
def trained_run(shards32, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    summary = trainer.train(shards32, run, device="cpu", ngf=16, ndf=16, batch_size=16,
                            steps=30, log_every=1, sample_every=15, ckpt_every=10,
                            keep_every=15)
    assert summary.step == 30 and not summary.interrupted
    return run


def metrics(run):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def losses(run):
    return [(m["step"], m["loss_D"], m["loss_G"], m["D_x"], m["D_G_z"]) for m in metrics(run)]


def png(path):
    rgb, _ = decode_image(path.read_bytes())
    return rgb


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


# --------------------------------------------------------------------------------------------
# a short run


def test_short_run_learns_and_writes_the_run_directory(trained_run):
    lines = metrics(trained_run)
    assert [m["step"] for m in lines] == list(range(1, 31))
    assert all(np.isfinite([m["loss_D"], m["loss_G"], m["images_per_s"]]).all() for m in lines)
    loss_d = np.array([m["loss_D"] for m in lines])
    d_x = np.array([m["D_x"] for m in lines])
    # D starts at chance (loss 2 ln 2, D(x) 0.5) and learns to tell photos from G's images
    assert abs(loss_d[0] - 2 * np.log(2)) < 0.3
    assert loss_d[-5:].mean() < loss_d[:3].mean() - 0.2
    assert d_x[-5:].mean() > 0.6
    config = json.loads((trained_run / "config.json").read_text())
    assert config["size"] == 32 and config["lr"] == 2e-4 and config["beta1"] == 0.5
    assert config["z_dist"] == "uniform" and config["data_rows"] == 96
    early = png(trained_run / "samples" / "step_000015.png")
    late = png(trained_run / "samples" / "step_000030.png")
    assert early.shape == late.shape == (8 * 34 + 2, 8 * 34 + 2, 3)  # 64 images, 8 x 8 grid
    assert np.abs(early.astype(int) - late.astype(int)).mean() > 1  # G changed
    assert png(trained_run / "loss.png").std() > 0
    ckpt = load_checkpoint(trained_run / "checkpoints" / "last.pt")
    assert ckpt["step"] == 30 and ckpt["config"]["ngf"] == 16
    assert load_checkpoint(trained_run / "checkpoints" / "step_000015.pt")["step"] == 15


def test_batches_are_a_per_epoch_permutation_split_across_ranks():
    rows, batch, world = 100, 8, 2
    per_epoch = rows // (batch * world)
    for epoch in range(2):
        seen = [feed.batch_rows(epoch * per_epoch + k, rows, batch, r, world, seed=5)
                for k in range(per_epoch) for r in range(world)]
        flat = np.concatenate(seen)
        assert len(flat) == len(set(flat.tolist())) == per_epoch * batch * world
    first = feed.batch_rows(0, rows, batch, 0, world, seed=5)
    assert not np.array_equal(first, feed.batch_rows(per_epoch, rows, batch, 0, world, 5))
    assert np.array_equal(first, feed.batch_rows(0, rows, batch, 0, world, seed=5))


def test_resume_settings_come_from_the_checkpoint_unless_given(shards32):
    shards = ShardSet(shards32)
    saved = {"config": {**dataclasses.asdict(TrainOptions(size=32, ngf=8, steps=12)), "lr": 1e-4}}
    cfg = trainer.resolve_config({}, shards, saved)
    assert (cfg.ngf, cfg.steps, cfg.lr) == (8, 12, 1e-4)
    cfg = trainer.resolve_config({"epochs": 2.0, "lr": 3e-4}, shards, saved)
    assert (cfg.steps, cfg.epochs, cfg.lr) == (None, 2.0, 3e-4)
    assert trainer.resolve_config({"steps": 5}, shards, None).epochs is None
    with pytest.raises(InputError, match="trained with ndf=128, not ndf=16"):
        trainer.resolve_config({"ndf": 16}, shards, saved)


def test_memory_and_stream_feeds_give_the_same_batches(shards32):
    shards = ShardSet(shards32)
    rows = np.array([3, 39, 40, 41, 95])  # across shard boundaries
    memory = feed.BatchFeed(shards, torch.device("cpu"), "memory")
    stream = feed.BatchFeed(shards, torch.device("cpu"), "stream")
    expected = shards.load(rows)
    assert np.array_equal(memory.get(rows).numpy(), expected)
    assert np.array_equal(stream.get(rows, next_rows=rows[:2]).numpy(), expected)
    assert np.array_equal(stream.get(rows[:2]).numpy(), expected[:2])  # the prefetched batch
    memory.close()
    stream.close()
    x = model.to_model_input(torch.from_numpy(expected))
    assert x.shape == (5, 3, 32, 32) and x.is_contiguous(memory_format=torch.channels_last)
    assert x.min() >= -1 and x.max() <= 1
    expected_x = torch.from_numpy(expected[0, 0, 0] / 127.5 - 1).float()
    assert torch.allclose(x[0, :, 0, 0], expected_x, atol=1e-6)


def test_bf16_autocast_memory_feed_and_normal_z(shards32, tmp_path):
    summary = trainer.train(shards32, tmp_path / "run", device="cpu", steps=3, amp=True,
                            feed="memory", z_dist="normal", **TINY)
    assert summary.step == 3
    assert all(np.isfinite(m["loss_D"]) and np.isfinite(m["loss_G"])
               for m in metrics(tmp_path / "run"))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["amp"] and config["feed"] == "memory" and config["z_dist"] == "normal"


# --------------------------------------------------------------------------------------------
# exact resume


def test_resume_after_a_signal_or_a_crash_reproduces_the_straight_run(shards32, tmp_path,
                                                                       monkeypatch):
    trainer.train(shards32, tmp_path / "straight", device="cpu", steps=12, **TINY)
    real_step = trainer.train_step

    def step_then(event_at, event):
        calls = {"n": 0}

        def wrapped(*args):
            calls["n"] += 1
            if calls["n"] == event_at and event == "crash":
                raise RuntimeError("power cut")
            out = real_step(*args)
            if calls["n"] == event_at and event == "signal":
                signal.raise_signal(signal.SIGTERM)
            return out
        return wrapped

    # SIGTERM during step 7: the run stops after it and checkpoints step 7
    monkeypatch.setattr(trainer, "train_step", step_then(7, "signal"))
    summary = trainer.train(shards32, tmp_path / "signal", device="cpu", steps=12, **TINY)
    assert summary.interrupted == signal.SIGTERM and summary.step == 7
    assert load_checkpoint(tmp_path / "signal/checkpoints/last.pt")["step"] == 7
    # what G made when it stopped, and the loss curve up to there
    assert (tmp_path / "signal/samples/step_000007.png").exists()
    assert (tmp_path / "signal/loss.png").exists()

    # a crash in step 10: the last checkpoint is step 8, metrics reach step 9
    monkeypatch.setattr(trainer, "train_step", step_then(10, "crash"))
    with pytest.raises(RuntimeError, match="power cut"):
        trainer.train(shards32, tmp_path / "crash", device="cpu", steps=12, **TINY)
    assert len(metrics(tmp_path / "crash")) == 9

    monkeypatch.setattr(trainer, "train_step", real_step)
    for name in ("signal", "crash"):
        trainer.train(shards32, tmp_path / name, device="cpu", resume=True)  # options from ckpt
        assert losses(tmp_path / name) == losses(tmp_path / "straight"), name


def test_ctrl_c_writes_a_checkpoint_and_exits_130(shards32, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dcgan_data", "train", str(shards32), "-o", str(run),
         *TINY_ARGS, "--steps", "100000", "--log-every", "1", "--ckpt-every", "100000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / "metrics.jsonl").exists() or len(metrics(run)) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "continue with --resume" in err
    step = load_checkpoint(run / "checkpoints/last.pt")["step"]
    assert step == metrics(run)[-1]["step"] >= 2


# --------------------------------------------------------------------------------------------
# several processes


def test_ddp_on_gloo_with_two_processes(shards32, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "dcgan_data", "train", str(shards32), "-o", str(run), *TINY_ARGS, "--steps", "4",
         "--log-every", "1", "--sample-every", "2"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    # rank 0 alone writes: one line per step, one set of files, no leftovers
    assert [m["step"] for m in metrics(run)] == [1, 2, 3, 4]
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step_000002.png", "step_000004.png"]
    assert not list(run.rglob("*.tmp"))
    assert load_checkpoint(run / "checkpoints/last.pt")["step"] == 4


# --------------------------------------------------------------------------------------------
# sampling


def test_sample_grid_and_latent_walk(trained_run, tmp_path):
    summary = write_grid(trained_run, tmp_path / "grid.png", count=16, device="cpu")
    assert summary["images"] == 16 and png(tmp_path / "grid.png").shape == (138, 138, 3)
    write_grid(trained_run, tmp_path / "walk.png", count=3, interpolate=True, frames=6,
               checkpoint="step_000015.pt", device="cpu")
    walk = png(tmp_path / "walk.png")
    assert walk.shape == (3 * 34 + 2, 6 * 34 + 2, 3)
    row = [walk[2:34, 2 + 34 * i : 34 + 34 * i].astype(int) for i in range(6)]
    step = np.mean([np.abs(a - b).mean() for a, b in zip(row, row[1:], strict=False)])
    assert step < np.abs(row[0] - row[-1]).mean()  # a walk, not six unrelated images

    result = run_cli("sample", trained_run, "-n", "4", "-o", tmp_path / "cli.png")
    assert result.exit_code == 0 and "wrote 4 images of 32 px" in result.output
    assert png(tmp_path / "cli.png").shape == (70, 70, 3)


# --------------------------------------------------------------------------------------------
# bad input: one clear line each


def test_empty_and_corrupt_shard_directories(tmp_path, shards32):
    (tmp_path / "empty").mkdir()
    result = run_cli("train", tmp_path / "empty", "-o", tmp_path / "r1", *TINY_ARGS)
    assert result.exit_code == 2 and "not a shard directory" in result.output

    broken = tmp_path / "broken"
    shutil.copytree(shards32, broken)
    shard = broken / "shard-00001.npy"
    shard.write_bytes(shard.read_bytes()[:5000])  # cut short
    result = run_cli("train", broken, "-o", tmp_path / "r2", *TINY_ARGS)
    assert result.exit_code == 2 and "shard-00001.npy: unreadable shard" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r2").exists()


def test_size_mismatch_and_unusable_image_size(tmp_path, shards32):
    result = run_cli("train", shards32, "-o", tmp_path / "r", "--size", "64", *TINY_ARGS)
    assert result.exit_code == 2
    assert "--size 64, but" in result.output and "holds 32x32 images" in result.output
    odd = write_shards(tmp_path / "s48", photo_crops(4, size=48))
    with pytest.raises(InputError, match="48x48x3; the DCGAN trains on 32, 64, 128"):
        trainer.train(odd, tmp_path / "r48", device="cpu")


def test_corrupt_checkpoint(trained_run, tmp_path, shards32):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    last = run / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    result = run_cli("train", shards32, "-o", run, "--resume", *TINY_ARGS)
    assert result.exit_code == 2 and "last.pt: unreadable checkpoint" in result.output
    result = run_cli("sample", run, "-o", tmp_path / "g.png")
    assert result.exit_code == 2 and "last.pt: unreadable checkpoint" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_resume_with_a_different_architecture_or_without_resume(trained_run, tmp_path, shards32):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    result = run_cli("train", shards32, "-o", run, "--resume", *TINY_ARGS)  # ngf 8 vs 16
    assert result.exit_code == 2
    assert "trained with ngf=16, not ngf=8" in result.output
    result = run_cli("train", shards32, "-o", run, "--ngf", "16", "--ndf", "16")
    assert result.exit_code == 2 and "already holds a run; pass --resume" in result.output


def test_freed_memory_is_kept_for_reuse_on_glibc():
    import platform

    applied = processes.reuse_freed_memory()
    assert applied == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


# --------------------------------------------------------------------------------------------
# reliability: other data on resume, a full disk, sampling many images


def test_resume_refuses_other_data_with_the_same_row_count(trained_run, tmp_path):
    other = write_shards(tmp_path / "other", photo_crops(96, size=32, seed=4), rows_per_shard=40)
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    result = run_cli("train", other, "-o", run, "--resume", "--device", "cpu")
    assert result.exit_code == 2, result.output
    assert "is not the data the run was trained on" in result.output


def test_a_full_disk_at_a_checkpoint_is_one_line_and_keeps_the_last_one(shards32, tmp_path,
                                                                        monkeypatch):
    import tempfile

    run = tmp_path / "run"
    result = run_cli("train", shards32, "-o", run, *TINY_ARGS, "--steps", "4")
    assert result.exit_code == 0, result.output
    real_mkstemp = tempfile.mkstemp

    def full_disk_for_checkpoints(*args, **kwargs):
        fd, path = real_mkstemp(*args, **kwargs)
        if os.path.basename(path).startswith(".last.pt."):  # the checkpoint's temporary file
            os.unlink(path)
            os.symlink("/dev/full", path)  # every write to it fails with ENOSPC
        return fd, path

    monkeypatch.setattr(tempfile, "mkstemp", full_disk_for_checkpoints)
    result = run_cli("train", shards32, "-o", run, "--resume", "--steps", "8", "--device", "cpu")
    assert result.exit_code == 1
    assert result.output.startswith("error: no space left on /") and "--resume" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert load_checkpoint(run / "checkpoints/last.pt")["step"] == 4
    assert not [p for p in (run / "checkpoints").iterdir() if p.name != "last.pt"]


def test_sampling_many_images_runs_the_generator_in_bounded_batches(trained_run, tmp_path,
                                                                    monkeypatch):
    from dcgan_data.train.model import Generator, draw_z, generate, to_uint8_images
    from dcgan_data.train.sampling import load_generator

    g, _ = load_generator(trained_run / "checkpoints/last.pt")
    z = draw_z(600, 100, "uniform", torch.Generator().manual_seed(2), torch.device("cpu"))
    with torch.no_grad():
        whole = to_uint8_images(g(z)).astype(int)  # one batch of 600
    batches = []
    forward = Generator.forward
    monkeypatch.setattr(Generator, "forward", lambda self, z: batches.append(len(z))
                        or forward(self, z))
    result = run_cli("sample", trained_run, "-n", "600", "-o", tmp_path / "many.png")
    assert result.exit_code == 0 and "wrote 600" in result.output
    assert sum(batches) == 600 and max(batches) <= 256
    batches.clear()
    assert np.abs(generate(g, z, chunk=256) - whole).max() <= 1  # the same images, batched
    assert batches == [256, 256, 88]


def test_progression_puts_the_sample_grids_side_by_side(trained_run):
    grid = png(trained_run / "samples" / "step_000015.png")
    progression = png(trained_run / "progression.png")  # steps 15 and 30, each headed
    assert progression.shape == (24 + grid.shape[0], 2 * (grid.shape[1] + 8), 3)
    assert np.array_equal(progression[24:, : grid.shape[1]], grid)
