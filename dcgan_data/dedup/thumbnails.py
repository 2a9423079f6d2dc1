"""The thumbnails dedup keeps of every row: what candidates are found and verified on."""

from __future__ import annotations

import cv2
import numpy as np

GREY = 32  # grey thumbnail side
COLOUR = 8  # colour thumbnail side


def thumbnails(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8 rows -> (N, 32, 32) uint8 grey and (N, 8, 8, 3) uint8 colour."""
    rows = np.ascontiguousarray(rows)
    n = len(rows)
    grey = np.empty((n, GREY, GREY), np.uint8)
    colour = np.empty((n, COLOUR, COLOUR, 3), np.uint8)
    for i, row in enumerate(rows):
        grey[i] = cv2.resize(cv2.cvtColor(row, cv2.COLOR_RGB2GRAY), (GREY, GREY),
                             interpolation=cv2.INTER_AREA)
        colour[i] = cv2.resize(row, (COLOUR, COLOUR), interpolation=cv2.INTER_AREA)
    return grey, colour
