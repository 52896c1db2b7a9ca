"""Copy semantics: every row of SPEC's "What must convert" under each of the three copy modes.

View or copy is decided by mutation (flip a bit of the output, watch the input) and, where the data
is strided memory, also by plain ``np.shares_memory`` on NumPy views of both sides.
"""

from __future__ import annotations

import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch

import tensorbridge as tb
from helpers import (
    ArrayInterfaceOnly,
    DLPackOnly,
    array_from_tensor,
    assert_ndarray_identical,
    assert_tensor_identical,
    mutation_shares,
    np_shares,
    quiet,
    sample_array,
    sample_tensor,
    tensor_from_array,
)

COPY_MODES = [pytest.param(None, id="copy-None"), pytest.param(True, id="copy-True")]


@dataclass
class Case:
    """One input row: how to build it, which memory to watch and the expected result."""

    id: str
    func: str  # "to_numpy" | "to_torch"
    make: Callable[[], tuple[Any, Any]]  # -> (input object, the memory behind it to watch)
    kwargs: dict = field(default_factory=dict)
    probe: bool = True  # safe to write through the output (False for read-only mappings)
    expect: Callable[[], Any] | None = None  # the expected result, when not derivable from memory

    def run(self, obj: Any, copy: bool | None) -> Any:
        return getattr(tb, self.func)(obj, copy=copy, **self.kwargs)

    def expected(self, watched: Any) -> Any:
        """The expected result, computed with plain NumPy/PyTorch from the watched memory."""
        dtype = self.kwargs.get("dtype")
        if self.expect is not None:
            return self.expect()
        if self.func == "to_numpy":
            if isinstance(watched, torch.Tensor):
                exp = array_from_tensor(watched)
            else:
                exp = np.array(np.asarray(watched), order="C", copy=True)
            return exp if dtype is None else exp.astype(dtype)
        if isinstance(watched, torch.Tensor):
            exp = watched.detach().resolve_conj().resolve_neg()
        else:
            a = np.asarray(watched)
            if a.dtype.kind in "mM":
                a = a.view(np.int64)
            exp = tensor_from_array(a)
        return exp if dtype is None else exp.to(dtype)


def check_values(case: Case, out: Any, watched: Any) -> None:
    expected = case.expected(watched)
    if case.func == "to_numpy":
        assert_ndarray_identical(out, expected)
    else:
        assert_tensor_identical(out, expected)


def strided_shares(out: Any, watched: Any) -> bool:
    """np.shares_memory on byte views; False when the watched input is not strided memory."""
    if isinstance(watched, torch.Tensor) and (
        watched.layout != torch.strided or watched.is_quantized
    ):
        return False
    return np_shares(out, watched)


# ------------------------------------------------------------------ builders


def _t(make_tensor: Callable[[], torch.Tensor]) -> Callable[[], tuple[Any, Any]]:
    def make():
        with quiet():
            t = make_tensor()
        return t, t

    return make


def _a(make_array: Callable[[], np.ndarray]) -> Callable[[], tuple[Any, Any]]:
    def make():
        with quiet():
            a = make_array()
        return a, a

    return make


def _inference() -> torch.Tensor:
    with torch.inference_mode():
        return torch.arange(6.0).reshape(2, 3)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


_DENSE = torch.tensor([[1.0, 0, 0, 2], [0, 0, 3, 0], [0, 4, 0, 0], [5, 0, 0, 6]])


def _memmap(tmp, mode: str):
    def make():
        path = tmp / f"mm-{mode}.dat"
        np.arange(6, dtype=np.float32).tofile(path)
        mm = np.memmap(path, dtype=np.float32, mode=mode, shape=(2, 3))
        return mm, mm

    return make


def _wrapped(wrapper, make_inner):
    def make():
        inner = make_inner()
        return wrapper(inner), inner

    return make


def _matrix():
    with quiet():
        m = np.matrix([[1.0, 2.0], [3.0, 4.0]])
    return m, np.asarray(m)


def _buffer(make_buf, np_dtype):
    def make():
        buf = make_buf()
        return buf, np.frombuffer(buf, dtype=np_dtype)

    return make


def _misaligned() -> np.ndarray:
    buf = np.zeros(4 * 8 + 1, dtype=np.uint8)
    a = buf[1:].view(np.float64)
    a[:] = [1.5, -2.0, 3.25, 0.0]
    return a


def _odd_stride() -> np.ndarray:
    buf = np.arange(32, dtype=np.uint8)
    return np.ndarray(shape=(3,), dtype=np.float32, buffer=buf, strides=(6,))


def _obj_numbers() -> np.ndarray:
    return np.array([1, 2, 3], dtype=object)


# ------------------------------------------------------------------ the rows

SHARE_CASES = [
    # Tensor → ndarray
    Case("torch-float32", "to_numpy", _t(lambda: torch.arange(6.0).reshape(2, 3))),
    Case("torch-requires-grad", "to_numpy", _t(lambda: torch.arange(3.0, requires_grad=True))),
    Case("torch-parameter", "to_numpy", _t(lambda: torch.nn.Parameter(torch.ones(2, 2)))),
    Case("torch-inference-mode", "to_numpy", _t(_inference)),
    Case("torch-column-slice", "to_numpy", _t(lambda: torch.arange(16.0).reshape(4, 4)[:, 1:3])),
    Case("torch-offset", "to_numpy", _t(lambda: torch.arange(16.0).reshape(4, 4)[1:, 2:])),
    Case("torch-transpose", "to_numpy", _t(lambda: torch.arange(6).reshape(2, 3).T)),
    Case("torch-0d", "to_numpy", _t(lambda: torch.tensor(1.5))),
    Case("torch-bool", "to_numpy", _t(lambda: sample_tensor(torch.bool))),
    Case("torch-uint64", "to_numpy", _t(lambda: sample_tensor(torch.uint64))),
    Case("torch-complex128", "to_numpy", _t(lambda: sample_tensor(torch.complex128))),
    Case("torch-bfloat16", "to_numpy", _t(lambda: sample_tensor(torch.bfloat16))),
    Case("torch-float8_e4m3fn", "to_numpy", _t(lambda: sample_tensor(torch.float8_e4m3fn))),
    Case("torch-float8_e8m0fnu", "to_numpy", _t(lambda: sample_tensor(torch.float8_e8m0fnu))),
    Case("torch-complex32", "to_numpy", _t(lambda: sample_tensor(torch.complex32))),
    Case(
        "torch-bfloat16-strided",
        "to_numpy",
        _t(lambda: sample_tensor(torch.bfloat16, (4, 4))[::2, 1:]),
    ),
    Case("numpy-ndarray", "to_numpy", _a(lambda: np.arange(6.0).reshape(2, 3))),
    Case("numpy-negative-strides", "to_numpy", _a(lambda: np.arange(6.0)[::-1])),
    Case("numpy-matrix", "to_numpy", _matrix),
    Case("numpy-dlpack", "to_numpy", _wrapped(DLPackOnly, lambda: np.arange(4.0))),
    Case("torch-dlpack", "to_numpy", _wrapped(DLPackOnly, lambda: torch.arange(4.0))),
    Case("array-interface", "to_numpy", _wrapped(ArrayInterfaceOnly, lambda: np.arange(4))),
    Case("array.array", "to_numpy", _buffer(lambda: array.array("d", [1.0, 2.0]), np.float64)),
    # ndarray → Tensor
    Case("numpy-float64", "to_torch", _a(lambda: np.arange(6.0).reshape(2, 3))),
    Case("numpy-uint16", "to_torch", _a(lambda: sample_array(np.uint16))),
    Case("numpy-uint32", "to_torch", _a(lambda: sample_array(np.uint32))),
    Case("numpy-uint64", "to_torch", _a(lambda: sample_array(np.uint64))),
    Case("numpy-bool", "to_torch", _a(lambda: sample_array(np.bool_))),
    Case("numpy-bfloat16", "to_torch", _a(lambda: sample_array(ml_dtypes.bfloat16))),
    Case("numpy-float8_e5m2", "to_torch", _a(lambda: sample_array(ml_dtypes.float8_e5m2))),
    Case("numpy-float8_e5m2fnuz", "to_torch", _a(lambda: sample_array(ml_dtypes.float8_e5m2fnuz))),
    Case("numpy-complex32", "to_torch", _a(lambda: sample_array(ml_dtypes.complex32))),
    Case(
        "numpy-positive-strides", "to_torch", _a(lambda: np.arange(24.0).reshape(4, 6)[1:, ::2].T)
    ),
    Case("numpy-0d", "to_torch", _a(lambda: np.array(2.5))),
    Case("numpy-matrix", "to_torch", _matrix),
    Case("numpy-dlpack", "to_torch", _wrapped(DLPackOnly, lambda: np.arange(4.0))),
    Case("torch-dlpack", "to_torch", _wrapped(DLPackOnly, lambda: torch.arange(4.0))),
    Case("array-interface", "to_torch", _wrapped(ArrayInterfaceOnly, lambda: np.arange(4))),
    Case("bytearray", "to_torch", _buffer(lambda: bytearray(b"\x01\x02\x03"), np.uint8)),
    Case("array.array", "to_torch", _buffer(lambda: array.array("f", [1.0, 2.0]), np.float32)),
    Case(
        "datetime-as-int64",
        "to_torch",
        _a(lambda: np.array(["2020-01-01", "2021-01-01"], dtype="datetime64[D]")),
        kwargs={"dtype": torch.int64},
    ),
    Case("torch-tensor", "to_torch", _t(lambda: torch.arange(4.0))),
    Case("torch-requires-grad", "to_torch", _t(lambda: torch.arange(4.0, requires_grad=True))),
    Case("torch-bfloat16", "to_torch", _t(lambda: sample_tensor(torch.bfloat16))),
    Case(
        "torch-detach",
        "to_torch",
        _t(lambda: torch.arange(4.0, requires_grad=True)),
        kwargs={"requires_grad": False},
    ),
]

COPY_CASES = [
    # Tensor → ndarray
    Case("torch-conj", "to_numpy", _t(lambda: torch.tensor([1 + 2j, 3 - 4j]).conj())),
    Case("torch-neg", "to_numpy", _t(lambda: torch.tensor([1 + 2j, 3 - 4j]).conj().imag)),
    Case("torch-sparse-coo", "to_numpy", _t(lambda: _DENSE.to_sparse())),
    Case("torch-sparse-csr", "to_numpy", _t(lambda: _DENSE.to_sparse_csr())),
    Case("torch-sparse-csc", "to_numpy", _t(lambda: _DENSE.to_sparse_csc())),
    Case("torch-sparse-bsr", "to_numpy", _t(lambda: _DENSE.to_sparse_bsr((2, 2)))),
    Case("torch-sparse-bsc", "to_numpy", _t(lambda: _DENSE.to_sparse_bsc((2, 2)))),
    Case(
        "torch-quantized",
        "to_numpy",
        _t(lambda: torch.quantize_per_tensor(torch.tensor([0.5, 1.0]), 0.5, 0, torch.quint8)),
    ),
    Case("torch-cast", "to_numpy", _t(lambda: torch.arange(4.0)), kwargs={"dtype": np.float64}),
    # ndarray → Tensor
    Case("numpy-negative-strides", "to_torch", _a(lambda: np.arange(12.0).reshape(3, 4)[::-1])),
    Case("numpy-big-endian", "to_torch", _a(lambda: np.arange(6, dtype=">i4"))),
    Case("numpy-big-endian-reversed", "to_torch", _a(lambda: np.arange(6, dtype=">f8")[::-1])),
    Case("numpy-misaligned-pointer", "to_torch", _a(_misaligned)),
    Case("numpy-misaligned-stride", "to_torch", _a(_odd_stride)),
    Case(
        "numpy-object-numbers", "to_torch", _a(_obj_numbers), expect=lambda: torch.tensor([1, 2, 3])
    ),
    Case("numpy-cast", "to_torch", _a(lambda: np.arange(4.0)), kwargs={"dtype": torch.float32}),
    Case("torch-cast", "to_torch", _t(lambda: torch.arange(4.0)), kwargs={"dtype": torch.float16}),
    Case(
        "torch-conj",
        "to_torch",
        _t(lambda: torch.tensor([1 + 2j]).conj()),
        kwargs={"dtype": torch.complex128},
    ),
]

READONLY_CASES = [
    Case("numpy-readonly", "to_torch", _a(lambda: _readonly(np.arange(4.0)))),
    Case(
        "numpy-frombuffer-bytes",
        "to_torch",
        _a(lambda: np.frombuffer(b"\x01\x02\x03\x04", np.uint8)),
    ),
    Case(
        "numpy-broadcast",
        "to_torch",
        _a(lambda: np.broadcast_to(np.arange(3.0), (2, 3))),
        probe=False,
    ),
    Case("bytes", "to_torch", _buffer(lambda: b"\x01\x02\x03", np.uint8), probe=False),
]

ALL_CASES = SHARE_CASES + COPY_CASES + READONLY_CASES


def _ids(cases):
    return [f"{c.func}-{c.id}" for c in cases]


# ------------------------------------------------------------------ shareable rows


@pytest.mark.parametrize("case", SHARE_CASES, ids=_ids(SHARE_CASES))
def test_copy_none_shares(case):
    """``copy=None`` shares memory when it is possible and safe (mutation shows through)."""
    obj, watched = case.make()
    out = case.run(obj, None)
    check_values(case, out, watched)
    assert strided_shares(out, watched)
    assert mutation_shares(out, watched)


@pytest.mark.parametrize("case", SHARE_CASES, ids=_ids(SHARE_CASES))
def test_copy_false_shares(case):
    """``copy=False`` shares memory and does not raise when sharing is possible."""
    obj, watched = case.make()
    out = case.run(obj, False)
    check_values(case, out, watched)
    assert strided_shares(out, watched)
    assert mutation_shares(out, watched)


@pytest.mark.parametrize("case", ALL_CASES, ids=_ids(ALL_CASES))
def test_copy_true_never_shares(case):
    """``copy=True`` never shares memory with the input, whatever the input."""
    obj, watched = case.make()
    out = case.run(obj, True)
    check_values(case, out, watched)
    assert not strided_shares(out, watched)
    if case.probe:
        assert not mutation_shares(out, watched)


# ------------------------------------------------------------------ rows that need a copy


@pytest.mark.parametrize("case", COPY_CASES, ids=_ids(COPY_CASES))
def test_copy_none_copies_when_needed(case):
    """``copy=None`` copies, and gives the right values, when sharing is impossible."""
    obj, watched = case.make()
    out = case.run(obj, None)
    check_values(case, out, watched)
    assert not strided_shares(out, watched)
    assert not mutation_shares(out, watched)


@pytest.mark.parametrize("case", COPY_CASES, ids=_ids(COPY_CASES))
def test_copy_false_raises_when_copy_needed(case):
    """``copy=False`` raises CopyRequiredError (a ValueError) when a copy would be needed."""
    obj, _ = case.make()
    with pytest.raises(tb.CopyRequiredError) as ei:
        case.run(obj, False)
    assert isinstance(ei.value, ValueError)
    assert "copy" in str(ei.value)


# ------------------------------------------------------------------ read-only inputs


@pytest.mark.parametrize("case", READONLY_CASES, ids=_ids(READONLY_CASES))
def test_readonly_copy_none_copies(case):
    """A read-only input is copied under ``copy=None``: the tensor is writable and independent."""
    obj, watched = case.make()
    out = case.run(obj, None)
    check_values(case, out, watched)
    assert not strided_shares(out, watched)
    if case.probe:
        assert not mutation_shares(out, watched)


@pytest.mark.parametrize("case", READONLY_CASES, ids=_ids(READONLY_CASES))
def test_readonly_copy_false_shares_without_warning(case):
    """``copy=False`` shares a read-only input, without a warning (filterwarnings=error)."""
    obj, watched = case.make()
    out = case.run(obj, False)
    check_values(case, out, watched)
    assert strided_shares(out, watched)


def test_readonly_memmap_copy_modes(tmp_path):
    """A read-only memmap is copied under ``copy=None`` and shared under ``copy=False``."""
    path = tmp_path / "ro.dat"
    np.arange(6, dtype=np.float32).tofile(path)
    mm = np.memmap(path, dtype=np.float32, mode="r", shape=(6,))
    assert not np_shares(tb.to_torch(mm), mm)
    assert np_shares(tb.to_torch(mm, copy=False), mm)
    assert not np_shares(tb.to_torch(mm, copy=True), mm)


@pytest.mark.parametrize("copy", [None, False], ids=["copy-None", "copy-False"])
def test_writable_memmap_is_shared(tmp_path, copy):
    """A writable memmap is shared under ``copy=None`` and ``copy=False``."""
    mm = np.memmap(tmp_path / "rw.dat", dtype=np.float32, mode="w+", shape=(2, 3))
    mm[:] = 1.0
    out = tb.to_torch(mm, copy=copy)
    assert np_shares(out, mm)
    assert mutation_shares(out, mm)
    del out, mm


def test_writable_memmap_copy_true(tmp_path):
    """``copy=True`` on a writable memmap gives an independent tensor."""
    mm = np.memmap(tmp_path / "rw.dat", dtype=np.float32, mode="w+", shape=(3,))
    out = tb.to_torch(mm, copy=True)
    assert not np_shares(out, mm)
    del mm


# ------------------------------------------------------------------ inputs with no memory to share


@pytest.mark.parametrize("copy", COPY_MODES)
@pytest.mark.parametrize("func", ["to_numpy", "to_torch"])
@pytest.mark.parametrize(
    "obj",
    [
        pytest.param([1, 2, 3], id="list"),
        pytest.param(2.5, id="float"),
        pytest.param(np.float32(2.5), id="np.float32"),
    ],
)
def test_python_values_and_scalars_convert_under_none_and_true(obj, func, copy):
    """Python values and NumPy scalars convert under ``copy=None`` and ``copy=True``."""
    out = getattr(tb, func)(obj, copy=copy)
    assert out.shape == np.asarray(obj).shape


@pytest.mark.parametrize("func", ["to_numpy", "to_torch"])
def test_python_list_copy_false_raises(func):
    """A Python list always needs a new buffer: ``copy=False`` raises (as ``np.asarray`` does)."""
    with pytest.raises(tb.CopyRequiredError):
        getattr(tb, func)([1.0, 2.0], copy=False)


@pytest.mark.parametrize("copy", [None, True, False], ids=["copy-None", "copy-True", "copy-False"])
@pytest.mark.parametrize("func", ["to_numpy", "to_torch"])
def test_empty_inputs_convert_under_every_mode(func, copy):
    """An empty tensor or array converts under every copy mode."""
    src = torch.empty(0, 3) if func == "to_numpy" else np.empty((0, 3), dtype=np.float32)
    out = getattr(tb, func)(src, copy=copy)
    assert tuple(out.shape) == (0, 3)


@pytest.mark.parametrize("layout", [torch.jagged], ids=["jagged"])
def test_nested_copy_true_shares_nothing(layout):
    """``copy=True`` on a nested tensor gives arrays that share nothing with its buffer."""
    with quiet():
        nt = torch.nested.nested_tensor([torch.arange(2.0), torch.arange(3.0)], layout=layout)
    out = tb.to_numpy(nt, copy=True)
    values = nt.values()
    assert not any(np_shares(part, values) for part in out)


def test_copy_false_names_every_reason():
    """``copy=False`` names every reason a copy is needed (byte order and negative strides)."""
    a = np.arange(6, dtype=">f4")[::-1]
    with pytest.raises(tb.CopyRequiredError) as ei:
        tb.to_torch(a, copy=False)
    msg = str(ei.value).lower()
    assert "byte" in msg
    assert "stride" in msg or "negative" in msg


def test_copy_false_names_cast_and_readonly_is_not_a_reason():
    """A cast is named as the reason; read-only-ness is not a reason under ``copy=False``."""
    a = np.arange(4.0)
    a.flags.writeable = False
    with pytest.raises(tb.CopyRequiredError) as ei:
        tb.to_torch(a, dtype=torch.float32, copy=False)
    msg = str(ei.value).lower()
    assert "dtype" in msg or "cast" in msg
