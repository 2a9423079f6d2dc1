"""The semantic-hash autoencoder: crops, training health, degenerate codes, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dcgan_data.core.errors import DcganDataError, InputError
from dcgan_data.core.images import downsample_2x
from dcgan_data.hashmodel import hashing

TINY = hashing.HashConfig(min_steps=40, max_steps=40, batch_size=128)


@pytest.fixture(scope="module")
def crops(crops64):
    return hashing.to_hash_crops(crops64)


@pytest.fixture(scope="module")
def tiny_model(crops):
    model, stats = hashing.train_hash_model(crops, TINY, seed=0)
    return model, stats


def test_crops_are_the_2x_downsample_of_64px_rows(crops64):
    crops = hashing.to_hash_crops(crops64[:5])
    assert crops.shape == (5, 3072) and crops.dtype == np.uint8
    assert np.array_equal(crops, downsample_2x(crops64[:5]).reshape(5, -1))
    other = hashing.to_hash_crops(np.zeros((3, 48, 48, 3), np.uint8))
    assert other.shape == (3, 3072)


def test_training_lowers_the_loss_and_uses_every_bit(tiny_model, crops):
    model, stats = tiny_model
    assert stats["final_loss"] < 0.8 * stats["first_loss"]
    hashes = hashing.hash_crops(model, crops)
    assert hashes.shape == (len(crops), 16) and hashes.dtype == np.uint8
    codes = hashing.code_stats(hashes)
    # the batch-normed pre-activation keeps units alive and near half on
    assert codes["dead_bits"] == 0 and codes["constant_bits"] <= 2
    assert 0.3 < codes["bit_rate_mean"] < 0.7
    # 300 crops of 36 photos (some of a small photo overlap a lot): nearly all hash apart
    assert codes["distinct_hashes"] >= 0.95 * len(crops)
    hashing.check_codes(codes)


def test_hash_is_the_sign_of_the_relu_code(tiny_model, crops):
    model, _ = tiny_model
    with torch.no_grad():
        x = model.normalise(torch.from_numpy(crops).float())
        pre = model.preactivation(x).numpy()
    bits = np.unpackbits(hashing.hash_crops(model, crops), axis=1).astype(bool)
    clear = np.abs(pre) > 1e-3  # the fast path folds the norms: rounding differs at ~1e-6
    assert np.array_equal(bits[clear], (np.maximum(pre, 0) > 0)[clear])
    assert clear.mean() > 0.99


def test_brightness_does_not_change_the_input(tiny_model, crops):
    model, _ = tiny_model
    pixels = torch.from_numpy(crops[:8]).float()
    assert torch.allclose(hashing.level(pixels * 1.1, model.config),
                          hashing.level(pixels, model.config), rtol=0.02, atol=1.0)


def test_identical_images_are_refused(crops):
    same = np.repeat(crops[:1], 50, axis=0)
    with pytest.raises(InputError, match="identical"):
        hashing.train_hash_model(same, TINY)
    with pytest.raises(InputError, match="1 image"):
        hashing.train_hash_model(crops[:1], TINY)


def test_dead_codes_are_detected(tiny_model, crops):
    model, _ = tiny_model
    dead = hashing.HashAutoencoder(model.config)
    dead.load_state_dict(model.state_dict())
    with torch.no_grad():
        dead.encoder.bias.fill_(-1e6)  # every unit off: the failure of a naive ReLU code
    stats = hashing.code_stats(hashing.hash_crops(dead, crops))
    assert stats["dead_bits"] == 128 and stats["largest_bucket_share"] == 1.0
    with pytest.raises(DcganDataError, match="degenerate hash: only 0 of 128 bits"):
        hashing.check_codes(stats)


def test_one_big_bucket_is_degenerate(crops):
    hashes = np.random.default_rng(0).integers(0, 256, (100, 16), dtype=np.uint8)
    hashes[:60] = hashes[0]
    with pytest.raises(DcganDataError, match="one hash holds 60 of 100"):
        hashing.check_codes(hashing.code_stats(hashes))
    hashing.check_codes(hashing.code_stats(hashes), max_bucket_share=0.7)


def test_save_load_round_trip(tmp_path, tiny_model, crops):
    model, _ = tiny_model
    path = tmp_path / "hash_model.pt"
    hashing.save_model(model, path, {"note": 1})
    loaded, info = hashing.load_model(path)
    assert info == {"note": 1} and loaded.config == model.config
    assert np.array_equal(hashing.hash_crops(loaded, crops), hashing.hash_crops(model, crops))


def test_bad_model_files_are_refused(tmp_path, tiny_model):
    model, _ = tiny_model
    with pytest.raises(InputError, match="no such hash model"):
        hashing.load_model(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x04 not a checkpoint")
    with pytest.raises(InputError, match="not a readable hash model"):
        hashing.load_model(corrupt)
    foreign = tmp_path / "generator.pt"
    torch.save({"generator": torch.nn.Linear(4, 4).state_dict()}, foreign)
    with pytest.raises(InputError, match="not a dcgan-data hash model"):
        hashing.load_model(foreign)
    good = tmp_path / "good.pt"
    hashing.save_model(model, good)
    payload = torch.load(good, weights_only=True)
    payload["state_dict"]["encoder.weight"] = torch.zeros(64, 3072)
    torch.save(payload, tmp_path / "mismatched.pt")
    with pytest.raises(InputError, match="does not match"):
        hashing.load_model(tmp_path / "mismatched.pt")
    payload["config"]["bits"] = 64
    torch.save(payload, tmp_path / "bits.pt")
    with pytest.raises(InputError, match="64-bit code"):
        hashing.load_model(tmp_path / "bits.pt")


def test_probe_hashes_predict_the_hashes_of_moved_crops(tiny_model, crops):
    model, _ = tiny_model
    hasher = hashing.Hasher(model, probes=True)
    own, probes = hasher(crops)
    assert probes.shape == (len(crops), len(hashing.PROBES), 16)
    still = hashing.PROBES.index((0.0, 0.0, 0.0))
    assert (probes[:, still] == own).all(axis=1).mean() > 0.99  # rounding aside, the same
    # the crops really moved by half a pixel: their own hash is usually among the probes,
    # much more often than it equals the unmoved crop's hash (measured 0.63 vs 0.28)
    images = torch.from_numpy(crops).float().view(-1, 32, 32, 3).permute(0, 3, 1, 2)
    moved = hashing.warp(images, torch.ones(len(crops)), torch.tensor([[0.5, -0.5]]).expand(
        len(crops), 2)).permute(0, 2, 3, 1).reshape(len(crops), -1).round().byte().numpy()
    moved_hashes = hashing.hash_crops(model, moved)
    in_probes = (probes == moved_hashes[:, None, :]).all(axis=2).any(axis=1).mean()
    equal = (own == moved_hashes).all(axis=1).mean()
    assert in_probes > 0.5 and in_probes > equal + 0.2, (in_probes, equal)


def test_corruption_warps_every_crop_like_the_probes_assume(crops):
    # one remap over all crops stacked: each must move as `warp` (the probes' model) moves it
    # alone, with its own edges repeated and nothing of its neighbours
    rng = np.random.default_rng(0)
    scale = 1 - 0.1 * rng.random(len(crops))
    shift = rng.uniform(-2, 2, (len(crops), 2))
    moved = hashing.warp_crops(crops, scale, shift).astype(np.float32)
    images = torch.from_numpy(crops).float().view(-1, 32, 32, 3).permute(0, 3, 1, 2)
    expected = hashing.warp(images, torch.from_numpy(scale).float(),
                            torch.from_numpy(shift).float()).permute(0, 2, 3, 1).reshape(
        len(crops), -1).numpy()
    difference = np.abs(moved - expected)
    # OpenCV interpolates at 1/32 px: small differences, where a wrong direction or a
    # neighbour's pixels would differ by tens of levels
    assert difference.mean() < 0.5 and difference.max() < 6
    flat = np.repeat(np.arange(0, 250, 10, dtype=np.uint8), 3072).reshape(25, 3072)
    assert np.array_equal(hashing.warp_crops(flat, np.ones(25), np.full((25, 2), 3.0)), flat)


def test_corruption_colour_edits(crops):
    still = hashing.HashConfig(shift=0.0, zoom=0.0, gain=0.0)
    rng = np.random.default_rng(0)
    assert np.allclose(hashing.corrupt(crops, still, rng).numpy(), crops, atol=1e-3)
    grey = hashing.corrupt(crops, hashing.HashConfig(shift=0.0, zoom=0.0, gain=0.0,
                                                     grayscale=1.0), rng).view(-1, 1024, 3)
    assert torch.allclose(grey, grey.mean(dim=2, keepdim=True).expand_as(grey), atol=1e-3)
    expected = crops.reshape(-1, 1024, 3).astype(np.float32) @ [0.299, 0.587, 0.114]
    assert np.allclose(grey[:, :, 0].numpy(), expected, atol=1e-3)
    # contrast about the crop's mean level keeps that level
    edited = hashing.corrupt(crops, hashing.HashConfig(shift=0.0, zoom=0.0, gain=0.0,
                                                       contrast=0.5), rng)
    unclipped = (edited > 0).all(dim=1) & (edited < 255).all(dim=1)
    assert unclipped.sum() > 10
    assert torch.allclose(edited[unclipped].mean(dim=1),
                          torch.from_numpy(crops[unclipped.numpy()]).float().mean(dim=1),
                          atol=1e-2)
    assert not torch.allclose(edited, torch.from_numpy(crops).float(), atol=1.0)
