"""Every export format read back by its consumer's own rules or library, pixel for pixel."""

import csv
import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from click.testing import CliRunner

from dcgan_data.core.errors import InputError
from dcgan_data.core.files import from_spreadsheet_text, output_lock
from dcgan_data.core.shards import decode_key, encode_key
from dcgan_data.export.stage import STATE, export
from dcgan_data.testing.photos import write_shards
from dcgan_data_cli.main import cli

N = 45


@pytest.fixture
def shard_dir(tmp_path, crops64):
    keys = [f"http://127.0.0.1/p/{i}.jpg#0" for i in range(N)]  # keys unfit as file names
    return write_shards(tmp_path / "s", crops64[:N], keys, rows_per_shard=20)


def add_labels(shard_dir, every_row=True):
    rows = [(f"http://127.0.0.1/p/{i}.jpg#0", ["Ada Lovelace", "Alan/Turing"][i % 2])
            for i in range(N) if every_row or i % 5]
    with open(shard_dir / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([("key", "label"), *rows])
    return {k: v for k, v in rows}


def png(data) -> np.ndarray:
    return np.asarray(PIL.Image.open(data).convert("RGB"))


def image_folder(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    # torchvision.datasets.ImageFolder's rules: each sub-folder a class (sorted), files with
    # an image extension in sorted order (torchvision itself does not import with this torch)
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    samples = [(p, c) for c, name in enumerate(classes)
               for p in sorted((root / name).rglob("*")) if p.suffix == ".png"]
    return classes, samples


def test_folder_without_labels_is_one_imagefolder_class(shard_dir, tmp_path, crops64):
    report = export(shard_dir, tmp_path / "f", "folder", rows_per_part=16)
    assert report["rows"] == N and report["parts"] == 3 and report["labels"] is None
    classes, samples = image_folder(tmp_path / "f")
    assert classes == ["images"] and len(samples) == N
    for i, (path, _) in enumerate(samples):
        np.testing.assert_array_equal(png(path), crops64[i])
    index = list(csv.DictReader(open(tmp_path / "f" / "index.csv")))
    assert index[7]["key"] == "http://127.0.0.1/p/7.jpg#0" and index[7]["source_height"] == "64"
    assert json.loads((tmp_path / "f" / "export_report.json").read_text())["rows"] == N


def test_folder_with_labels_has_a_folder_per_label(shard_dir, tmp_path, crops64):
    labels = add_labels(shard_dir, every_row=False)
    report = export(shard_dir, tmp_path / "f", "folder")
    assert report["labels"]["classes"] == 2 and report["labels"]["rows_without_label"] == 9
    classes, samples = image_folder(tmp_path / "f")
    assert classes == ["Ada Lovelace", "Alan_Turing", "unlabelled"] and len(samples) == N
    for path, c in samples:
        i = int(path.stem)
        label = labels.get(f"http://127.0.0.1/p/{i}.jpg#0", "unlabelled")
        assert classes[c] == label.replace("/", "_")
        np.testing.assert_array_equal(png(path), crops64[i])


def test_webdataset_reads_back_images_and_metadata(shard_dir, tmp_path, crops64):
    wds = pytest.importorskip("webdataset")
    labels = add_labels(shard_dir)
    report = export(shard_dir, tmp_path / "w", "webdataset", rows_per_part=20)
    tars = sorted(str(p) for p in (tmp_path / "w").glob("shard-*.tar"))
    assert len(tars) == report["parts"] == 3
    data = wds.WebDataset(tars, shardshuffle=False).decode("rgb8").to_tuple("png", "json")
    got = list(data)
    assert len(got) == N
    for i, (rgb, meta) in enumerate(got):
        np.testing.assert_array_equal(rgb, crops64[i])
        assert meta["key"] == f"http://127.0.0.1/p/{i}.jpg#0"
        assert meta["label"] == labels[meta["key"]] and meta["source_width"] == 64


def stylegan_load(zip_path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Load a dataset zip by the rules of StyleGAN2-ADA's training/dataset.py: every file
    whose extension PIL knows is an image (sorted by name), all of one square shape;
    dataset.json's "labels" is null or maps every image file to an int class (one-hot) or a
    float vector."""
    PIL.Image.init()
    with zipfile.ZipFile(zip_path) as z:
        names = sorted(n for n in z.namelist()
                       if os.path.splitext(n)[1].lower() in PIL.Image.EXTENSION)
        images = np.stack([png(z.open(n)) for n in names])
        labels = json.loads(z.read("dataset.json"))["labels"] if "dataset.json" in \
            z.namelist() else None
    assert images.shape[1] == images.shape[2], "StyleGAN needs square images"
    if labels is None:
        return images, None
    table = dict(labels)
    raw = np.array([table[n] for n in names])
    return images, raw.astype({1: np.int64, 2: np.float32}[raw.ndim])


def test_stylegan_zip_follows_dataset_tool_layout(shard_dir, tmp_path, crops64):
    labels = add_labels(shard_dir)
    report = export(shard_dir, tmp_path / "sg", "stylegan", rows_per_part=20)
    zip_path = tmp_path / "sg" / "dataset.zip"
    assert report["stylegan_labels"] == "class indices" and zip_path.exists()
    assert not (tmp_path / "sg" / "staging").exists()
    with zipfile.ZipFile(zip_path) as z:
        assert "00000/img00000044.png" in z.namelist()
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
    images, classes = stylegan_load(zip_path)
    np.testing.assert_array_equal(images, crops64[:N])
    names = sorted(set(labels.values()))
    assert [names[c] for c in classes] == [labels[f"http://127.0.0.1/p/{i}.jpg#0"]
                                           for i in range(N)]
    again = export(shard_dir, tmp_path / "sg", "stylegan", rows_per_part=20)
    assert again["parts_resumed"] == 3 and zip_path.exists()


def test_stylegan_drops_labels_when_some_rows_have_none(shard_dir, tmp_path, crops64):
    add_labels(shard_dir, every_row=False)
    report = export(shard_dir, tmp_path / "sg", "stylegan")
    assert report["stylegan_labels"].startswith("omitted")
    images, classes = stylegan_load(tmp_path / "sg" / "dataset.zip")
    assert classes is None and len(images) == N


def test_hf_dataset_loads_with_datasets(shard_dir, tmp_path, crops64, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    labels = add_labels(shard_dir, every_row=False)
    report = export(shard_dir, tmp_path / "hf", "hf", rows_per_part=20)
    assert len(list((tmp_path / "hf" / "data").glob("train-*-of-00003.parquet"))) == 3
    data = datasets.load_dataset(str(tmp_path / "hf"), split="train",
                                 cache_dir=str(tmp_path / "cache"))
    assert isinstance(data.features["image"], datasets.Image)
    names = data.features["label"].names
    assert len(data) == N == report["rows"] and names == sorted(set(labels.values()))
    for i, row in enumerate(data):
        np.testing.assert_array_equal(np.asarray(row["image"].convert("RGB")), crops64[i])
        assert row["key"] == f"http://127.0.0.1/p/{i}.jpg#0" and row["index"] == i
        assert row["label"] == (names.index(labels[row["key"]]) if row["key"] in labels else -1)


def test_killed_export_resumes_at_the_first_unfinished_part(shard_dir, tmp_path, crops64,
                                                           monkeypatch):
    from dcgan_data.export import formats as module

    calls = []
    original = module.FolderWriter.write_part

    def dies_on_third(self, part, start, stop):
        calls.append(part)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, part, start, stop)

    monkeypatch.setattr(module.FolderWriter, "write_part", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        export(shard_dir, tmp_path / "f", "folder", rows_per_part=10)
    monkeypatch.setattr(module.FolderWriter, "write_part", original)
    assert sorted(json.loads((tmp_path / "f" / STATE).read_text())["parts"]) == ["0", "1"]
    report = export(shard_dir, tmp_path / "f", "folder", rows_per_part=10)
    assert report["parts_resumed"] == 2 and report["rows_exported_now"] == 25
    _, samples = image_folder(tmp_path / "f")
    assert len(samples) == N and not list((tmp_path / "f").rglob("*.tmp"))
    with pytest.raises(InputError, match="other shards or options"):
        export(shard_dir, tmp_path / "f", "folder", rows_per_part=11)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        export(shard_dir, tmp_path / "busy", "folder")


def test_cli_export_and_missing_extra_message(shard_dir, tmp_path, monkeypatch):
    result = CliRunner().invoke(cli, ["export", str(shard_dir), "-o", str(tmp_path / "w"),
                                      "--format", "webdataset"])
    assert result.exit_code == 0, result.output
    assert f"exported {N} images as webdataset" in result.output
    monkeypatch.setitem(__import__("sys").modules, "webdataset", None)
    result = CliRunner().invoke(cli, ["export", str(shard_dir), "-o", str(tmp_path / "w2"),
                                      "--format", "webdataset"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --format webdataset needs the 'webdataset' package: pip install webdataset "
        "(in a clone: pip install -e '.[interop]')"]


def examples_nets(nz: int, ngf: int, ndf: int):
    """The networks of pytorch/examples' dcgan/main.py at 64 px, rebuilt from its layer list:
    a `main` Sequential each, G ending in Tanh, D in Sigmoid."""
    from torch import nn

    def up(i, o, first=False):
        return [nn.ConvTranspose2d(i, o, 4, 1 if first else 2, 0 if first else 1, bias=False),
                nn.BatchNorm2d(o), nn.ReLU(True)]

    def down(i, o):
        return [nn.Conv2d(i, o, 4, 2, 1, bias=False), nn.BatchNorm2d(o), nn.LeakyReLU(0.2, True)]

    g = nn.Module()
    g.main = nn.Sequential(*up(nz, ngf * 8, True), *up(ngf * 8, ngf * 4), *up(ngf * 4, ngf * 2),
                           *up(ngf * 2, ngf), nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False),
                           nn.Tanh())
    d = nn.Module()
    d.main = nn.Sequential(nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
                           *down(ndf, ndf * 2), *down(ndf * 2, ndf * 4), *down(ndf * 4, ndf * 8),
                           nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())
    return g, d


def test_export_weights_load_into_the_pytorch_examples_networks(tmp_path, crops64):
    import torch

    from dcgan_data.train import stage as trainer
    from dcgan_data.train.checkpoint import load_checkpoint
    from dcgan_data.train.model import Discriminator
    from dcgan_data.train.sampling import load_generator

    write_shards(tmp_path / "s", crops64[:32])
    trainer.train(tmp_path / "s", tmp_path / "run", device="cpu", ngf=8, ndf=8, batch_size=16,
                  steps=2, log_every=1, sample_every=1000, ckpt_every=2)
    result = CliRunner().invoke(cli, ["export-weights", str(tmp_path / "run"), "-o",
                                      str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    g, d = examples_nets(100, 8, 8)
    g.load_state_dict(torch.load(tmp_path / "w" / "netG.pth"))  # strict: every key fits
    d.load_state_dict(torch.load(tmp_path / "w" / "netD.pth"))
    ours, _ = load_generator(tmp_path / "run" / "checkpoints" / "last.pt")
    our_d = Discriminator(64, 8)
    our_d.load_state_dict(load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["D"])
    g.eval(), d.eval(), our_d.eval()
    z = torch.randn(4, 100, 1, 1)
    with torch.no_grad():
        fake = g.main(z)
        torch.testing.assert_close(fake, ours(z.view(4, 100)))
        torch.testing.assert_close(d.main(fake).flatten(), torch.sigmoid(our_d(fake)))
    assert json.loads((tmp_path / "w" / "weights.json").read_text())["examples_compatible"]


SHA1_KEYS = [hashlib.sha1(bytes([i])).digest().decode("utf-8", "surrogateescape")
             for i in range(5)] + ["=HYPERLINK(\"http://x\")"]  # LSUN-style raw-byte keys


def test_binary_keys_go_out_as_keys_txt_writes_them_in_every_format(tmp_path, crops64):
    pq = pytest.importorskip("pyarrow.parquet")
    wds = pytest.importorskip("webdataset")
    src = write_shards(tmp_path / "s", crops64[:6], SHA1_KEYS)
    with open(src / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([("key", "label"), (SHA1_KEYS[5], "'@mention")])
    encoded = [encode_key(k) for k in SHA1_KEYS]

    export(src, tmp_path / "hf", "hf")
    table = pq.read_table(next((tmp_path / "hf" / "data").glob("*.parquet")))
    assert table.column("key").to_pylist() == encoded
    assert [decode_key(k) for k in table.column("key").to_pylist()] == SHA1_KEYS

    export(src, tmp_path / "w", "webdataset")
    got = wds.WebDataset(str(tmp_path / "w" / "shard-00000.tar"), shardshuffle=False)
    assert [json.loads(s["json"])["key"] for s in got] == encoded

    export(src, tmp_path / "f", "folder")
    with open(tmp_path / "f" / "index.csv", newline="", encoding="utf-8") as f:
        index = list(csv.DictReader(f))
    assert [r["key"] for r in index[:5]] == encoded[:5]
    # text a spreadsheet would run gets a leading ', as in the faces CSVs
    assert index[5]["key"] == "'" + SHA1_KEYS[5] and index[5]["label"] == "'@mention"
    assert decode_key(from_spreadsheet_text(index[5]["key"])) == SHA1_KEYS[5]


def test_long_non_ascii_labels_become_distinct_folder_names_cut_by_bytes(tmp_path, crops64):
    src = write_shards(tmp_path / "s", crops64[:4])
    labels = ["é" * 150 + "a", "é" * 150 + "b", "日本" * 60, "x"]
    with open(src / "labels.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("key", "label"),
                                 *((f"img{i:06d}", label) for i, label in enumerate(labels))])
    export(src, tmp_path / "f", "folder")
    classes, samples = image_folder(tmp_path / "f")
    assert len(classes) == 4 and len(samples) == 4
    assert all(len(name.encode("utf-8")) <= 210 for name in classes)
    assert "é" * 100 in classes and "é" * 100 + "~2" in classes and "日本" * 33 in classes
    for path, c in samples:
        assert labels[int(path.stem)].startswith(classes[c].removesuffix("~2"))
        np.testing.assert_array_equal(png(path), crops64[int(path.stem)])


def test_a_labels_csv_without_a_label_column_not_utf8_or_with_two_labels_for_a_key_is_refused(
        tmp_path, crops64):
    src = write_shards(tmp_path / "s", crops64[:3])
    cases = {b"key,name\nimg000000,Ann\n": "columns key and label",
             "key,label\nimg000000,Zo\xeb\n".encode("latin-1"): "not UTF-8",
             b"key,label\nimg000000,Ann\nimg000001,Bo\nimg000000,Cy\n":
                 "line 4: key 'img000000' is labelled 'Cy' here and 'Ann' before"}
    for data, message in cases.items():
        (src / "labels.csv").write_bytes(data)
        with pytest.raises(InputError, match=message):
            export(src, tmp_path / "f", "folder")
    assert not (tmp_path / "f").exists()  # refused before anything was written
    (src / "labels.csv").write_bytes(b"key,label\nimg000000,Ann\nimg000000,Ann\n")
    assert export(src, tmp_path / "f", "folder")["labels"]["rows_by_label"] == {"Ann": 1, "": 2}


def test_a_stylegan_export_killed_in_its_cleanup_finishes_when_run_again(tmp_path, crops64,
                                                                         monkeypatch):
    from dcgan_data.export import formats as module

    src = write_shards(tmp_path / "s", crops64[:10])
    original = shutil.rmtree

    def killed_half_way(path, *args, **kwargs):
        (Path(path) / "part-00000.zip").unlink()
        raise KeyboardInterrupt

    monkeypatch.setattr(module.shutil, "rmtree", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        export(src, tmp_path / "sg", "stylegan", rows_per_part=4)
    monkeypatch.setattr(module.shutil, "rmtree", original)
    assert (tmp_path / "sg" / "staging" / "part-00001.zip").exists()
    report = export(src, tmp_path / "sg", "stylegan", rows_per_part=4)
    assert report["parts_resumed"] == 3 and not (tmp_path / "sg" / "staging").exists()
    images, _ = stylegan_load(tmp_path / "sg" / "dataset.zip")
    np.testing.assert_array_equal(images, crops64[:10])


def test_export_takes_its_output_lock_and_removes_what_a_killed_run_left(tmp_path, crops64):
    src = write_shards(tmp_path / "s", crops64[:3])
    with output_lock(tmp_path / "f"):
        with pytest.raises(InputError, match="another dcgan-data run"):
            export(src, tmp_path / "f", "folder")
    (tmp_path / "f" / ".index.csv.abc.tmp").write_bytes(b"x" * 100)
    export(src, tmp_path / "f", "folder")
    assert not list((tmp_path / "f").glob("*.tmp"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="exists and is not a directory"):
        export(src, tmp_path / "file", "folder")


def test_export_without_a_format_is_refused_before_writing_anything(shard_dir, tmp_path):
    result = CliRunner().invoke(cli, ["export", str(shard_dir), "-o", str(tmp_path / "e")])
    assert result.exit_code == 2 and "Missing option '--format'" in result.output
    assert "folder" in result.output and not (tmp_path / "e").exists()
    with pytest.raises(InputError, match="--format must be one of folder"):
        export(shard_dir, tmp_path / "e")
    assert not (tmp_path / "e").exists()
