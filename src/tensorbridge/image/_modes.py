"""The Pillow mode table: what each mode's pixels are as an array, and how to name an image.

Every mode tensorbridge reads exactly maps to a NumPy dtype and a channel count; the raw mode is
what Pillow's ``raw`` encoder is asked for (mode ``1`` is read as ``L`` bytes, 0 or 255, and turned
into canonical bools).

>>> MODES["I;16B"].dtype, MODES["RGB"].channels
(dtype('>u2'), 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MODES", "RAW_ONLY", "TO_PIL_MODES", "Mode", "describe_image", "pillow_nbytes"]


@dataclass(frozen=True)
class Mode:
    """One Pillow mode: its pixels' dtype as Pillow stores them, channels, and the raw mode read."""

    name: str
    dtype: np.dtype[Any]
    channels: int
    raw: str


def _mode(name: str, dtype: str, channels: int, raw: str = "") -> Mode:
    return Mode(name, np.dtype(dtype), channels, raw or name)


MODES: dict[str, Mode] = {
    m.name: m
    for m in (
        _mode("1", "bool", 1, "L"),
        _mode("L", "u1", 1),
        _mode("LA", "u1", 2),
        _mode("RGB", "u1", 3),
        _mode("RGBA", "u1", 4),
        _mode("RGBX", "u1", 4),
        _mode("P", "u1", 1),
        _mode("PA", "u1", 2),
        _mode("I;16", "<u2", 1),
        _mode("I;16L", "<u2", 1),
        _mode("I;16B", ">u2", 1),
        _mode("I;16N", "=u2", 1),
        _mode("I", "=i4", 1),
        _mode("F", "=f4", 1),
        _mode("CMYK", "u1", 4),
        _mode("YCbCr", "u1", 3),
        _mode("LAB", "u1", 3, "RGB"),  # read from its bands as stored
        _mode("HSV", "u1", 3),
    )
}
"""Every mode ``tensorbridge.image`` reads."""

RAW_ONLY = frozenset({"CMYK", "YCbCr", "LAB", "HSV"})
"""Modes whose channels are not what a model expects: read only when ``mode=`` names them."""

TO_PIL_MODES: dict[tuple[str, int], tuple[str, ...]] = {
    ("bool", 1): ("1",),
    ("uint8", 1): ("L",),
    ("uint8", 2): ("LA",),
    ("uint8", 3): ("RGB", "YCbCr", "LAB", "HSV"),
    ("uint8", 4): ("RGBA", "RGBX", "CMYK"),
    ("uint16", 1): ("I;16", "I;16L", "I;16B", "I;16N"),
    ("int32", 1): ("I",),
    ("float32", 1): ("F",),
}
"""(dtype, channels) → the Pillow modes that hold such pixels exactly; the first is the default."""


def pillow_nbytes(mode: str, size: tuple[int, int]) -> int:
    """Bytes Pillow uses for an image's pixels (multi-band 8-bit modes take 4 bytes a pixel)."""
    row = MODES.get(mode)
    per_pixel = 4 if row is None or row.channels > 1 else row.dtype.itemsize
    return per_pixel * size[0] * size[1]


def describe_image(img: Any, source: str = "") -> str:
    """How messages and plans name a PIL image: ``PIL image (mode='P', size=64×48)``.

    >>> from PIL import Image
    >>> describe_image(Image.new("CMYK", (4, 3)), "scan.tif")
    "'scan.tif' (PIL image, mode='CMYK', size=4×3)"
    """
    try:
        w, h = img.size
        text = f"mode={img.mode!r}, size={w}×{h}"
    except Exception:  # a closed or broken image still gets a name
        text = "unreadable"
    return f"{source!r} (PIL image, {text})" if source else f"PIL image ({text})"
