"""Test helpers: dtype tables, reference conversions and view/copy probes.

Everything here is computed with plain NumPy and PyTorch, never with tensorbridge, so a test that
uses these helpers checks tensorbridge against an independent reference.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from typing import Any, NamedTuple

import ml_dtypes
import numpy as np
import torch
from numpy.lib.stride_tricks import as_strided

# --------------------------------------------------------------------------------------------------
# Warnings


@contextlib.contextmanager
def quiet():
    """Build inputs that warn in raw PyTorch/NumPy (complex32, sparse CSR, quantized, np.matrix)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --------------------------------------------------------------------------------------------------
# The dtype table (SPEC: "What must convert"), one row per dtype, with a stable readable id.


class DtypeRow(NamedTuple):
    name: str
    np_dtype: np.dtype
    torch_dtype: torch.dtype
    is_ml: bool  # represented on the NumPy side by an ml_dtypes type
    int_twin: torch.dtype  # a same-width integer torch dtype used to move the raw bits


_INT_TWIN = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64, 16: torch.int64}


def _row(name: str, np_type: Any, torch_name: str, is_ml: bool) -> DtypeRow | None:
    tdt = getattr(torch, torch_name, None)  # newer dtypes are gated, never assumed
    if tdt is None or np_type is None:
        return None
    npd = np.dtype(np_type)
    return DtypeRow(name, npd, tdt, is_ml, _INT_TWIN[npd.itemsize])


_ROWS = [
    _row("bool", np.bool_, "bool", False),
    _row("int8", np.int8, "int8", False),
    _row("int16", np.int16, "int16", False),
    _row("int32", np.int32, "int32", False),
    _row("int64", np.int64, "int64", False),
    _row("uint8", np.uint8, "uint8", False),
    _row("uint16", np.uint16, "uint16", False),
    _row("uint32", np.uint32, "uint32", False),
    _row("uint64", np.uint64, "uint64", False),
    _row("float16", np.float16, "float16", False),
    _row("float32", np.float32, "float32", False),
    _row("float64", np.float64, "float64", False),
    _row("complex64", np.complex64, "complex64", False),
    _row("complex128", np.complex128, "complex128", False),
    _row("bfloat16", ml_dtypes.bfloat16, "bfloat16", True),
    _row("float8_e4m3fn", getattr(ml_dtypes, "float8_e4m3fn", None), "float8_e4m3fn", True),
    _row("float8_e4m3fnuz", getattr(ml_dtypes, "float8_e4m3fnuz", None), "float8_e4m3fnuz", True),
    _row("float8_e5m2", getattr(ml_dtypes, "float8_e5m2", None), "float8_e5m2", True),
    _row("float8_e5m2fnuz", getattr(ml_dtypes, "float8_e5m2fnuz", None), "float8_e5m2fnuz", True),
    _row("float8_e8m0fnu", getattr(ml_dtypes, "float8_e8m0fnu", None), "float8_e8m0fnu", True),
    _row("complex32", getattr(ml_dtypes, "complex32", None), "complex32", True),
]
DTYPES: list[DtypeRow] = [r for r in _ROWS if r is not None]
DTYPE_IDS = [r.name for r in DTYPES]
ML_DTYPES = [r for r in DTYPES if r.is_ml]
NATIVE_DTYPES = [r for r in DTYPES if not r.is_ml]
REAL_FLOAT_NAMES = {
    "float16", "float32", "float64", "bfloat16", "float8_e4m3fn", "float8_e4m3fnuz",
    "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu",
}  # fmt: skip


def row(name: str) -> DtypeRow:
    """The table row called ``name``."""
    return next(r for r in DTYPES if r.name == name)


# --------------------------------------------------------------------------------------------------
# Reference data, built with NumPy and PyTorch only.


def sample_array(np_dtype: np.dtype, shape: tuple[int, ...] = (2, 3)) -> np.ndarray:
    """A C-contiguous array of ``shape`` holding ordinary, exactly representable values."""
    n = int(np.prod(shape, dtype=np.int64))
    name = np.dtype(np_dtype).name
    if name == "bool":
        flat = (np.arange(n) % 2).astype(bool)
    elif name == "float8_e8m0fnu":  # only positive powers of two exist
        flat = (2.0 ** ((np.arange(n) % 7) - 3)).astype(np_dtype)
    elif name in ("complex64", "complex128", "complex32"):
        vals = (np.arange(n) % 7 - 3) * 0.5 + 1j * ((np.arange(n) % 5) - 2) * 0.25
        flat = vals.astype(np.complex128).astype(np_dtype)
    elif np.dtype(np_dtype).kind in "iu":
        info = np.iinfo(np_dtype)
        flat = (np.arange(n) % min(int(info.max), 100) + (1 if info.min == 0 else -3)).astype(
            np_dtype
        )
    else:
        flat = ((np.arange(n) % 9) - 4).astype(np.float64) * 0.5
        flat = flat.astype(np.float32).astype(np_dtype)
    return np.ascontiguousarray(flat.reshape(shape))


def tensor_from_array(a: np.ndarray) -> torch.Tensor:
    """A CPU tensor with ``a``'s logical values and dtype, built by plain PyTorch (a copy)."""
    a = np.array(a, order="C", copy=True)  # not ascontiguousarray: that turns 0-d into 1-d
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("="))
    r = next(r for r in DTYPES if r.np_dtype == a.dtype)
    if not r.is_ml:
        return torch.from_numpy(a.copy())
    int_np = np.dtype(f"i{a.dtype.itemsize}")
    with quiet():
        return torch.from_numpy(a.view(int_np).copy()).view(r.torch_dtype)


def array_from_tensor(t: torch.Tensor) -> np.ndarray:
    """``t``'s logical values as a C-contiguous ndarray (ml_dtypes for extended types), a copy."""
    with quiet():
        t = t.detach().resolve_conj().resolve_neg().cpu()
        if t.is_quantized:
            t = t.dequantize()
        if t.layout != torch.strided:
            t = t.to_dense()
        r = next(r for r in DTYPES if r.torch_dtype == t.dtype)
        if not r.is_ml:
            return t.contiguous().numpy().copy()
        return t.contiguous().view(r.int_twin).numpy().view(r.np_dtype).copy()


def sample_tensor(torch_dtype: torch.dtype, shape: tuple[int, ...] = (2, 3)) -> torch.Tensor:
    """A contiguous CPU tensor of ``torch_dtype`` holding ordinary values."""
    r = next(r for r in DTYPES if r.torch_dtype == torch_dtype)
    return tensor_from_array(sample_array(r.np_dtype, shape))


# --------------------------------------------------------------------------------------------------
# Memory probes.


def _storage_bytes(t: torch.Tensor) -> np.ndarray:
    """A writable uint8 ndarray over the whole storage behind a CPU strided tensor."""
    raw = torch.empty(0, dtype=torch.uint8).set_(t.untyped_storage())
    return raw.numpy()


def byte_view(x: Any) -> np.ndarray:
    """A NumPy view of exactly the bytes ``x``'s elements occupy (tensor or ndarray), no copy."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
        assert t.device.type == "cpu" and t.layout == torch.strided and not t.is_quantized
        base = _storage_bytes(t)
        isz = t.element_size()
        if t.numel() == 0:
            return base[:0]
        return as_strided(
            base[t.storage_offset() * isz :],
            shape=(*t.shape, isz),
            strides=(*(s * isz for s in t.stride()), 1),
        )
    a = np.asarray(x)
    if a.size == 0:
        return a.reshape(-1)[:0]
    # Element bytes: a (…, itemsize) uint8 view over the same memory (writable iff ``a`` is).
    first = a.reshape(-1)[:1] if a.flags.c_contiguous else a[(slice(0, 1),) * a.ndim].reshape(1)
    base = first.view(np.uint8)
    return as_strided(
        base,
        shape=(*a.shape, a.dtype.itemsize),
        strides=(*a.strides, 1),
        writeable=a.flags.writeable,
    )


def np_shares(a: Any, b: Any) -> bool:
    """Plain ``np.shares_memory`` on NumPy views of the data of two tensors/arrays."""
    if any(isinstance(x, np.ndarray) and x.dtype.hasobject for x in (a, b)):
        return False  # an object array holds pointers, never the numbers themselves
    va, vb = byte_view(a), byte_view(b)
    if va.size == 0 or vb.size == 0:
        return False
    return bool(np.shares_memory(va, vb))


def snapshot(x: Any) -> bytes:
    """The bytes of ``x``'s logical values (a fresh copy), for before/after comparisons."""
    if isinstance(x, torch.Tensor):
        return array_from_tensor(x).tobytes()
    return np.ascontiguousarray(np.asarray(x)).tobytes()


def flip_first(out: Any) -> None:
    """Mutate ``out`` in place: flip the lowest bit of its first element's first byte."""
    if isinstance(out, torch.Tensor):
        bv = byte_view(out)
    else:
        arr = np.asarray(out)
        assert arr.flags.writeable, "the conversion result should be writable"
        bv = byte_view(arr)
    idx = (0,) * bv.ndim
    bv[idx] ^= np.uint8(1)


def mutation_shares(out: Any, inp: Any) -> bool:
    """Mutate the output, watch the input: True when the edit shows through (memory is shared)."""
    before = snapshot(inp)
    flip_first(out)
    after = snapshot(inp)
    flip_first(out)  # undo, so a shared input is left as it was
    return before != after


# --------------------------------------------------------------------------------------------------
# Assertions.


def plain_bytes(x: Any) -> bytes:
    """Logical values of a tensor/array as C-order bytes (NaN payloads and -0.0 included)."""
    if isinstance(x, torch.Tensor):
        return array_from_tensor(x).tobytes()
    a = np.asarray(x)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return np.ascontiguousarray(a).tobytes()


def assert_ndarray_identical(out: Any, expected: np.ndarray) -> None:
    """``out`` is a plain ndarray equal to ``expected`` in dtype, shape and every bit."""
    assert type(out) is np.ndarray, f"expected a plain numpy.ndarray, got {type(out)!r}"
    assert out.dtype == expected.dtype, (out.dtype, expected.dtype)
    assert out.shape == expected.shape, (out.shape, expected.shape)
    assert plain_bytes(out) == plain_bytes(expected)


def assert_tensor_identical(out: Any, expected: torch.Tensor) -> None:
    """``out`` is a tensor equal to ``expected`` in dtype, shape, device and every bit."""
    assert isinstance(out, torch.Tensor), f"expected a torch.Tensor, got {type(out)!r}"
    assert out.dtype == expected.dtype, (out.dtype, expected.dtype)
    assert tuple(out.shape) == tuple(expected.shape), (out.shape, expected.shape)
    assert out.device == expected.device, (out.device, expected.device)
    assert plain_bytes(out) == plain_bytes(expected)


def shape_regex(shape: tuple[int, ...]) -> re.Pattern[str]:
    """A pattern finding ``shape`` written as (2, 3), [2, 3], 2x3, 2×3 or torch.Size([2, 3])."""
    sep = r"\s*[,x×]\s*"
    return re.compile(r"(?<!\d)" + sep.join(str(n) for n in shape) + r"(?!\d)")


def assert_message(
    exc: BaseException,
    *,
    type_name: str | None = None,
    dtype: str | None = None,
    shape: tuple[int, ...] | None = None,
    path: str | None = None,
    fix: str | tuple[str, ...] | None = None,
) -> None:
    """The error message names the input (type, dtype, shape), its path, and the fix."""
    msg = str(exc)
    if type_name is not None:
        assert type_name in msg, f"type {type_name!r} not named in: {msg}"
    if dtype is not None:
        assert dtype in msg, f"dtype {dtype!r} not named in: {msg}"
    if shape is not None:
        assert shape_regex(shape).search(msg), f"shape {shape} not named in: {msg}"
    if path is not None:
        assert path in msg, f"path {path} not named in: {msg}"
    if fix is not None:
        fixes = (fix,) if isinstance(fix, str) else fix
        assert any(f in msg for f in fixes), f"none of the fixes {fixes} named in: {msg}"


# --------------------------------------------------------------------------------------------------
# Tiny producers of the array protocols.


class ArrayInterfaceOnly:
    """Exposes nothing but ``__array_interface__`` (like PIL images and many C extensions)."""

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    @property
    def __array_interface__(self) -> dict:
        return self._a.__array_interface__


class ArrayDunderOnly:
    """Exposes nothing but ``__array__`` (like pandas and xarray objects)."""

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    def __array__(self, dtype=None, copy=None):
        if copy:
            return np.array(self._a, dtype=dtype, copy=True)
        return self._a if dtype is None else self._a.astype(dtype)


class DLPackOnly:
    """Exposes nothing but ``__dlpack__``/``__dlpack_device__`` (like JAX, CuPy, TensorFlow)."""

    def __init__(self, x: Any) -> None:
        self._x = x

    def __dlpack__(self, *args, **kwargs):
        return self._x.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._x.__dlpack_device__()
