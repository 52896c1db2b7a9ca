"""``to_torch``: every input kind of SPEC's "What must convert", against plain NumPy/PyTorch."""

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
    assert_tensor_identical,
    mutation_shares,
    np_shares,
    quiet,
    tensor_from_array,
)


def ref(a: np.ndarray) -> torch.Tensor:
    """The reference tensor for ``a``'s logical values (plain NumPy/PyTorch, a copy)."""
    return tensor_from_array(a)


# ------------------------------------------------------------------ ndarray layouts


def test_plain_array_is_shared():
    """A writable, aligned, native ndarray is shared, like ``torch.from_numpy``."""
    a = np.arange(6.0).reshape(2, 3)
    out = tb.to_torch(a)
    assert_tensor_identical(out, ref(a))
    assert np_shares(out, a)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda a: a[::-1], id="reversed-rows"),
        pytest.param(lambda a: a[:, ::-2], id="reversed-step-columns"),
        pytest.param(lambda a: a[::-1, ::-1].T, id="reversed-transposed"),
    ],
)
def test_negative_strides_are_copied(make):
    """Negative strides convert to the right values through a copy, never an error."""
    a = make(np.arange(12, dtype=np.int32).reshape(3, 4))
    out = tb.to_torch(a)
    assert_tensor_identical(out, ref(a))
    assert not np_shares(out, a)


@pytest.mark.parametrize("np_dtype", [">f4", ">i8", ">c16", ">u2", ">f2"])
def test_non_native_byte_order_is_copied(np_dtype):
    """Big-endian arrays convert to native tensors with the same values, through a copy."""
    a = np.arange(6).astype(np_dtype)
    out = tb.to_torch(a)
    assert out.dtype == ref(a).dtype
    assert_tensor_identical(out, ref(a))


def test_non_contiguous_positive_strides_are_shared():
    """Positive strides and offsets are representable in PyTorch and shared."""
    base = np.arange(24.0).reshape(4, 6)
    a = base[1:, ::2].T
    out = tb.to_torch(a)
    assert_tensor_identical(out, ref(a))
    assert np_shares(out, base)


def test_read_only_array_is_copied_and_writable():
    """A read-only ndarray is copied under ``copy=None``; the tensor is writable and independent."""
    a = np.arange(4.0)
    a.flags.writeable = False
    out = tb.to_torch(a)
    assert_tensor_identical(out, ref(a))
    assert not np_shares(out, a)
    out[0] = 42.0
    assert a[0] == 0.0


def test_broadcast_view_is_copied():
    """A broadcast (read-only, zero-stride) view converts through a copy."""
    a = np.broadcast_to(np.arange(3.0), (2, 3))
    out = tb.to_torch(a)
    assert_tensor_identical(out, ref(a))
    assert not np_shares(out, a)


def test_frombuffer_bytes_is_copied():
    """``np.frombuffer(bytes)`` (read-only) converts through a copy."""
    a = np.frombuffer(np.arange(4, dtype=np.float32).tobytes(), dtype=np.float32)
    out = tb.to_torch(a)
    assert_tensor_identical(out, ref(a))
    assert not np_shares(out, a)


def _misaligned_pointer() -> np.ndarray:
    buf = np.zeros(4 * 8 + 1, dtype=np.uint8)
    a = buf[1:].view(np.float64)
    a[:] = [1.5, -2.0, 3.25, 0.0]
    assert not a.flags.aligned
    return a


def _misaligned_stride() -> np.ndarray:
    buf = np.zeros(32, dtype=np.uint8)
    a = np.ndarray(shape=(3,), dtype=np.float32, buffer=buf, strides=(6,))
    for i, v in enumerate([1.0, 2.0, 3.0]):
        buf[6 * i : 6 * i + 4] = np.frombuffer(np.float32(v).tobytes(), np.uint8)
    return a


def _frombuffer_offset() -> np.ndarray:
    raw = b"\x00" + np.array([1.0, 2.0]).tobytes()
    return np.frombuffer(raw, dtype=np.float64, offset=1)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_misaligned_pointer, id="pointer"),
        pytest.param(_misaligned_stride, id="stride"),
        pytest.param(_frombuffer_offset, id="frombuffer-offset"),
    ],
)
def test_misaligned_buffers_are_copied(make):
    """A data pointer or stride that is not a multiple of the item size converts through a copy."""
    a = make()
    out = tb.to_torch(a)
    assert_tensor_identical(out, ref(a))
    assert not np_shares(out, a)


def test_writable_memmap_is_shared(tmp_path):
    """A writable memmap is shared: writing the tensor writes the mapping."""
    mm = np.memmap(tmp_path / "x.dat", dtype=np.float32, mode="w+", shape=(2, 3))
    mm[:] = 1.0
    out = tb.to_torch(mm)
    assert_tensor_identical(out, torch.ones(2, 3))
    out[0, 0] = 7.0
    assert mm[0, 0] == 7.0
    del out, mm


def test_read_only_memmap_is_copied(tmp_path):
    """A read-only memmap is copied under ``copy=None`` (PyTorch cannot mark it read-only)."""
    path = tmp_path / "x.dat"
    np.arange(4, dtype=np.int16).tofile(path)
    mm = np.memmap(path, dtype=np.int16, mode="r", shape=(4,))
    out = tb.to_torch(mm)
    assert_tensor_identical(out, torch.arange(4, dtype=torch.int16))
    assert not np_shares(out, mm)
    del mm


def test_matrix_is_shared():
    """``np.matrix`` converts to a 2-d tensor sharing its memory."""
    with quiet():
        m = np.matrix([[1.0, 2.0], [3.0, 4.0]])
    out = tb.to_torch(m)
    assert_tensor_identical(out, torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64))
    assert np_shares(out, np.asarray(m))


@pytest.mark.parametrize(
    ("scalar", "dtype"),
    [
        pytest.param(np.float32(1.5), torch.float32, id="float32"),
        pytest.param(np.float64(-0.0), torch.float64, id="float64"),
        pytest.param(np.int16(-3), torch.int16, id="int16"),
        pytest.param(np.uint32(7), torch.uint32, id="uint32"),
        pytest.param(np.bool_(True), torch.bool, id="bool"),
        pytest.param(np.complex64(1 - 2j), torch.complex64, id="complex64"),
        pytest.param(ml_dtypes.bfloat16(2.5), torch.bfloat16, id="bfloat16"),
        pytest.param(ml_dtypes.float8_e4m3fn(0.5), torch.float8_e4m3fn, id="float8_e4m3fn"),
    ],
)
def test_numpy_scalar_becomes_zero_dim_tensor(scalar, dtype):
    """A NumPy/ml_dtypes scalar becomes a 0-d tensor of the matching dtype (not torch's default)."""
    out = tb.to_torch(scalar)
    assert out.dtype == dtype
    assert_tensor_identical(out, ref(np.asarray(scalar)))


def test_zero_dim_array_is_shared():
    """A 0-d ndarray becomes a 0-d tensor sharing its memory."""
    a = np.array(3, dtype=np.int8)
    out = tb.to_torch(a)
    assert_tensor_identical(out, torch.tensor(3, dtype=torch.int8))
    assert mutation_shares(out, a)


@pytest.mark.parametrize("shape", [(0,), (2, 0), (0, 0, 3)], ids=["0", "2x0", "0x0x3"])
def test_empty_array(shape):
    """Empty arrays convert with their shape and dtype."""
    out = tb.to_torch(np.empty(shape, dtype=np.uint16))
    assert_tensor_identical(out, torch.empty(shape, dtype=torch.uint16))


# ------------------------------------------------------- object, datetime, masked, long double


def test_object_array_of_ints():
    """An object array of Python ints becomes an int64 tensor."""
    a = np.array([1, 2, 3], dtype=object)
    assert_tensor_identical(tb.to_torch(a), torch.tensor([1, 2, 3]))


def test_object_array_of_floats():
    """An object array of floats becomes a floating tensor with the same values."""
    a = np.array([1.5, -2.0], dtype=object)
    out = tb.to_torch(a)
    assert out.is_floating_point()
    assert out.tolist() == [1.5, -2.0]


def test_object_array_of_same_shaped_arrays_is_stacked():
    """An object array of same-shaped arrays becomes one stacked tensor."""
    a = np.empty(3, dtype=object)
    for i in range(3):
        a[i] = np.full((2,), i, dtype=np.int32)
    out = tb.to_torch(a)
    assert_tensor_identical(out, torch.tensor([[0, 0], [1, 1], [2, 2]], dtype=torch.int32))


@pytest.mark.parametrize(
    "items",
    [
        pytest.param(["a", 1], id="str-item"),
        pytest.param([np.zeros(2), np.zeros(3)], id="ragged-arrays"),
        pytest.param([None, 1.0], id="none-item"),
    ],
)
def test_object_array_of_other_items_is_refused(items):
    """An object array holding strings, None or ragged arrays is refused with a ConversionError."""
    a = np.empty(len(items), dtype=object)
    for i, v in enumerate(items):
        a[i] = v
    with pytest.raises(tb.ConversionError):
        tb.to_torch(a)


@pytest.mark.parametrize(
    "a",
    [
        pytest.param(
            np.array(["2020-01-01", "2024-02-29"], dtype="datetime64[D]"), id="datetime64"
        ),
        pytest.param(np.array([5, -7], dtype="timedelta64[ms]"), id="timedelta64"),
    ],
)
def test_datetime_with_explicit_int64(a):
    """datetime64/timedelta64 convert with an explicit integer dtype, as their int64 view."""
    out = tb.to_torch(a, dtype=torch.int64)
    assert_tensor_identical(out, torch.from_numpy(a.view(np.int64).copy()))


@pytest.mark.parametrize(
    "a",
    [
        pytest.param(np.array(["2020-01-01"], dtype="datetime64[s]"), id="datetime64"),
        pytest.param(np.array([5], dtype="timedelta64[ms]"), id="timedelta64"),
        pytest.param(np.array(["a", "b"]), id="str"),
        pytest.param(np.array([b"a", b"b"]), id="bytes"),
    ],
)
def test_datetime_and_strings_without_dtype_are_unsupported(a):
    """datetime, timedelta, str and bytes arrays without a dtype are UnsupportedInputError."""
    with pytest.raises(tb.UnsupportedInputError):
        tb.to_torch(a)


def test_masked_array_raises_lossy():
    """A masked array is refused (LossyConversionError), whatever its mask."""
    m = np.ma.masked_array([1.0, 2.0], mask=[False, False])
    with pytest.raises(tb.LossyConversionError):
        tb.to_torch(m)


@pytest.mark.parametrize(
    "a",
    [
        pytest.param(np.array([1.0, 2.0], dtype=np.longdouble), id="longdouble"),
        pytest.param(np.array([1 + 1j], dtype=np.clongdouble), id="clongdouble"),
    ],
)
@pytest.mark.skipif(np.finfo(np.longdouble).bits == 64, reason="long double is double here")
def test_long_double_raises_lossy(a):
    """long double and complex long double are refused without a dtype."""
    with pytest.raises(tb.LossyConversionError):
        tb.to_torch(a)


@pytest.mark.parametrize(
    ("a", "dtype", "expected"),
    [
        pytest.param(
            np.array([1.5, 2.0], dtype=np.longdouble), torch.float64,
            torch.tensor([1.5, 2.0], dtype=torch.float64), id="longdouble-to-f64",
        ),
        pytest.param(
            np.array([1.5, 2.0], dtype=np.longdouble), torch.float32,
            torch.tensor([1.5, 2.0], dtype=torch.float32), id="longdouble-to-f32",
        ),
        pytest.param(
            np.array([1 + 1j], dtype=np.clongdouble), torch.complex128,
            torch.tensor([1 + 1j], dtype=torch.complex128), id="clongdouble-to-c128",
        ),
    ],
)  # fmt: skip
def test_long_double_with_dtype_converts(a, dtype, expected):
    """With an explicit dtype, long double converts (the rounding was asked for)."""
    assert_tensor_identical(tb.to_torch(a, dtype=dtype), expected)


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
        pytest.param([1, 2.5], id="int-float-mix"),
        pytest.param(2**40, id="big-int"),
    ],
)
def test_python_values_follow_torch_tensor(value):
    """Python numbers and rectangular lists convert exactly as ``torch.tensor`` would."""
    assert_tensor_identical(tb.to_torch(value), torch.tensor(value))


def test_python_float_follows_default_dtype():
    """A Python float follows PyTorch's current default float dtype."""
    torch.set_default_dtype(torch.float64)
    assert tb.to_torch([0.5, 1.5]).dtype == torch.float64


def test_list_of_arrays_is_a_container():
    """A top-level list holding arrays is a container: a list of tensors comes back."""
    out = tb.to_torch([np.ones(2), np.arange(3)])
    assert isinstance(out, list)
    assert_tensor_identical(out[0], torch.ones(2, dtype=torch.float64))
    assert_tensor_identical(out[1], torch.arange(3))


def test_array_interface_object_is_shared():
    """An object exposing only ``__array_interface__`` converts and shares its memory."""
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    out = tb.to_torch(ArrayInterfaceOnly(a))
    assert_tensor_identical(out, ref(a))
    assert np_shares(out, a)


def test_array_dunder_object():
    """An object exposing only ``__array__`` converts to its values."""
    a = np.arange(6, dtype=np.int16)
    assert_tensor_identical(tb.to_torch(ArrayDunderOnly(a)), ref(a))


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
    out = tb.to_torch(DLPackOnly(src))
    assert_tensor_identical(out, torch.arange(6.0, dtype=out.dtype).reshape(2, 3))
    assert np_shares(out, src)
    assert mutation_shares(out, src)


@pytest.mark.parametrize(
    ("buf", "expected"),
    [
        pytest.param(b"\x01\x02\x03", torch.tensor([1, 2, 3], dtype=torch.uint8), id="bytes"),
        pytest.param(
            bytearray(b"\x07\x08"), torch.tensor([7, 8], dtype=torch.uint8), id="bytearray"
        ),
        pytest.param(
            memoryview(b"\x05\x06"), torch.tensor([5, 6], dtype=torch.uint8), id="memoryview"
        ),
        pytest.param(array.array("f", [1.5, 2.5]), torch.tensor([1.5, 2.5]), id="array-f"),
        pytest.param(
            array.array("i", [1, -2]), torch.tensor([1, -2], dtype=torch.int32), id="array-i"
        ),
        pytest.param(
            array.array("d", [0.25]), torch.tensor([0.25], dtype=torch.float64), id="array-d"
        ),
    ],
)
def test_buffer_protocol(buf, expected):
    """Objects with the buffer protocol convert to the tensor their format describes."""
    assert_tensor_identical(tb.to_torch(buf), expected)


def test_writable_buffer_is_shared():
    """A writable buffer (bytearray) is shared: editing it shows in the tensor."""
    buf = bytearray(b"\x01\x02\x03")
    out = tb.to_torch(buf)
    buf[0] = 99
    assert out[0].item() == 99


def test_read_only_buffer_is_copied():
    """A read-only buffer (bytes) is copied: the tensor is writable without touching the bytes."""
    raw = b"\x01\x02"
    out = tb.to_torch(raw)
    out[0] = 50
    assert raw == b"\x01\x02"


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
        tb.to_torch(obj)


# ------------------------------------------------------------------ tensor inputs and autograd


def test_tensor_with_nothing_to_do_is_shared():
    """A tensor needing no change comes back sharing memory (possibly the same object)."""
    t = torch.arange(5.0)
    out = tb.to_torch(t)
    assert out.data_ptr() == t.data_ptr()
    assert mutation_shares(out, t)


def test_requires_grad_none_keeps_graph():
    """``requires_grad=None`` keeps a tensor's autograd state: gradients flow through a cast."""
    x = torch.arange(3.0, requires_grad=True)
    out = tb.to_torch(x, dtype=torch.float64)
    assert out.requires_grad
    out.sum().backward()
    assert x.grad is not None
    assert x.grad.tolist() == [1.0, 1.0, 1.0]


def test_requires_grad_none_keeps_plain_tensor_plain():
    """``requires_grad=None`` leaves a tensor that does not require grad as it is."""
    assert not tb.to_torch(torch.ones(2)).requires_grad


def test_requires_grad_false_detaches():
    """``requires_grad=False`` detaches (without a copy)."""
    x = torch.arange(3.0, requires_grad=True)
    out = tb.to_torch(x, requires_grad=False)
    assert not out.requires_grad
    assert out.grad_fn is None
    assert np_shares(out, x)


def test_requires_grad_true_on_array_makes_a_leaf():
    """``requires_grad=True`` on an ndarray gives a leaf tensor that requires grad."""
    out = tb.to_torch(np.ones(3), requires_grad=True)
    assert out.requires_grad
    assert out.is_leaf


def test_requires_grad_true_keeps_existing_graph():
    """``requires_grad=True`` on a tensor already in a graph keeps it connected."""
    x = torch.arange(3.0, requires_grad=True)
    y = x * 2
    out = tb.to_torch(y, requires_grad=True)
    assert out.requires_grad
    out.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


def test_requires_grad_true_on_plain_tensor_gives_leaf():
    """``requires_grad=True`` on a plain tensor gives a leaf that requires grad."""
    out = tb.to_torch(torch.ones(2), requires_grad=True)
    assert out.requires_grad
    assert out.is_leaf


def test_arrays_become_plain_tensors():
    """Non-tensor inputs become tensors that do not require grad by default."""
    out = tb.to_torch(np.ones(3))
    assert not out.requires_grad
    assert out.is_leaf


def test_parameter_input_stays_connected():
    """An ``nn.Parameter`` keeps its autograd state under ``requires_grad=None``."""
    p = torch.nn.Parameter(torch.ones(2))
    out = tb.to_torch(p)
    assert out.requires_grad
    assert np_shares(out, p)


def test_inference_mode_tensor_input():
    """An inference-mode tensor converts (shared)."""
    with torch.inference_mode():
        t = torch.ones(3)
    out = tb.to_torch(t)
    assert_tensor_identical(out, torch.ones(3))
    assert np_shares(out, t)


def test_quantized_tensor_with_float_dtype_is_dequantized():
    """``to_torch(quantized, dtype=float32)`` gives the dequantized values (no raw error)."""
    with quiet():
        q = torch.quantize_per_tensor(torch.tensor([0.5, 1.0, 1.5]), 0.5, 0, torch.quint8)
        expected = q.dequantize()
    assert_tensor_identical(tb.to_torch(q, dtype=torch.float32), expected)


# ------------------------------------------------------- devices (CPU here, CUDA if present)


@pytest.mark.parametrize(
    "device",
    [pytest.param("cpu", id="str"), pytest.param(torch.device("cpu"), id="torch.device")],
)
def test_cpu_device_spellings(device):
    """``device="cpu"`` and ``torch.device("cpu")`` give a CPU tensor sharing the array."""
    a = np.ones(3)
    out = tb.to_torch(a, device=device)
    assert out.device.type == "cpu"
    assert np_shares(out, a)


def test_device_none_keeps_cpu():
    """``device=None`` puts a non-tensor input on the CPU."""
    assert tb.to_torch(np.ones(2)).device == torch.device("cpu")


def test_non_blocking_on_cpu_returns_final_values():
    """``non_blocking=True`` on the CPU returns data that is already final."""
    a = np.arange(4.0)
    out = tb.to_torch(a, non_blocking=True)
    assert_tensor_identical(out, ref(a))


@cuda_only
@pytest.mark.parametrize(
    "device",
    [
        pytest.param("cuda", id="str-cuda"),
        pytest.param("cuda:0", id="str-cuda0"),
        pytest.param(0, id="int"),
        pytest.param(torch.device("cuda", 0), id="torch.device"),
    ],
)
def test_cuda_device_spellings(device):
    """``device`` accepts "cuda", "cuda:0", an int and a ``torch.device``."""
    a = np.arange(6.0).reshape(2, 3)
    out = tb.to_torch(a, device=device)
    assert out.device.type == "cuda"
    assert_tensor_identical(out.cpu(), ref(a))


@cuda_only
def test_cuda_tensor_stays_on_cuda():
    """``device=None`` keeps a CUDA tensor where it is."""
    t = torch.ones(2, device="cuda")
    assert tb.to_torch(t).device == t.device


@cuda_only
def test_cuda_non_blocking_values_are_final():
    """``non_blocking=True`` never returns data that can still change underneath the caller."""
    a = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    out = tb.to_torch(a, device="cuda", non_blocking=True)
    a[:] = 0.0
    assert_tensor_identical(
        out.cpu(), ref(np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32))
    )


@cuda_only
def test_cuda_pin_memory():
    """``pin_memory=True`` with a CPU target gives a pinned tensor."""
    out = tb.to_torch(np.ones(4), pin_memory=True)
    assert out.is_pinned()


@cuda_only
def test_cuda_copy_false_refuses_device_move():
    """``copy=False`` with a device move raises CopyRequiredError."""
    with pytest.raises(tb.CopyRequiredError):
        tb.to_torch(np.ones(3), device="cuda", copy=False)


@pytest.mark.parametrize(
    ("code", "values", "dtype"),
    [
        pytest.param("b", [-1, 2], torch.int8, id="b"),
        pytest.param("B", [255, 2], torch.uint8, id="B"),
        pytest.param("h", [-300, 2], torch.int16, id="h"),
        pytest.param("q", [-(2**40), 2], torch.int64, id="q"),
        pytest.param("Q", [2**63 + 1, 2], torch.uint64, id="Q"),
    ],
)
def test_array_array_formats(code, values, dtype):
    """``array.array`` of each integer format keeps its width and signedness."""
    out = tb.to_torch(array.array(code, values))
    assert out.dtype == dtype
    raw = np.array(values, dtype=np.dtype(code))
    twin = np.dtype(f"{raw.dtype.kind}{raw.dtype.itemsize}")  # "Q" → "u8": torch rejects "Q"
    assert_tensor_identical(out, torch.from_numpy(raw.view(twin)))


def test_strided_memoryview():
    """A strided memoryview (a NumPy slice's buffer) converts to its logical values."""
    a = np.arange(8, dtype=np.int32)
    mv = memoryview(a)[::2]
    assert_tensor_identical(tb.to_torch(mv), torch.tensor([0, 2, 4, 6], dtype=torch.int32))


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1], ids=["2**64", "below-int64"])
def test_python_int_out_of_range_is_a_conversion_error(value):
    """A Python int no dtype can hold raises a ConversionError saying why, not a raw error."""
    with pytest.raises(tb.ConversionError):
        tb.to_torch(value)


def test_numpy_float64_scalar_keeps_float64_under_float32_default():
    """A NumPy float64 scalar stays float64 (only Python floats follow torch's default)."""
    assert tb.to_torch(np.float64(0.5)).dtype == torch.float64


class _MyTensor(torch.Tensor):
    pass


def test_tensor_subclass_to_numpy():
    """A torch.Tensor subclass converts like a tensor."""
    t = torch.arange(3.0).as_subclass(_MyTensor)
    out = tb.to_numpy(t)
    assert type(out) is np.ndarray
    assert out.tolist() == [0.0, 1.0, 2.0]


def test_requires_grad_true_with_copy_true():
    """``requires_grad=True`` with ``copy=True`` gives an independent leaf that requires grad."""
    a = np.ones(3)
    out = tb.to_torch(a, requires_grad=True, copy=True)
    assert out.requires_grad and out.is_leaf
    assert not np_shares(out, a)


def test_float_dtype_keeps_graph():
    """``float_dtype`` on a tensor that requires grad keeps it on the graph."""
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    out = tb.to_torch(x, float_dtype=torch.float32)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]


def test_datetime_scalar_without_dtype_is_unsupported():
    """A NumPy datetime64 scalar without a dtype is UnsupportedInputError."""
    with pytest.raises(tb.UnsupportedInputError):
        tb.to_torch(np.datetime64("2020-01-01"))


@pytest.mark.parametrize(
    "np_type",
    [np.ulonglong, np.longlong, np.intc, np.uintc, np.ushort, np.byte],
    ids=lambda t: t.__name__,
)
def test_platform_integer_aliases(np_type):
    """C-named integer types (``ulonglong`` is uint64 with its own type number) convert like
    their fixed-width twin, shared."""
    a = np.arange(4, dtype=np_type)
    twin = np.dtype(f"{a.dtype.kind}{a.dtype.itemsize}")  # e.g. "u8", which torch knows
    out = tb.to_torch(a)
    assert_tensor_identical(out, torch.from_numpy(a.view(twin).copy()))
    assert np_shares(out, a)
