"""Helpers for the image tests: random Pillow images and their pixels read with Pillow's own
pixel access (``getpixel``), never with tensorbridge."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

READABLE = [
    "1",
    "L",
    "LA",
    "RGB",
    "RGBA",
    "RGBX",
    "P",
    "PA",
    "I;16",
    "I;16L",
    "I;16B",
    "I;16N",
    "I",
    "F",
]
RAW_ONLY = ["CMYK", "YCbCr", "LAB", "HSV"]
DTYPE = {
    "1": np.bool_,
    "I;16": np.uint16,
    "I;16L": np.uint16,
    "I;16B": np.uint16,
    "I;16N": np.uint16,
    "I": np.int32,
    "F": np.float32,
}
SCALE_MAX = {"1": 1, "I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535}


def random_image(mode: str, size: tuple[int, int] = (5, 3), seed: int = 0) -> Image.Image:
    """An image of ``mode`` whose stored bytes are random (and, for P/PA, a random palette)."""
    rng = np.random.default_rng(seed)
    img = Image.new(mode, size)
    if mode in ("P", "PA"):
        img.putpalette(rng.integers(0, 256, 3 * 256, dtype=np.uint8).tobytes())
    n = len(img.tobytes())
    img.frombytes(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
    return img


def pillow_pixels(img: Image.Image) -> np.ndarray:
    """(H, W, C) values exactly as ``img.getpixel`` returns them."""
    w, h = img.size
    rows = [[img.getpixel((x, y)) for x in range(w)] for y in range(h)]
    a = np.array(rows)
    return a[..., None] if a.ndim == 2 else a


def expected(img: Image.Image) -> np.ndarray:
    """What ``to_numpy(img)`` must give, from Pillow's own pixels (palettes through ``convert``
    of a copy, as Pillow expands them)."""
    mode = img.mode
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info or img.palette.mode == "RGBA"
        return pillow_pixels(img.copy().convert("RGBA" if has_alpha else "RGB")).astype(np.uint8)
    a = pillow_pixels(img)
    if mode == "1":
        return a != 0
    return a.astype(DTYPE.get(mode, np.uint8))


def with_orientation(img: Image.Image, orientation: int, fmt: str = "PNG") -> Image.Image:
    """``img`` saved with an EXIF orientation tag and opened again (loaded)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, fmt, exif=exif)
    out = Image.open(io.BytesIO(buf.getvalue()))
    out.load()
    return out


def png_rgb16(values: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG of ``values`` (H, W, 3) uint16, written by hand (Pillow
    cannot write one)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    h, w, _ = values.shape
    rows = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def record_steps(monkeypatch) -> list[str]:
    """The text of every step tensorbridge.image runs from now on (in the test), in order."""
    from tensorbridge.image import _common

    ran: list[str] = []
    real = _common.run_steps

    def recording(steps, value, what=""):
        ran.extend(s.text for s in steps)
        return real(steps, value, what)

    monkeypatch.setattr(_common, "run_steps", recording)
    return ran
