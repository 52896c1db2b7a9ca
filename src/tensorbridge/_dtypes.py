"""The one dtype table: NumPy ↔ PyTorch ↔ ml_dtypes, used by both directions and by ``explain``.

Each row is a ``DType``: a stable tag, the PyTorch dtype, the NumPy dtype (an ``ml_dtypes`` type
where NumPy has none) and, for the rows NumPy cannot hold natively, the integer "carrier" dtype of
the same item size through which both libraries reinterpret the bytes without a copy
(``t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)``).

Newer dtypes are gated with ``getattr`` so the table builds on every supported version.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from typing import Any, Final

import ml_dtypes
import numpy as np
import torch

from ._errors import UnsupportedInputError

__all__ = ["TABLE", "DType", "by_numpy", "by_torch", "numpy_dtype", "torch_dtype"]


_TorchDType = torch.dtype  # the field below named ``torch`` shadows the module in annotations


@dataclass(frozen=True)
class DType:
    """One row of the table.

    >>> by_torch(torch.bfloat16).numpy
    dtype(bfloat16)
    """

    tag: str
    torch: torch.dtype
    numpy: np.dtype[Any]
    kind: str  # "b" bool, "i" signed, "u" unsigned, "f" real floating, "c" complex
    torch_carrier: _TorchDType | None = None  # set when NumPy has no native form
    numpy_carrier: np.dtype[Any] | None = None

    itemsize: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "itemsize", self.numpy.itemsize)

    @property
    def native(self) -> bool:
        """Whether ``Tensor.numpy()`` and ``torch.from_numpy`` handle it directly."""
        return self.torch_carrier is None


_NATIVE_ROWS = [
    ("bool", "bool", "b"),
    ("int8", "int8", "i"),
    ("int16", "int16", "i"),
    ("int32", "int32", "i"),
    ("int64", "int64", "i"),
    ("uint8", "uint8", "u"),
    ("uint16", "uint16", "u"),  # torch.uint16/32/64 exist from PyTorch 2.3 on
    ("uint32", "uint32", "u"),
    ("uint64", "uint64", "u"),
    ("float16", "float16", "f"),
    ("float32", "float32", "f"),
    ("float64", "float64", "f"),
    ("complex64", "complex64", "c"),
    ("complex128", "complex128", "c"),
]

# (tag, kind, carrier) for the rows NumPy holds only through ml_dtypes.
_REINTERPRETED_ROWS = [
    ("bfloat16", "f", "int16"),
    ("float8_e4m3fn", "f", "uint8"),
    ("float8_e4m3fnuz", "f", "uint8"),
    ("float8_e5m2", "f", "uint8"),
    ("float8_e5m2fnuz", "f", "uint8"),
    ("float8_e8m0fnu", "f", "uint8"),
    ("complex32", "c", "int32"),
]


def _build() -> tuple[DType, ...]:
    rows = []
    for tag, np_name, kind in _NATIVE_ROWS:
        tdt = getattr(torch, tag, None)
        if tdt is not None:
            rows.append(DType(tag, tdt, np.dtype(np_name), kind))
    for tag, kind, carrier in _REINTERPRETED_ROWS:
        tdt = getattr(torch, tag, None)
        mdt = getattr(ml_dtypes, tag, None)
        if tdt is not None and mdt is not None:
            rows.append(
                DType(tag, tdt, np.dtype(mdt), kind, getattr(torch, carrier), np.dtype(carrier))
            )
    return tuple(rows)


TABLE: Final = _build()
_BY_TORCH: Final = {row.torch: row for row in TABLE}
_BY_NUMPY: Final = {row.numpy: row for row in TABLE}
_BY_TAG: Final = {row.tag: row for row in TABLE}


def by_torch(dtype: torch.dtype) -> DType | None:
    """The row for a PyTorch dtype, or ``None`` (quantized and packed sub-byte dtypes)."""
    return _BY_TORCH.get(dtype)


def by_numpy(dtype: np.dtype[Any]) -> DType | None:
    """The row for a native-byte-order NumPy dtype, or ``None`` (longdouble, str, object, ...)."""
    return _BY_NUMPY.get(dtype)


def _bad_dtype(spec: Any, why: str) -> Exception:
    return UnsupportedInputError(
        f"dtype={spec!r} {why}; pass a NumPy, PyTorch or ml_dtypes dtype, a Python type "
        f"(float, int, bool, complex) or a name such as 'float32', 'f4' or 'bfloat16'"
    )


def _from_name(name: str) -> np.dtype[Any] | torch.dtype:
    bare = name[len("torch.") :] if name.startswith("torch.") else name
    row = _BY_TAG.get(bare)
    if row is not None:
        return row.numpy
    if name.startswith("torch."):
        attr = getattr(torch, bare, None)
        if isinstance(attr, torch.dtype):
            return attr
    try:
        return np.dtype(name)
    except TypeError:
        pass
    attr = getattr(torch, bare, None)  # PyTorch aliases NumPy lacks: "cfloat", "chalf", "qint8"
    if isinstance(attr, torch.dtype):
        return attr
    raise _bad_dtype(name, "is not a dtype name NumPy, PyTorch or ml_dtypes knows")


def _canonical(spec: Any) -> np.dtype[Any] | torch.dtype:
    try:
        return _canonical_cached(spec)
    except TypeError as e:
        if "unhashable" in str(e):
            raise _bad_dtype(spec, "is not a dtype") from None
        raise


@functools.lru_cache(maxsize=256)
def _canonical_cached(spec: Any) -> np.dtype[Any] | torch.dtype:
    if isinstance(spec, torch.dtype):
        return spec
    if isinstance(spec, str):
        return _from_name(spec)
    try:
        return np.dtype(spec)
    except TypeError:
        raise _bad_dtype(spec, "is not a dtype") from None


def numpy_dtype(spec: Any) -> np.dtype[Any]:
    """Resolve any accepted dtype spelling to a NumPy dtype.

    >>> numpy_dtype(torch.bfloat16) == np.dtype(ml_dtypes.bfloat16)
    True
    >>> numpy_dtype("f4")
    dtype('float32')
    """
    dt = _canonical(spec)
    if isinstance(dt, torch.dtype):
        row = _BY_TORCH.get(dt)
        if row is None:
            raise _bad_dtype(spec, "has no NumPy form (not even through ml_dtypes)")
        return row.numpy
    return dt


def torch_dtype(spec: Any) -> torch.dtype:
    """Resolve any accepted dtype spelling to a PyTorch dtype.

    >>> torch_dtype("bfloat16")
    torch.bfloat16
    >>> torch_dtype(float)
    torch.float64
    """
    dt = _canonical(spec)
    if isinstance(dt, torch.dtype):
        return dt
    row = _BY_NUMPY.get(dt.newbyteorder("=") if not dt.isnative else dt)
    if row is None:
        raise _bad_dtype(spec, f"({dt}) has no PyTorch equivalent")
    return row.torch


_COMPLEX32 = getattr(torch, "complex32", None)


def quietly(fn: Any, t: torch.Tensor, *args: Any, target: Any = None) -> Any:
    """``fn(t, *args)``, silencing PyTorch's "ComplexHalf support is experimental" warning when
    ``t`` (or the ``target`` dtype) is complex32: the conversion works, and the warning would
    leak to a caller who asked for nothing experimental."""
    if t.dtype is not _COMPLEX32 and target is not _COMPLEX32:
        return fn(t, *args)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="ComplexHalf support is experimental")
        return fn(t, *args)


def numpy_backed_empty(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised CPU tensor whose memory NumPy allocated.

    NumPy asks the kernel for huge pages on large buffers and PyTorch's CPU allocator does not,
    so a large fresh NumPy buffer takes ~1/512 of the page faults: copying into it is several
    times faster on machines whose transparent huge pages are in ``madvise`` mode.

    >>> numpy_backed_empty((2, 3), torch.bfloat16).dtype
    torch.bfloat16
    """
    row = _BY_TORCH.get(dtype)
    if row is None:
        return torch.empty(shape, dtype=dtype)
    if row.numpy_carrier is None:
        return torch.from_numpy(np.empty(shape, dtype=row.numpy))
    return torch.from_numpy(np.empty(shape, dtype=row.numpy_carrier)).view(dtype)
