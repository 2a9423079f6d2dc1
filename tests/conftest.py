"""Shared fixtures: real photos from the bundled sample, cut into distinct crops."""

from __future__ import annotations

import numpy as np
import pytest

from dcgan_data.testing.photos import photo_crops


@pytest.fixture(scope="session")
def crops64() -> np.ndarray:
    """300 distinct 64x64 crops of real photos."""
    return photo_crops(300)
