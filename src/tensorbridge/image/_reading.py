"""Images to arrays: PIL images, image files, ndarrays and batches of them → ndarray or tensor.

Planning decides, per image, the steps (decode, EXIF orientation, ``mode=`` conversion, reading
the pixels — with palette expansion, byte swap, scaling or a cast folded into that one pass) and,
for the whole result, the views (HWC → CHW) and the device copy. ``run`` executes exactly those
steps; ``explain`` reports them unrun.

Pixels are read from Pillow in blocks of whole rows (``BLOCK_BYTES``) straight into the output,
so a scaled float result costs no intermediate full-size buffer.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from .. import _dtypes
from .._errors import ConversionError, LossyConversionError, UnsupportedInputError, describe
from .._plan import LeafPlan, Plan, Step, format_bytes
from . import _common
from ._modes import MODES, RAW_ONLY, describe_image, pillow_nbytes
from ._store import SCALE_MAX, Store

__all__ = ["Options", "explain", "run", "stored_size"]

BLOCK_BYTES = 256 << 10  # rows read from Pillow per call: small enough to stay in cache

ORIENTATIONS = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT, "mirror left–right"),
    3: (Image.Transpose.ROTATE_180, "rotate 180°"),
    4: (Image.Transpose.FLIP_TOP_BOTTOM, "mirror top–bottom"),
    5: (Image.Transpose.TRANSPOSE, "transpose"),
    6: (Image.Transpose.ROTATE_270, "rotate 90° clockwise"),
    7: (Image.Transpose.TRANSVERSE, "transverse"),
    8: (Image.Transpose.ROTATE_90, "rotate 90° counter-clockwise"),
}
"""EXIF orientation tag value → the Pillow transpose a viewer applies, and its name."""

UNDO = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
"""The two orientations that are not their own inverse: the transpose that undoes each."""


@dataclass(frozen=True)
class Options:
    """The keyword arguments of one ``to_torch``/``to_numpy`` call, checked."""

    to: str
    layout: str
    dtype: torch.dtype | None
    scale: bool
    mode: str | None
    exif: bool
    palette: str
    device: torch.device | None = None

    @classmethod
    def make(
        cls,
        to: str,
        layout: Any,
        dtype: Any,
        scale: Any,
        mode: Any,
        exif: Any,
        palette: Any,
        device: Any = None,
    ) -> Options:
        layout = _common.check_choice("layout", layout, ("CHW", "HWC"))
        palette = _common.check_choice("palette", palette, ("rgb", "indices"))
        for name, flag in (("scale", scale), ("exif", exif)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, not {flag!r}")
        if mode is not None:
            mode = _common.check_choice("mode", mode, tuple(MODES))
        resolved = _common.resolve_dtype(dtype)
        if to == "numpy" and resolved is not None and _ml_dtype(resolved) is None:
            raise ConversionError(
                f"dtype={dtype!r} has no NumPy form; use image.to_torch(..., dtype={resolved}) "
                "or a NumPy dtype"
            )
        return cls(to, layout, resolved, bool(scale), mode, bool(exif), palette, _device(device))


def _device(device: Any) -> torch.device | None:
    if device is None:
        return None
    if isinstance(device, bool) or not isinstance(device, (str, int, torch.device)):
        raise TypeError(f"device must be a string, an int or a torch.device, not {device!r}")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ConversionError(f"device={device!r} is not a device PyTorch knows ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConversionError(
            f"device={device!r} was asked, but PyTorch sees no CUDA device "
            "here; pass device=None (or 'cpu')"
        )
    return dev


# --------------------------------------------------------------------------------------------
# one image


@dataclass
class Item:
    """One image of the input, planned: its steps and the pixels it gives (H, W, C, dtype)."""

    name: str  # how messages name it: the input, or img[3] in a batch
    what: str  # description of the input
    source: Any  # the PIL image or ndarray the steps start from
    steps: list[Step] = field(default_factory=list)
    shape: tuple[int, ...] = ()
    dtype: np.dtype[Any] = field(default_factory=lambda: np.dtype(np.uint8))  # native pixels
    summary: str = ""  # "RGB 64×48" for batch mismatch messages
    path: Any = None  # a file opened here: closed after planning, opened again to read
    read: tuple[Any, str, int] | None = None  # PIL images: (mode row, expansion, channels)


class Work:
    """What the steps act on: the current image per item, the output buffer, the result."""

    __slots__ = ("images", "opened", "out", "stack", "value")

    def __init__(self, images: list[Any], stack: contextlib.ExitStack) -> None:
        self.images = images
        self.stack = stack
        self.opened: dict[int, Image.Image] = {}  # files opened while running, by item
        self.out: np.ndarray | None = None
        self.value: Any = None


def _orientation(img: Image.Image, what: str) -> int:
    try:
        if img.format is None:  # made in memory: no file metadata for Pillow to warn about
            value = img.getexif().get(0x0112, 1)
        else:
            with _common.pillow_warnings(what):
                value = img.getexif().get(0x0112, 1)
    except ConversionError:
        raise
    except Exception as exc:
        raise _unreadable(
            what,
            exc,
            "its EXIF data cannot be read",
            "pass exif=False to read the pixels as stored",
        ) from exc
    return value if value in ORIENTATIONS else 1


def _unreadable(what: str, exc: Exception, problem: str, fix: str) -> ConversionError:
    """The error for a file Pillow fails on; a truncated file names the one setting that reads
    it anyway (no other argument helps: the pixels are missing)."""
    if "truncated" in str(exc):
        problem = "the file is truncated"
        fix = (
            "if the missing pixels may be filled in, set PIL.ImageFile.LOAD_TRUNCATED_IMAGES = "
            "True first"
        )
    return ConversionError(f"{what}: {problem} ({type(exc).__name__}: {exc}); {fix}")


def _has_alpha(img: Image.Image) -> bool:
    """Whether Pillow's own palette expansion gives RGBA (transparency or an RGBA palette)."""
    if img.mode == "PA" or "transparency" in img.info:
        return True
    palette = getattr(img, "palette", None)
    return img.mode == "P" and palette is not None and palette.mode.endswith("A")


def _reduced_by_pillow(img: Image.Image) -> bool:
    """Whether Pillow will decode a 16-bit-per-channel file into an 8-bit mode (RGB;16B PNGs)."""
    tile = getattr(img, "tile", None)
    raw = tile[0][3] if tile and len(tile[0]) > 3 else None
    return (
        isinstance(raw, str)
        and ";16" in raw
        and MODES.get(img.mode, MODES["I"]).dtype.itemsize == 1
    )


def _decoder_orients(img: Image.Image) -> bool:
    """Whether decoding this lazily opened image applies its EXIF orientation inside Pillow
    (recent Pillow's TIFF reader turns the pixels while loading and drops the tag)."""
    return img.format == "TIFF" and _not_loaded(img) and _tiff_reader_orients()


def stored_size(img: Image.Image) -> tuple[int, int]:
    """``(width, height)`` as the file stores the pixels (before any EXIF orientation)."""
    if _decoder_orients(img):  # Pillow reports the size the turn it will make gives
        return tuple(getattr(img, "_tile_size", img.size))
    return img.size


@functools.cache
def _tiff_reader_orients() -> bool:
    """Asked of the installed Pillow once: does loading a TIFF with orientation 2 mirror it?"""
    buf = io.BytesIO()
    Image.frombytes("L", (2, 1), b"\x00\x01").save(buf, "TIFF", tiffinfo={0x0112: 2})
    with warnings.catch_warnings(), Image.open(buf) as img:
        warnings.simplefilter("ignore")
        return bool(img.getpixel((0, 0)) == 1)


def _not_loaded(img: Image.Image) -> bool:
    """Whether Pillow has yet to decode the file behind ``img`` (opened lazily)."""
    return bool(getattr(img, "tile", None)) or getattr(img, "_im", True) is None


def _decode(work: Work, arg: tuple[int, str, tuple[str, tuple[int, int]]]) -> Work:
    i, what, planned = arg
    img = work.images[i]
    if not isinstance(img, Image.Image):  # a path: planned from its header, opened again now
        img = work.images[i] = work.opened[i] = _open(img, work.stack)
        if (img.mode, img.size) != planned:
            raise ConversionError(f"{what}: the file changed while it was read; read it again")
    try:
        with _common.pillow_warnings(what), _streamed(img):
            img.load()
    except ConversionError:
        raise
    except Exception as exc:
        raise _unreadable(
            what,
            exc,
            "Pillow cannot decode it",
            "the file is damaged or not what its format says; re-export it",
        ) from exc
    return work


@contextlib.contextmanager
def _streamed(img: Image.Image) -> Iterator[None]:
    """Decode a TIFF through its file object, never memory-mapped: Pillow maps an uncompressed
    TIFF opened by name and then turns it wrongly for orientations 5–8 (read from a stream, it
    turns it right). The name is put back at once."""
    name = getattr(img, "filename", "") if img.format == "TIFF" else ""
    if name:
        img.filename = ""  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if name:
            img.filename = name  # type: ignore[attr-defined]


def _transpose(work: Work, arg: tuple[int, Any]) -> Work:
    i, method = arg
    work.images[i] = work.images[i].transpose(method)
    return work


def _convert(work: Work, arg: tuple[int, str, bool]) -> Work:
    i, mode, copy_first = arg
    img = work.images[i]
    if copy_first:  # Pillow writes a P image's transparency into its palette while converting
        img = img.copy()
    with warnings.catch_warnings():  # the caller asked for this mode: what it drops is asked for
        warnings.simplefilter("ignore")
        work.images[i] = img.convert(mode)
    return work


def _rows(
    img: Image.Image, raw: str, dtype: np.dtype[Any], channels: int
) -> Iterator[tuple[int, np.ndarray]]:
    """The image's pixels in blocks of whole rows: ``(first_row, block of shape (n, W, C))``."""
    w, h = img.size
    if w == 0 or h == 0:
        return
    line = w * channels * dtype.itemsize
    getencoder = getattr(Image, "_getencoder", None)  # what Image.tobytes uses, one block at a time
    if getencoder is None:
        yield 0, np.frombuffer(img.tobytes("raw", raw), dtype).reshape(h, w, channels)
        return
    encoder = getencoder(img.mode, "raw", raw)
    try:
        encoder.setimage(img.im, (0, 0, w, h))
        row, bufsize = 0, max(line, BLOCK_BYTES // line * line)
        while True:
            _, err, data = encoder.encode(bufsize)
            n = len(data) // line
            if n:
                yield row, np.frombuffer(data, dtype).reshape(n, w, channels)
            row += n
            if err:
                break
        if err < 0:
            raise ConversionError(
                f"Pillow's raw encoder failed with error {err} reading {img.mode}"
            )
    finally:
        encoder.cleanup()


def _palette_lut(img: Image.Image, channels: int) -> np.ndarray:
    """Index → colour as Pillow's own ``convert`` expands it (transparency included), without
    touching the caller's image: a 256-pixel strip with the same palette is converted instead."""
    strip = img.crop((0, 0, 256, 1))
    indices = np.arange(256, dtype=np.uint8)
    if img.mode == "PA":
        indices = np.stack([indices, np.full(256, 255, np.uint8)], axis=-1)
    strip.frombytes(indices.tobytes())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rgb = strip.convert("RGBA" if channels == 4 else "RGB")
    return np.asarray(rgb).reshape(256, channels)


@dataclass(frozen=True)
class ReadSpec:
    """How one image's pixels are read: raw mode, what they become, where they go."""

    index: int
    raw: str
    raw_dtype: np.dtype[Any]
    raw_channels: int
    expand: str  # "", "bool" (mode 1) or "palette"
    channels: int
    store: Store
    batch: bool


def _read(work: Work, spec: ReadSpec) -> Work:
    img = work.images[spec.index]
    assert work.out is not None
    out = work.out[spec.index] if spec.batch else work.out
    img.load()  # a no-op once decoded (the plan's decode step, when there is one, did it)
    lut = _palette_lut(img, spec.channels) if spec.expand == "palette" else None
    for row, block in _rows(img, spec.raw, spec.raw_dtype, spec.raw_channels):
        dest = out[row : row + block.shape[0]]
        if spec.expand == "bool":
            block = block != 0
        elif lut is not None:
            colours = lut[block[..., 0]]
            if spec.raw_channels == 2:  # PA: the alpha comes from the image, not the palette
                colours[..., 3] = block[..., 1]
            block = colours
        spec.store.write(block, dest)
    spec.store.finish()
    return work


def _read_array(work: Work, spec: tuple[int, Store, bool]) -> Work:
    index, store, batch = spec
    array = work.images[index]
    if array.ndim == 2:
        array = array[..., None]
    assert work.out is not None
    out = work.out[index] if batch else work.out
    rows = max(1, BLOCK_BYTES // max(1, array[:1].nbytes)) if array.ndim == 3 else 1
    for r in range(0, out.shape[0], rows):
        store.write(array[r : r + rows], out[r : r + rows])
    store.finish()
    return work


def _open(path: Any, stack: contextlib.ExitStack) -> Image.Image:
    name = os.fspath(path)
    try:
        with _common.pillow_warnings(repr(name)):
            img = Image.open(path)
            stack.callback(img.close)  # closed even when the warnings become an error
    except Image.DecompressionBombError as exc:
        raise ConversionError(
            f"{name!r}: {exc}; if you trust the file, raise "
            "PIL.Image.MAX_IMAGE_PIXELS (or set it to None) first"
        ) from None
    except FileNotFoundError:
        raise ConversionError(f"{name!r}: no such file") from None
    except IsADirectoryError:
        raise ConversionError(
            f"{name!r} is a directory; pass the path of an image file (or a list of them)"
        ) from None
    except Image.UnidentifiedImageError:
        raise ConversionError(f"{name!r} is not an image file Pillow can read") from None
    except OSError as exc:
        raise ConversionError(f"cannot open {name!r}: {exc.strerror or exc}") from exc
    frames = getattr(img, "n_frames", 1)
    if frames > 1 and img.format != "MPO":  # a camera's MPO JPEG: its first frame is the photo
        raise ConversionError(
            f"{name!r} holds {frames} frames and tensorbridge.image reads one image; "
            "open it with Pillow and pass the frames as a batch: "
            "[f.copy() for f in ImageSequence.Iterator(Image.open(path))]"
        )
    return img


def _plan_image(item: Item, img: Image.Image, opts: Options, batch: bool, index: int) -> None:
    what = item.what
    try:
        mode, size = img.mode, img.size
    except Exception as exc:
        raise ConversionError(f"{what} cannot be read ({type(exc).__name__}: {exc})") from exc
    if type(getattr(img, "_im", None)).__name__ == "DeferredError":  # what Image.close() leaves
        try:
            img.im  # noqa: B018 - raises Pillow's own error for a closed image
        except Exception as exc:
            raise ConversionError(f"{what} is closed; open it again (or pass its path)") from exc
    if opts.mode is None and _reduced_by_pillow(img):
        raise LossyConversionError(
            f"{what}: the file stores 16 bits per channel and Pillow reads mode {mode} as 8 bits; "
            f"pass mode={mode!r} to accept the 8-bit values"
        )
    orientation = _orientation(img, what) if opts.exif or _decoder_orients(img) else 1
    by_decoder = orientation != 1 and _decoder_orients(img)
    if by_decoder:  # the size Pillow reports is already the oriented one
        stored = stored_size(img)
        size = (stored[1], stored[0]) if orientation in (5, 6, 7, 8) else stored
    if _not_loaded(img) or item.path is not None:
        oriented = (
            f", which applies EXIF orientation {orientation} ({ORIENTATIONS[orientation][1]})"
            if by_decoder
            else ""
        )
        item.steps.append(
            Step(
                f"decode {img.format or 'the file'} with Pillow{oriented} "
                f"({format_bytes(pillow_nbytes(mode, size))})",
                functools.partial(_decode, arg=(index, what, (img.mode, img.size))),
                nbytes=pillow_nbytes(mode, size),
                copies=1,
            )
        )
    turned = orientation != 1 and opts.exif != by_decoder
    if turned:
        method, name = ORIENTATIONS[orientation]
        if by_decoder:  # exif=False: the decoder's turn is undone, to give the stored pixels
            method = UNDO.get(orientation, method)
            name = f"undo the {name} Pillow's TIFF decoder applied, to read the pixels as stored"
        else:
            name = f"apply EXIF orientation {orientation} ({name}) with Pillow, as viewers do"
        if orientation in (5, 6, 7, 8):
            size = (size[1], size[0])
        n = pillow_nbytes(mode, size)
        item.steps.append(
            Step(
                f"{name} ({format_bytes(n)})",
                functools.partial(_transpose, arg=(index, method)),
                nbytes=n,
                copies=1,
            )
        )
    target = opts.mode or mode
    if target != mode:
        _check_convertible(what, mode, target)
        still_theirs = not turned
        copy_first = mode in ("P", "PA") and "transparency" in img.info and still_theirs
        n = pillow_nbytes(target, size)
        item.steps.append(
            Step(
                f"convert mode {mode} → {target} with Pillow ({format_bytes(n)})",
                functools.partial(_convert, arg=(index, target, copy_first)),
                nbytes=n,
                copies=1,
            )
        )
    if target == "LAB":  # Pillow's raw LAB packer re-signs a/b; getpixel gives the stored bytes
        n = pillow_nbytes(target, size)
        item.steps.append(
            Step(
                f"copy the LAB bands as Pillow stores them ({format_bytes(n)})",
                functools.partial(_lab_bands, i=index),
                nbytes=n,
                copies=1,
            )
        )
    row = MODES.get(target)
    if row is None or (target in RAW_ONLY and opts.mode is None):
        if row is None:
            raise ConversionError(
                f"{what}: mode {mode!r} has no exact array form here; pass mode='RGB' (or "
                "another mode tensorbridge.image reads) to convert it with Pillow"
            )
        raise ConversionError(
            f"{what}: mode {mode!r} channels are not RGB and a model would take them for it; "
            f"pass mode='RGB' to convert it with Pillow, or mode={mode!r} to keep its raw channels"
        )
    expand, channels, dtype = "", row.channels, row.dtype.newbyteorder("=")
    if target == "1":
        expand = "bool"
    elif target in ("P", "PA") and opts.palette == "rgb":
        trns = img.info.get("transparency") if target == mode else None
        if trns is not None and not isinstance(trns, (int, bytes)):
            raise ConversionError(
                f"{what}: its transparency {trns!r} is neither a palette index nor per-entry "
                "alpha bytes, so Pillow cannot expand the palette; pass palette='indices'"
            )
        expand = "palette"
        alpha = target == "PA" or (target == mode and _has_alpha(img))
        channels = 4 if alpha else 3
    item.shape = (size[1], size[0], channels)
    item.dtype = dtype
    item.summary = f"mode {target}, {size[0]}×{size[1]}"
    item.read = (row, expand, channels)


def _lab_bands(work: Work, i: int) -> Work:
    work.images[i] = Image.merge("RGB", work.images[i].split())
    return work


def _check_convertible(what: str, mode: str, target: str) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Image.new(mode, (1, 1)).convert(target)
    except Exception:
        raise ConversionError(
            f"{what}: Pillow cannot convert mode {mode!r} to mode={target!r}; "
            "pass another mode= (e.g. 'RGB')"
        ) from None


def _read_step(item: Item, index: int, store: Store, batch: bool, out_bytes: int) -> Step:
    """The step that reads an image's pixels into the output, once the output dtype is known."""
    assert item.read is not None
    row, expand, channels = item.read
    swap = "" if row.dtype.isnative else f", byte swap {row.dtype.str} → native"
    how = (
        "mode 1 as bool"
        if expand == "bool"
        else f"palette indices expanded to {'RGBA' if channels == 4 else 'RGB'}"
        if expand == "palette"
        else f"mode {row.name}"
    )
    raw_dtype = np.dtype(np.uint8) if row.name == "1" else row.dtype  # mode 1 is read as L bytes
    spec = ReadSpec(index, row.raw, raw_dtype, row.channels, expand, channels, store, batch)
    return Step(
        lambda: f"read pixels from Pillow ({how}{swap}), {store.text} ({format_bytes(out_bytes)})",
        functools.partial(_read, spec=spec),
        nbytes=out_bytes,
        copies=1,
    )


def _plan_array(item: Item, a: np.ndarray, mode: str | None = None) -> None:
    if a.dtype.kind not in "biuf" or _common.torch_dtype_of(a.dtype) is None:
        raise UnsupportedInputError(
            f"{item.what}: dtype {a.dtype} is not a pixel dtype; cast it to uint8, uint16, int32 "
            "or float32 first (a.astype(...))"
        )
    if a.ndim not in (2, 3):
        raise ConversionError(
            f"{item.what}: an image array is HW or HWC (2-D or 3-D), not "
            f"{a.ndim}-D; a batch is a 4-D NHWC array or a list of images"
        )
    item.shape = tuple(a.shape) if a.ndim == 3 else (*a.shape, 1)
    item.dtype = a.dtype.newbyteorder("=")
    item.summary = f"array {a.dtype} {a.shape}"
    _check_array_mode(item, mode)


def _check_array_mode(item: Item, mode: str | None) -> None:
    """``mode=`` converts PIL images; an array's pixels are taken as they are, so a mode they
    are not is refused rather than ignored."""
    row = MODES.get(mode or "")
    if row is None or (
        mode not in ("P", "PA")
        and (item.shape[-1], item.dtype) == (row.channels, row.dtype.newbyteorder("="))
    ):
        return
    raise ConversionError(
        f"{item.what}: mode={mode!r} converts PIL images with Pillow, and an array's pixels "
        f"({item.shape[-1]} channel(s) of {item.dtype}) are not mode {mode}; pass mode=None to "
        f"take them as they are, or convert them first (Image.fromarray(a).convert({mode!r}))"
    )


# --------------------------------------------------------------------------------------------
# the whole input


@dataclass
class Planned:
    """A planned conversion: the items, the buffer they are read into, and the final steps."""

    what: str
    items: list[Item]
    batch: bool
    out_shape: tuple[int, ...] | None  # None: the result is a view of the input array
    out_dtype: np.dtype[Any] | None
    final: list[Step]

    def plan(self, target: str) -> Plan:
        """The ``Plan`` explain returns (a batch holds each image's plan by index)."""
        if self.batch and self.items:
            leaves = {
                it.name: Plan.of_leaf(
                    target, it.what.removeprefix(f"{it.name} = "), LeafPlan(it.steps)
                )
                for it in self.items
            }
            final = Plan.of_leaf(target, self.what, LeafPlan(self.final))
            copies = sum(p.copies for p in leaves.values()) + final.copies
            nbytes = sum(p.bytes_copied for p in leaves.values()) + final.bytes_copied
            syncs = final.syncs_device
            return Plan(target, self.what, self.final, copies, nbytes, copies == 0, syncs, leaves)
        steps = [s for it in self.items for s in it.steps] + self.final
        return Plan.of_leaf(target, self.what, LeafPlan(steps))


def _items(img: Any, stack: contextlib.ExitStack) -> tuple[list[tuple[str, Any, str]], bool]:
    """The input as ``(name, object, description)`` per image, and whether it is a batch."""
    if isinstance(img, (list, tuple)):
        if not img:
            raise ConversionError("an empty batch has no image size; pass at least one image")
        out = []
        for i, x in enumerate(img):
            if isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and x.ndim == 4):
                raise ConversionError(
                    f"img[{i}] is a batch inside a batch; pass one flat list of images"
                )
            out.append((f"img[{i}]", *_one(x, stack, f"img[{i}]")))
        return out, True
    if isinstance(img, np.ndarray):
        img = _common.plain_array(img, describe(img))
    if isinstance(img, np.ndarray) and img.ndim == 4:
        return [("img", img, describe(img))], True
    return [("img", *_one(img, stack, ""))], False


def _one(x: Any, stack: contextlib.ExitStack, name: str) -> tuple[Any, str]:
    where = f"{name} = " if name else ""
    if isinstance(x, Image.Image):
        return x, where + describe_image(x)
    if isinstance(x, np.ndarray):
        return _common.plain_array(x, where + describe(x)), where + describe(x)
    if isinstance(x, (str, os.PathLike)):
        return FileRef(x), where
    if isinstance(x, torch.Tensor):
        raise UnsupportedInputError(
            f"{where}{describe(x)} is already a tensor; tensorbridge.image reads PIL images, "
            "image files and HWC arrays (use tensorbridge.to_numpy(t), or image.to_pil(t) to "
            "make it an image)"
        )
    raise UnsupportedInputError(
        f"{where}{describe(x)} is not an image; pass a PIL image, a path to an image file, an "
        "HW/HWC/NHWC ndarray, or a list of these"
    )


@dataclass(frozen=True)
class FileRef:
    """A path in the input, opened when its turn to be planned comes."""

    path: Any


def _open_item(item: Item, stack: contextlib.ExitStack) -> Image.Image:
    """Open ``item``'s file; ``item.what`` (its ``img[i] = `` prefix so far) gets its name."""
    item.path = item.source.path
    try:
        img = _open(item.path, stack)
    except ConversionError as exc:
        if not item.what:
            raise
        raise type(exc)(f"{item.what}{exc}") from exc.__cause__
    item.what += describe_image(img, os.fspath(item.path))
    return img


def _zero_copy(a: np.ndarray, opts: Options) -> bool:
    if opts.scale or not a.dtype.isnative:
        return False
    if opts.dtype is not None and _common.torch_dtype_of(a.dtype) != opts.dtype:
        return False
    if opts.to == "numpy":
        return True
    aligned = a.flags.aligned and all(s >= 0 for s in a.strides)
    return bool(a.flags.writeable and aligned)


def _plan(img: Any, opts: Options, stack: contextlib.ExitStack) -> Planned:
    entries, batch = _items(img, stack)
    items = [Item(name, what, obj) for name, obj, what in entries]
    if len(entries) == 1 and isinstance(items[0].source, np.ndarray) and items[0].source.ndim == 4:
        return _plan_nhwc(items[0], opts)
    for i, item in enumerate(items):
        if isinstance(item.source, np.ndarray):
            _plan_array(item, item.source, opts.mode)
        elif isinstance(item.source, FileRef):
            item.source = _open_item(item, stack)
            _plan_image(item, item.source, opts, batch, i)
            item.source.close()  # opened again to read: a batch holds one file open at a time
        else:
            _plan_image(item, item.source, opts, batch, i)
    whole = items[0].what if not batch or len(items) == 1 else f"batch of {len(items)} images"
    first = items[0]
    for item in items[1:]:
        if (item.shape, item.dtype) != (first.shape, first.dtype):
            raise ConversionError(
                f"{item.name} ({item.summary}) gives {item.shape[:2]} × {item.shape[2]} "
                f"{item.dtype} pixels, but img[0] ({first.summary}) gives {first.shape[:2]} × "
                f"{first.shape[2]} {first.dtype}; a batch needs one size and mode (resize the "
                "images, or pass mode= to convert them all to one mode)"
            )
    if not batch and isinstance(first.source, np.ndarray) and _zero_copy(first.source, opts):
        final = _view_steps(first.source.ndim == 2, opts, first.shape, first.dtype)
        return Planned(whole, items, False, None, None, final)
    out_np, staged = _out_dtype(first.dtype, opts)
    shape = ((len(items),) if batch else ()) + first.shape
    per_item = math.prod(first.shape) * out_np.itemsize
    for i, item in enumerate(items):
        store = Store(first.dtype, out_np, opts.scale, item.what)
        if isinstance(item.source, np.ndarray):
            swap = "" if item.source.dtype.isnative else ", byte swap to native"
            item.steps.append(
                Step(
                    f"copy pixels{swap}, {store.text} ({format_bytes(per_item)})",
                    functools.partial(_read_array, spec=(i, store, batch)),
                    nbytes=per_item,
                    copies=1,
                )
            )
        else:
            item.steps.append(_read_step(item, i, store, batch, per_item))
    final = _final_steps(opts, shape, out_np, staged, what=whole, pixels=first.dtype)
    return Planned(whole, items, batch, shape, out_np, final)


def _plan_nhwc(item: Item, opts: Options) -> Planned:
    a = item.source
    if a.dtype.kind not in "biuf" or _common.torch_dtype_of(a.dtype) is None:
        _plan_array(item, a[0])  # raises the dtype error
    item.name = "img"
    item.shape, item.dtype = a.shape[1:], a.dtype.newbyteorder("=")
    _check_array_mode(item, opts.mode)
    if _zero_copy(a, opts):
        return Planned(
            item.what, [item], False, None, None, _view_steps(False, opts, a.shape, a.dtype)
        )
    out_np, staged = _out_dtype(a.dtype.newbyteorder("="), opts)
    store = Store(a.dtype, out_np, opts.scale, item.what)
    n = a.size * out_np.itemsize
    item.steps.append(
        Step(
            f"copy pixels, {store.text} ({format_bytes(n)})",
            functools.partial(_read_array, spec=(0, store, False)),
            nbytes=n,
            copies=1,
        )
    )
    return Planned(
        item.what,
        [item],
        False,
        a.shape,
        out_np,
        _final_steps(
            opts, a.shape, out_np, staged, what=item.what, pixels=a.dtype.newbyteorder("=")
        ),
    )


def _out_dtype(pixels: np.dtype[Any], opts: Options) -> tuple[np.dtype[Any], torch.dtype | None]:
    """The NumPy dtype pixels are written in, and a PyTorch dtype to cast to after (bfloat16)."""
    if opts.dtype is None:
        return (np.dtype(np.float32), None) if opts.scale else (pixels, None)
    as_np = _common.numpy_dtype_of(opts.dtype)
    if as_np is not None:
        return as_np, None
    return np.dtype(np.float32), opts.dtype  # e.g. bfloat16: computed in float32, then rounded


def _view_steps(
    add_channel: bool, opts: Options, shape: tuple[int, ...], dtype: np.dtype[Any]
) -> list[Step]:
    steps = []
    if add_channel:
        steps.append(Step("view HW as HW × 1 channel (no copy)", _add_channel))
    return steps + _final_steps(opts, shape, dtype, None, input_view=True)


def _add_channel(work: Work) -> Work:
    work.value = work.value[..., None]
    return work


def _final_steps(
    opts: Options,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    staged: torch.dtype | None,
    input_view: bool = False,
    what: str = "",
    pixels: np.dtype[Any] | None = None,
) -> list[Step]:
    steps: list[Step] = []
    n = math.prod(shape)
    if opts.to == "torch":
        steps.append(Step("view as torch.Tensor (no copy)", _as_tensor))
    if staged is not None:
        nb = n * staged.itemsize
        name = staged if opts.to == "torch" else f"ml_dtypes.{_ml_dtype(staged)}"
        steps.append(
            Step(
                f"round float32 → {name} ({format_bytes(nb)})",
                functools.partial(
                    _cast_staged, arg=(staged, opts.scale, what, pixels in SCALE_MAX)
                ),
                nbytes=nb,
                copies=1,
            )
        )
    if opts.layout == "CHW":
        steps.append(Step("view HWC as CHW (no copy)", _to_chw))
    if opts.to == "torch" and opts.device is not None and opts.device.type != "cpu":
        nb = n * (staged.itemsize if staged is not None else dtype.itemsize)
        steps.append(
            Step(
                f"copy cpu → {opts.device} ({format_bytes(nb)})",
                functools.partial(_to_device, device=opts.device),
                nbytes=nb,
                copies=1,
                syncs=True,
            )
        )
    return steps


def _as_tensor(work: Work) -> Work:
    work.value = torch.from_numpy(work.value)
    return work


def _ml_dtype(dtype: torch.dtype) -> np.dtype[Any] | None:
    """The NumPy dtype ``to_numpy`` gives for ``dtype``: NumPy's own, or ml_dtypes' (bfloat16,
    float8); ``None`` when there is none."""
    native = _common.numpy_dtype_of(dtype)
    if native is not None:
        return native
    row = _dtypes.by_torch(dtype)
    return row.numpy if row is not None and row.kind == "f" else None


def _cast_staged(work: Work, arg: tuple[torch.dtype, bool, str, bool]) -> Work:
    """Round the float32 result to ``dtype`` (a tensor, or an ml_dtypes array), refusing a value
    that changes unless ``scale=True`` asked for the rounding."""
    dtype, scaled, what, scalable = arg
    staged = work.value
    if isinstance(staged, torch.Tensor):
        work.value = staged.to(dtype)
        back = work.value.float()
        lost = ((back != staged) & ~(staged.isnan() & back.isnan())).numpy()
        staged = staged.numpy()
    else:
        work.value = staged.astype(_ml_dtype(dtype))
        back = work.value.astype(np.float32)
        lost = (back != staged) & ~(np.isnan(staged) & np.isnan(back))
    if not scaled and lost.any():
        bad = staged[lost]
        fixes = "scale=True to rescale or " if scalable else ""
        raise LossyConversionError(
            f"{what}: {int(bad.size)} pixel value(s) do not fit {dtype} exactly "
            f"({_common.span(bad)}); nothing is rounded "
            f"silently: pass {fixes}dtype=None to keep the stored values, or a wider dtype"
        )
    return work


def _to_chw(work: Work) -> Work:
    v = work.value
    order = (2, 0, 1) if v.ndim == 3 else (0, 3, 1, 2)
    work.value = v.permute(*order) if isinstance(v, torch.Tensor) else v.transpose(order)
    return work


def _to_device(work: Work, device: torch.device) -> Work:
    work.value = work.value.to(device)
    return work


# --------------------------------------------------------------------------------------------
# entry points


def run(img: Any, opts: Options) -> Any:
    """Convert ``img`` as ``opts`` say: plan, then run exactly the planned steps."""
    with contextlib.ExitStack() as stack:
        planned = _plan(img, opts, stack)
        work = Work([it.source if it.path is None else it.path for it in planned.items], stack)
        if planned.out_shape is None:
            work.value = planned.items[0].source
        else:
            assert planned.out_dtype is not None
            work.out = np.empty(planned.out_shape, planned.out_dtype)
        for i, item in enumerate(planned.items):
            _common.run_steps(item.steps, work, item.what)
            if i in work.opened:  # read: its file is closed before the next one opens
                work.opened.pop(i).close()
        if work.out is not None:
            work.value = work.out
        return _common.run_steps(planned.final, work, planned.what).value


def explain(img: Any, opts: Options) -> Plan:
    """The plan ``run`` would execute for ``img`` (files are opened for their header only)."""
    with contextlib.ExitStack() as stack:
        return _plan(img, opts, stack).plan(opts.to)
