"""Property-based round trips: NumPy → PyTorch → NumPy and back, bit for bit, for every dtype.

Bits are compared as bytes of the logical values, so NaN payloads, -0.0 and infinities count.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import find, given, settings
from hypothesis import strategies as st

import tensorbridge as tb
from helpers import DTYPE_IDS, DTYPES, array_from_tensor, np_shares, plain_bytes, quiet
from strategies import numpy_views, raw_arrays, torch_views

SETTINGS = settings(max_examples=50, deadline=None)


def _native(dtype: np.dtype) -> np.dtype:
    return dtype.newbyteorder("=") if not dtype.isnative else dtype


@pytest.mark.parametrize("r", DTYPES, ids=[f"numpy-{n}" for n in DTYPE_IDS])
@SETTINGS
@given(data=st.data())
def test_numpy_torch_numpy_is_bit_exact(r, data):
    """numpy → torch → numpy returns the same dtype (native order), shape and bits."""
    a = data.draw(numpy_views(row=r))
    t = tb.to_torch(a)
    assert t.dtype == r.torch_dtype
    assert tuple(t.shape) == a.shape
    back = tb.to_numpy(t)
    assert type(back) is np.ndarray
    assert back.dtype == _native(a.dtype)
    assert back.shape == a.shape
    assert plain_bytes(back) == plain_bytes(a)


@pytest.mark.parametrize("r", DTYPES, ids=[f"torch-{n}" for n in DTYPE_IDS])
@SETTINGS
@given(data=st.data())
def test_torch_numpy_torch_is_bit_exact(r, data):
    """torch → numpy → torch returns the same dtype, shape and bits, sharing the original memory."""
    t = data.draw(torch_views(row=r))
    a = tb.to_numpy(t)
    assert a.dtype == r.np_dtype
    assert plain_bytes(a) == array_from_tensor(t).tobytes()
    back = tb.to_torch(a)
    assert back.dtype == t.dtype
    assert tuple(back.shape) == tuple(t.shape)
    assert plain_bytes(back) == plain_bytes(t)
    if t.numel():
        assert np_shares(back, t), "CPU round trip of a strided tensor should never copy"


@pytest.mark.parametrize("r", DTYPES, ids=[f"numpy-{n}" for n in DTYPE_IDS])
@SETTINGS
@given(data=st.data())
def test_to_torch_shares_exactly_when_representable(r, data):
    """to_torch shares a writable, aligned, native, non-negative-stride array; otherwise copies."""
    a = data.draw(numpy_views(row=r))
    t = tb.to_torch(a)
    representable = a.dtype.isnative and all(s >= 0 for s in a.strides) and a.flags.writeable
    if a.size:
        assert np_shares(t, a) == representable


@pytest.mark.parametrize("r", DTYPES, ids=[f"numpy-{n}" for n in DTYPE_IDS])
@SETTINGS
@given(data=st.data())
def test_copy_true_round_trip_shares_nothing(r, data):
    """With ``copy=True`` both directions copy, and the bits still survive."""
    a = data.draw(raw_arrays(row=r))
    t = tb.to_torch(a, copy=True)
    back = tb.to_numpy(t, copy=True)
    assert not np_shares(t, a)
    assert not np_shares(back, t)
    assert plain_bytes(back) == plain_bytes(a)


@SETTINGS
@given(a=numpy_views())
def test_explain_promise_on_random_views(a):
    """On random views of random dtypes, ``explain``'s copies == 0 iff the result shares memory."""
    plan = tb.explain(a, to="torch")
    t = tb.to_torch(a)
    if a.size:
        assert (plan.copies == 0) == np_shares(t, a)


@SETTINGS
@given(t=torch_views())
def test_to_python_matches_tolist(t):
    """``to_python`` of a tensor equals plain ``tolist`` on its float64/int/bool values; a
    complex tensor (no JSON form) is refused, and its suggested fix gives the value pairs."""
    ref = array_from_tensor(t)
    with quiet():  # the reference widening of NaN complex32 warns in raw ml_dtypes
        if ref.dtype.kind in "biu":
            expected = ref.tolist()
        elif ref.dtype.kind == "c" or "complex" in ref.dtype.name:
            c = ref.astype(np.complex128)
            expected = np.stack([c.real, c.imag], -1).tolist()
            with pytest.raises(tb.LossyConversionError, match=r"view_as_real"):
                tb.to_python(t)
            t = torch.view_as_real(t.resolve_conj().resolve_neg().to(torch.complex128))
        else:
            expected = ref.astype(np.float64).tolist()
    np.testing.assert_equal(tb.to_python(t), expected)


def test_strategies_reach_interesting_layouts():
    """The view strategy yields negative strides, byte-swapped, 0-d and 0-sized arrays."""
    find(numpy_views(), lambda a: any(s < 0 for s in a.strides) and a.size > 1)
    find(numpy_views(), lambda a: not a.dtype.isnative)
    find(numpy_views(), lambda a: a.ndim == 0)
    find(numpy_views(), lambda a: a.size == 0)
    find(torch_views(), lambda t: t.ndim > 1 and not t.is_contiguous() and t.numel() > 1)
