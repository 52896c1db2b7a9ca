"""``to_numpy``: every input kind of SPEC's "What must convert", against plain NumPy/PyTorch."""

from __future__ import annotations

import array

import ml_dtypes
import numpy as np
import pytest
import torch

import tensorbridge as tb
from conftest import cuda_only
from helpers import (
    ArrayDunderOnly,
    ArrayInterfaceOnly,
    DLPackOnly,
    array_from_tensor,
    assert_ndarray_identical,
    mutation_shares,
    np_shares,
    quiet,
    sample_tensor,
)

DENSE = torch.tensor([[1.0, 0, 0, 2], [0, 0, 3, 0], [0, 4, 0, 0], [5, 0, 0, 6]])


# ------------------------------------------------------------------ tensors


def test_requires_grad_tensor():
    """A tensor that requires grad converts (detached) and shares memory."""
    t = torch.arange(4.0, requires_grad=True)
    out = tb.to_numpy(t)
    assert_ndarray_identical(out, np.arange(4.0, dtype=np.float32))
    assert np_shares(out, t)


def test_non_leaf_graph_tensor():
    """A tensor in the middle of a graph converts to its values."""
    x = torch.arange(4.0, requires_grad=True)
    y = x * 2
    assert_ndarray_identical(tb.to_numpy(y), np.arange(4.0, dtype=np.float32) * 2)


def test_parameter():
    """An ``nn.Parameter`` becomes a plain ndarray sharing its memory."""
    p = torch.nn.Parameter(torch.ones(2, 3))
    out = tb.to_numpy(p)
    assert_ndarray_identical(out, np.ones((2, 3), dtype=np.float32))
    assert np_shares(out, p)


def test_inference_mode_tensor():
    """A tensor made under ``torch.inference_mode`` converts and shares memory."""
    with torch.inference_mode():
        t = torch.arange(6.0).reshape(2, 3)
    out = tb.to_numpy(t)
    assert_ndarray_identical(out, np.arange(6.0, dtype=np.float32).reshape(2, 3))
    assert np_shares(out, t)


def test_conversion_inside_inference_mode():
    """Converting while inference mode is active works too."""
    with torch.inference_mode():
        out = tb.to_numpy(torch.ones(3))
    assert_ndarray_identical(out, np.ones(3, dtype=np.float32))


def test_conj_view_gives_logical_values():
    """A conjugate-bit view converts to the conjugated values (resolved), not the raw storage."""
    t = torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex64).conj()
    assert t.is_conj()
    out = tb.to_numpy(t)
    assert_ndarray_identical(out, t.resolve_conj().numpy())


def test_neg_view_gives_logical_values():
    """A negative-bit view converts to the negated values."""
    t = torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex128).conj().imag
    assert t.is_neg()
    out = tb.to_numpy(t)
    assert_ndarray_identical(out, t.resolve_neg().numpy())


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda t: t[:, 1:3], id="column-slice"),
        pytest.param(lambda t: t[::2], id="row-step"),
        pytest.param(lambda t: t.T, id="transpose"),
        pytest.param(lambda t: t[1:, 1:], id="offset"),
        pytest.param(lambda t: t.expand(3, 4, 4)[:, 1], id="zero-stride"),
        pytest.param(lambda t: t.unfold(1, 2, 1), id="overlapping"),
    ],
)
def test_strided_views_are_shared(make):
    """Non-contiguous and offset views convert with their values and share memory."""
    base = torch.arange(16.0).reshape(4, 4)
    t = make(base)
    out = tb.to_numpy(t)
    assert_ndarray_identical(out, t.numpy())
    assert np_shares(out, base)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: DENSE.to_sparse(), id="coo"),
        pytest.param(lambda: DENSE.to_sparse_csr(), id="csr"),
        pytest.param(lambda: DENSE.to_sparse_csc(), id="csc"),
        pytest.param(lambda: DENSE.to_sparse_bsr((2, 2)), id="bsr"),
        pytest.param(lambda: DENSE.to_sparse_bsc((2, 2)), id="bsc"),
        pytest.param(lambda: DENSE.to_sparse().coalesce(), id="coo-coalesced"),
    ],
)
def test_sparse_is_densified(make):
    """Sparse COO/CSR/CSC/BSR/BSC tensors convert to their dense values."""
    with quiet():
        s = make()
    out = tb.to_numpy(s)
    assert_ndarray_identical(out, DENSE.numpy())


def test_uncoalesced_coo_sums_duplicates():
    """An uncoalesced COO tensor's duplicate entries add up, as ``to_dense`` does."""
    with quiet():
        s = torch.sparse_coo_tensor([[0, 0, 1], [1, 1, 0]], [1.0, 2.0, 5.0], (2, 2))
    assert not s.is_coalesced()
    assert_ndarray_identical(tb.to_numpy(s), np.array([[0, 3.0], [5.0, 0]], dtype=np.float32))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda: torch.quantize_per_tensor(torch.tensor([0.5, 1.0, 1.5]), 0.5, 0, torch.quint8),
            id="per-tensor-quint8",
        ),
        pytest.param(
            lambda: torch.quantize_per_tensor(torch.tensor([-1.0, 0.0, 2.0]), 0.25, 0, torch.qint8),
            id="per-tensor-qint8",
        ),
        pytest.param(
            lambda: torch.quantize_per_channel(
                torch.tensor([[0.5, 1.0], [1.5, 2.0]]),
                torch.tensor([0.5, 0.25], dtype=torch.float64),
                torch.tensor([0, 0]),
                0,
                torch.qint8,
            ),
            id="per-channel-qint8",
        ),
    ],
)
def test_quantized_is_dequantized(make):
    """A quantized tensor converts to its dequantized float values."""
    with quiet():
        q = make()
        expected = q.dequantize().numpy()
    assert_ndarray_identical(tb.to_numpy(q), expected)


@pytest.mark.parametrize("layout", [torch.strided, torch.jagged], ids=["nested-strided", "jagged"])
def test_nested_tensor_is_a_list_of_arrays(layout):
    """A nested/jagged tensor becomes a list of arrays, one per component."""
    parts = [torch.arange(3.0), torch.arange(5.0) * 2]
    with quiet():
        nt = torch.nested.nested_tensor(parts, layout=layout)
    out = tb.to_numpy(nt)
    assert isinstance(out, list)
    assert len(out) == 2
    for got, want in zip(out, parts, strict=True):
        assert_ndarray_identical(got, want.numpy())


def test_zero_dim_tensor_is_zero_dim_ndarray():
    """A 0-d tensor becomes a 0-d ndarray (not a NumPy scalar), shared."""
    t = torch.tensor(2.5)
    out = tb.to_numpy(t)
    assert_ndarray_identical(out, np.array(2.5, dtype=np.float32))
    assert np_shares(out, t)


@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 2, 2)], ids=["0", "3x0", "0x2x2"])
def test_empty_tensor(shape):
    """Empty tensors convert with their shape and dtype."""
    out = tb.to_numpy(torch.empty(shape, dtype=torch.int16))
    assert_ndarray_identical(out, np.empty(shape, dtype=np.int16))


def test_meta_tensor_is_unsupported():
    """A meta tensor has no data: UnsupportedInputError (a TypeError)."""
    with pytest.raises(tb.UnsupportedInputError):
        tb.to_numpy(torch.empty(3, device="meta"))


@pytest.mark.parametrize("transform", ["grad", "vmap"])
def test_tensor_inside_functorch_transform_is_unsupported(transform):
    """Inside ``torch.func.grad``/``vmap`` a tensor has no concrete values: Unsupported."""
    caught: list[BaseException] = []

    def f(x):
        try:
            tb.to_numpy(x)
        except BaseException as e:  # recorded, asserted on outside the transform
            caught.append(e)
        return x.sum()

    if transform == "grad":
        torch.func.grad(f)(torch.ones(3))
    else:
        torch.func.vmap(f)(torch.ones(2, 3))
    assert caught, "to_numpy returned a value for a tensor inside a functorch transform"
    assert isinstance(caught[0], tb.UnsupportedInputError)


# ------------------------------------------------------------------ NumPy inputs


def test_ndarray_is_returned_shared():
    """An ndarray needing nothing comes back shared (the same array or a view of it)."""
    a = np.arange(6.0).reshape(2, 3)
    out = tb.to_numpy(a)
    assert_ndarray_identical(out, a)
    assert np.shares_memory(out, a)


def test_negative_strides_need_no_copy_in_numpy():
    """NumPy can hold negative strides, so ``to_numpy`` shares them."""
    a = np.arange(6.0)[::-1]
    out = tb.to_numpy(a)
    np.testing.assert_array_equal(out, a)
    assert np.shares_memory(out, a)


def test_matrix_becomes_plain_ndarray_view():
    """An ``np.matrix`` comes back as a plain ndarray view of the same memory."""
    with quiet():
        m = np.matrix([[1, 2], [3, 4]])
    out = tb.to_numpy(m)
    assert_ndarray_identical(out, np.array([[1, 2], [3, 4]]))
    assert np.shares_memory(out, m)


def test_memmap_becomes_plain_ndarray_view(tmp_path):
    """A memmap comes back as a plain ndarray sharing the mapping."""
    mm = np.memmap(tmp_path / "x.dat", dtype=np.float32, mode="w+", shape=(4,))
    mm[:] = [1, 2, 3, 4]
    out = tb.to_numpy(mm)
    assert_ndarray_identical(out, np.array([1, 2, 3, 4], dtype=np.float32))
    assert np.shares_memory(out, mm)
    del out, mm


class _Sub(np.ndarray):
    pass


def test_ndarray_subclass_becomes_base_class():
    """Any ndarray subclass comes back as a base-class view."""
    a = np.arange(3.0).view(_Sub)
    out = tb.to_numpy(a)
    assert type(out) is np.ndarray
    assert np.shares_memory(out, a)


@pytest.mark.parametrize(
    "scalar",
    [
        pytest.param(np.float32(1.5), id="float32"),
        pytest.param(np.int16(-3), id="int16"),
        pytest.param(np.uint64(2**63 + 1), id="uint64"),
        pytest.param(np.bool_(True), id="bool"),
        pytest.param(np.complex64(1 - 2j), id="complex64"),
        pytest.param(ml_dtypes.bfloat16(2.5), id="bfloat16"),
    ],
)
def test_numpy_scalar_becomes_zero_dim_array(scalar):
    """A NumPy scalar becomes a 0-d ndarray of the same dtype (never a NumPy scalar)."""
    out = tb.to_numpy(scalar)
    assert_ndarray_identical(out, np.asarray(scalar))


def test_datetime_with_integer_dtype():
    """datetime64 converts only with an explicit integer dtype, to the int64 view of its values."""
    a = np.array(["2020-01-01", "2021-06-15"], dtype="datetime64[D]")
    out = tb.to_numpy(a, dtype=np.int64)
    assert_ndarray_identical(out, a.view(np.int64))


@pytest.mark.parametrize("make", [np.ma.masked_array, np.ma.array], ids=["masked_array", "ma"])
def test_masked_array_raises_lossy(make):
    """A masked array is refused: the mask would be dropped."""
    m = make([1.0, 2.0], mask=[False, True])
    with pytest.raises(tb.LossyConversionError):
        tb.to_numpy(m)


# ------------------------------------------------------------------ Python values and protocols


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(3, id="int"),
        pytest.param(2.5, id="float"),
        pytest.param(True, id="bool"),
        pytest.param(1 - 2j, id="complex"),
        pytest.param([1, 2, 3], id="list-int"),
        pytest.param([[1.0, 2], [3, 4]], id="nested-list-float"),
        pytest.param((True, False), id="tuple-bool"),
        pytest.param([[1, 2], (3, 4)], id="mixed-list-tuple"),
        pytest.param([], id="empty-list"),
        pytest.param(2**40, id="big-int"),
    ],
)
def test_python_values_follow_numpy_defaults(value):
    """Python numbers and rectangular lists convert exactly as ``np.asarray`` would."""
    assert_ndarray_identical(tb.to_numpy(value), np.asarray(value))


def test_ragged_list_is_an_error():
    """A ragged list of numbers has no array form and is refused, not turned into objects."""
    with pytest.raises(tb.ConversionError):
        tb.to_numpy([[1, 2], [3]])


def test_list_of_tensors_is_a_container():
    """A top-level list holding tensors is a container: a list of arrays comes back."""
    out = tb.to_numpy([torch.ones(2), torch.zeros(3)])
    assert isinstance(out, list)
    assert_ndarray_identical(out[0], np.ones(2, dtype=np.float32))
    assert_ndarray_identical(out[1], np.zeros(3, dtype=np.float32))


def test_array_interface_object_is_shared():
    """An object exposing only ``__array_interface__`` converts and shares its memory."""
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    out = tb.to_numpy(ArrayInterfaceOnly(a))
    assert_ndarray_identical(out, a)
    assert np.shares_memory(out, a)


def test_array_dunder_object():
    """An object exposing only ``__array__`` converts to its values."""
    a = np.arange(6, dtype=np.int16)
    assert_ndarray_identical(tb.to_numpy(ArrayDunderOnly(a)), a)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: np.arange(6.0).reshape(2, 3), id="numpy-producer"),
        pytest.param(lambda: torch.arange(6.0).reshape(2, 3), id="torch-producer"),
    ],
)
def test_dlpack_producer_is_shared(make):
    """An object exposing only ``__dlpack__``/``__dlpack_device__`` converts without a copy."""
    src = make()
    out = tb.to_numpy(DLPackOnly(src))
    expected = src.numpy() if isinstance(src, torch.Tensor) else src
    assert_ndarray_identical(out, expected)
    assert np_shares(out, src)
    assert mutation_shares(out, src)


@pytest.mark.parametrize(
    ("buf", "expected"),
    [
        pytest.param(b"\x01\x02\x03", np.array([1, 2, 3], np.uint8), id="bytes"),
        pytest.param(bytearray(b"\x07\x08"), np.array([7, 8], np.uint8), id="bytearray"),
        pytest.param(memoryview(b"\x05\x06"), np.array([5, 6], np.uint8), id="memoryview"),
        pytest.param(array.array("f", [1.5, 2.5]), np.array([1.5, 2.5], np.float32), id="array-f"),
        pytest.param(array.array("i", [1, -2]), np.array([1, -2], np.intc), id="array-i"),
        pytest.param(array.array("d", [0.25]), np.array([0.25]), id="array-d"),
    ],
)
def test_buffer_protocol(buf, expected):
    """Objects with the buffer protocol convert to the array their format describes."""
    assert_ndarray_identical(tb.to_numpy(buf), expected)


def test_writable_buffer_is_shared():
    """A writable buffer (array.array) is shared, as ``np.asarray`` would share it."""
    buf = array.array("d", [1.0, 2.0])
    out = tb.to_numpy(buf)
    buf[0] = 9.0
    assert out[0] == 9.0


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param("hello", id="str"),
        pytest.param(object(), id="object"),
        pytest.param({1, 2}, id="set"),
    ],
)
def test_unknown_top_level_objects_are_unsupported(obj):
    """A string, a set or an arbitrary object at top level is UnsupportedInputError."""
    with pytest.raises(tb.UnsupportedInputError):
        tb.to_numpy(obj)


def test_result_is_writable_for_a_tensor():
    """A tensor's ndarray is writable (PyTorch tensors are)."""
    out = tb.to_numpy(torch.zeros(3))
    assert out.flags.writeable


def test_bfloat16_matches_bit_reinterpretation():
    """bfloat16 values equal the reference ``t.view(torch.int16).numpy().view(bfloat16)``."""
    t = torch.tensor([1.0, -0.0, float("inf"), float("nan"), 3.140625], dtype=torch.bfloat16)
    expected = t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    assert_ndarray_identical(tb.to_numpy(t), expected)


def test_complex32_values():
    """complex32 converts to ml_dtypes.complex32 with the same bits."""
    t = sample_tensor(torch.complex32)
    assert_ndarray_identical(tb.to_numpy(t), array_from_tensor(t))


# ------------------------------------------------------------------ devices


@cuda_only
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64], ids=str)
def test_cuda_tensor(dtype):
    """A CUDA tensor comes back to host memory with its values."""
    t = torch.arange(6).reshape(2, 3).to(dtype)
    out = tb.to_numpy(t.cuda())
    assert_ndarray_identical(out, array_from_tensor(t))


@cuda_only
def test_cuda_requires_grad_tensor():
    """A CUDA tensor that requires grad converts (the classic ``.detach().cpu().numpy()``)."""
    t = torch.ones(3, device="cuda", requires_grad=True) * 2
    assert_ndarray_identical(tb.to_numpy(t), np.full(3, 2.0, dtype=np.float32))
