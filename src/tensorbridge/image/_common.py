"""What the image conversions share: resolving arguments, running steps, checking values.

Every conversion is planned as a list of ``Step``s and run by ``run_steps`` (through the core's
step runner, ``_plan.compose``); ``explain`` returns the same steps unrun, so what it reports is
what runs.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from .._dtypes import TABLE
from .._errors import ConversionError, LossyConversionError
from .._plan import Step, compose

__all__ = [
    "check_choice",
    "numpy_dtype_of",
    "pillow_warnings",
    "plain_array",
    "resolve_dtype",
    "run_steps",
    "span",
    "torch_dtype_of",
]

# Pixel dtypes: the rows of the one dtype table that NumPy and PyTorch both hold natively and
# that are real (bool, integers, floats); ml_dtypes and complex types are not pixels.
_PAIRS = [(row.numpy, row.torch) for row in TABLE if row.native and row.kind in "biuf"]
_TO_TORCH = dict(_PAIRS)
_TO_NUMPY = {t: n for n, t in _PAIRS}


def torch_dtype_of(dtype: np.dtype[Any]) -> torch.dtype | None:
    """The PyTorch dtype of a (native or not) NumPy dtype, or ``None``."""
    return _TO_TORCH.get(dtype.newbyteorder("="))


def numpy_dtype_of(dtype: torch.dtype) -> np.dtype[Any] | None:
    """The NumPy dtype of a PyTorch dtype, or ``None`` (bfloat16 has none in NumPy)."""
    return _TO_NUMPY.get(dtype)


def resolve_dtype(dtype: Any) -> torch.dtype | None:
    """``dtype=`` as a real PyTorch dtype: NumPy dtypes, PyTorch dtypes, Python types and names.

    >>> resolve_dtype("f4"), resolve_dtype(np.uint16), resolve_dtype("bfloat16")
    (torch.float32, torch.uint16, torch.bfloat16)
    """
    if dtype is None or isinstance(dtype, torch.dtype):
        result = dtype
    else:
        named = getattr(torch, dtype, None) if isinstance(dtype, str) else None
        if isinstance(named, torch.dtype):
            result = named
        else:
            try:
                np_dtype = np.dtype(dtype)
            except TypeError:
                raise TypeError(f"dtype must be a NumPy or PyTorch dtype, not {dtype!r}") from None
            named = getattr(torch, np_dtype.name, None)  # ml_dtypes' bfloat16
            result = _TO_TORCH.get(np_dtype, named if isinstance(named, torch.dtype) else None)
            if result is None:
                raise ConversionError(
                    f"dtype={dtype!r} is not a pixel dtype; use bool, an integer or a real "
                    "floating-point dtype (e.g. dtype=torch.float32)"
                )
    if result is not None and (
        result.is_complex or not (result.is_floating_point or result in _TO_NUMPY)
    ):
        raise ConversionError(
            f"dtype={dtype!r} is not a pixel dtype; use bool, an integer or a real "
            "floating-point dtype (e.g. dtype=torch.float32)"
        )
    return result


def plain_array(a: np.ndarray, what: str) -> np.ndarray:
    """``a`` as a plain ndarray (a view of a memmap or matrix); a masked array is refused, since
    its mask would be dropped silently.

    >>> plain_array(np.ma.masked_array([1], mask=[True]), "a")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    tensorbridge._errors.LossyConversionError: a: a masked array's mask ... pass a.filled(value) ...
    """
    if isinstance(a, np.ma.MaskedArray):
        raise LossyConversionError(
            f"{what}: a masked array's mask has no place in an image; pass a.filled(value) "
            "(or the pixels a.data and the mask a.mask apart)"
        )
    return np.asarray(a)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``; a ``TypeError``/``ConversionError`` naming them."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {', '.join(map(repr, choices))}, not {value!r}")
    if value not in choices:
        raise ConversionError(
            f"{name}={value!r} is not understood; use one of {', '.join(map(repr, choices))}"
        )
    return value


def run_steps(steps: Sequence[Step], value: Any, what: str = "") -> Any:
    """Run ``steps`` in order on ``value`` (the one place a conversion's steps execute).

    A failure inside Pillow, NumPy or PyTorch becomes a ``ConversionError`` naming the input
    (``what``) and the step, with the original error as its cause.
    """
    for step in steps:
        try:
            value = compose((step,))(value)  # one at a time: a failure names its step
        except ConversionError:
            raise
        except Exception as exc:
            raise ConversionError(
                f"{what}: {step.text} failed ({type(exc).__name__}: {exc})"
            ) from exc
    return value


@contextlib.contextmanager
def pillow_warnings(what: str) -> Iterator[None]:
    """Keep Pillow's warnings from reaching the caller: a decompression-bomb warning becomes a
    ``ConversionError`` naming the setting that lifts it; the rest (metadata Pillow repaired
    while reading) are dropped, since the pixels Pillow gives are what is converted."""
    from PIL import Image

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if issubclass(w.category, Image.DecompressionBombWarning):
            raise ConversionError(
                f"{what}: {w.message}; if you trust the file, raise "
                "PIL.Image.MAX_IMAGE_PIXELS (or set it to None) first"
            )


def span(values: np.ndarray) -> str:
    """``"min -3, max 300"`` of a non-empty array, for messages (NaN counted apart)."""
    nans = int(np.isnan(values).sum()) if values.dtype.kind == "f" else 0
    finite = values[~np.isnan(values)] if nans else values
    text = f"min {finite.min().item()!r}, max {finite.max().item()!r}" if finite.size else ""
    return ", ".join(filter(None, [text, f"{nans} NaN" if nans else ""]))
