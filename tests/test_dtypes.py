"""Dtypes: the NumPy ↔ PyTorch ↔ ml_dtypes table, ``dtype=``, ``float_dtype=`` (SPEC: "Dtypes")."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

import tensorbridge as tb
from helpers import (
    DTYPE_IDS,
    DTYPES,
    ML_DTYPES,
    array_from_tensor,
    assert_ndarray_identical,
    assert_tensor_identical,
    mutation_shares,
    np_shares,
    sample_array,
    sample_tensor,
)

# ------------------------------------------------------------------ the table, both directions


@pytest.mark.parametrize("r", DTYPES, ids=[f"torch-{n}" for n in DTYPE_IDS])
def test_to_numpy_keeps_every_dtype(r):
    """A CPU tensor of every table dtype becomes an ndarray of the matching NumPy/ml_dtypes type."""
    t = sample_tensor(r.torch_dtype)
    out = tb.to_numpy(t)
    assert_ndarray_identical(out, array_from_tensor(t))
    assert out.dtype == r.np_dtype


@pytest.mark.parametrize("r", DTYPES, ids=[f"torch-{n}" for n in DTYPE_IDS])
def test_to_numpy_is_zero_copy_for_every_dtype(r):
    """On the CPU every table dtype converts without a copy (ml_dtypes types included)."""
    t = sample_tensor(r.torch_dtype)
    out = tb.to_numpy(t)
    assert np_shares(out, t)
    assert mutation_shares(out, t)


@pytest.mark.parametrize("r", DTYPES, ids=[f"numpy-{n}" for n in DTYPE_IDS])
def test_to_torch_keeps_every_dtype(r):
    """An ndarray of every table dtype becomes a tensor of the matching PyTorch dtype."""
    a = sample_array(r.np_dtype)
    out = tb.to_torch(a)
    assert out.dtype == r.torch_dtype
    assert_ndarray_identical(array_from_tensor(out), a)


@pytest.mark.parametrize("r", DTYPES, ids=[f"numpy-{n}" for n in DTYPE_IDS])
def test_to_torch_is_zero_copy_for_every_dtype(r):
    """A writable ndarray of every table dtype is shared, ml_dtypes included (reinterpretation)."""
    a = sample_array(r.np_dtype)
    out = tb.to_torch(a)
    assert np_shares(out, a)
    assert mutation_shares(out, a)


@pytest.mark.parametrize("r", ML_DTYPES, ids=[f"torch-{r.name}" for r in ML_DTYPES])
def test_ml_dtypes_result_type_is_the_ml_dtypes_scalar_type(r):
    """bfloat16/float8/complex32 come back typed as the ml_dtypes scalar type itself."""
    out = tb.to_numpy(sample_tensor(r.torch_dtype))
    assert out.dtype.type is getattr(ml_dtypes, r.name)


# ------------------------------------------------------------------ dtype= spellings

NUMPY_SPELLINGS = [
    pytest.param(np.float32, np.float32, id="np.float32"),
    pytest.param(np.dtype("float32"), np.float32, id="np.dtype-float32"),
    pytest.param(torch.float32, np.float32, id="torch.float32"),
    pytest.param("float32", np.float32, id="name-float32"),
    pytest.param("f4", np.float32, id="code-f4"),
    pytest.param(float, np.float64, id="python-float"),
    pytest.param(int, np.int64, id="python-int"),
    pytest.param(bool, np.bool_, id="python-bool"),
    pytest.param(complex, np.complex128, id="python-complex"),
    pytest.param("bfloat16", ml_dtypes.bfloat16, id="name-bfloat16"),
    pytest.param(torch.bfloat16, ml_dtypes.bfloat16, id="torch.bfloat16"),
    pytest.param(ml_dtypes.bfloat16, ml_dtypes.bfloat16, id="ml_dtypes.bfloat16"),
    pytest.param(torch.float8_e4m3fn, ml_dtypes.float8_e4m3fn, id="torch.float8_e4m3fn"),
    pytest.param(torch.int16, np.int16, id="torch.int16"),
    pytest.param("uint16", np.uint16, id="name-uint16"),
]


@pytest.mark.parametrize(("spelling", "expected"), NUMPY_SPELLINGS)
def test_to_numpy_dtype_spellings(spelling, expected):
    """``to_numpy(dtype=...)`` accepts NumPy, PyTorch, ml_dtypes dtypes, Python types and names."""
    src = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    out = tb.to_numpy(src, dtype=spelling)
    assert out.dtype == np.dtype(expected)
    assert_ndarray_identical(out, src.numpy().astype(expected))


TORCH_SPELLINGS = [
    pytest.param(np.float32, torch.float32, id="np.float32"),
    pytest.param(np.dtype("float32"), torch.float32, id="np.dtype-float32"),
    pytest.param(torch.float32, torch.float32, id="torch.float32"),
    pytest.param("float32", torch.float32, id="name-float32"),
    pytest.param("f4", torch.float32, id="code-f4"),
    pytest.param(float, torch.float64, id="python-float"),
    pytest.param(int, torch.int64, id="python-int"),
    pytest.param(bool, torch.bool, id="python-bool"),
    pytest.param(complex, torch.complex128, id="python-complex"),
    pytest.param("bfloat16", torch.bfloat16, id="name-bfloat16"),
    pytest.param(ml_dtypes.bfloat16, torch.bfloat16, id="ml_dtypes.bfloat16"),
    pytest.param(np.dtype(ml_dtypes.bfloat16), torch.bfloat16, id="np.dtype-bfloat16"),
    pytest.param(ml_dtypes.float8_e5m2, torch.float8_e5m2, id="ml_dtypes.float8_e5m2"),
    pytest.param(np.int16, torch.int16, id="np.int16"),
    pytest.param("uint16", torch.uint16, id="name-uint16"),
]


@pytest.mark.parametrize(("spelling", "expected"), TORCH_SPELLINGS)
def test_to_torch_dtype_spellings(spelling, expected):
    """``to_torch(dtype=...)`` accepts NumPy, PyTorch, ml_dtypes dtypes, Python types and names."""
    src = np.array([1.0, 2.0, 3.0])
    out = tb.to_torch(src, dtype=spelling)
    assert out.dtype == expected
    assert_tensor_identical(out, torch.from_numpy(src).to(expected))


@pytest.mark.parametrize("func", ["to_numpy", "to_torch"])
def test_unknown_dtype_name_is_rejected(func):
    """A dtype name that means nothing is an error, never silently ignored."""
    with pytest.raises((TypeError, ValueError)):
        getattr(tb, func)(np.zeros(2), dtype="not-a-dtype")


# ------------------------------------------------------------------ casts follow the target library


def test_to_torch_float_to_int_cast_truncates_like_torch():
    """An explicit float → int cast follows PyTorch's casting (truncation toward zero)."""
    a = np.array([1.7, -1.7, 2.5])
    out = tb.to_torch(a, dtype=torch.int32)
    assert_tensor_identical(out, torch.from_numpy(a).to(torch.int32))


def test_to_numpy_float_to_int_cast_truncates_like_numpy():
    """An explicit float → int cast follows NumPy's casting (truncation toward zero)."""
    t = torch.tensor([1.7, -1.7, 2.5], dtype=torch.float64)
    out = tb.to_numpy(t, dtype=np.int32)
    assert_ndarray_identical(out, t.numpy().astype(np.int32))


def test_to_numpy_cast_to_bfloat16_rounds_like_ml_dtypes():
    """float32 → bfloat16 in ``to_numpy`` gives the values NumPy/ml_dtypes casting gives."""
    t = torch.tensor([1.0, 1.00390625, 3.14159, -2.5e-3])
    out = tb.to_numpy(t, dtype="bfloat16")
    expected = t.numpy().astype(ml_dtypes.bfloat16)
    assert_ndarray_identical(out, expected)


def test_to_torch_cast_to_bfloat16_rounds_like_torch():
    """float32 → bfloat16 in ``to_torch`` gives the values ``Tensor.to`` gives."""
    a = np.array([1.0, 1.00390625, 3.14159, -2.5e-3], dtype=np.float32)
    out = tb.to_torch(a, dtype=torch.bfloat16)
    assert_tensor_identical(out, torch.from_numpy(a).to(torch.bfloat16))


def test_int64_to_int32_cast_is_a_copy():
    """A dtype cast never aliases the input."""
    a = np.arange(6, dtype=np.int64)
    out = tb.to_torch(a, dtype=torch.int32)
    assert out.dtype == torch.int32
    assert not np_shares(out, a)


def test_same_dtype_request_is_no_copy():
    """``dtype=`` equal to the input's dtype changes nothing and shares memory."""
    a = np.arange(6, dtype=np.float32)
    out = tb.to_torch(a, dtype=torch.float32)
    assert np_shares(out, a)


@pytest.mark.parametrize(
    ("func", "src", "dtype"),
    [
        pytest.param("to_torch", np.array([1 + 2j]), torch.float64, id="to_torch-c128-to-f64"),
        pytest.param("to_torch", np.array([1 + 2j]), torch.int64, id="to_torch-c128-to-i64"),
        pytest.param("to_numpy", torch.tensor([1 + 2j]), np.float32, id="to_numpy-c64-to-f32"),
        pytest.param("to_numpy", np.array([1 + 2j], np.complex64), np.float64, id="to_numpy-arr"),
    ],
)
def test_complex_to_real_raises_lossy(func, src, dtype):
    """complex → real is refused with LossyConversionError pointing at ``.real``."""
    with pytest.raises(tb.LossyConversionError) as ei:
        getattr(tb, func)(src, dtype=dtype)
    assert ".real" in str(ei.value)


def test_complex_to_real_raises_even_when_imag_is_zero():
    """The refusal depends on dtypes, not on values: a zero imaginary part is still refused."""
    with pytest.raises(tb.LossyConversionError):
        tb.to_torch(np.array([1 + 0j, 2 + 0j]), dtype=torch.float32)


def test_complex_to_complex_cast_is_allowed():
    """complex128 → complex64 is an ordinary cast."""
    a = np.array([1 + 2j, 3 - 4j])
    out = tb.to_torch(a, dtype=torch.complex64)
    assert_tensor_identical(out, torch.from_numpy(a).to(torch.complex64))


def test_real_to_complex_cast_is_allowed():
    """float → complex loses nothing and is allowed."""
    out = tb.to_numpy(torch.tensor([1.0, 2.0]), dtype=np.complex128)
    assert_ndarray_identical(out, np.array([1.0, 2.0], dtype=np.complex128))


# ------------------------------------------------------------------ float_dtype


@pytest.mark.parametrize(
    "src_dtype", [np.float64, np.float16, ml_dtypes.bfloat16], ids=["f64", "f16", "bf16"]
)
def test_float_dtype_casts_real_floats_to_torch(src_dtype):
    """``float_dtype`` applies to real floating-point inputs (bfloat16 included)."""
    a = np.array([0.5, 1.5, -2.0]).astype(src_dtype)
    out = tb.to_torch(a, float_dtype=torch.float32)
    assert out.dtype == torch.float32
    assert out.tolist() == [0.5, 1.5, -2.0]


@pytest.mark.parametrize(
    "src",
    [
        pytest.param(np.array([1, 2, 3], dtype=np.int64), id="int64"),
        pytest.param(np.array([1, 2, 3], dtype=np.uint8), id="uint8"),
        pytest.param(np.array([True, False]), id="bool"),
        pytest.param(np.array([1 + 2j], dtype=np.complex128), id="complex128"),
    ],
)
def test_float_dtype_leaves_other_kinds_alone(src):
    """``float_dtype`` leaves integer, bool and complex inputs exactly as they are (shared)."""
    out = tb.to_torch(src, float_dtype=torch.float32)
    assert_ndarray_identical(array_from_tensor(out), src)
    assert np_shares(out, src)


def test_float_dtype_to_numpy():
    """``to_numpy(float_dtype=...)`` casts a float tensor and leaves an int tensor alone."""
    assert (
        tb.to_numpy(torch.ones(2, dtype=torch.float64), float_dtype=np.float32).dtype == np.float32
    )
    ints = torch.arange(3)
    out = tb.to_numpy(ints, float_dtype=np.float32)
    assert out.dtype == np.int64
    assert np_shares(out, ints)


def test_float_dtype_wins_over_dtype_for_real_floats():
    """With both given, ``float_dtype`` decides real floating leaves and ``dtype`` the rest."""
    batch = {"x": np.ones(2, dtype=np.float64), "y": np.arange(2, dtype=np.int64)}
    out = tb.to_torch(batch, dtype=torch.int32, float_dtype=torch.float16)
    assert out["x"].dtype == torch.float16
    assert out["y"].dtype == torch.int32


def test_float_dtype_wins_over_dtype_on_a_single_array():
    """On one float array, ``float_dtype`` wins over ``dtype``."""
    out = tb.to_numpy(torch.ones(2, dtype=torch.float64), dtype=np.int8, float_dtype=np.float16)
    assert out.dtype == np.float16


def test_dtype_applies_to_every_leaf():
    """``dtype`` applies to every converted leaf of a container."""
    batch = {"x": torch.ones(2, dtype=torch.float64), "y": torch.arange(2)}
    out = tb.to_numpy(batch, dtype=np.float32)
    assert out["x"].dtype == np.float32
    assert out["y"].dtype == np.float32


@pytest.mark.parametrize("func", ["to_numpy", "to_torch"])
@pytest.mark.parametrize(
    "np_dtype", [np.int32, np.float64, np.uint16], ids=["int32", "float64", "uint16"]
)
def test_no_dtype_means_dtype_kept(func, np_dtype):
    """Without ``dtype``, int32 stays int32, float64 stays float64, uint16 stays uint16."""
    src = np.arange(3).astype(np_dtype)
    out = getattr(tb, func)(src)
    assert str(out.dtype).removeprefix("torch.") == np.dtype(np_dtype).name
