"""PyTorch's own NumPy-interop tests, adapted to tensorbridge's contract (SPEC.md, docs/design.md).

Sources: ``test/test_numpy_interop.py`` (``TestNumPyInterop``) and the ``from_numpy`` /
``torch.tensor`` / ``as_tensor`` / ``asarray`` parts of ``test/test_tensor_creation_ops.py``
(``TestTensorCreation``, ``TestBufferProtocol``, ``TestAsArray``) in pytorch/pytorch. Each test
names the PyTorch test it adapts. Where PyTorch raises or warns (negative strides, byte order,
ill-sized strides, read-only arrays, bfloat16, conjugate/sparse/grad tensors, ZeroTensors, lists of
arrays), tensorbridge must return the right values instead; where PyTorch shares memory,
``copy=None`` must share too unless SPEC calls sharing unsafe. Expected values come from plain
NumPy and PyTorch only, never from tensorbridge.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable

import ml_dtypes
import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import as_strided

import tensorbridge as tb
from helpers import ArrayDunderOnly, ArrayInterfaceOnly, mutation_shares, np_shares

# --------------------------------------------------------------------------------------------------
# Plain NumPy/PyTorch references.

_GEN_SEED = 1234


def np_dtype_of(tdt: torch.dtype) -> np.dtype:
    """The NumPy dtype a careful user expects for ``tdt`` (ml_dtypes for bfloat16)."""
    if tdt == torch.bfloat16:
        return np.dtype(ml_dtypes.bfloat16)
    return torch.empty(0, dtype=tdt).numpy().dtype


def torch_dtype_of(npd: np.dtype) -> torch.dtype:
    """The PyTorch dtype ``torch.from_numpy`` gives for a native NumPy dtype."""
    return torch.from_numpy(np.zeros(1, dtype=npd)).dtype


def reference_array(t: torch.Tensor) -> np.ndarray:
    """``t``'s logical values as a fresh ndarray, built with plain PyTorch/NumPy."""
    t = t.detach().resolve_conj().resolve_neg()
    if t.layout != torch.strided:
        t = t.to_dense()
    if t.dtype == torch.bfloat16:
        return t.contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    return t.contiguous().numpy().copy()


def castable_tensor(shape: int | tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """``get_castable_tensor`` of ``test_to_numpy``: random values that fit ``dtype``."""
    gen = torch.Generator().manual_seed(_GEN_SEED)
    if dtype == torch.bool:
        return torch.randint(0, 2, (shape,) if isinstance(shape, int) else shape, generator=gen).to(
            torch.bool
        )
    if dtype.is_complex:
        real = torch.empty(shape, dtype=torch.float64).uniform_(-1e3, 1e3, generator=gen)
        imag = torch.empty(shape, dtype=torch.float64).uniform_(-1e3, 1e3, generator=gen)
        return torch.complex(real, imag).to(dtype)
    if dtype.is_floating_point:
        info = torch.finfo(dtype)
        low, high = max(info.min, -1e10), min(info.max, 1e10)
        return torch.empty(shape, dtype=torch.float64).uniform_(low, high, generator=gen).to(dtype)
    info = torch.iinfo(dtype)
    low, high = max(info.min, int(-1e10)), min(info.max, int(1e10))
    return torch.empty(shape, dtype=torch.int64).random_(low, high, generator=gen).to(dtype)


def assert_same_values(out: np.ndarray, expected: np.ndarray) -> None:
    """``out`` is a plain ndarray with ``expected``'s dtype, shape and every bit."""
    assert type(out) is np.ndarray, type(out)
    assert out.dtype == expected.dtype, (out.dtype, expected.dtype)
    assert out.shape == expected.shape, (out.shape, expected.shape)
    assert np.ascontiguousarray(out).tobytes() == np.ascontiguousarray(expected).tobytes()


def assert_same_tensor(out: torch.Tensor, expected: torch.Tensor) -> None:
    """``out`` is a CPU tensor with ``expected``'s dtype, shape and values."""
    assert isinstance(out, torch.Tensor), type(out)
    assert out.dtype == expected.dtype, (out.dtype, expected.dtype)
    assert tuple(out.shape) == tuple(expected.shape), (out.shape, expected.shape)
    assert out.device == expected.device, (out.device, expected.device)
    torch.testing.assert_close(out, expected, rtol=0, atol=0, equal_nan=True)


# --------------------------------------------------------------------------------------------------
# test_numpy_interop.py::test_to_numpy — every dtype x every strided layout, shared and writable.

TO_NUMPY_DTYPES = [
    # the dtypes of PyTorch's test ...
    torch.uint8, torch.int8, torch.int16, torch.int32, torch.float16, torch.float32,
    torch.float64, torch.int64,
    # ... and the rest of SPEC's "Tensor → ndarray" row with a native NumPy twin
    torch.bool, torch.uint16, torch.uint32, torch.uint64, torch.complex64, torch.complex128,
]  # fmt: skip
TO_NUMPY_IDS = [str(d).removeprefix("torch.") for d in TO_NUMPY_DTYPES]

SZ, SZ1, SZ2 = 10, 3, 5
LAYOUTS: dict[str, Callable[[torch.dtype], torch.Tensor]] = {
    "1d": lambda d: castable_tensor(SZ, d),
    "1d-offset": lambda d: castable_tensor(SZ * 2, d).narrow(0, SZ - 1, SZ),
    "2d-contiguous": lambda d: castable_tensor((SZ1, SZ2), d),
    "2d-offset": lambda d: castable_tensor((SZ1 * 2, SZ2), d).narrow(0, SZ1 - 1, SZ1),
    "2d-transposed": lambda d: castable_tensor((SZ2, SZ1), d).t(),
    "2d-transposed-offset": lambda d: (
        castable_tensor((SZ2 * 2, SZ1), d).narrow(0, SZ2 - 1, SZ2).t()
    ),
    "2d-holes": lambda d: (
        castable_tensor((SZ2 * 2, SZ1 * 2), d).narrow(0, SZ2 - 1, SZ2).narrow(1, SZ1 - 1, SZ1).t()
    ),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", TO_NUMPY_DTYPES, ids=TO_NUMPY_IDS)
def test_to_numpy_layouts_are_shared_writable_views(dtype, layout):
    """Adapts test_to_numpy: offset, transposed and holed views become shared, writable views."""
    x = LAYOUTS[layout](dtype)
    expected = reference_array(x)
    y = tb.to_numpy(x)
    assert_same_values(y, expected)
    # the same layout as the tensor (PyTorch checks C_CONTIGUOUS for contiguous, not for .t())
    assert y.strides == tuple(s * x.element_size() for s in x.stride())
    assert y.flags["C_CONTIGUOUS"] == x.is_contiguous()
    # writable, and a write shows through in the tensor (SPEC: "shared, not copied")
    assert y.flags.writeable
    idx = (0, 1) if x.dim() == 2 else (1,)
    new = np.array(not bool(expected[idx]) if dtype == torch.bool else 3, dtype=expected.dtype)
    y[idx] = new
    assert x[idx].item() == new.item()


@pytest.mark.parametrize("dtype", TO_NUMPY_DTYPES, ids=TO_NUMPY_IDS)
def test_to_numpy_empty(dtype):
    """Adapts test_to_numpy's empty case: an empty tensor gives an empty array of its dtype."""
    x = torch.tensor([]).to(dtype)
    y = tb.to_numpy(x)
    assert type(y) is np.ndarray
    assert y.size == 0
    assert y.shape == (0,)
    assert y.dtype == np_dtype_of(dtype)


@pytest.mark.parametrize("values", [[True, False], [True]], ids=["two", "one"])
def test_to_numpy_bool(values):
    """Adapts test_to_numpy_bool: bool tensors become ``np.bool_`` arrays with the same values."""
    x = torch.tensor(values, dtype=torch.bool)
    y = tb.to_numpy(x)
    assert y.dtype == np.bool_
    assert y.tolist() == values


FORCE_CASES = [
    pytest.param(rg, sp, cj, id=f"grad={rg}-sparse={sp}-conj={cj}")
    for rg in (False, True)
    for sp in (False, True)
    for cj in (False, True)
    if not (rg and sp)  # PyTorch skips sparse tensors that require grad too
]


@pytest.mark.parametrize(("requires_grad", "sparse", "conj"), FORCE_CASES)
def test_to_numpy_needs_no_force(requires_grad, sparse, conj):
    """Adapts test_to_numpy_force_argument: what ``.numpy()`` refuses converts without ``force``."""
    data = [[1 + 2j, -2 + 3j], [-1 - 2j, 3 - 2j]]
    base = torch.tensor(data, requires_grad=requires_grad)
    x = base
    if sparse:
        x = x.to_sparse()
    if conj:
        x = x.conj()
    expected = np.array(data, dtype=np.complex64)
    if conj:
        expected = expected.conj()
    y = tb.to_numpy(x)
    assert_same_values(y, expected)
    # only the plain and the grad tensor can be views; conj and sparse need a copy
    expect_shared = not (sparse or conj)
    before = base.detach().clone()
    y[0, 0] = 42
    assert torch.equal(base.detach(), before) != expect_shared


ZERO_TENSOR_DTYPES = [
    torch.uint8, torch.int8, torch.short, torch.int, torch.half, torch.float, torch.double,
    torch.long, torch.bool,
]  # fmt: skip


@pytest.mark.parametrize(
    "dtype", ZERO_TENSOR_DTYPES, ids=[str(d).removeprefix("torch.") for d in ZERO_TENSOR_DTYPES]
)
def test_to_numpy_zero_tensor(dtype):
    """Adapts test_to_numpy_zero_tensor: a ZeroTensor gives zeros, like ``numpy(force=True)``."""
    x = torch._efficientzerotensor(10, dtype=dtype)
    expected = np.zeros(10, dtype=np_dtype_of(dtype))
    assert_same_values(tb.to_numpy(x), expected)
    # a ZeroTensor has no data to share: explain must not promise a view (SPEC: "explain")
    assert tb.explain(x, to="numpy").copies >= 1


# --------------------------------------------------------------------------------------------------
# test_numpy_interop.py::test_from_numpy and friends.

FROM_NUMPY_DTYPES = [
    # the dtypes of PyTorch's test ...
    pytest.param(np.double, id="double"),
    pytest.param(np.float64, id="float64"),
    pytest.param(np.float16, id="float16"),
    pytest.param(np.complex64, id="complex64"),
    pytest.param(np.complex128, id="complex128"),
    pytest.param(np.int64, id="int64"),
    pytest.param(np.int32, id="int32"),
    pytest.param(np.int16, id="int16"),
    pytest.param(np.int8, id="int8"),
    pytest.param(np.uint8, id="uint8"),
    pytest.param(np.longlong, id="longlong"),
    pytest.param(np.bool_, id="bool"),
    # ... and the rest of SPEC's "ndarray → tensor" native dtypes
    pytest.param(np.float32, id="float32"),
    pytest.param(np.uint16, id="uint16"),
    pytest.param(np.uint32, id="uint32"),
    pytest.param(np.uint64, id="uint64"),
]


@pytest.mark.parametrize("np_dtype", FROM_NUMPY_DTYPES)
def test_from_numpy_dtypes_values_and_sharing(np_dtype):
    """Adapts test_from_numpy: each dtype keeps dtype and values and shares the memory."""
    array = np.array([1, 2, 3, 4], dtype=np_dtype)
    out = tb.to_torch(array)
    assert_same_tensor(out, torch.from_numpy(array.copy()))
    assert mutation_shares(out, array)
    if np.dtype(np_dtype).kind != "c":  # PyTorch's Windows regression case (issue 22615)
        array2 = array % 2
        assert_same_tensor(tb.to_torch(array2), torch.from_numpy(array2.copy()))


def test_from_numpy_str_array_is_unsupported():
    """Adapts test_from_numpy's unsupported-type case: a str array raises UnsupportedInputError."""
    array = np.array(["foo", "bar"], dtype=np.dtype(np.str_))
    with pytest.raises(tb.UnsupportedInputError) as info:
        tb.to_torch(array)
    assert isinstance(info.value, TypeError)


def _cube() -> np.ndarray:
    x = np.linspace(1, 125, 125)
    x.shape = (5, 5, 5)
    return x


def _square() -> np.ndarray:
    x = np.linspace(1, 25, 25)
    x.shape = (5, 5)
    return x


FROM_NUMPY_VIEWS = [
    pytest.param(
        lambda: _cube(), lambda x: x[1],
        lambda: torch.arange(1, 126, dtype=torch.float64).view(5, 5, 5)[1],
        id="storage-offset",
    ),
    pytest.param(
        lambda: _square(), lambda x: x.T,
        lambda: torch.arange(1, 26, dtype=torch.float64).view(5, 5).t(),
        id="non-contiguous",
    ),
    pytest.param(
        lambda: _cube(), lambda x: x[:, 1],
        lambda: torch.arange(1, 126, dtype=torch.float64).view(5, 5, 5)[:, 1],
        id="non-contiguous-with-holes",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("make_base", "view", "make_expected"), FROM_NUMPY_VIEWS)
def test_from_numpy_positive_stride_views_are_shared(make_base, view, make_expected):
    """Adapts test_from_numpy's offset/strided cases: the values match and memory is shared."""
    base = make_base()
    x = view(base)
    out = tb.to_torch(x)
    assert_same_tensor(out, make_expected())
    assert np_shares(out, base)
    assert mutation_shares(out, x)


@pytest.mark.parametrize("shape", [(0, 2), (2, 0)], ids=["0x2", "2x0"])
def test_from_numpy_zero_size_shapes(shape):
    """Adapts test_from_numpy's zero-dimensional case: zero-size arrays keep their shape."""
    out = tb.to_torch(np.zeros(shape))
    assert tuple(out.shape) == shape
    assert out.dtype == torch.float64


def test_from_numpy_ill_sized_strides_copy_instead_of_raising():
    """Adapts test_from_numpy's ill-sized strides (PyTorch raises): a misaligned view is copied."""
    x = np.array([3.0, 5.0, 8.0])
    y = as_strided(x, shape=(3,), strides=(3,))  # `x.strides = (3,)` is deprecated in NumPy 2.4
    expected = torch.from_numpy(np.ascontiguousarray(y))
    out = tb.to_torch(y)
    assert_same_tensor(out, expected)
    assert not np_shares(out, x)
    with pytest.raises(tb.CopyRequiredError):
        tb.to_torch(y, copy=False)


def test_from_numpy_no_leak_on_invalid_dtype():
    """Adapts test_from_numpy_no_leak_on_invalid_dtype: a refused bytes array leaks no reference."""
    x = np.array(b"value")
    before = sys.getrefcount(x)
    for _ in range(200):
        with pytest.raises(tb.UnsupportedInputError):
            tb.to_torch(x)
    assert sys.getrefcount(x) == before


def test_from_numpy_zero_itemsize_str_array():
    """Adapts test_from_numpy_zero_element_type: a ``<U0`` array is refused, never divides by 0."""
    x = np.ndarray((3, 3), dtype=str)
    assert x.dtype.itemsize == 0
    with pytest.raises(tb.UnsupportedInputError):
        tb.to_torch(x)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: np.zeros(5), id="flag-cleared"),
        pytest.param(lambda: np.frombuffer(np.arange(5.0).tobytes()), id="frombuffer-bytes"),
        pytest.param(lambda: np.broadcast_to(np.arange(5.0), (3, 5)), id="broadcast-view"),
    ],
)
def test_numpy_non_writeable(make):
    """Adapts test_numpy_non_writeable (PyTorch warns, shares): no warning, a private copy."""
    arr = make()
    arr.flags["WRITEABLE"] = False
    snapshot = arr.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = tb.to_torch(arr)
        shared = tb.to_torch(arr, copy=False)  # SPEC: copy=False shares anyway, silently
    assert_same_tensor(out, torch.from_numpy(snapshot.copy()))
    assert not np_shares(out, arr)
    out.add_(1)  # writable, and the read-only array is untouched
    np.testing.assert_array_equal(arr, snapshot)
    assert_same_tensor(shared, torch.from_numpy(snapshot.copy()))
    assert np_shares(shared, arr)


def test_numpy_unresizable():
    """Adapts test_numpy_unresizable: memory shared either way can be resized by neither side."""
    x = np.zeros((2, 2))
    y = tb.to_torch(x)
    assert np_shares(y, x)
    with pytest.raises(ValueError):
        x.resize((5, 5))

    z = torch.randn(5, 5)
    w = tb.to_numpy(z)
    assert np_shares(w, z)
    with pytest.raises(RuntimeError):
        z.resize_(10, 10)
    with pytest.raises(ValueError):
        w.resize((10, 10))


def test_from_list_of_ndarrays_is_a_container():
    """Adapts test_from_list_of_ndarray_warning: a list of arrays is a container; no warning."""
    a0, a1 = np.array([0]), np.array([1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = tb.to_torch([a0, a1])
    assert type(out) is list
    assert len(out) == 2
    for got, src in zip(out, (a0, a1), strict=True):
        assert_same_tensor(got, torch.from_numpy(src.copy()))
        assert np_shares(got, src)


RAGGED = [
    pytest.param(lambda r: [r.random((3, 3)), r.random((3, 0))], id="3x3-and-3x0"),
    pytest.param(lambda r: [[r.random((3, 3)), r.random((3, 2))]], id="nested-3x3-and-3x2"),
    pytest.param(
        lambda r: [[r.random((3, 3)), r.random((3, 3))], [r.random((3, 3)), r.random((3, 2))]],
        id="nested-2x2-ragged",
    ),
    pytest.param(lambda r: [[r.random(3), np.float64(r.random())]], id="array-and-numpy-scalar"),
]


@pytest.mark.parametrize("make", RAGGED)
def test_ragged_sequences_of_arrays_convert_leafwise(make):
    """Adapts test_ctor_with_invalid_numpy_array_sequence: ragged lists convert leafwise."""
    obj = make(np.random.default_rng(0))
    out = tb.to_torch(obj)

    def check(got, src):
        if isinstance(src, list):
            assert type(got) is list
            assert len(got) == len(src)
            for g, s in zip(got, src, strict=True):
                check(g, s)
        else:
            assert_same_tensor(got, torch.from_numpy(np.array(src)))

    check(out, obj)


def test_list_of_numbers_beside_an_array_is_left_alone():
    """Adapts the last ragged case: inside a container a list of numbers passes through (design)."""
    arr = np.random.default_rng(0).random(2)
    out = tb.to_torch([[1, 2, 3], arr])
    assert out[0] == [1, 2, 3]
    assert_same_tensor(out[1], torch.from_numpy(arr.copy()))


NP_SCALAR_TYPES = [
    np.double, np.float64, np.float16, np.int64, np.int32, np.int16, np.uint8, np.bool_,
    np.float32, np.int8, np.uint16, np.uint32, np.uint64, np.complex64, np.complex128,
]  # fmt: skip
NP_SCALAR_IDS = [
    "double", "float64", "float16", "int64", "int32", "int16", "uint8", "bool",
    "float32", "int8", "uint16", "uint32", "uint64", "complex64", "complex128",
]  # fmt: skip


@pytest.mark.parametrize("np_type", NP_SCALAR_TYPES, ids=NP_SCALAR_IDS)
def test_numpy_scalar_converts_with_its_dtype(np_type):
    """Adapts test_ctor_with_numpy_scalar_ctor: ``np.float16(42)`` etc. keep dtype and value."""
    scalar = np_type(42)
    out = tb.to_torch(scalar)
    assert out.dim() == 0
    assert out.dtype == torch_dtype_of(np.dtype(np_type))
    assert out.item() == scalar.item()
    arr = tb.to_numpy(scalar)
    assert type(arr) is np.ndarray
    assert arr.shape == ()
    assert arr.dtype == np.dtype(np_type)
    py = tb.item(scalar)
    assert py == scalar.item()
    assert type(py) is type(scalar.item())


@pytest.mark.parametrize(
    "np_type", [np.int16, np.int8, np.uint8, np.int32, np.int64],
    ids=["int16", "int8", "uint8", "int32", "int64"],
)  # fmt: skip
def test_parse_numpy_int(np_type):
    """Adapts test_parse_numpy_int: an indexed NumPy integer keeps its dtype (issue 29252)."""
    np_arr = np.array([3], dtype=np_type)
    np_val = np_arr[0]
    t = tb.to_torch(np_arr)
    s = tb.to_torch(np_val)
    assert t.dtype == s.dtype == torch.from_numpy(np_arr.copy()).dtype
    assert s.shape == ()
    assert s.item() == 3
    assert tb.item(np_val) == 3
    assert type(tb.item(np_val)) is int


def test_parse_numpy_uint64_max():
    """Adapts test_parse_numpy_int_overflow: ``np.uint64`` max converts exactly, never overflows."""
    big = (1 << 64) - 1
    scalar = np.uint64(big)
    out = tb.to_torch(scalar)
    assert out.dtype == torch.uint64
    assert out.item() == big
    assert tb.item(scalar) == big
    arr = tb.to_torch(np.array([big, 0], dtype=np.uint64))
    assert arr.dtype == torch.uint64
    assert arr[0].item() == big
    assert tb.item(arr[0]) == big


ARRAY_INTERFACE_TYPES = [
    (torch.float64, np.float64), (torch.float32, np.float32), (torch.float16, np.float16),
    (torch.int64, np.int64), (torch.int32, np.int32), (torch.int16, np.int16),
    (torch.uint8, np.uint8),
]  # fmt: skip
ARRAY_INTERFACE_IDS = [np.dtype(n).name for _, n in ARRAY_INTERFACE_TYPES]


@pytest.mark.parametrize(("tdt", "npt"), ARRAY_INTERFACE_TYPES, ids=ARRAY_INTERFACE_IDS)
def test_numpy_array_interface_without_dtype(tdt, npt):
    """Adapts test_numpy_array_interface (no dtype): like ``np.asarray(t)``, shared."""
    src = [1, 2, 3, 4] if np.dtype(npt).kind == "u" else [1, -2, 3, -4]
    x = torch.tensor(src).to(tdt)
    y = tb.to_numpy(x)
    assert_same_values(y, np.array(src, dtype=npt))
    assert np_shares(y, x)


@pytest.mark.parametrize("npt", [n for _, n in ARRAY_INTERFACE_TYPES], ids=ARRAY_INTERFACE_IDS)
def test_numpy_array_interface_with_dtype(npt):
    """Adapts test_numpy_array_interface (with dtype): ``dtype=`` casts as NumPy's astype does."""
    x = torch.tensor([1, -2, 3, -4], dtype=torch.int32)
    expected = np.array([1, -2, 3, -4], dtype=np.int32).astype(npt)  # uint wraps, like NumPy
    y = tb.to_numpy(x, dtype=npt)
    assert_same_values(y, expected)
    if np.dtype(npt) != np.int32:
        assert not np_shares(y, x)


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(ArrayInterfaceOnly, id="__array_interface__"),
        pytest.param(ArrayDunderOnly, id="__array__"),
    ],
)
def test_array_protocol_objects_share(wrap):
    """Adapts test_numpy_array_interface to producers: protocol-only objects convert, shared."""
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    out = tb.to_torch(wrap(a))
    assert_same_tensor(out, torch.from_numpy(a.copy()))
    assert mutation_shares(out, a)


CAST_SRC = [np.float32, np.float64, np.int64, np.int32, np.int16, np.uint8]
CAST_DST = [torch.float32, torch.double, torch.int, torch.long, torch.uint8]


@pytest.mark.parametrize("tdt", CAST_DST, ids=[str(d).removeprefix("torch.") for d in CAST_DST])
@pytest.mark.parametrize("npt", CAST_SRC, ids=[np.dtype(n).name for n in CAST_SRC])
def test_has_storage_numpy_cast(npt, tdt):
    """Adapts test_has_storage_numpy: ``dtype=`` casts like ``torch.tensor(arr, dtype=...)``."""
    arr = np.array([1], dtype=npt)
    expected = torch.tensor(arr, dtype=tdt)
    out = tb.to_torch(arr, dtype=tdt)
    assert_same_tensor(out, expected)
    assert out.untyped_storage() is not None
    assert np_shares(out, arr) == (expected.dtype == torch_dtype_of(arr.dtype))


SCALAR_CMP_DTYPES = [
    torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.float16,
    torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
]  # fmt: skip


def _scalar_cmp_tensors(dtype: torch.dtype) -> list[torch.Tensor]:
    if dtype.is_complex:
        return [
            torch.tensor(complex(1, 3), dtype=dtype),
            torch.tensor([complex(1, 3), 0, 2j], dtype=dtype),
            torch.tensor([[complex(3, 1), 0], [-1j, 5]], dtype=dtype),
        ]
    if dtype == torch.uint8:  # PyTorch's test wraps -3 to 253 here; keep the values in range
        return [
            torch.tensor(3, dtype=dtype),
            torch.tensor([1, 0, 3], dtype=dtype),
            torch.tensor([[3, 0, 1], [3, 5, 4]], dtype=dtype),
        ]
    return [
        torch.tensor(3, dtype=dtype),
        torch.tensor([1, 0, -3], dtype=dtype),
        torch.tensor([[3, 0, -1], [3, 5, 4]], dtype=dtype),
    ]


@pytest.mark.parametrize(
    "dtype", SCALAR_CMP_DTYPES, ids=[str(d).removeprefix("torch.") for d in SCALAR_CMP_DTYPES]
)
def test_numpy_scalar_cmp(dtype):
    """Adapts test_numpy_scalar_cmp: 0-d/1-d/2-d tensors (bfloat16 too) and their items agree."""
    for tensor in _scalar_cmp_tensors(dtype):
        np_array = tb.to_numpy(tensor)  # PyTorch's .numpy() raises TypeError for bfloat16
        assert_same_values(np_array, reference_array(tensor))
        first = tensor.flatten()[0].item()
        for item in (tb.item(tensor.flatten()[0]), tb.item(np_array.flatten()[0])):
            assert item == first
            assert type(item) is type(first)
        if dtype.is_complex:  # issue 43579: the imaginary part must survive
            assert tb.item(tensor.flatten()[0]).imag == first.imag != 0


EQ_DTYPES = [
    torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.float16,
    torch.float32, torch.float64, torch.complex64, torch.complex128,
]  # fmt: skip


@pytest.mark.parametrize("dtype", EQ_DTYPES, ids=[str(d).removeprefix("torch.") for d in EQ_DTYPES])
def test___eq___sees_tensor_writes(dtype):
    """Adapts test___eq__: the array of ``b`` follows every in-place write to ``b``."""
    gen = torch.Generator().manual_seed(_GEN_SEED)
    low = 0 if dtype == torch.uint8 else -9  # make_tensor(low=-9, high=9), as in PyTorch's test
    a = torch.randint(low, 10, (5, 7), generator=gen).to(dtype)
    if dtype.is_complex:
        a = a + 1j * torch.randint(-9, 10, (5, 7), generator=gen).to(dtype)
    b = a.clone().detach()
    b_np = tb.to_numpy(b)
    np.testing.assert_array_equal(b_np, reference_array(a))
    if dtype == torch.bool:
        b[1][3] = not b[1][3]
    else:
        b[1][3] += 1
    np.testing.assert_array_equal(b_np, reference_array(b))
    rand = torch.randint(0, 2, a.shape, dtype=torch.bool, generator=gen)
    b.copy_(a)
    if dtype == torch.bool:
        b[rand] = b[rand].logical_not()
    else:
        b[rand] += 1
    np.testing.assert_array_equal(b_np, reference_array(b))
    assert (b_np != reference_array(a)).sum() == int(rand.sum())


def test_empty_tensors_interop():
    """Adapts test_empty_tensors_interop: empty and 0-d float16 convert both ways with dtype=."""
    y = tb.to_torch(np.random.default_rng(0).random(0), dtype=torch.float16)
    assert y.dtype == torch.float16
    assert tuple(y.shape) == (0,)
    x = torch.rand((), dtype=torch.float16)
    xa = tb.to_numpy(x)
    assert xa.shape == ()
    assert xa.dtype == np.float16
    assert xa.item() == x.item()
    assert tuple(torch.mul(x, y).shape) == (0,)


# --------------------------------------------------------------------------------------------------
# Non-native byte order and negative strides: PyTorch raises; tensorbridge copies under copy=None.

BYTE_ORDER_DTYPES = [">f2", ">f4", ">f8", ">i2", ">i4", ">i8", ">u2", ">u4", ">u8", ">c8", ">c16"]


@pytest.mark.parametrize("np_dtype", BYTE_ORDER_DTYPES)
def test_non_native_byte_order_is_copied(np_dtype):
    """``from_numpy`` refuses big-endian arrays; tensorbridge copies them into native order."""
    a = np.arange(6).reshape(2, 3).astype(np_dtype)
    expected = torch.from_numpy(a.astype(a.dtype.newbyteorder("=")))
    out = tb.to_torch(a)
    assert_same_tensor(out, expected)
    assert not np_shares(out, a)
    with pytest.raises(tb.CopyRequiredError, match="byte order"):
        tb.to_torch(a, copy=False)


NEG_STRIDES = [
    pytest.param(lambda a: a[::-1], id="reversed-rows"),
    pytest.param(lambda a: a[:, ::-1], id="reversed-columns"),
    pytest.param(lambda a: a[::-1, ::-2], id="reversed-both-step2"),
    pytest.param(lambda a: a[::-1].T, id="reversed-transposed"),
    pytest.param(lambda a: a.astype(">f4")[::-1], id="reversed-big-endian"),
]


@pytest.mark.parametrize("view", NEG_STRIDES)
def test_negative_strides_are_copied(view):
    """``from_numpy`` refuses negative strides; tensorbridge copies; copy=False names the cause."""
    a = view(np.arange(12, dtype=np.float32).reshape(3, 4))
    expected = torch.from_numpy(np.ascontiguousarray(a).astype(np.float32))
    out = tb.to_torch(a)
    assert_same_tensor(out, expected)
    assert not np_shares(out, a)
    with pytest.raises(tb.CopyRequiredError, match="negative"):
        tb.to_torch(a, copy=False)


# --------------------------------------------------------------------------------------------------
# test_tensor_creation_ops.py: torch.tensor / as_tensor / asarray / frombuffer on NumPy inputs.

TYPE_INFERENCE_ARRAYS = [
    pytest.param(lambda: np.array(()), id="empty-float"),
    pytest.param(lambda: np.array(5.0), id="0d-float"),
    pytest.param(lambda: np.array(5), id="0d-int"),
    pytest.param(lambda: np.array(3, dtype=np.uint8), id="0d-uint8"),
]


@pytest.mark.parametrize("make", TYPE_INFERENCE_ARRAYS)
@pytest.mark.parametrize("default", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_tensor_factory_type_inference_arrays(make, default):
    """Adapts test_tensor_factory_type_inference: arrays keep their dtype whatever the default."""
    a = make()
    torch.set_default_dtype(default)  # conftest restores float32 afterwards
    expected = torch.tensor(a)
    out = tb.to_torch(a)
    assert_same_tensor(out, expected)
    assert out.dtype == torch_dtype_of(a.dtype)


TYPE_INFERENCE_PY = [
    pytest.param(5.0, id="float"),
    pytest.param(5, id="int"),
    pytest.param(True, id="bool"),
    pytest.param(((7, 5), (9, 5.0)), id="mixed-int-float"),
    pytest.param(((5.0, 5), (3, 5)), id="float-first"),
    pytest.param(((5, 3), (3, 5)), id="ints"),
    pytest.param(((5, 3 + 2j), (3, 5 + 4j)), id="complex"),
]


@pytest.mark.parametrize("value", TYPE_INFERENCE_PY)
@pytest.mark.parametrize("default", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_tensor_factory_type_inference_python(value, default):
    """Adapts test_tensor_factory_type_inference: Python data follows torch.tensor's defaults."""
    torch.set_default_dtype(default)  # conftest restores float32 afterwards
    assert_same_tensor(tb.to_torch(value), torch.tensor(value))
    assert_same_values(tb.to_numpy(value), np.asarray(value))


def test_tensor_factory_copy_var():
    """Adapts test_tensor_factory_copy_var's as_tensor part: graph kept, shared unless cast."""
    source = torch.randn(5, 5, dtype=torch.double, requires_grad=True)
    same = tb.to_torch(source)
    assert same.requires_grad
    assert same.is_leaf == source.is_leaf
    assert same.data_ptr() == source.data_ptr()
    cast = tb.to_torch(source, dtype=torch.float)  # a copy that keeps the graph
    assert cast.dtype == torch.float32
    assert not cast.is_leaf
    assert cast.requires_grad
    assert cast.grad_fn is not None
    torch.testing.assert_close(cast, source.detach().float(), rtol=0, atol=0)
    detached = tb.to_torch(source, requires_grad=False)
    assert not detached.requires_grad
    assert detached.grad_fn is None


def test_new_tensor_copy_with_numpy():
    """Adapts test_new_tensor's numpy case: ``copy=True`` is independent of later writes."""
    a = np.array([5.0])
    res = tb.to_torch(a, copy=True)
    a[0] = 7.0
    assert res[0].item() == 5.0


@pytest.mark.parametrize(
    ("x", "kw"),
    [
        pytest.param([[0, 1], [2, 3]], {}, id="ints"),
        pytest.param([[0, 1], [2, 3]], {"dtype": torch.float32}, id="ints-as-float32"),
    ],
)
def test_as_tensor_python_data(x, kw):
    """Adapts test_as_tensor (python data): nested lists match ``torch.tensor``."""
    assert_same_tensor(tb.to_torch(x, **kw), torch.tensor(x, **kw))


def _self_referential_flat() -> list:
    z: list = [0]
    z += [z]
    return z


def _self_referential_nested() -> list:
    return [[1, 2], _self_referential_flat()]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_self_referential_flat, id="flat"),
        pytest.param(_self_referential_nested, id="nested"),
    ],
)
@pytest.mark.parametrize("func", [tb.to_torch, tb.to_numpy], ids=["to_torch", "to_numpy"])
def test_as_tensor_self_referential_list(make, func):
    """Adapts test_as_tensor (self-referential lists): ConversionError, not RecursionError."""
    try:
        func(make())
    except tb.ConversionError:
        pass
    except RecursionError:  # pragma: no cover - the bug this test reports
        pytest.fail(f"{func.__name__} of a self-referential list raised RecursionError")
    else:
        pytest.fail(f"{func.__name__} of a self-referential list returned instead of raising")


@pytest.mark.parametrize(
    "npt", [np.float64, np.int64, np.int8, np.uint8], ids=["float64", "int64", "int8", "uint8"]
)
def test_as_tensor_does_not_copy(npt):
    """Adapts test_as_tensor ("doesn't copy"): a writable array is shared, writes go both ways."""
    n = np.random.default_rng(0).random((5, 6)).astype(npt)
    t = tb.to_torch(n)
    assert_same_tensor(t, torch.tensor(n))
    t[0][0] = 25.7
    assert_same_tensor(t, torch.tensor(n))


def test_as_tensor_dtype_change_copies():
    """Adapts test_as_tensor ("changing dtype causes copy"): a cast result is independent."""
    n = np.random.default_rng(0).random((5, 6)).astype(np.float32)
    t = tb.to_torch(n, dtype=torch.float64)
    assert_same_tensor(t, torch.tensor(n, dtype=torch.float64))
    t[0][1] = 250.8
    assert not torch.equal(torch.tensor(n, dtype=torch.float64), t)


# TestAsArray: numpy_to_torch_dtype_dict's dtypes (uint16/32/64 included, as SPEC requires).
ASARRAY_DTYPES = [
    torch.bool, torch.uint8, torch.uint16, torch.uint32, torch.uint64, torch.int8, torch.int16,
    torch.int32, torch.int64, torch.float16, torch.float32, torch.float64, torch.complex64,
    torch.complex128,
]  # fmt: skip
ASARRAY_IDS = [str(d).removeprefix("torch.") for d in ASARRAY_DTYPES]


def _asarray_original(dtype: torch.dtype, shape=(5, 5)) -> torch.Tensor:
    vals = torch.arange(int(np.prod(shape))).reshape(shape) % 7
    return (vals % 2).to(dtype) if dtype == torch.bool else vals.to(dtype)


ALIAS_KWARGS = [
    pytest.param({}, id="default"),
    pytest.param({"copy": False}, id="copy=False"),
    pytest.param({"device": "cpu"}, id="device"),
    pytest.param({"device": "cpu", "copy": False}, id="device-copy=False"),
    pytest.param({"dtype": "same"}, id="dtype"),
    pytest.param({"dtype": "same", "copy": False}, id="dtype-copy=False"),
    pytest.param({"dtype": "same", "requires_grad": False}, id="dtype-requires_grad=False"),
    pytest.param({"dtype": "same", "requires_grad": True}, id="dtype-requires_grad=True"),
]


@pytest.mark.parametrize("kwargs", ALIAS_KWARGS)
@pytest.mark.parametrize("dtype", ASARRAY_DTYPES, ids=ASARRAY_IDS)
def test_alias_from_numpy(dtype, kwargs):
    """Adapts TestAsArray.test_alias_from_numpy: a plain array aliases under no-copy options."""
    kwargs = {k: (dtype if v == "same" else v) for k, v in kwargs.items()}
    if kwargs.get("requires_grad") and not (dtype.is_floating_point or dtype.is_complex):
        kwargs["requires_grad"] = False  # may_require_grad(dtype)
    original = _asarray_original(dtype)
    arr = original.numpy()
    result = tb.to_torch(arr, **kwargs)
    assert isinstance(result, torch.Tensor)
    assert result.data_ptr() == arr.ctypes.data
    assert_same_tensor(result.detach(), original)
    assert result.requires_grad == bool(kwargs.get("requires_grad", False))
    if result.requires_grad:
        assert result.is_leaf


@pytest.mark.parametrize("dtype", ASARRAY_DTYPES, ids=ASARRAY_IDS)
def test_alias_from_buffer(dtype):
    """Adapts TestAsArray.test_alias_from_buffer: a writable memoryview of an array aliases it."""
    original = _asarray_original(dtype, shape=(5,))
    arr = original.numpy()
    for kwargs in ({}, {"dtype": dtype}, {"dtype": dtype, "copy": False}):
        result = tb.to_torch(memoryview(arr), **kwargs)
        assert_same_tensor(result, original)
        assert result.data_ptr() == arr.ctypes.data


@pytest.mark.parametrize("dtype", ASARRAY_DTYPES, ids=ASARRAY_IDS)
def test_copy_from_numpy(dtype):
    """Adapts TestAsArray.test_copy_from_numpy: copy=True never aliases; other dtypes cast."""
    original = _asarray_original(dtype)
    arr = original.numpy()
    for kwargs in ({"copy": True}, {"device": "cpu", "copy": True}, {"dtype": dtype, "copy": True}):
        result = tb.to_torch(arr, **kwargs)
        assert result.data_ptr() != arr.ctypes.data
        assert_same_tensor(result, original)
    targets = [*ASARRAY_DTYPES, torch.bfloat16]
    for other in targets:
        if other == dtype:
            continue
        for copy in (None, True):
            if dtype.is_complex and not other.is_complex:
                with pytest.raises(tb.LossyConversionError):  # SPEC: complex → real raises
                    tb.to_torch(arr, dtype=other, copy=copy)
                continue
            result = tb.to_torch(arr, dtype=other, copy=copy)
            assert_same_tensor(result, original.to(other))
            assert not np_shares(result, arr)
        with pytest.raises((tb.CopyRequiredError, tb.LossyConversionError)):
            tb.to_torch(arr, dtype=other, copy=False)


@pytest.mark.parametrize("dtype", ASARRAY_DTYPES, ids=ASARRAY_IDS)
def test_copy_from_buffer(dtype):
    """Adapts TestAsArray.test_copy_from_buffer: copy=True on a memoryview never aliases."""
    original = _asarray_original(dtype, shape=(5,))
    arr = original.numpy()
    result = tb.to_torch(memoryview(arr), dtype=dtype, copy=True)
    assert_same_tensor(result, original)
    assert result.data_ptr() != arr.ctypes.data


COPY_LIST_DTYPES = [*ASARRAY_DTYPES, torch.bfloat16]


@pytest.mark.parametrize(
    "dtype", COPY_LIST_DTYPES, ids=[str(d).removeprefix("torch.") for d in COPY_LIST_DTYPES]
)
def test_copy_list(dtype):
    """Adapts TestAsArray.test_copy_list: ``t.tolist()`` with ``dtype=`` rebuilds ``t`` exactly."""
    original = _asarray_original(dtype)
    for kwargs in ({}, {"copy": True}, {"requires_grad": False}):
        result = tb.to_torch(original.tolist(), dtype=dtype, **kwargs)
        assert_same_tensor(result, original)


def test_unsupported_alias():
    """Adapts TestAsArray.test_unsupported_alias: copy=False refuses casts and Python lists."""
    arr = np.ones((5, 5), dtype=np.float32)
    with pytest.raises(tb.CopyRequiredError):
        tb.to_torch(arr, dtype=torch.float64, copy=False)
    with pytest.raises(tb.CopyRequiredError):
        tb.to_torch(arr.tolist(), copy=False)
    with pytest.raises(tb.CopyRequiredError):
        tb.to_torch(np.float32(1.0), copy=False)  # design.md: NumPy scalars are values


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64], ids=["float32", "complex64"])
@pytest.mark.parametrize(
    ("kwargs", "keeps_graph"),
    [
        pytest.param({}, True, id="default"),
        pytest.param({"requires_grad": True}, True, id="requires_grad=True"),
        pytest.param({"copy": True}, True, id="copy=True"),
        pytest.param({"requires_grad": True, "copy": True}, True, id="requires_grad=True-copy"),
        pytest.param({"requires_grad": False}, False, id="requires_grad=False"),
        pytest.param({"requires_grad": False, "copy": True}, False, id="requires_grad=False-copy"),
    ],
)
def test_retain_autograd_history(dtype, kwargs, keeps_graph):
    """Adapts TestAsArray.test_retain_autograd_history to SPEC: None keeps, False detaches."""
    original = torch.ones(5, 5, dtype=dtype, requires_grad=True)
    cloned = original.clone()  # grad_fn=<CloneBackward0>
    a = tb.to_torch(cloned, **kwargs)
    assert a.requires_grad == keeps_graph
    assert (a.grad_fn is not None) == keeps_graph
    assert np_shares(a, cloned) != bool(kwargs.get("copy"))


ASTENSOR_EXAMPLES = [
    pytest.param(True, id="True"),
    pytest.param(42, id="42"),
    pytest.param(1.0, id="1.0"),
    pytest.param([True, True, False], id="bools"),
    pytest.param([1, 2, 3, 42], id="ints"),
    pytest.param([0.0, 1.0, 2.0, 3.0], id="floats"),
    pytest.param([True, False, 0], id="bool-int"),
    pytest.param([0.0, True, False], id="float-bool"),
    pytest.param([0, 1.0, 42], id="int-float"),
    pytest.param([0.0, True, False, 42], id="float-bool-int"),
    pytest.param([0.0, True, False, 42, 5j], id="with-complex"),
]


@pytest.mark.parametrize("example", ASTENSOR_EXAMPLES)
def test_astensor_consistency(example):
    """Adapts TestAsArray.test_astensor_consistency: Python data matches ``torch.as_tensor``."""
    assert_same_tensor(tb.to_torch(example), torch.as_tensor(example))


@pytest.mark.parametrize(
    ("scalar", "kw", "expected"),
    [
        pytest.param(np.float64(0.5), {}, torch.tensor(0.5, dtype=torch.float64), id="float64"),
        pytest.param(np.float32(0.5), {}, torch.tensor(0.5, dtype=torch.float32), id="float32"),
        pytest.param(np.int32(7), {}, torch.tensor(7, dtype=torch.int32), id="int32"),
        pytest.param(np.bool_(True), {}, torch.tensor(True), id="bool"),
        pytest.param(
            np.array(1.0), {"dtype": torch.int32}, torch.tensor(1, dtype=torch.int32),
            id="0d-array-as-int32",
        ),
    ],
)  # fmt: skip
def test_asarray_numpy_scalars(scalar, kw, expected):
    """Adapts TestAsArray.test_numpy_scalars: NumPy scalars and 0-d arrays give 0-d tensors."""
    out = tb.to_torch(scalar, **kw)
    assert out.dim() == 0
    assert_same_tensor(out, expected)


@pytest.mark.parametrize(
    ("make", "shared"),
    [
        pytest.param(lambda: bytes(range(8)), False, id="bytes-read-only"),
        pytest.param(lambda: bytearray(range(8)), True, id="bytearray-writable"),
        pytest.param(lambda: np.arange(8, dtype=np.uint8).tobytes(), False, id="tobytes"),
    ],
)
def test_buffer_protocol(make, shared):
    """Adapts TestBufferProtocol: writable buffers are shared, read-only ones copied, no warning."""
    buf = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = tb.to_torch(buf)
    assert_same_tensor(out, torch.arange(8, dtype=torch.uint8))
    before = bytes(buf)
    out[0] = 200
    assert (bytes(buf) != before) == shared
