import io

import cv2
import numpy as np
import pytest
from PIL import Image

from dcgan_data.core.images import (
    ImageError,
    center_crop_resize,
    contact_sheet,
    decode_image,
    downsample_2x,
    encode_image,
    sniff_format,
)
from dcgan_data.testing.photos import PHOTOS

JPEG = PHOTOS[0].read_bytes()


def png_bytes(array: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", array)
    assert ok
    return buf.tobytes()


def test_decodes_real_jpeg_as_rgb():
    rgb, conversion = decode_image(JPEG)
    bgr = cv2.imdecode(np.frombuffer(JPEG, np.uint8), cv2.IMREAD_COLOR)
    assert conversion is None
    assert rgb.dtype == np.uint8 and rgb.shape == bgr.shape
    np.testing.assert_array_equal(rgb, bgr[:, :, ::-1])


def test_webp_round_trip_and_sniffing():
    rgb, _ = decode_image(JPEG)
    webp = encode_image(rgb, "webp", 90)
    assert sniff_format(webp) == "webp" and sniff_format(JPEG) == "jpeg"
    back, _ = decode_image(webp)
    assert back.shape == rgb.shape
    assert np.abs(back.astype(int) - rgb).mean() < 6


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "empty"),
    (b"<html>not found</html>", "not_an_image"),
    (JPEG[: len(JPEG) // 2], "truncated"),
    (JPEG[:4] + bytes(2000), "corrupt"),
])
def test_bad_bytes_are_refused_with_a_reason(data, reason):
    with pytest.raises(ImageError) as info:
        decode_image(data)
    assert info.value.reason == reason


def test_pixel_limit_is_checked_before_decoding():
    # a 20000 x 20000 PNG header over a few hundred bytes: decoding it would take 1.2 GB
    big = Image.new("L", (20000, 20000))
    buf = io.BytesIO()
    big.save(buf, "PNG")
    with pytest.raises(ImageError) as info:
        decode_image(buf.getvalue(), max_pixels=50_000_000)
    assert info.value.reason == "too_many_pixels"


def test_grayscale_rgba_and_16bit_png_become_rgb():
    rgb, _ = decode_image(JPEG)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    out, conversion = decode_image(png_bytes(gray))
    assert conversion == "grayscale" and out.shape == (*gray.shape, 3)
    assert (out[:, :, 0] == gray).all()

    bgra = np.zeros((40, 50, 4), np.uint8)
    bgra[:, :, 2] = 200  # red where opaque
    bgra[:, 25:, 3] = 255  # left half transparent
    out, conversion = decode_image(png_bytes(bgra))
    assert conversion == "rgba"
    assert (out[:, :25] == 255).all()  # transparent -> white
    assert (out[:, 25:] == [200, 0, 0]).all()

    deep = (gray.astype(np.uint16) * 257)[:, :, None].repeat(3, axis=2)
    out, conversion = decode_image(png_bytes(deep))
    assert conversion == "16bit" and out.dtype == np.uint8
    assert np.abs(out[:, :, 0].astype(int) - gray).max() <= 1


def test_center_crop_resize_and_too_small():
    rgb, _ = decode_image(JPEG)
    crop = center_crop_resize(rgb, 64)
    assert crop.shape == (64, 64, 3)
    with pytest.raises(ImageError) as info:
        center_crop_resize(rgb[:40, :300], 64)
    assert info.value.reason == "too_small"


def test_downsample_2x_is_exact_area_mean():
    batch = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3)).astype(np.uint8)
    small = downsample_2x(batch)
    assert small.shape == (3, 32, 32, 3)
    summed = batch.astype(int).reshape(3, 32, 2, 32, 2, 3).sum((2, 4))
    assert np.array_equal(small, (summed + 2) // 4)  # the mean, halves rounded up
    assert downsample_2x(batch[:0]).shape == (0, 32, 32, 3)


def test_contact_sheet_tiles_images():
    tiles = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (10, 20, 30)])
    sheet = contact_sheet(tiles, cols=2, pad=1)
    assert sheet.shape == (2 * 9 + 1, 2 * 9 + 1, 3)
    assert (sheet[1:9, 1:9] == 10).all() and (sheet[10:18, 1:9] == 30).all()
    assert (sheet[10:18, 10:18] == 255).all()  # empty cell stays white


def test_reduced_jpeg_decode_matches_full_decode_after_resizing():
    rgb, _ = decode_image(JPEG)
    side = min(rgb.shape[:2])
    reduced, _ = decode_image(JPEG, keep_short_side=side // 2)
    assert min(reduced.shape[:2]) in (side // 2, (side + 1) // 2)
    full64 = center_crop_resize(rgb, 64)
    reduced64 = center_crop_resize(reduced, 64)
    assert np.abs(full64.astype(int) - reduced64).mean() < 2.0
    # never reduced below what the caller keeps
    same, _ = decode_image(JPEG, keep_short_side=side)
    assert same.shape == rgb.shape


def test_a_corrupt_header_reads_the_same_every_time():
    # PIL names the in-memory file by its address; the reason must not, or reports differ
    details = set()
    for _ in range(3):
        with pytest.raises(ImageError) as info:
            decode_image(JPEG[:4] + bytes(2000))
        details.add(str(info.value))
    assert len(details) == 1 and "0x" not in details.pop()
