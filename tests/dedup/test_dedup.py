"""dedup: exact grouping, the radius multi-index, keep policies, the stage end to end on real
photos with planted near duplicates, --against, --dry-run, resume, and refused input."""

from __future__ import annotations

import csv
import json
from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from dcgan_data.core.errors import DcganDataError, InputError
from dcgan_data.core.images import center_crop_resize, decode_image, encode_image, resize_square
from dcgan_data.core.shards import ShardSet, ShardWriter
from dcgan_data.dedup import candidates, decide, partition, scan, selffit, thumbnails, verify, write
from dcgan_data.dedup import stage as dd
from dcgan_data.dedup.grouping import connected, exact_groups, find_groups, radius_pairs
from dcgan_data.dedup.options import DedupOptions
from dcgan_data.engines.local import LocalEngine
from dcgan_data.hashmodel import hashing
from dcgan_data.testing.neardup import (
    TRANSFORM_NAMES,
    Crop,
    cut,
    distinct_crops,
    flat_images,
    near_duplicate,
    pair_scores,
    stepped_crops,
)
from dcgan_data.testing.photos import PHOTOS, load_photo, write_shards
from dcgan_data_cli.main import cli

DEFAULTS = DedupOptions()

FAST = hashing.HashConfig(min_steps=300, max_steps=300, batch_size=256)


# --- grouping ------------------------------------------------------------------------------


def brute_pairs(codes: np.ndarray, radius: int) -> set[tuple[int, int]]:
    return {(a, b) for a, b in combinations(range(len(codes)), 2)
            if hashing.popcount(codes[a : a + 1] ^ codes[b : b + 1])[0] <= radius}


def near_codes(n: int, seed: int, skew: bool = False) -> np.ndarray:
    """Random codes with planted neighbours at distances 0..8 (and skewed bits if asked)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    if skew:
        codes[:, :12] &= 0x01  # 96 bits nearly constant: most codes share most blocks
    for i in range(0, n - 1, 3):
        flip = rng.choice(128, int(rng.integers(0, 9)), replace=False)
        bits = np.unpackbits(codes[i])
        bits[flip] ^= 1
        codes[i + 1] = np.packbits(bits)
    return codes


@pytest.mark.parametrize("radius", [1, 2, 3, 5, 8])
def test_radius_pairs_are_exact(radius, monkeypatch):
    codes = near_codes(300, radius)
    found = set(zip(*[x.tolist() for x in radius_pairs(codes, radius)], strict=True))
    expected = brute_pairs(codes, radius)
    assert found == expected and expected  # pairs at exactly `radius` included, none missed
    # skewed bits push whole blocks into one bucket, which goes to faiss (strict radius)
    skewed = near_codes(300, radius, skew=True)
    monkeypatch.setattr("dcgan_data.dedup.grouping.LARGE_BUCKET", 16)
    found = set(zip(*[x.tolist() for x in radius_pairs(skewed, radius)], strict=True))
    assert found == brute_pairs(skewed, radius)


def test_exact_groups_and_connected_components():
    codes = np.array([[1] * 16, [2] * 16, [1] * 16, [3] * 16, [2] * 16], np.uint8)
    inverse, first = exact_groups(codes)
    assert inverse.tolist() == [0, 1, 0, 2, 1] and first.tolist() == [0, 1, 3]
    assert find_groups(codes, 0).tolist() == [0, 1, 0, 3, 1]
    # a chain 4-3, 3-1, 1-0 joins into one component, labelled by its smallest node
    label = connected(6, np.array([4, 3, 1]), np.array([3, 1, 0]))
    assert label.tolist() == [0, 0, 2, 0, 0, 5]


def test_keep_policies():
    labels = np.array([0, 0, 2, 0, 2, 5])
    area = np.array([10, 50, 10, 50, 10, 10])
    assert decide.choose_kept(labels, area, "first", 6).tolist() == [0, 0, 2, 0, 2, 5]
    assert decide.choose_kept(labels, area, "largest", 6).tolist() == [1, 1, 2, 1, 2, 5]
    # rows >= 4 are the --against set: a group holding one keeps it and drops ours
    assert decide.choose_kept(np.array([0, 1, 0, 3, 1, 5]), np.ones(6), "first", 4).tolist() == \
        [0, 4, 0, 3, 4, 5]


# --- the stage on real photos --------------------------------------------------------------



def planted_set(seed: int = 0, per_photo: int = 6) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Distinct crops of the sample photos, copies of a third of them (re-encoded, resized,
    blurred, brightened, shifted, trimmed; 1 or 2 copies), flat colours: images, true group,
    transform. Made at 256 px and shrunk to 64, as ingest shrinks LSUN's ~256 px photos."""
    rng = np.random.default_rng(seed)
    photos = [load_photo(p) for p in PHOTOS]
    images, groups, kinds = [], [], []
    for g, crop in enumerate(distinct_crops([p.shape[:2] for p in photos], per_photo, rng)):
        photo = photos[crop.photo]
        images.append(decode_image(encode_image(cut(photo, crop, 256), "jpeg", 90))[0])
        groups.append(g)
        kinds.append("original")
        if g % 3 == 0:
            for name in rng.choice(TRANSFORM_NAMES, int(rng.integers(1, 3)), replace=False):
                images.append(near_duplicate(photo, crop, 256, str(name), rng))
                groups.append(g)
                kinds.append(str(name))
    small = [im.reshape(64, 4, 64, 4, 3).mean((1, 3)).round().astype(np.uint8) for im in images]
    flats = flat_images(12, 64, rng)
    return (np.concatenate([np.stack(small), flats]),
            np.array(groups + list(range(len(groups), len(groups) + len(flats)))),
            kinds + ["flat"] * len(flats))


def pair_precision_recall(labels: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    scores = pair_scores(labels, truth)
    return scores["precision"], scores["recall"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    images, truth, kinds = planted_set()
    src = write_shards(tmp_path_factory.mktemp("planted") / "src", images, rows_per_shard=150)
    out = tmp_path_factory.mktemp("planted_out") / "out"
    report = dd.dedup(src, out, config=FAST)  # the defaults: radius 0, probes
    return src, out, report, truth, kinds


def copies_found(labels: np.ndarray, truth: np.ndarray, kinds: list[str], kind: str) -> float:
    original = {g: i for i, (g, k) in enumerate(zip(truth, kinds, strict=True)) if k == "original"}
    return float(np.mean([labels[i] == labels[original[g]]
                          for i, (g, k) in enumerate(zip(truth, kinds, strict=True)) if k == kind]))


def read_rows(out: Path) -> list[dict[str, str]]:
    with open(out / dd.CSV) as f:
        return list(csv.DictReader(f))


def test_real_photos_with_planted_duplicates(planted):
    src, out, report, truth, kinds = planted
    hashes = np.load(out / dd.HASHES)
    assert hashes.shape == (len(truth), 16)
    labels = write.read_kept_as(out, ShardSet(src).keys())
    precision, recall = pair_precision_recall(labels, truth)
    assert precision >= 0.98 and recall >= 0.85, (precision, recall)
    # colour, contrast, framing and geometry edits: what equal hashes (the paper's rule) miss
    found = {k: copies_found(labels, truth, kinds, k)
             for k in ("grayscale", "contrast", "saturation", "border_crop", "shift")}
    assert min(found.values()) >= 0.5, found
    paper = find_groups(hashes, 0)
    assert pair_precision_recall(paper, truth)[1] < recall - 0.2
    grouping = report["grouping"]
    assert grouping["verified"] and grouping["candidates"]["neighbours"] > 0
    assert grouping["candidates"]["distinct"] >= grouping["verified_pairs"] > 0
    assert {"candidates", "verification", "fine_look", "groups"} <= set(grouping["seconds"])
    # every removed row was verified against the row kept in its place
    rows = read_rows(out)
    assert len(rows) == report["removed"] and rows and set(rows[0]) == {
        "key", "duplicate_of", "distance", "score"}
    assert all(float(r["score"]) >= grouping["threshold"] for r in rows)
    # the output is the kept rows, one shard per input shard, a valid shard set
    kept = ShardSet(out)
    assert kept.num_shards == ShardSet(src).num_shards
    assert len(kept) == report["kept"] == len(truth) - report["removed"]
    removed = {r["key"] for r in rows}
    assert not removed & set(kept.keys()) and {r["duplicate_of"] for r in rows} <= set(kept.keys())
    saved = json.loads((out / dd.REPORT).read_text())
    assert saved["bits"]["dead_bits"] == 0 and saved["model"]["trained"]
    assert (out / dd.SHEET).stat().st_size > 1000 and (out / dd.MODEL).exists()


def same_files(one: Path, other: Path, names: list[str]) -> None:
    for name in names:
        assert (one / name).read_bytes() == (other / name).read_bytes(), name


def output_files(out: Path) -> list[str]:
    """The kept shards, their keys and sizes, the manifest and the duplicates."""
    return sorted(p.name for p in out.iterdir() if p.suffix in (".npy", ".txt")
                  or p.name in ("manifest.json", dd.CSV))


def test_partitioned_grouping_in_one_process_gives_the_same_output(planted, tmp_path):
    # the fixture ran on a pool of processes with one in-memory sort (auto, on this data)
    src, out, report, _, _ = planted
    assert report["grouping"]["partitions"] == 1 and report["parameters"]["workers"] > 1
    stale = tmp_path / "parts" / f"{partition.SPILL_PREFIX}killed"  # a killed run's spill
    stale.mkdir(parents=True)
    (stale / "part-00000.bin").write_bytes(bytes(24))
    parts = dd.dedup(src, tmp_path / "parts", hash_model=out / dd.MODEL, partitions=8,
                     engine=LocalEngine(1))
    assert parts["grouping"]["partitions"] == 8 and parts["removed"] == report["removed"] > 0
    assert output_files(out) == output_files(tmp_path / "parts")
    same_files(out, tmp_path / "parts", output_files(out))
    assert not list((tmp_path / "parts").glob(f"{partition.SPILL_PREFIX}*"))  # spills removed
    unverified = {"verify": False, "neighbours": 0, "dry_run": True,
                  "hash_model": out / dd.MODEL}
    dd.dedup(src, tmp_path / "one", **unverified)
    dd.dedup(src, tmp_path / "many", partitions=3, **unverified)
    same_files(tmp_path / "one", tmp_path / "many", [dd.CSV])


def test_partitions_option_is_checked(planted, tmp_path):
    src, out, _, _, _ = planted
    with pytest.raises(InputError, match="--partitions"):
        dd.dedup(src, tmp_path / "out", partitions=0)
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(cli, ["dedup", str(src), "-o", str(tmp_path / "cli"),
                                      "--partitions", "x"])
    assert result.exit_code == 2 and "--partitions" in result.output


def test_a_lower_neighbour_floor_proposes_more_pairs_and_finds_at_least_as_many(planted,
                                                                              tmp_path):
    src, out, report, truth, _ = planted
    images, _, _ = planted_set()
    grey, _ = thumbnails.thumbnails(np.stack([center_crop_resize(x, 64) for x in images]))
    hashes = np.load(out / dd.HASHES)
    pairs = {c: set(zip(*candidates.candidate_pairs(hashes, None, 0, grey, DEFAULTS.neighbours,
                                             False, "cpu", c)[:2], strict=True))
             for c in (0.5, DEFAULTS.min_cosine)}
    assert pairs[DEFAULTS.min_cosine] < pairs[0.5]  # a strict subset
    low = dd.dedup(src, tmp_path / "low", hash_model=out / dd.MODEL, dry_run=True,
                   min_cosine=0.5)
    assert low["grouping"]["candidates"]["neighbours"] > \
        report["grouping"]["candidates"]["neighbours"]
    assert low["removed"] >= report["removed"]
    with pytest.raises(InputError, match="cosine"):
        dd.dedup(src, tmp_path / "bad", hash_model=out / dd.MODEL, min_cosine=1.5)
    result = CliRunner().invoke(cli, ["dedup", str(src), "-o", str(tmp_path / "cli"),
                                      "--min-cosine", "2"])
    assert result.exit_code == 2 and "--min-cosine" in result.output


def test_paper_rule_and_unverified_options(planted, tmp_path):
    src, out, report, truth, _ = planted
    model = out / dd.MODEL
    paper = dd.dedup(src, tmp_path / "paper", hash_model=model, dry_run=True, probe=False,
                     neighbours=0, verify=False)
    labels = write.read_kept_as(tmp_path / "paper", ShardSet(src).keys())
    hashes = np.load(out / dd.HASHES)
    expected = decide.choose_kept(find_groups(hashes, 0), np.ones(len(hashes)), "first",
                              len(hashes))
    assert np.array_equal(labels, expected)  # exactly equal hashes, nothing else
    assert paper["removed"] < report["removed"] and not paper["grouping"]["verified"]
    result = CliRunner().invoke(cli, ["dedup", str(src), "-o", str(tmp_path / "cli"),
                                      "--model", str(model), "--dry-run", "--paper-rule"])
    assert result.exit_code == 0, result.output
    assert f"removed {paper['removed']} " in result.output


def test_rerun_resumes_with_the_saved_model(planted):
    src, out, report, _, _ = planted
    again = dd.dedup(src, out, config=FAST)
    assert again["model"]["resumed"] and again["removed"] == report["removed"]
    # other options into the same OUT: refused before a file is touched
    before = (out / dd.CSV).read_bytes()
    with pytest.raises(InputError, match="different run"):
        dd.dedup(src, out, radius=1, config=FAST)
    assert (out / dd.CSV).read_bytes() == before


def singles(truth: np.ndarray, n: int) -> np.ndarray:
    """Rows of n different photo crops that have no planted copy."""
    groups, first = np.unique(truth, return_index=True)
    return first[np.bincount(truth)[groups] == 1][:n]


def test_keep_largest_and_dry_run(planted, tmp_path):
    src, out, _, truth, _ = planted
    images = ShardSet(src).load(singles(truth, 2))
    pair = np.stack([images[0], images[0], images[1]])
    writer = ShardWriter(tmp_path / "hw", (64, 64, 3), {"test": True})
    writer.write(0, pair, ["small", "large", "other"], np.array([[64, 64], [512, 512], [64, 64]]))
    writer.finish(1)
    report = dd.dedup(tmp_path / "hw", tmp_path / "out", keep="largest",
                      hash_model=out / dd.MODEL, dry_run=True)
    assert report["removed"] == 1
    assert (tmp_path / "out" / dd.CSV).read_text().splitlines()[1].startswith("small,large,0,")
    assert write.read_kept_as(tmp_path / "out", ["small", "large", "other"]).tolist() == [1, 1, 2]
    assert not (tmp_path / "out" / "manifest.json").exists()
    assert not list((tmp_path / "out").glob("shard-*"))
    # a dry run into a finished output is refused, its files untouched
    dd.dedup(tmp_path / "hw", tmp_path / "done", hash_model=out / dd.MODEL)
    before = {p.name: p.read_bytes() for p in (tmp_path / "done").iterdir() if p.is_file()}
    with pytest.raises(InputError, match="finished"):
        dd.dedup(tmp_path / "hw", tmp_path / "done", hash_model=out / dd.MODEL, dry_run=True)
    assert before == {p.name: p.read_bytes() for p in (tmp_path / "done").iterdir()
                      if p.is_file()}


def test_against_removes_what_the_other_set_holds(planted, tmp_path):
    src, out, _, truth, _ = planted
    images = ShardSet(src).load(singles(truth, 4))
    test_set = write_shards(tmp_path / "test", images[[0, 2]], ["t5", "t40"])
    train = write_shards(tmp_path / "train", images, ["a", "b", "c", "d"])
    report = dd.dedup(train, tmp_path / "out", hash_model=out / dd.MODEL, against=test_set)
    assert report["removed_as_duplicate_of_against"] == 2
    assert ShardSet(tmp_path / "out").keys() == ["b", "d"]
    rows = [(r["key"], r["duplicate_of"], r["distance"]) for r in read_rows(tmp_path / "out")]
    assert rows == [("a", "t5", "0"), ("c", "t40", "0")]
    with pytest.raises(InputError, match="SRC itself"):
        dd.dedup(train, tmp_path / "self", hash_model=out / dd.MODEL, against=train)
    assert not (tmp_path / "self").exists()


def test_cli_summary_and_exit_codes(planted, tmp_path):
    src, out, report, _, _ = planted
    runner = CliRunner()
    result = runner.invoke(cli, ["dedup", str(src), "-o", str(tmp_path / "o"), "--radius", "1",
                                 "--model", str(out / dd.MODEL), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"removed {report['removed']}" in result.output and "dedup_report.json" in result.output
    result = runner.invoke(cli, ["dedup", str(src), "-o", str(tmp_path / "p"), "--radius", "17"])
    assert result.exit_code == 2 and "--radius must be between 0 and 16" in result.output
    assert not (tmp_path / "p").exists()


@pytest.fixture(scope="module")
def self_fitted(planted, tmp_path_factory):
    src, out, _, _, _ = planted
    return dd.dedup(src, tmp_path_factory.mktemp("self_fit") / "out", dry_run=True,
                    hash_model=out / dd.MODEL, self_fit=True)


def test_the_decision_fitted_on_the_dataset_reports_its_own_estimates(planted, self_fitted):
    src, _, fixed, truth, _ = planted
    assert fixed["grouping"]["decision"] == "fixed model" and fixed["grouping"]["self_fit"] is None
    assert not fixed["parameters"]["self_fit"]
    grouping = self_fitted["grouping"]
    assert grouping["decision"] == "fitted on this dataset"
    fitted = grouping["self_fit"]
    assert fitted["rows_sampled"] == min(selffit.FIT_ROWS, len(truth))
    assert fitted["threshold"] == grouping["threshold"] >= fitted["threshold_by_hard_negatives"]
    assert 0 <= fitted["expected_false_share"] <= 0.01
    assert set(fitted["held_back_pass_rate_by_kind"]) == {
        "copy", "look-alike crops", "near neighbours", "colour look-alikes"}
    # on its held-back rows: synthetic copies mostly found, look-alike crops mostly refused
    assert fitted["held_back_recall"] > 0.5 and fitted["held_back_look_alike_pass_rate"] < 0.1
    params = self_fitted["parameters"]
    assert params["self_fit"] and params["max_false_share"] == 0.01
    labels = write.read_kept_as(self_fitted["out"], ShardSet(src).keys())
    assert pair_precision_recall(labels, truth)[0] >= 0.98


def test_a_stricter_false_share_removes_no_more(planted, self_fitted, tmp_path):
    src, out, _, _, _ = planted
    strict = dd.dedup(src, tmp_path / "strict", dry_run=True, hash_model=out / dd.MODEL,
                      self_fit=True, max_false_share=0.001)
    assert strict["grouping"]["threshold"] >= self_fitted["grouping"]["threshold"]
    assert strict["removed"] <= self_fitted["removed"]


# --- refused input: a clear message, nothing written ---------------------------------------


def test_empty_source(tmp_path):
    empty = write_shards(tmp_path / "empty", np.zeros((0, 64, 64, 3), np.uint8), [])
    with pytest.raises(InputError, match="no images"):
        dd.dedup(empty, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_one_image(tmp_path, crops64):
    one = write_shards(tmp_path / "one", crops64[:1])
    with pytest.raises(InputError, match="1 image"):
        dd.dedup(one, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_all_identical(tmp_path, crops64):
    same = write_shards(tmp_path / "same", np.repeat(crops64[:1], 60, axis=0))
    with pytest.raises(InputError, match="identical"):
        dd.dedup(same, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_all_identical_with_a_model_is_degenerate(tmp_path, crops64, planted):
    same = write_shards(tmp_path / "same", np.repeat(crops64[:1], 60, axis=0))
    with pytest.raises(DcganDataError, match="all 60 images are one image.*max-bucket-share 1"):
        dd.dedup(same, tmp_path / "out", hash_model=planted[1] / dd.MODEL)
    assert not (tmp_path / "out").exists()
    # told that they really are alike, dedup keeps one
    report = dd.dedup(same, tmp_path / "out", hash_model=planted[1] / dd.MODEL,
                      max_bucket_share=1.0)
    assert report["kept"] == 1 and report["removed"] == 59


def test_blank_images_are_duplicates_only_of_blanks_of_their_colour(tmp_path, crops64, planted):
    # identical blanks at every level, one of each pair re-encoded; then blanks a few levels
    # off (another colour) and ones on a photo's colour, which only the colour tells apart
    levels = [0, 20, 40, 64, 90, 128, 160, 200, 230, 255]
    blank = [np.full((64, 64, 3), (v, v, max(v - 9, 0)), np.uint8) for v in levels]
    copies = [decode_image(encode_image(x, "jpeg", 90))[0] for x in blank]
    others = [(x.astype(int) + (0, 12 if v < 128 else -12, 0)).astype(np.uint8)
              for x, v in zip(blank, levels, strict=True)]
    photo_colour = [np.full_like(x, x.reshape(-1, 3).mean(0).round()) for x in crops64[:6]]
    images = np.stack([*blank, *copies, *others, *photo_colour, *crops64[:6], *crops64[6:60]])
    src = write_shards(tmp_path / "blank", images)
    dd.dedup(src, tmp_path / "out", hash_model=planted[1] / dd.MODEL)
    labels = write.read_kept_as(tmp_path / "out", ShardSet(src).keys())
    n = len(levels)
    assert np.array_equal(labels[:n], labels[n : 2 * n])  # every identical pair, one removed
    assert len(np.unique(labels[: 2 * n])) == n
    assert np.array_equal(labels[2 * n :], np.arange(2 * n, len(images)))  # the rest kept


@pytest.mark.parametrize("content", [b"", b"garbage" * 100, None])
def test_corrupt_or_mismatched_model(tmp_path, crops64, content):
    src = write_shards(tmp_path / "src", crops64[:20])
    model = tmp_path / "model.pt"
    if content is None:  # a torch file, but not a hash model
        import torch

        torch.save({"state_dict": {"w": torch.zeros(3)}}, model)
    else:
        model.write_bytes(content)
    with pytest.raises(InputError, match="hash model"):
        dd.dedup(src, tmp_path / "out", hash_model=model)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("radius", [-1, 17])
def test_radius_out_of_range(tmp_path, crops64, radius):
    src = write_shards(tmp_path / "src", crops64[:20])
    with pytest.raises(InputError, match="--radius"):
        dd.dedup(src, tmp_path / "out", radius=radius)
    assert not (tmp_path / "out").exists()


def test_missing_source(tmp_path: Path):
    with pytest.raises(InputError, match="no such file"):
        dd.dedup(tmp_path / "nope", tmp_path / "out")


def test_lsun_lmdb_source_is_ingested_first(planted, tmp_path):
    from dcgan_data.ingest.pack import pack_images

    lmdb_dir = tmp_path / "bedroom_lmdb"
    pack_images([str(p) for p in PHOTOS[:8]], lmdb_dir, format="jpeg", quality=90)
    report = dd.dedup(lmdb_dir, tmp_path / "out", hash_model=planted[1] / dd.MODEL)
    assert report["images"] == 8 and report["removed"] == 0
    assert ShardSet(tmp_path / "out" / "ingested").shape == (64, 64, 3)
    assert len(ShardSet(tmp_path / "out")) == 8


def test_shared_hash_pairs_join_rows_sharing_any_probe_hash():
    rng = np.random.default_rng(0)
    probes = rng.integers(0, 256, (5, 4, 16), dtype=np.uint8)
    probes[3, 2] = probes[0, 1]  # rows 0 and 3 share one probe hash
    probes[4, 0] = probes[4, 3]  # a row repeating its own hash pairs with nothing
    a, b = partition.shared_hash_pairs(probes)
    assert sorted(zip(a.tolist(), b.tolist(), strict=True)) in ([(0, 3)], [(3, 0)])
    codes = rng.integers(0, 256, (5, 16), dtype=np.uint8)
    assert find_groups(codes, 0, probes).tolist() == [0, 1, 2, 0, 4]


def test_shared_key_pairs_pair_every_row_of_a_small_bucket():
    keys = np.zeros((6, 2, 16), np.uint8)
    keys[:, 1] = np.arange(6)[:, None] + 10  # second key of each row: its own
    keys[[0, 2, 5], 0, 0] = 1  # rows 0, 2, 5 share their first key
    keys[[1, 3, 4], 0, 0] = 2 + np.arange(3)  # the others' first keys are their own
    a, b = candidates.shared_key_pairs(keys)
    assert sorted(zip(a.tolist(), b.tolist(), strict=True)) == [(0, 2), (0, 5), (2, 5)]


def test_verifier_second_look_raises_only_pairs_just_short_of_the_threshold():
    photo = load_photo(PHOTOS[3])
    original = cut(photo, Crop(0, 60, 80, 200), 256)
    turn = cv2.getRotationMatrix2D((127.5, 127.5), 6.5, 1.05)  # beyond the fixed views
    rotated = cv2.warpAffine(original, turn, (256, 256), borderMode=cv2.BORDER_REFLECT)
    other = cut(photo, Crop(0, 300, 300, 200), 256)
    rows = np.stack([center_crop_resize(x, 64) for x in (original, rotated, other)])
    grey, colour = thumbnails.thumbnails(rows)
    a, b = np.array([0, 0]), np.array([1, 2])
    verifier = verify.Verifier(grey, colour, None, False, "cpu")
    verifier.model.align_band = verifier.model.overlay_band = 0.0  # the alignment alone
    plain = verifier(a, b)
    verifier.model.align_band, verifier.model.align_margin = 3.0, 0.25
    verifier.threshold = float(plain[0]) + 0.1  # the copy now falls just short
    looked = verifier(a, b)
    assert looked[0] > plain[0] + 0.1 and verifier.aligned == 1
    assert looked[1] == plain[1]  # far below: not looked at again


def test_second_look_is_given_to_at_most_a_share_of_the_pairs(monkeypatch):
    rows = stepped_crops(12, 20, 20)
    grey, colour = thumbnails.thumbnails(rows)
    a, b = np.repeat(np.arange(6), 2), np.arange(12)[::-1].copy()
    verifier = verify.Verifier(grey, colour, None, False, "cpu")
    verifier.model.align_band = verifier.model.overlay_band = 0.0
    plain = verifier(a, b)
    verifier.model.align_band = 1e9  # every pair is just short of a threshold above them all
    verifier.threshold = float(plain.max()) + 1.0
    monkeypatch.setattr(verify, "SECOND_LOOK_MIN", 4)
    verifier(a, b)
    assert verifier.aligned == 4 and verifier.second_look_skipped == len(a) - 4


def _anonymous_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


def test_scan_arrays_are_file_pages_that_leave_nothing_behind(tmp_path):
    n = 100_000  # thumbnails of 100 MB
    before = _anonymous_bytes()
    hashes, probes, grey, colour = scan.scan_arrays(tmp_path, n, probe=True)
    grey[:] = 7
    colour[:] = 9
    probes[:] = 1
    assert int(grey[n - 1, 5, 5]) == 7 and int(colour[0, 0, 0, 2]) == 9
    grown = _anonymous_bytes() - before
    assert grown < 0.2 * (grey.nbytes + colour.nbytes + probes.nbytes)
    assert list(tmp_path.iterdir()) == []  # nameless files: nothing to clean up


def test_output_keeps_the_shards_side_unless_told_and_never_enlarges(tmp_path, crops64):
    small = np.stack([resize_square(row, 32) for row in crops64[:40]])
    src = write_shards(tmp_path / "s32", np.concatenate([small, small[:2]]))
    fast = hashing.HashConfig(min_steps=20, max_steps=20, batch_size=64)
    report = dd.dedup(src, tmp_path / "out", config=fast, self_fit=False)
    assert ShardSet(tmp_path / "out").shape == (32, 32, 3) and report["parameters"]["size"] == 32
    result = CliRunner().invoke(cli, ["dedup", str(src), "-o", str(tmp_path / "big"),
                                      "--size", "64"])
    assert result.exit_code == 2 and "does not enlarge" in result.output
    assert not (tmp_path / "big" / "manifest.json").exists()
