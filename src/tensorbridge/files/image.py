"""Image files — ``.png``, ``.jpg``/``.jpeg``, ``.tif``/``.tiff``, ``.bmp``, ``.gif``, ``.webp`` —
as tensor sources and destinations, through ``tensorbridge.image`` (needs Pillow).

Reads: one tensor, named after the file's stem, exactly what ``tensorbridge.image.to_torch(path)``
gives: ``(C, H, W)`` with C = 1 kept, EXIF orientation applied, palettes expanded, 16-bit as uint16.
Writes: one tensor, ``(H, W)`` or ``(C, H, W)``, through ``tensorbridge.image.to_pil`` (floats need
``value_range``; values outside it are refused unless ``clip``), in a mode the format stores
exactly (``STORES``; 16-bit grayscale PNG and TIFF round trip bit for bit); any other mode is
refused naming the formats that hold it. JPEG is lossy by design: it is written at quality 95
with full-resolution colour, and ``verify`` reports the difference. Writes are atomic.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import ConversionError
from ._common import BadFileError, Entry, FileUsageError, Layout, atomic_path, entry_for

if TYPE_CHECKING:
    from . import ConvertReport, FileInfo

__all__ = ["FORMATS", "STORES", "convert", "info", "is_image"]

FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".gif": "GIF",
    ".webp": "WEBP",
}
"""Extension → Pillow format name."""

STORES = {
    "PNG": ("1", "L", "LA", "RGB", "RGBA", "I;16"),
    "TIFF": ("1", "L", "LA", "RGB", "RGBA", "I;16", "I", "F", "CMYK"),
    "BMP": ("1", "L", "RGB"),
    "GIF": ("L",),
    "WEBP": ("RGB", "RGBA"),
    "JPEG": ("L", "RGB", "CMYK"),
}
"""Pillow modes each format writes (and reads back) as they are; JPEG only approximately."""

SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    "GIF": {"optimize": False},  # keeps an L image's grey palette whole, so it reads back as L
    "WEBP": {"lossless": True, "exact": True},
    "JPEG": {"quality": 95, "subsampling": 0},
}

WIDE = ("I;16", "I", "F")  # modes --value-range can map to 8 bits
BIT_DEPTH = {"1": 1, "I;16": 16, "I;16L": 16, "I;16B": 16, "I;16N": 16, "I": 32, "F": 32}


def _pillow() -> None:
    """Raise ``BadFileError`` naming the extra when Pillow is missing."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        raise BadFileError(
            'image files need Pillow, which is not installed: pip install "tensorbridge[image]"'
        ) from None


def is_image(path: str | os.PathLike[str]) -> bool:
    """Whether ``path``'s extension names an image format."""
    return Path(path).suffix.lower() in FORMATS


def _holders(mode: str) -> str:
    exts = [ext for ext, fmt in FORMATS.items() if mode in STORES[fmt] and fmt != "JPEG"]
    return ", ".join(exts) or "no image format (write a .npy, .safetensors or .pt file)"


def _read_image(src: Path, dtype: Any) -> np.ndarray:
    from .. import image

    if not src.is_file():
        raise BadFileError(f"{src}: no such file" if not src.exists() else f"{src} is not a file")
    try:
        return np.ascontiguousarray(image.to_numpy(src, layout="CHW", dtype=dtype))
    except ConversionError as exc:
        if "mode=" not in str(exc):
            raise
        raise type(exc)(
            f"{exc} (the command line has no mode option: call "
            "tensorbridge.image.to_torch(path, mode=...) in Python)"
        ) from None


def _read_tensor(src: Path, dtype: Any) -> tuple[str, np.ndarray]:
    from .. import to_numpy
    from . import open_reader

    with open_reader(src) as reader:
        if len(reader.entries) != 1:
            names = ", ".join(e.name for e in reader.entries[:5])
            raise BadFileError(
                f"{src} holds {len(reader.entries)} tensors ({names}) and an image file holds "
                "one; save the tensor you want alone first"
            )
        name = reader.entries[0].name
        array = np.array(reader.load(name))  # off the memory map before the file closes
    return name, (array if dtype is None else to_numpy(array, dtype=dtype))


def _to_image(array: np.ndarray, src: Path, value_range: Any, clip: bool) -> Any:
    from .. import image

    if array.ndim not in (2, 3):
        raise BadFileError(
            f"{src} holds a tensor of shape {array.shape}; an image file holds one (H, W) or "
            "(C, H, W) image"
        )
    try:
        return image.to_pil(
            array, layout="CHW", value_range=value_range, overflow="clip" if clip else "error"
        )
    except ConversionError as exc:
        # the same fixes, as the command line spells them
        text = str(exc).replace("value_range=(lo, hi)", "--value-range LO,HI")
        text = re.sub(r"value_range=\(([^,()]+), ([^,()]+)\)", r"--value-range \1,\2", text)
        text = text.replace("overflow='clip'", "--clip").replace("a value_range", "a --value-range")
        raise type(exc)(f"{src}: {text.split(': ', 1)[-1]}") from None


def _check_paths(src: Path, dst: Path, force: bool) -> None:
    try:
        same = src.resolve() == dst.resolve() or (dst.exists() and os.path.samefile(src, dst))
    except OSError:
        same = False
    if same:
        raise FileUsageError(f"refusing to write {dst} over its own source; choose another one")
    if dst.is_dir():
        raise FileUsageError(f"{dst} is a directory; give a file name")
    if dst.exists() and not force:
        raise FileUsageError(f"{dst} already exists; pass --force to replace it")
    if not dst.parent.is_dir():
        raise BadFileError(f"cannot write {dst}: no directory {dst.parent}")


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    dtype: Any = None,
    float_dtype: Any = None,
    verify: bool = False,
    force: bool = False,
    value_range: Any = None,
    clip: bool = False,
) -> ConvertReport:
    """Convert between an image file and a tensor file (or two image files), atomically.

    >>> convert("photo.png", "photo.npy").tensors  # doctest: +SKIP
    1
    """
    from . import ConvertReport, format_of, same_bits

    _pillow()
    src, dst = Path(src), Path(dst)
    out_fmt = None if is_image(dst) else format_of(dst)  # unknown extensions fail before reading
    _check_paths(src, dst, force)
    if is_image(src):
        name, array = src.stem, _read_image(src, dtype)
        if float_dtype is not None and dtype is None and array.dtype.kind == "f":
            array = _read_image(src, float_dtype)
    else:
        name, array = _read_tensor(src, dtype if dtype is not None else None)
        if float_dtype is not None and dtype is None and array.dtype.kind == "f":
            from .. import to_numpy

            array = to_numpy(array, dtype=float_dtype)
    if out_fmt is None:
        written = _write_image(array, src, dst, force, verify, value_range, clip)
    else:
        if value_range is not None or clip:
            raise FileUsageError("--value-range and --clip apply when writing an image file")
        layout = Layout([entry_for(name, array)], None, True)
        with atomic_path(dst, force=force) as tmp:
            out_fmt.write(tmp, layout, iter([array]))
            if verify:
                from . import open_reader

                with open_reader(tmp, out_fmt, name=name) as check:
                    if not same_bits(np.asarray(check.load(name)), array):
                        raise BadFileError(f"verify failed: {dst} differs from {src}")
        written = array
    return ConvertReport(str(src), str(dst), 1, int(written.nbytes), verify)


def _write_image(
    array: np.ndarray, src: Path, dst: Path, force: bool, verify: bool, value_range: Any, clip: bool
) -> np.ndarray:
    from ..image import to_numpy
    from . import same_bits

    fmt = FORMATS[dst.suffix.lower()]
    img = _to_image(array, src, value_range, clip)
    if img.mode not in STORES[fmt]:
        raise BadFileError(
            f"{src} makes a mode {img.mode} image, which a {fmt} file cannot hold as it is; "
            f"formats that can: {_holders(img.mode)}"
            + (" (or pass --value-range LO,HI to map it to 8 bits)" if img.mode in WIDE else "")
        )
    pixels = to_numpy(img)
    with atomic_path(dst, force=force) as tmp:
        try:
            img.save(tmp, fmt, **SAVE_OPTIONS.get(fmt, {}))
        except OSError as exc:
            raise BadFileError(f"cannot write {dst}: {exc}") from None
        if verify:
            back = to_numpy(tmp)
            if not same_bits(back, pixels):
                lossy = " (JPEG is lossy)" if fmt == "JPEG" else ""
                raise BadFileError(
                    f"verify failed: {dst} reads back different pixels{lossy}; "
                    f"{dst} was left untouched"
                )
    return pixels


def info(path: str | os.PathLike[str]) -> FileInfo:
    """What ``tensorbridge inspect`` shows for an image: mode, size, bit depth, EXIF orientation,
    palette, and the tensor ``tensorbridge.image.to_torch`` returns for it."""
    from PIL import Image

    from ..image import _common, _reading, to_numpy
    from . import FileInfo

    path = Path(path)
    if not path.is_file():
        raise BadFileError(
            f"{path}: no such file" if not path.exists() else f"{path} is not a file"
        )
    try:
        with _common.pillow_warnings(str(path)), Image.open(path) as img:
            mode, (w, h), fmt = img.mode, _reading.stored_size(img), img.format
            rawmode = img.tile[0][3] if img.tile and isinstance(img.tile[0][3], str) else ""
            orientation = img.getexif().get(0x0112, 1)
            palette = _palette(img)
            frames = getattr(img, "n_frames", 1)
    except Image.UnidentifiedImageError:
        raise BadFileError(f"{path} is not an image file Pillow can read") from None
    except (Image.DecompressionBombError, OSError) as exc:
        raise BadFileError(f"cannot read {path}: {exc}") from None
    depth = 16 if ";16" in rawmode else BIT_DEPTH.get(mode, 8)
    meta = {
        "mode": mode,
        "size": f"{w}×{h} (width × height)",
        "bit_depth": f"{depth} per channel"
        + (" (Pillow reads 8)" if depth > BIT_DEPTH.get(mode, 8) else ""),
        "exif_orientation": (
            f"{orientation} ({_reading.ORIENTATIONS[orientation][1]}; to_torch applies it)"
            if orientation in _reading.ORIENTATIONS
            else "none"
        ),
        "palette": palette,
    }
    if frames > 1:
        meta["frames"] = str(frames)
    entries: list[Entry] = []
    try:
        array, note = to_numpy(path, layout="CHW"), ""
    except ConversionError as refused:  # shown as read with mode= named, and why it needs it
        reason = str(refused).split(": ", 1)[-1]
        note = f" with mode={mode!r} (without it: {reason})"
        try:
            array = to_numpy(path, layout="CHW", mode=mode)
        except ConversionError as exc:  # the image is inspected even when nothing reads it
            meta["to_torch"] = f"refused: {exc}"
            return FileInfo(str(path), f"image ({fmt})", path.stat().st_size, [], {}, meta)
    meta["to_torch"] = f"torch.{array.dtype} {tuple(array.shape)}{note}"
    entries.append(entry_for(path.stem, array))
    return FileInfo(str(path), f"image ({fmt})", path.stat().st_size, entries, {}, meta)


def _palette(img: Any) -> str:
    if img.mode not in ("P", "PA"):
        return "none"
    colours = len(img.getpalette() or []) // 3
    trns = img.info.get("transparency")
    if isinstance(trns, int):
        alpha = f", index {trns} transparent"
    elif isinstance(trns, bytes):
        alpha = f", alpha for {len(trns)} entries"
    else:
        alpha = ""
    return f"{colours} colours{alpha}"
