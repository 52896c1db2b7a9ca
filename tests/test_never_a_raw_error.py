"""Whatever goes in, a conversion returns or raises one ConversionError: never a raw error from
PyTorch or NumPy, and never a warning (pytest turns warnings into errors)."""

import warnings

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tensorbridge as tb

NP_DTYPES = [
    "bool", "i1", "i4", "u2", "u8", "f2", "f4", "f8", "c8", "c16", ">f4", ">i8",
    np.longdouble, ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, ml_dtypes.int4, "U3", "S2", "O",
    "M8[s]", [("a", "i4"), ("b", "f4")],
]  # fmt: skip
TORCH_DTYPES = [
    torch.bool, torch.int8, torch.uint16, torch.int64, torch.float16, torch.bfloat16,
    torch.float32, torch.float64, torch.complex64, torch.complex128, torch.float8_e5m2,
]  # fmt: skip
DTYPE_ARGS = [
    None, "float32", "f8", "bfloat16", torch.float16, np.int32, int, bool, complex, torch.uint8,
    "float8_e4m3fn", torch.complex32, torch.qint8, "nonsense",
]  # fmt: skip
shapes = st.lists(st.sampled_from([0, 1, 2, 3]), max_size=3).map(tuple)


@st.composite
def arrays(draw):
    """NumPy arrays of many dtypes (odd ones too), random bytes, views and flags."""
    dtype = np.dtype(draw(st.sampled_from(NP_DTYPES)))
    shape = draw(shapes)
    a = np.zeros(shape, dtype=dtype)
    if dtype.kind in "biufcV" and dtype.names is None and a.nbytes:
        raw = draw(st.binary(min_size=a.nbytes, max_size=a.nbytes))
        a = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    if dtype.kind == "O" and a.size:
        a[...] = draw(st.sampled_from([1, 2.5, None, "x"]))
    if a.ndim and draw(st.booleans()):
        a = a[::-1]
    if a.ndim > 1 and draw(st.booleans()):
        a = a.T
    if draw(st.booleans()):
        a.flags.writeable = False
    return a


@st.composite
def tensors(draw):
    """Tensors of many dtypes, with grad, conjugate/negative bits, sparse, meta, transposed."""
    dtype = draw(st.sampled_from(TORCH_DTYPES))
    shape = draw(shapes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # beta/prototype layouts say so on creation
        t = torch.zeros(shape, dtype=dtype)
        variant = draw(st.sampled_from(["plain", "conj", "neg", "sparse", "grad", "meta", "t"]))
        if variant == "conj" and dtype.is_complex:
            t = t.conj()
        elif variant == "neg" and dtype.is_complex:
            t = t.conj().imag
        elif variant == "sparse" and dtype in (torch.float32, torch.float64) and t.dim():
            t = t.to_sparse()
        elif variant == "grad" and dtype in (torch.float32, torch.float64):
            t.requires_grad_()
        elif variant == "meta":
            t = torch.empty(shape, dtype=dtype, device="meta")
        elif variant == "t" and t.dim() > 1:
            t = t.transpose(0, 1)
    return t


leaves = st.one_of(
    arrays(),
    tensors(),
    st.sampled_from([1, 2.5, True, 2**70, "s", b"ab", None, np.float32(3), [1, 2.5], [0, "a"]]),
)
inputs = st.recursive(
    leaves,
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=3), kids)),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    obj=inputs,
    func=st.sampled_from(["to_numpy", "to_torch", "to_python", "item", "explain"]),
    dtype=st.sampled_from(DTYPE_ARGS),
    copy=st.sampled_from([None, True, False]),
)
def test_any_input_returns_or_raises_one_conversion_error(obj, func, dtype, copy):
    """Every public function returns, or raises a ConversionError — nothing else escapes."""
    try:
        if func in ("to_numpy", "to_torch"):
            getattr(tb, func)(obj, dtype=dtype, copy=copy)
        elif func == "explain":
            str(tb.explain(obj, to="torch", dtype=dtype, copy=copy))
        else:
            getattr(tb, func)(obj)
    except tb.ConversionError:
        pass


@settings(max_examples=200, deadline=None)
@given(a=st.one_of(arrays(), tensors()), b=st.one_of(arrays(), tensors()))
def test_shares_memory_of_anything_is_a_bool(a, b):
    """shares_memory answers True or False for any pair of arrays and tensors."""
    try:
        assert tb.shares_memory(a, b) in (True, False)
    except tb.ConversionError:
        pytest.fail("shares_memory refused a tensor or an array")
