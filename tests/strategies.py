"""Hypothesis strategies for the tensorbridge suite, all in one place.

Arrays are built from raw random bytes (so NaN payloads, -0.0, infinities and subnormals all
appear), then viewed with arbitrary slicing: negative steps and offsets on the NumPy side, steps,
offsets and transposes on the PyTorch side, and both byte orders for the NumPy types that have one.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from hypothesis import strategies as st

from helpers import DTYPES, DtypeRow, quiet

MAX_SIDE = 4
MAX_DIMS = 3

dtype_rows = st.sampled_from(DTYPES)
shapes = st.lists(st.integers(0, MAX_SIDE), min_size=0, max_size=MAX_DIMS).map(tuple)


@st.composite
def raw_arrays(
    draw, row: DtypeRow | None = None, shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """A C-contiguous array of ``row``'s dtype whose bits are random (bool: 0/1 only)."""
    row = draw(dtype_rows) if row is None else row
    shape = draw(shapes) if shape is None else shape
    n = int(np.prod(shape, dtype=np.int64))
    if row.name == "bool":
        bits = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        return np.array(bits, dtype=np.bool_).reshape(shape)
    nbytes = n * row.np_dtype.itemsize
    data = draw(st.binary(min_size=nbytes, max_size=nbytes))
    return np.frombuffer(data, dtype=row.np_dtype).reshape(shape).copy()


@st.composite
def index_for(draw, shape: tuple[int, ...], allow_negative_steps: bool) -> tuple[slice, ...]:
    """A basic-slicing index over ``shape``: start/stop/step per axis (negative steps optional)."""
    idx = []
    for n in shape:
        step = draw(st.sampled_from([1, 2, -1, -2] if allow_negative_steps else [1, 2]))
        start = draw(st.integers(0, max(n - 1, 0)))
        stop = draw(st.integers(0, n))
        if step < 0:
            idx.append(slice(stop if stop < n else None, start if start > 0 else None, step))
        else:
            idx.append(slice(start, stop, step))
    return tuple(idx)


@st.composite
def numpy_views(draw, row: DtypeRow | None = None) -> np.ndarray:
    """A NumPy view of random data: any strides (negative too), offsets, 0-d and 0-sized shapes,
    and, for built-in multi-byte types, either byte order."""
    row = draw(dtype_rows) if row is None else row
    base_shape = draw(shapes)
    base = draw(raw_arrays(row=row, shape=base_shape))
    if (
        not row.is_ml and row.np_dtype.itemsize > 1 and draw(st.booleans())
    ):  # same values, opposite byte order
        base = base.astype(base.dtype.newbyteorder("S"))
    if base.ndim and draw(st.booleans()):
        base = base[draw(index_for(base.shape, allow_negative_steps=True))]
    if base.ndim > 1 and draw(st.booleans()):
        base = base.T
    return base


@st.composite
def torch_views(draw, row: DtypeRow | None = None) -> torch.Tensor:
    """A CPU tensor view of random data: steps, offsets and transposes, 0-d and 0-sized shapes."""
    from helpers import tensor_from_array

    row = draw(dtype_rows) if row is None else row
    base = tensor_from_array(draw(raw_arrays(row=row)))
    if base.ndim and draw(st.booleans()):
        with quiet():
            base = base[draw(index_for(tuple(base.shape), allow_negative_steps=False))]
    if base.ndim > 1 and draw(st.booleans()):
        base = base.transpose(0, base.ndim - 1)
    return base


# --------------------------------------------------------------- the differential corpus
# Every kind of leaf the conversions take, with the facts their plans depend on varied: dtypes,
# views, flags, lazy bits, layouts, subclasses, foreign producers; and containers of them.


class ArrayProducer:
    """An ``__array__`` producer speaking NumPy 2's protocol (it can promise a view)."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    def __array__(self, dtype=None, copy=None):
        if copy:
            return self.a.copy()
        return self.a if dtype is None else self.a.astype(dtype)


class CopyingProducer:
    """An ``__array__`` producer that cannot share its memory (as a mixed-dtype DataFrame): it
    refuses NumPy 2's ``copy=False`` and otherwise builds a fresh array."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("cannot share memory")
        return np.array(self.a, dtype=dtype, copy=True)


class OldArrayProducer:
    """An ``__array__`` producer from before NumPy 2 (no ``copy`` keyword: no promise)."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    def __array__(self, dtype=None):
        return self.a


class InterfaceProducer:
    """An ``__array_interface__`` producer, by pointer (a view) or, as PIL images do, by a
    fresh bytes object each time it is read (a copy)."""

    def __init__(self, a: np.ndarray, by_bytes: bool) -> None:
        self.a = a
        self.by_bytes = by_bytes

    @property
    def __array_interface__(self):
        interface = dict(self.a.__array_interface__)
        if self.by_bytes:
            interface["data"] = bytearray(self.a.tobytes())  # fresh (1-byte bytes are shared)
            interface["strides"] = None
        return interface


class DLPackProducer:
    """A DLPack producer over a NumPy array's memory."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    def __dlpack__(self, **kwargs):
        return self.a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.a.__dlpack_device__()


@st.composite
def any_tensor(draw) -> torch.Tensor:
    """A tensor of any table dtype, with any of: a view, grad, a conjugate/negative bit, a
    sparse or quantized layout, the meta device, a ZeroTensor, a subclass, nesting."""

    t = draw(torch_views())
    variant = draw(
        st.sampled_from(
            [
                "plain",
                "plain",
                "grad",
                "conj",
                "neg",
                "sparse",
                "quantized",
                "meta",
                "zero",
                "parameter",
                "nested",
            ]
        )
    )
    with quiet():
        if variant == "grad" and (t.dtype.is_floating_point or t.dtype.is_complex):
            t = t.detach().clone().requires_grad_() if t.dtype.itemsize >= 2 else t
        elif variant == "conj" and t.dtype in (torch.complex64, torch.complex128):
            t = t.conj()
        elif variant == "neg" and t.dtype in (torch.complex64, torch.complex128):
            t = t.conj().imag if draw(st.booleans()) else torch._neg_view(t)
        elif variant == "sparse" and t.dtype in (torch.float32, torch.float64, torch.int64):
            csr = t.dim() == 2 and t.numel() and draw(st.booleans())
            t = t.to_sparse_csr() if csr else t.to_sparse() if t.dim() else t
        elif variant == "quantized" and t.dtype is torch.float32:
            t = torch.quantize_per_tensor(torch.nan_to_num(t, 0.0, 1.0, -1.0), 0.5, 3, torch.quint8)
        elif variant == "meta":
            t = torch.empty(tuple(t.shape), dtype=t.dtype, device="meta")
        elif variant == "zero" and t.dtype in (torch.float32, torch.complex64):
            t = torch._efficientzerotensor(tuple(t.shape), dtype=t.dtype)
        elif variant == "parameter" and t.dtype.is_floating_point:
            t = torch.nn.Parameter(t.detach().clone(), requires_grad=draw(st.booleans()))
        elif variant == "nested" and t.dtype in (torch.float32, torch.int64):
            t = torch.nested.nested_tensor(
                [torch.zeros(2, dtype=t.dtype), torch.ones(3, dtype=t.dtype)]
            )
    return t


@st.composite
def any_array(draw) -> np.ndarray:
    """An ndarray of any table dtype (either byte order), any view, read-only or not,
    misaligned, or of a kind NumPy has and PyTorch lacks (object, datetime, long double, str)."""
    a = draw(numpy_views())
    variant = draw(
        st.sampled_from(
            [
                "plain",
                "plain",
                "read-only",
                "misaligned",
                "matrix",
                "masked",
                "object",
                "datetime",
                "long double",
                "str",
                "one reversed",
            ]
        )
    )
    if variant == "read-only":
        a = a.copy() if draw(st.booleans()) else a
        a.flags.writeable = False
    elif variant == "misaligned" and a.dtype.itemsize > 1 and a.ndim == 1:
        raw = np.zeros(a.nbytes + 1, dtype=np.uint8)
        a = raw[1:].view(a.dtype)
    elif variant == "matrix" and a.ndim == 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = np.asmatrix(a)
    elif variant == "masked":
        a = np.ma.masked_array(a)
    elif variant == "object":
        a = np.array([1, 2.5, np.int32(3)], dtype=object)[: draw(st.integers(0, 3))]
    elif variant == "datetime":
        a = np.arange(3).astype("M8[s]")
    elif variant == "long double":
        a = np.arange(3, dtype=np.longdouble)
    elif variant == "str":
        a = np.array(["1", "0"])  # parses as every option dtype (values are not planned)
    elif variant == "one reversed":
        a = np.arange(1.0)[::-1]  # C-contiguous, with a negative stride on its one axis
    return a


@st.composite
def foreign(draw):
    """Inputs that are neither tensors nor arrays: producers, buffers, scalars, numbers."""
    a = draw(raw_arrays(row=draw(st.sampled_from([r for r in DTYPES if not r.is_ml]))))
    kind = draw(
        st.sampled_from(
            [
                "array",
                "old array",
                "interface",
                "interface bytes",
                "dlpack",
                "bytes",
                "bytearray",
                "memoryview",
                "numpy scalar",
                "number",
                "list",
            ]
        )
    )
    if kind == "array":
        return ArrayProducer(a)
    if kind == "copying array":
        return CopyingProducer(a)
    if kind == "old array":
        return OldArrayProducer(a)
    if kind == "interface":
        return InterfaceProducer(a, by_bytes=False)
    if kind == "interface bytes":
        return InterfaceProducer(a, by_bytes=True)
    if kind == "dlpack":
        return DLPackProducer(a)
    if kind == "bytes":
        return a.tobytes()
    if kind == "bytearray":
        return bytearray(a.tobytes())
    if kind == "memoryview":
        return memoryview(a.reshape(-1).view(np.uint8).copy())
    if kind == "numpy scalar":
        return np.float32(1.5) if draw(st.booleans()) else np.int16(-3)
    if kind == "number":
        return draw(st.sampled_from([1, 2.5, True, 1 + 2j]))
    return draw(st.sampled_from([[1, 2], [[1.5, 2.0]], (1, 2.5)]))


any_leaf = st.one_of(any_tensor(), any_array(), foreign())


@st.composite
def any_input(draw):
    """A leaf, or a dict/list container of leaves with values that pass through."""
    if draw(st.booleans()):
        return draw(any_leaf)
    return {
        "a": draw(any_leaf),
        "b": [draw(any_tensor()), "label", None, draw(any_array())],
        "n": 3,
    }


NUMPY_OPTIONS = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from([None, None, "float32", "int64", "bfloat16", "complex64", "bool"]),
        "float_dtype": st.sampled_from([None, None, "float16", "float64"]),
        "copy": st.sampled_from([None, True, False]),
    }
)
TORCH_OPTIONS = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(
            [None, None, torch.float32, torch.int64, torch.bfloat16, torch.complex64]
        ),
        "float_dtype": st.sampled_from([None, None, torch.float16, torch.float64]),
        "copy": st.sampled_from([None, True, False]),
        "requires_grad": st.sampled_from([None, None, True, False]),
        "device": st.sampled_from([None, None, "cpu"]),
    }
)
