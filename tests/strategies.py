"""Hypothesis strategies for the tensorbridge suite, all in one place.

Arrays are built from raw random bytes (so NaN payloads, -0.0, infinities and subnormals all
appear), then viewed with arbitrary slicing: negative steps and offsets on the NumPy side, steps,
offsets and transposes on the PyTorch side, and both byte orders for the NumPy types that have one.
"""

from __future__ import annotations

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
