"""The classic pitfalls of hand-written conversions, each beside tensorbridge's answer."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

import tensorbridge as tb
from conftest import cuda_only
from helpers import assert_ndarray_identical, assert_tensor_identical, np_shares, quiet


def test_requires_grad_numpy_raises_in_torch_but_converts_here():
    """``t.numpy()`` raises on a tensor that requires grad; ``to_numpy`` converts it."""
    t = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError):
        t.numpy()
    assert_ndarray_identical(tb.to_numpy(t), np.ones(3, dtype=np.float32))


def test_to_torch_shares_like_from_numpy_after_in_place_edit():
    """``copy=None`` shares memory (documented): an in-place array edit shows in the tensor."""
    a = np.zeros(3)
    t = tb.to_torch(a)
    a[0] = 5.0
    assert t[0].item() == 5.0


def test_to_torch_copy_true_is_independent_after_in_place_edit():
    """``copy=True`` is independent: an in-place edit of the array does not show in the tensor."""
    a = np.zeros(3)
    t = tb.to_torch(a, copy=True)
    a[0] = 5.0
    assert t[0].item() == 0.0


def test_to_numpy_shares_after_in_place_tensor_edit():
    """``copy=None`` shares: an in-place edit of the tensor shows in the array."""
    t = torch.zeros(3)
    a = tb.to_numpy(t)
    t.add_(1.0)
    assert a.tolist() == [1.0, 1.0, 1.0]


def test_to_numpy_copy_true_is_independent_after_in_place_tensor_edit():
    """``copy=True``: an in-place edit of the tensor does not show in the array."""
    t = torch.zeros(3)
    a = tb.to_numpy(t, copy=True)
    t.add_(1.0)
    assert a.tolist() == [0.0, 0.0, 0.0]


def test_torch_Tensor_constructor_makes_float_but_to_torch_keeps_int64():
    """``torch.Tensor([1, 2, 3])`` silently makes float32; ``to_torch`` keeps int64."""
    assert torch.Tensor([1, 2, 3]).dtype == torch.float32
    assert_tensor_identical(tb.to_torch([1, 2, 3]), torch.tensor([1, 2, 3], dtype=torch.int64))


def test_int32_stays_int32():
    """An int32 array stays int32 (no silent widening to int64)."""
    out = tb.to_torch(np.arange(4, dtype=np.int32))
    assert out.dtype == torch.int32


def test_float64_batch_into_float32_model():
    """``float_dtype=torch.float32`` fixes a float64 batch for a float32 model, labels untouched."""
    model = torch.nn.Linear(3, 2)
    batch = {"x": np.random.default_rng(0).standard_normal((4, 3)), "y": np.array([0, 1, 1, 0])}
    with pytest.raises(RuntimeError):
        model(torch.from_numpy(batch["x"]))
    out = tb.to_torch(batch, float_dtype=torch.float32)
    assert model(out["x"]).shape == (4, 2)
    assert out["y"].dtype == torch.int64
    assert np_shares(out["y"], batch["y"])


def test_item_of_one_element_tensor_any_grad():
    """``item`` returns a Python scalar whether or not the tensor requires grad."""
    loss = (torch.ones(2, requires_grad=True) * 3).sum()
    value = tb.item(loss)
    assert type(value) is float
    assert value == 6.0


def test_item_refuses_many_elements_instead_of_picking_one():
    """Unlike ``a.flat[0]``-style shortcuts, ``item`` refuses more than one element."""
    with pytest.raises(tb.LossyConversionError):
        tb.item(np.array([1.0, 2.0]))


def test_from_numpy_refuses_negative_strides_but_to_torch_copies():
    """``torch.from_numpy`` raises on negative strides; ``to_torch`` copies."""
    a = np.arange(4.0)[::-1]
    with pytest.raises(ValueError):
        torch.from_numpy(a)
    assert tb.to_torch(a).tolist() == [3.0, 2.0, 1.0, 0.0]


def test_from_numpy_refuses_big_endian_but_to_torch_copies():
    """``torch.from_numpy`` raises on big-endian data; ``to_torch`` converts the values."""
    a = np.arange(3, dtype=">i4")
    with pytest.raises((ValueError, TypeError)):
        torch.from_numpy(a)
    assert_tensor_identical(tb.to_torch(a), torch.tensor([0, 1, 2], dtype=torch.int32))


def test_from_numpy_aliases_read_only_memory_but_to_torch_copies():
    """``torch.from_numpy`` hands out a writable alias of a read-only array (with a warning, once
    per process); ``to_torch`` copies, silently, so writing the tensor cannot corrupt the array."""
    a = np.arange(3.0)
    a.flags.writeable = False
    with quiet():
        assert np_shares(torch.from_numpy(a), a)
    out = tb.to_torch(a)
    out[0] = 9.0
    assert a[0] == 0.0


def test_numpy_cannot_take_bfloat16_but_to_numpy_can():
    """``t.numpy()`` raises for bfloat16; ``to_numpy`` gives an ml_dtypes.bfloat16 view."""
    t = torch.tensor([1.5, -2.0], dtype=torch.bfloat16)
    with pytest.raises(TypeError):
        t.numpy()
    out = tb.to_numpy(t)
    assert out.dtype == ml_dtypes.bfloat16
    assert np_shares(out, t)


def test_from_numpy_cannot_take_ml_dtypes_but_to_torch_can():
    """``torch.from_numpy`` rejects ml_dtypes arrays; ``to_torch`` reinterprets them, no copy."""
    a = np.array([1.0, 2.0], dtype=ml_dtypes.float8_e4m3fn)
    with pytest.raises(TypeError):
        torch.from_numpy(a)
    out = tb.to_torch(a)
    assert out.dtype == torch.float8_e4m3fn
    assert np_shares(out, a)


def test_conj_view_numpy_raises_in_torch_but_converts_here():
    """``t.conj().numpy()`` raises; ``to_numpy`` gives the conjugated values."""
    t = torch.tensor([1 + 1j]).conj()
    with pytest.raises(RuntimeError):
        t.numpy()
    assert tb.to_numpy(t).tolist() == [1 - 1j]


def test_sparse_numpy_raises_in_torch_but_converts_here():
    """``sparse.numpy()`` raises; ``to_numpy`` densifies."""
    with quiet():
        s = torch.eye(2).to_sparse_csr()
    with pytest.raises((RuntimeError, TypeError)):
        s.numpy()
    assert tb.to_numpy(s).tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_long_double_is_not_silently_rounded():
    """``torch.tensor(longdouble)`` silently rounds; ``to_torch`` asks for ``dtype=``."""
    a = np.array([1, 2], dtype=np.longdouble) + np.longdouble(2) ** -60
    if np.finfo(np.longdouble).bits == 64:
        pytest.skip("long double is double here")
    with pytest.raises(tb.LossyConversionError):
        tb.to_torch(a)
    assert tb.to_torch(a, dtype=torch.float64).dtype == torch.float64


def test_masked_array_mask_is_not_silently_dropped():
    """``torch.tensor(masked)`` drops the mask silently; ``to_torch`` refuses."""
    m = np.ma.masked_array([1.0, -999.0], mask=[False, True])
    with pytest.raises(tb.LossyConversionError):
        tb.to_torch(m)
    assert tb.to_torch(m.filled(0.0)).tolist() == [1.0, 0.0]


def test_python_float_list_uses_torch_default_but_numpy_default_in_to_numpy():
    """Python float lists become float32 in ``to_torch`` and float64 in ``to_numpy``."""
    assert tb.to_torch([0.5]).dtype == torch.float32
    assert tb.to_numpy([0.5]).dtype == np.float64


@cuda_only
def test_cuda_tensor_numpy_raises_in_torch_but_converts_here():
    """``cuda_tensor.numpy()`` raises; ``to_numpy`` copies it to the host."""
    t = torch.ones(2, device="cuda")
    with pytest.raises(TypeError):
        t.numpy()
    assert_ndarray_identical(tb.to_numpy(t), np.ones(2, dtype=np.float32))
