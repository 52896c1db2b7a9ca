"""Arrays and tensors to PIL images: the channel count comes from the declared layout, never a
guess; values are stored exactly, or mapped from ``value_range`` with round half to even.

Planning decides the Pillow mode and the steps (detach, device copy, the value mapping or repack
into HWC, the copy into Pillow's memory); ``run`` executes exactly those steps.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from .._errors import ConversionError, LossyConversionError, UnsupportedInputError, describe
from .._plan import LeafPlan, Plan, Step, format_bytes
from . import _common
from ._modes import TO_PIL_MODES, pillow_nbytes

__all__ = ["explain", "run"]

BLOCK_BYTES = 256 << 10  # working rows per block: the float64 mapping stays in cache
LAYOUTS = ("CHW", "HWC", "NCHW", "NHWC")
RAW = {"1": "L", "I;16": "I;16", "I;16L": "I;16L", "I;16B": "I;16B", "I;16N": "I;16N"}
PIXEL_DTYPE = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2", "I;16N": "=u2"}
CHANNEL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


@dataclass(frozen=True)
class Target:
    """What each image becomes: Pillow mode, its pixel dtype, and the value mapping if any."""

    mode: str
    dtype: np.dtype[Any]
    value_range: tuple[float, float] | None
    clip: bool
    channels_first: bool
    batch: bool
    what: str  # the input, for messages


def _check_range(value_range: Any) -> tuple[float, float] | None:
    if value_range is None:
        return None
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise TypeError(
            f"value_range must be a pair (lo, hi) of numbers, not {value_range!r}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ConversionError(
            f"value_range={value_range!r} must be two finite numbers with lo < hi"
        )
    return lo, hi


def _fail_dtype(
    what: str, dtype: np.dtype[Any], c: int, layout_note: str, name: str = ""
) -> ConversionError:
    one = c == 1
    if dtype.kind == "f":
        also = " or cast it to float32 for an exact mode 'F' image" if one else ""
        return ConversionError(
            f"{what}: {name or dtype} pixels{layout_note} have no exact Pillow mode; pass "
            f"value_range=(lo, hi) to map them to uint8 (e.g. value_range=(0, 1)){also}"
        )
    if dtype.kind == "b":
        return ConversionError(
            f"{what}: bool pixels with {c} channels{layout_note}: Pillow's mode '1' has one "
            "channel; cast to uint8 (values 0 and 255) for L/LA/RGB/RGBA, or pass "
            "value_range=(0, 1)"
        )
    exact = {
        np.dtype(np.uint16): "one channel (mode 'I;16')",
        np.dtype(np.int32): "one channel (mode 'I')",
    }
    hint = f"Pillow holds {dtype} only as {exact[dtype]}; " if dtype in exact else ""
    return ConversionError(
        f"{what}: {dtype} pixels with {c} channel(s){layout_note} have no exact Pillow mode; "
        f"{hint}pass value_range=(lo, hi) to map them to uint8 (e.g. value_range=(0, "
        f"{np.iinfo(dtype).max})), or cast them (to uint8 if every value is in 0..255)"
    )


def _target(
    what: str,
    dtype: np.dtype[Any],
    c: int,
    mode: str | None,
    value_range: tuple[float, float] | None,
    layout_note: str,
) -> tuple[str, np.dtype[Any]]:
    if value_range is not None:
        if dtype.kind not in "biuf":
            raise UnsupportedInputError(f"{what}: {dtype} values are not pixels")
        choices = TO_PIL_MODES[("uint8", c)] + (TO_PIL_MODES[("uint16", 1)] if c == 1 else ())
        chosen = mode or CHANNEL_MODES[c]
        if chosen not in choices:
            holds = TO_PIL_MODES.get((dtype.name, c), ())
            drop = (
                f", or drop value_range to store the values in mode {mode}" if mode in holds else ""
            )
            raise ConversionError(
                f"{what}: value_range maps {c} channel(s) to one of modes "
                f"{', '.join(choices)}, not mode={mode!r}; pass mode=None for mode "
                f"{CHANNEL_MODES[c]}{drop}"
            )
        return chosen, np.dtype(PIXEL_DTYPE.get(chosen, "u1"))
    exact = TO_PIL_MODES.get((dtype.name, c))
    if exact is None:
        raise _fail_dtype(what, dtype, c, layout_note)
    chosen = mode or exact[0]
    if chosen not in exact:
        mapped = TO_PIL_MODES[("uint8", c)] + (TO_PIL_MODES[("uint16", 1)] if c == 1 else ())
        holders = [name for (name, n), modes in TO_PIL_MODES.items() if n == c and mode in modes]
        if mode in mapped:
            hint = f"pass value_range=(lo, hi) to map them to mode {mode}, or mode=None"
        elif holders:
            hint = f"cast them to {holders[0]} first for mode {mode}, or pass mode=None"
        else:
            hint = "pass mode=None"
        raise ConversionError(
            f"{what}: {dtype} pixels with {c} channel(s) make one of modes "
            f"{', '.join(exact)}, not mode={mode!r}; {hint}"
        )
    return chosen, np.dtype(PIXEL_DTYPE.get(chosen, dtype.str))


def _detach(x: torch.Tensor) -> torch.Tensor:
    return x.detach()


def _to_cpu(x: torch.Tensor) -> torch.Tensor:
    return x.cpu()


def _widen(x: torch.Tensor) -> torch.Tensor:
    return x.float()


def _as_numpy(x: torch.Tensor) -> np.ndarray:
    return x.resolve_neg().numpy()


def _hwc(a: np.ndarray, target: Target) -> np.ndarray:
    """``a`` viewed as (N, H, W, C) whatever its declared layout."""
    if a.ndim == 2:
        return a[None, :, :, None]
    if not target.batch:
        a = a[None]
    return a.transpose(0, 2, 3, 1) if target.channels_first else a


def _new_image(target: Target, w: int, h: int) -> tuple[Image.Image, Any]:
    """An empty image, and a function that fills it with successive blocks of whole HWC rows."""
    img = Image.new(target.mode, (w, h))
    getdecoder = getattr(Image, "_getdecoder", None)  # what Image.frombytes uses, fed in blocks
    if getdecoder is None or w == 0 or h == 0:
        return img, None
    decoder = getdecoder(target.mode, "raw", (RAW.get(target.mode, target.mode), 0, 1))
    decoder.setimage(img.im, (0, 0, w, h))
    return img, decoder


def _build(a: np.ndarray, target: Target) -> Any:
    """Every image of ``a``, written into Pillow's memory block by block (mapped or cast)."""
    hwc = _hwc(a, target)
    images = []
    mapped = target.value_range is not None
    itemsize = 8 if mapped else target.dtype.itemsize
    rows = max(1, BLOCK_BYTES // max(1, hwc.shape[2] * hwc.shape[3] * itemsize))
    buf = np.empty((rows, *hwc.shape[2:]), np.float64) if mapped else None
    for n in range(hwc.shape[0]):
        img, decoder = _new_image(target, hwc.shape[2], hwc.shape[1])
        blocks = []
        for r in range(0, hwc.shape[1], rows):
            block = hwc[n, r : r + rows]
            if buf is not None:
                data = _map(block, buf[: block.shape[0]], target, a)
            else:
                data = np.ascontiguousarray(block, dtype=target.dtype)
            data = data.view(np.uint8) if data.dtype == bool else data
            if decoder is not None:
                decoder.decode(data)
            else:
                blocks.append(data.tobytes())
        if decoder is not None:
            decoder.cleanup()
        elif blocks:  # no block decoder in this Pillow: one frombytes of the whole image
            img.frombytes(b"".join(blocks), "raw", RAW.get(target.mode, target.mode))
        images.append(img)
    return images if target.batch else images[0]


def _map(block: np.ndarray, tmp: np.ndarray, target: Target, whole: np.ndarray) -> np.ndarray:
    """``block`` mapped from the value range to the target's integers, round half to even."""
    assert target.value_range is not None
    lo, hi = target.value_range
    tmp[...] = block
    if tmp.size:
        vmin, vmax = tmp.min(), tmp.max()
        if math.isnan(vmin) or ((vmin < lo or vmax > hi) and not target.clip):
            raise _range_error(whole, target)
        if vmin < lo or vmax > hi:
            np.clip(tmp, lo, hi, out=tmp)
    # (v - lo) / (hi - lo) * max in float64 (exact for value_range=(0, 1)), half to even;
    # subtracting 0 and dividing by 1 change no value, so those passes are skipped
    if lo != 0:
        tmp -= lo
    if hi - lo != 1:
        tmp /= hi - lo
    tmp *= float(np.iinfo(target.dtype).max)
    np.rint(tmp, out=tmp)
    return tmp.astype(target.dtype)


def _range_error(a: np.ndarray, target: Target) -> LossyConversionError:
    lo, hi = target.value_range or (0.0, 1.0)
    if a.dtype.kind == "f" and (nans := int(np.isnan(a).sum())):
        return LossyConversionError(
            f"{target.what}: {nans} NaN value(s), which no pixel can hold; replace them first "
            "(torch.nan_to_num(x) or np.nan_to_num(x))"
        )
    outside = a[(a < lo) | (a > hi)]
    return LossyConversionError(
        f"{target.what}: {outside.size} value(s) outside value_range=({lo:g}, {hi:g}) "
        f"({_common.span(outside)}); pass overflow='clip' to clip them to the range, or a "
        "value_range that holds them"
    )


def _check_tensor(x: torch.Tensor, what: str, steps: list[Step]) -> np.dtype[Any]:
    """Steps that bring a tensor to a host ndarray; its NumPy dtype."""
    if x.is_complex():
        raise UnsupportedInputError(
            f"{what}: complex values are not pixels; pass x.real or x.abs()"
        )
    if x.layout != torch.strided or x.device.type == "meta" or x.is_nested:
        raise UnsupportedInputError(
            f"{what} holds no dense pixel values here; pass a dense tensor (x.to_dense())"
        )
    if x.requires_grad:
        steps.append(Step("detach from autograd (no copy)", _detach))
    nbytes = x.numel() * x.element_size()
    if x.device.type != "cpu":
        steps.append(
            Step(
                f"copy {x.device} → cpu ({format_bytes(nbytes)})",
                _to_cpu,
                nbytes=nbytes,
                copies=1,
                syncs=True,
            )
        )
    np_dtype = _common.numpy_dtype_of(x.dtype)
    if np_dtype is None:
        if not x.is_floating_point():
            raise UnsupportedInputError(f"{what}: {x.dtype} values are not pixels")
        n = x.numel() * 4
        steps.append(
            Step(
                f"widen {x.dtype} → float32 (exact, {format_bytes(n)})", _widen, nbytes=n, copies=1
            )
        )
        np_dtype = np.dtype(np.float32)
    steps.append(Step("view as numpy.ndarray (no copy)", _as_numpy))
    return np_dtype


def _plan(
    x: Any, layout: Any, value_range: Any, overflow: Any, mode: Any
) -> tuple[str, list[Step]]:
    overflow = _common.check_choice("overflow", overflow, ("error", "clip"))
    vr = _check_range(value_range)
    if mode is not None and not isinstance(mode, str):
        raise TypeError(f"mode must be a Pillow mode name, not {mode!r}")
    what = describe(x)
    steps: list[Step] = []
    if isinstance(x, torch.Tensor):
        default = "CHW"
        dtype = _check_tensor(x, what, steps)
    elif isinstance(x, np.ndarray):
        default = "HWC"
        if x.dtype.kind not in "biuf":
            raise UnsupportedInputError(
                f"{what}: {x.dtype} values are not pixels; cast them to a real or integer dtype "
                "first (x.astype(np.float32), then value_range=(lo, hi) to map them to uint8)"
            )
        dtype = x.dtype
    else:
        raise UnsupportedInputError(
            f"{what} is not a tensor or an ndarray; to_pil takes an HW, CHW/HWC or NCHW/NHWC "
            "tensor or array"
        )
    shape = tuple(x.shape)
    implied = layout is None
    layout = _common.check_choice("layout", default if implied else layout, LAYOUTS)
    if len(shape) not in (2, 3, 4):
        raise ConversionError(
            f"{what}: an image is 2-D (HW), 3-D (CHW or HWC) or 4-D (a batch), not {len(shape)}-D"
        )
    batch = len(shape) == 4
    if layout.startswith("N") and not batch:
        raise ConversionError(
            f"{what}: layout={layout!r} is for 4-D batches; pass layout={layout[1:]!r}"
        )
    first = layout.removeprefix("N") == "CHW" and len(shape) > 2
    if len(shape) == 2:
        c, (h, w), note = 1, shape, ""
    else:
        c, h, w = (shape[-3], shape[-2], shape[-1]) if first else (shape[-1], shape[-3], shape[-2])
        note = f" read as {layout!r}" + (" (the default)" if implied else "")
    if not 1 <= c <= 4:
        other = "HWC" if first else "CHW"
        oc = shape[-1] if first else shape[-3]
        fix = (
            f"pass layout={('N' if batch else '') + other!r} if the channels are the "
            f"{'last' if first else 'first'} axis"
            if 1 <= oc <= 4
            else "pass layout= to say which axis holds the channels"
        )
        raise ConversionError(f"{what}{note}: {c} channels, and a Pillow image has 1 to 4; {fix}")
    if vr is None and isinstance(x, torch.Tensor) and _common.numpy_dtype_of(x.dtype) is None:
        # bfloat16 and float8 are widened to float32 only for value_range's mapping
        raise _fail_dtype(what, dtype, c, note, str(x.dtype).removeprefix("torch."))
    mode_name, pixel = _target(what, dtype.newbyteorder("="), c, mode, vr, note)
    target = Target(mode_name, pixel, vr, overflow == "clip", first, batch, what)
    n_images = shape[0] if batch else 1
    count = f"{n_images} new PIL images" if batch else "a new PIL image"
    nbytes = n_images * pillow_nbytes(mode_name, (w, h))
    if vr is not None:
        over = "clip to the range" if target.clip else "refuse values outside it and NaN"
        text = (
            f"map [{vr[0]:g}, {vr[1]:g}] → 0..{np.iinfo(pixel).max}, round half to even, {over}, "
            f"row by row into {count} (mode {mode_name}, {format_bytes(nbytes)})"
        )
    else:
        how = ", CHW → HWC" if first and c > 1 else ""
        cast = f", {dtype} → {pixel.name}" if pixel.str != dtype.str else ""
        text = f"copy rows into {count} (mode {mode_name}{how}{cast}, {format_bytes(nbytes)})"
    steps.append(Step(text, functools.partial(_build, target=target), nbytes=nbytes, copies=1))
    return what, steps


def run(x: Any, layout: Any, value_range: Any, overflow: Any, mode: Any) -> Any:
    """``to_pil``: plan, then run exactly the planned steps."""
    if isinstance(x, np.ndarray):
        x = _common.plain_array(x, describe(x))
    what, steps = _plan(x, layout, value_range, overflow, mode)
    return _common.run_steps(steps, x, what)


def explain(x: Any, layout: Any, value_range: Any, overflow: Any, mode: Any) -> Plan:
    """The plan ``run`` executes for ``x``."""
    if isinstance(x, np.ndarray):
        x = _common.plain_array(x, describe(x))
    what, steps = _plan(x, layout, value_range, overflow, mode)
    return Plan.of_leaf("pil", what, LeafPlan(steps))
