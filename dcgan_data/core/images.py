"""Decoding image bytes safely, cropping, and drawing contact sheets.

Every decode goes through `decode_image`, which refuses bad input with an `ImageError`
whose `reason` is a short code that reports count ("corrupt", "too_many_pixels", ...).
JPEGs are decoded by libjpeg-turbo through simplejpeg in strict mode: where libjpeg only
warns ("Corrupt JPEG data: ...") and paints over the damage, the image is refused as
`corrupt`, since damaged pixels in a training set are worse than one image fewer.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from typing import NamedTuple

import cv2
import numpy as np
import simplejpeg
from PIL import Image

from dcgan_data.core.files import atomic_write_bytes
from dcgan_data.core.limits import MAX_PIXELS

# A header declaring more pixels than this is refused before decoding (decompression bombs).
DEFAULT_MAX_PIXELS = MAX_PIXELS
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 grey from RGB, as OpenCV's and PIL's grey

# Decoding happens in many processes at once; one OpenCV thread each is faster overall.
cv2.setNumThreads(1)
Image.MAX_IMAGE_PIXELS = None  # we apply our own limit, as an error rather than a warning

_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
)


# largest first: a JPEG is decoded at 1/factor scale (libjpeg's DCT scaling)
_REDUCTIONS = (8, 4, 2)
# in JPEG entropy-coded data, 0xFF is followed by a stuffed 0x00 or a restart marker; any
# other byte after 0xFF is the marker that ends the scan
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")
_EXIF_ORIENTATION = 0x0112


class ImageError(ValueError):
    """An image that cannot be used. `reason` is a short code for reports."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def sniff_format(data: bytes) -> str | None:
    """The image format named by the leading magic bytes, or None if these are not image bytes."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    return None


def _looks_truncated(data: bytes, fmt: str) -> bool:
    # Decoders pad a truncated image with grey and carry on, so walk the format's own
    # structure to its end marker. Bytes after that end (a phone's motion-photo MP4 after
    # the JPEG, metadata after IEND) are not damage.
    if fmt == "jpeg":
        return _jpeg_end(data) is None
    if fmt == "png":
        return _png_end(data) is None
    if fmt == "webp":
        declared = int.from_bytes(data[4:8], "little") + 8
        return len(data) < declared
    return False


def _jpeg_end(data: bytes) -> int | None:
    """The offset just past the EOI marker that ends the JPEG stream, or None if the data
    stops first. Segments are skipped by their lengths, so an EXIF thumbnail's own EOI does
    not count."""
    pos, size = 2, len(data)
    while pos + 2 <= size:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker == 0xD9:
            return pos + 2
        elif 0xD0 <= marker <= 0xD7 or marker in (0x01, 0xD8):  # markers without a length
            pos += 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
            if marker == 0xDA:
                found = _SCAN_END.search(data, pos)
                if found is None:
                    return None
                pos = found.start()
    return None


def _png_end(data: bytes) -> int | None:
    """The offset just past the IEND chunk, or None if the data stops first."""
    pos, size = 8, len(data)
    while pos + 12 <= size:
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunk = data[pos + 4 : pos + 8]
        pos += 12 + length
        if chunk == b"IEND":
            return pos if pos <= size else None
    return None


class Header(NamedTuple):
    fmt: str
    width: int
    height: int
    mode: str
    has_alpha: bool
    orientation: int = 1  # EXIF orientation, 1..8: the decoded pixels are turned upright

    @property
    def upright_hw(self) -> tuple[int, int]:
        """Height and width of the image as shown, after its EXIF orientation."""
        if self.orientation in (5, 6, 7, 8):  # a quarter turn
            return self.width, self.height
        return self.height, self.width


def read_header(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Header:
    """Check image bytes without decoding them: magic bytes, header, pixel limit, truncation.

    Raises ImageError for empty, non-image, truncated, corrupt or oversized input.
    """
    if not data:
        raise ImageError("empty", "zero-length value")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageError("not_an_image", f"leading bytes {data[:8].hex()}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            # cheap for JPEG (its EXIF is parsed with the header); other formats' EXIF is
            # read only where the pixels are decoded with their alpha, unturned
            orientation = _orientation(img) if fmt == "jpeg" or has_alpha else 1
            header = Header(fmt, img.width, img.height, img.mode, has_alpha, orientation)
    except Exception as exc:  # PIL raises many types for a bad header
        # PIL names the in-memory file by its address: drop it, so reports repeat exactly
        reason = re.sub(r" <_io\.BytesIO object at 0x[0-9a-f]+>", "", str(exc))
        raise ImageError("corrupt", f"unreadable {fmt} header ({reason})") from None
    if header.width * header.height > max_pixels:
        raise ImageError("too_many_pixels",
                         f"{header.width}x{header.height} exceeds {max_pixels} pixels")
    if _looks_truncated(data, fmt):
        raise ImageError("truncated", f"{fmt} data ends early ({len(data)} bytes)")
    return header


def decode_pixels(
    data: bytes, header: Header, keep_short_side: int | None = None
) -> tuple[np.ndarray, str | None]:
    """Decode checked image bytes to upright RGB uint8 (H, W, 3), and name the conversion
    applied.

    With `keep_short_side`, a JPEG is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT
    scaling, several times faster than a full decode) when its short side stays at least that.
    """
    if header.fmt == "jpeg" and header.mode != "CMYK":
        rgb = _decode_jpeg(data, header, keep_short_side)
        return _upright(rgb, header.orientation), _conversion(header.mode, False)
    # OpenCV turns an image upright by its EXIF orientation, except when keeping its alpha
    flags = cv2.IMREAD_UNCHANGED if header.has_alpha else cv2.IMREAD_COLOR
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if pixels is None or pixels.size == 0:
        raise ImageError("corrupt", f"{header.fmt} data does not decode")
    if header.has_alpha:
        pixels = _upright(pixels, header.orientation)
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    if pixels.ndim == 2:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    if pixels.shape[2] == 4:
        pixels = _composite_on_white(pixels)
    rgb = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    # PNG IHDR bit depth: PIL reports 48-bit PNGs as plain RGB
    deep = header.fmt == "png" and data[24] == 16
    return rgb, "16bit" if deep else _conversion(header.mode, header.has_alpha)


def decode_image(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, keep_short_side: int | None = None
) -> tuple[np.ndarray, str | None]:
    """Decode image bytes to an RGB uint8 array (H, W, 3).

    Returns the array and the conversion applied to reach 8-bit RGB ("grayscale", "rgba",
    "16bit", "palette", "cmyk"), or None when the image already was 8-bit RGB.
    Raises ImageError for empty, non-image, truncated, corrupt or oversized input.
    """
    return decode_pixels(data, read_header(data, max_pixels), keep_short_side)


def _decode_jpeg(data: bytes, header: Header, keep_short_side: int | None) -> np.ndarray:
    factor = 1
    short = min(header.width, header.height)
    if keep_short_side:
        factor = next((f for f in _REDUCTIONS if short // f >= keep_short_side), 1)
    try:
        # asking for at least 1/factor of each side selects libjpeg's 1/factor scale
        return simplejpeg.decode_jpeg(data, "RGB", min_height=-(-header.height // factor),
                                      min_width=-(-header.width // factor), strict=True)
    except ValueError as exc:  # strict: libjpeg's warnings about damaged data are errors
        raise ImageError("corrupt", f"jpeg: {exc}") from None


def _orientation(img: Image.Image) -> int:
    try:
        value = int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a damaged EXIF block must not cost the image
        return 1
    return value if 1 <= value <= 8 else 1


def _upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels stored under EXIF `orientation`, turned to how the image is meant to be shown."""
    if orientation in (5, 6, 7, 8):  # the stored rows are the shown columns
        pixels = pixels.swapaxes(0, 1)
        orientation = {5: 1, 6: 2, 7: 3, 8: 4}[orientation]
    if orientation in (2, 3):
        pixels = pixels[:, ::-1]
    if orientation in (3, 4):
        pixels = pixels[::-1]
    return np.ascontiguousarray(pixels)


def _composite_on_white(bgra: np.ndarray) -> np.ndarray:
    alpha = bgra[:, :, 3:4].astype(np.float32) / 255.0
    bgr = bgra[:, :, :3].astype(np.float32)
    return np.rint(bgr * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)


def _conversion(mode: str, has_alpha: bool) -> str | None:
    if has_alpha:
        return "rgba"
    if mode in ("L", "1"):
        return "grayscale"
    if mode.startswith("I"):
        return "16bit"
    if mode == "P":
        return "palette"
    if mode == "CMYK":
        return "cmyk"
    return None


def center_crop(rgb: np.ndarray) -> np.ndarray:
    """The largest centred square of an image."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return rgb[top : top + side, left : left + side]


def resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize a square image to size x size with area averaging (no aliasing when shrinking)."""
    if rgb.shape[0] == size and rgb.shape[1] == size:
        return np.ascontiguousarray(rgb)
    interp = cv2.INTER_AREA if rgb.shape[0] > size else cv2.INTER_CUBIC
    return cv2.resize(rgb, (size, size), interpolation=interp)


def center_crop_resize(rgb: np.ndarray, size: int, min_side: int | None = None) -> np.ndarray:
    """Center-crop to a square and resize to size x size.

    Raises ImageError("too_small") when the short side is under `min_side` (default `size`):
    upscaling would only add blur to the training set.
    """
    short = min(rgb.shape[:2])
    if short < (size if min_side is None else min_side):
        raise ImageError("too_small", f"{rgb.shape[1]}x{rgb.shape[0]} is smaller than {size}px")
    return resize_square(center_crop(rgb), size)


def downsample_2x(batch: np.ndarray) -> np.ndarray:
    """Exact 2x2 mean pooling of (..., H, W, C) uint8 images with even H and W, as uint8
    ((sum + 2) // 4). The batch goes to OpenCV as one tall image: at an exact factor of 2 its
    area resize averages 2x2 blocks, which never straddle two images since H is even."""
    *lead, h, w, c = batch.shape
    tall = np.ascontiguousarray(batch).reshape(-1, w, c)
    if not len(tall):
        return np.zeros((*lead, h // 2, w // 2, c), np.uint8)
    small = cv2.resize(tall, (w // 2, len(tall) // 2), interpolation=cv2.INTER_AREA)
    return small.reshape(*lead, h // 2, w // 2, c)


def contact_sheet(
    images: np.ndarray | list[np.ndarray], cols: int | None = None, pad: int = 2
) -> np.ndarray:
    """Tile equally sized RGB images (N, H, W, 3) into one RGB grid with white gutters."""
    images = np.asarray(images)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError("contact_sheet needs a non-empty (N, H, W, 3) array")
    n, h, w, _ = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    sheet = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        sheet[y : y + h, x : x + w] = img
    return sheet


def encode_png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def save_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """Write an RGB uint8 array as a PNG, atomically."""
    atomic_write_bytes(path, encode_png(rgb))


def encode_image(rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> bytes:
    """Encode RGB uint8 as JPEG, WebP or PNG bytes."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if fmt == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    elif fmt == "webp":
        ok, buf = cv2.imencode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, quality])
    elif fmt == "png":
        ok, buf = cv2.imencode(".png", bgr)
    else:
        raise ValueError(f"unknown image format {fmt!r} (jpeg, webp or png)")
    if not ok:
        raise ValueError(f"{fmt} encoding failed")
    return buf.tobytes()
