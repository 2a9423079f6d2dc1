import hashlib
import io
import pickle

import lmdb
import pytest

from dcgan_data.core.errors import InputError
from dcgan_data.core.images import decode_image, sniff_format
from dcgan_data.ingest.pack import pack_images
from dcgan_data.ingest.sources import FolderSource, LsunSource, open_source
from dcgan_data.testing.photos import PHOTOS


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("lsun")
    pack_images([str(p) for p in PHOTOS[:4]], root / "a_train_lmdb", format="webp", quality=75,
                short_side=256)
    pack_images([str(p) for p in PHOTOS[4:6]], root / "b_train_lmdb", format="jpeg", quality=90,
                short_side=128)
    return root


def test_pack_writes_lsun_format(packed):
    env = lmdb.open(str(packed / "a_train_lmdb"), readonly=True, lock=False)
    with env.begin() as txn:
        entries = list(txn.cursor())
    env.close()
    assert len(entries) == 4
    for key, value in entries:
        assert key.decode() == hashlib.sha1(value).hexdigest()
        assert sniff_format(value) == "webp"
        rgb, _ = decode_image(value)
        assert min(rgb.shape[:2]) <= 256


def test_pack_default_is_jpeg_q75_like_lsun_scenes(tmp_path):
    import cv2
    import PIL.Image

    pack_images([str(PHOTOS[0])], tmp_path / "d_lmdb")
    (value,) = LsunSource(tmp_path / "d_lmdb").read_many(LsunSource(tmp_path / "d_lmdb").items())
    assert sniff_format(value) == "jpeg"
    rgb, _ = decode_image(value)
    _, q75 = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 75])
    tables = [PIL.Image.open(io.BytesIO(b)).quantization for b in (value, q75.tobytes())]
    assert tables[0] == tables[1]


def test_pack_is_idempotent(packed, tmp_path):
    first = pack_images([str(PHOTOS[0])], tmp_path / "x_lmdb", format="jpeg", quality=90,
                        short_side=64)
    again = pack_images([str(PHOTOS[0])], tmp_path / "x_lmdb", format="jpeg", quality=90,
                        short_side=64)
    assert (first["packed"], again["packed"], again["already_present"]) == (1, 0, 1)
    assert again["entries"] == 1


def test_reads_one_db_or_a_folder_of_them_in_key_order(packed):
    one = LsunSource(packed / "a_train_lmdb")
    items = one.items()
    assert items == sorted(items) and len(items) == one.count() == 4
    assert all(len(k) == 40 for k in items)
    both = open_source(packed)
    assert isinstance(both, LsunSource) and both.count() == 6
    names = both.items()
    assert names[0].startswith("a_train_lmdb/") and names[-1].startswith("b_train_lmdb/")
    values = both.read_many([names[-1], names[0], "a_train_lmdb/" + "0" * 40])
    assert sniff_format(values[0]) == "jpeg" and sniff_format(values[1]) == "webp"
    assert values[2] is None


def test_source_pickles_without_its_environment(packed):
    source = LsunSource(packed / "a_train_lmdb")
    source.items()  # opens the environment in this process
    state = pickle.dumps(source)
    assert b"Environment" not in state
    clone = pickle.loads(state)
    assert clone.dbs == source.dbs and clone.items() == source.items()


def test_open_source_errors_and_folders(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        open_source(tmp_path / "missing")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(InputError, match="expected an LMDB"):
        open_source(tmp_path / "f.txt")
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    (tmp_path / "imgs" / "sub" / "p.jpg").write_bytes(PHOTOS[0].read_bytes())
    folder = open_source(tmp_path / "imgs")
    assert isinstance(folder, FolderSource) and folder.items() == ["sub/p.jpg"]
