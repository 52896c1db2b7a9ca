"""tensorbridge.image: cases found by trying to break it, each checked against NumPy, PyTorch or
Pillow directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import tensorbridge as tb
from tensorbridge import image as ti


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        (np.array([[0, 127, 200]], np.uint8), np.int8),
        (np.array([[0, 32767, 65535]], np.uint16), np.int16),
        (np.array([[5, -1]], np.int32), np.uint16),
        (np.array([[5, -1]], np.int32), np.uint32),
        (np.array([[1, 2**53 + 1]], np.int64), np.float64),
    ],
)
def test_a_cast_that_wraps_or_rounds_is_refused(values, dtype):
    """A narrowing cast that would wrap (uint8 200 → int8 -56) or round (int64 → float64) raises
    LossyConversionError naming the one value, and never suggests scale=True where it fails."""
    with pytest.raises(tb.LossyConversionError, match=r"1 pixel value.*dtype=None") as info:
        ti.to_numpy(values, dtype=dtype)
    assert "scale=True" not in str(info.value)
    fits = values[:, :1]
    assert np.array_equal(ti.to_numpy(fits, dtype=dtype)[..., 0], fits.astype(dtype))
    assert np.array_equal(ti.to_numpy(values, dtype=None)[..., 0], values)  # the fix named


def test_a_wrapping_cast_from_a_pil_image_is_refused():
    """An L image's 200 into int8 raises (Pillow's pixel is 200, int8 cannot hold it)."""
    img = Image.fromarray(np.array([[0, 200]], np.uint8))
    assert img.getpixel((1, 0)) == 200
    with pytest.raises(tb.LossyConversionError, match="min 200, max 200"):
        ti.to_torch(img, dtype=torch.int8)
    assert ti.to_torch(img, dtype=torch.int16).flatten().tolist() == [0, 200]
