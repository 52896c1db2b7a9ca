"""``tb.collate`` (SPEC: "`collate` — batches for training loops"): equal to ``default_collate`` on
what it accepts, plus the inputs it warns or fails on, one copy per sample, and errors that name the
path and the sample. References are built with plain NumPy and PyTorch."""

from __future__ import annotations

import array
import collections
import dataclasses
import re
import tracemalloc
import types
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import default_collate

import tensorbridge as tb
from helpers import DTYPES, byte_view, np_shares, quiet, sample_array, tensor_from_array
from strategies import numpy_views

Point = collections.namedtuple("Point", ["x", "y"])


@dataclasses.dataclass
class Sample:
    image: Any
    label: Any
    note: Any = None


@dataclasses.dataclass(frozen=True)
class Frozen:
    x: Any
    y: Any


def same(a: Any, b: Any) -> None:
    """Assert ``a`` and ``b`` have the same structure types, dtypes, shapes and bits."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert (a.dtype, a.shape, a.device) == (b.dtype, b.shape, b.device)
        assert byte_view(a.detach()).tobytes() == byte_view(b.detach()).tobytes()
    elif isinstance(a, collections.abc.Mapping):
        assert list(a) == list(b)
        if isinstance(a, collections.defaultdict):
            assert a.default_factory is b.default_factory
        for k in a:
            same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            same(x, y)
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            same(getattr(a, f.name), getattr(b, f.name))
    else:
        assert a == b


def _arrays(dtype: Any, n: int = 3, shape: tuple[int, ...] = (2, 3)) -> list[np.ndarray]:
    return [sample_array(np.dtype(dtype), shape) + np.asarray(i).astype(dtype) for i in range(n)]


# Everything default_collate accepts, batched side by side.
CORPUS = {
    "tensors-f32": lambda: [torch.arange(6.0).reshape(2, 3) + i for i in range(4)],
    "tensors-int8-noncontig": lambda: [torch.arange(12, dtype=torch.int8).reshape(3, 4).T] * 3,
    "tensors-0d": lambda: [torch.tensor(i) for i in range(5)],
    "tensors-empty": lambda: [torch.empty(0, 3)] * 2,
    "tensors-bool": lambda: [torch.tensor([True, False])] * 2,
    "tensors-bf16": lambda: [torch.ones(3, dtype=torch.bfloat16) * i for i in range(3)],
    **{
        f"arrays-{dt}": (lambda dt=dt: _arrays(dt))
        for dt in ("bool", "int8", "uint8", "int16", "int32", "int64", "float16", "float32")
    },
    "arrays-float64-0d": lambda: [np.array(1.5), np.array(-2.0)],
    "arrays-complex128": lambda: _arrays(np.complex128),
    "arrays-uint16": lambda: _arrays(np.uint16),
    "arrays-empty": lambda: [np.zeros((0, 4), np.float32)] * 3,
    "numpy-scalars-f32": lambda: [np.float32(1.5), np.float32(-2)],
    "numpy-scalars-int16": lambda: [np.int16(3), np.int16(-4)],
    "numpy-scalars-bool": lambda: [np.bool_(True), np.bool_(False)],
    "numpy-scalars-f64": lambda: [np.float64(0.1), np.float64(2)],
    "ints": lambda: [1, 2, -3],
    "floats": lambda: [0.1, 2.5, -1e300],
    "bools": lambda: [True, False, True],
    "float-first-then-int": lambda: [1.5, 2],
    "strs": lambda: ["a", "b"],
    "bytes": lambda: [b"a", b"b"],
    "dicts": lambda: [{"x": np.ones(2) * i, "y": i, "name": f"s{i}"} for i in range(3)],
    "ordered-dicts": lambda: [collections.OrderedDict(b=i, a=float(i)) for i in range(3)],
    "defaultdicts": lambda: [collections.defaultdict(list, x=np.ones(3), y=1)] * 2,
    "user-dicts": lambda: [collections.UserDict(x=np.ones(2), y=2)] * 2,
    "mappingproxy": lambda: [types.MappingProxyType({"x": 1, "y": 2.0})] * 2,
    "namedtuples": lambda: [Point(np.arange(3) + i, float(i)) for i in range(3)],
    "tuples": lambda: [(np.ones(2), 1, "a"), (np.zeros(2), 2, "b")],
    "lists": lambda: [[1, 2.0, torch.ones(2)], [3, 4.0, torch.zeros(2)]],
    "nested": lambda: [
        {"a": [np.ones(2) * i, {"b": (i, f"s{i}", b"x")}], "c": Point(i, torch.tensor(i))}
        for i in range(3)
    ],
    "tuple-of-samples": lambda: tuple({"x": np.ones(2)} for _ in range(2)),
    "memmap-free-subclass": lambda: [np.arange(4).view(np.ndarray)] * 2,
}


@pytest.mark.parametrize("name", list(CORPUS))
def test_equals_default_collate(name):
    """On every input default_collate accepts, collate gives the same types, dtypes and bits."""
    samples = CORPUS[name]()
    same(tb.collate(samples), default_collate(samples))


def test_tensors_requiring_grad_stay_on_the_graph():
    """Tensors that require grad are stacked on the graph, as default_collate stacks them."""
    w = torch.ones(3, requires_grad=True)
    batch = tb.collate([w * 2, w * 3])
    batch.sum().backward()
    assert w.grad is not None and torch.equal(w.grad, torch.full((3,), 5.0))
    w.grad = None
    padded = tb.collate([w * 2, w[:2] * 3], ragged="pad")
    same(padded.detach(), torch.tensor([[2.0, 2.0, 2.0], [3.0, 3.0, 0.0]]))
    padded.sum().backward()
    assert torch.equal(w.grad, torch.tensor([5.0, 5.0, 2.0]))


def test_grad_samples_cast_or_beside_fixable_arrays_take_one_pass():
    """Tensors that require grad, cast or beside read-only / negative-stride arrays, are copied
    once each into the batch (no stack-then-cast second pass) and keep their gradients."""
    w = torch.ones(3, requires_grad=True)
    flipped = _read_only(np.arange(3.0))[::-1]
    batch = tb.collate([w * 2, flipped], float_dtype=torch.float32)
    expected = torch.stack([torch.full((3,), 2.0), torch.tensor([2.0, 1.0, 0.0])])
    same(batch.detach(), expected)
    assert batch.grad_fn is not None and "ToCopy" not in batch.grad_fn.name()
    batch.sum().backward()
    assert torch.equal(w.grad, torch.full((3,), 2.0))
    w.grad = None
    cast = tb.collate([w * 2, w * 3], dtype=torch.float64)
    same(cast.detach(), torch.stack([torch.full((3,), 2.0), torch.full((3,), 3.0)]).double())
    assert "ToCopy" not in cast.grad_fn.name()  # a cast after torch.stack is a second pass
    cast.sum().backward()
    assert torch.equal(w.grad, torch.full((3,), 5.0))
    plan = tb.explain([w * 2, flipped], to="collate", float_dtype=torch.float32)
    assert (plan.copies, plan.bytes_copied) == (1, batch.nbytes)
    assert "fixed in the same pass" in str(plan)


# --- inputs default_collate warns or fails on ---------------------------------------------


def _read_only(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


def _misaligned(a: np.ndarray) -> np.ndarray:
    buf = np.zeros(a.nbytes + 1, np.uint8)[1:]
    out = buf.view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


FIXES = {
    "read-only": _read_only,
    "negative-strides": lambda a: a[::-1, ::-1].copy()[::-1, ::-1],
    "big-endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "misaligned": _misaligned,
    "frombuffer": lambda a: np.frombuffer(a.tobytes(), a.dtype).reshape(a.shape),
    "broadcast": lambda a: np.broadcast_to(a, (1, *a.shape))[0],
}


@pytest.mark.parametrize("fix", list(FIXES))
@pytest.mark.parametrize("dtype", ["float32", "int16", "float64", "complex64"])
def test_fixable_arrays_batch_exactly(fix, dtype):
    """Read-only, negative-stride, big-endian and misaligned arrays batch to the exact values."""
    plain = _arrays(dtype)
    samples = [FIXES[fix](a) for a in plain]
    expected = default_collate(plain)
    same(tb.collate(samples), expected)


@pytest.mark.parametrize("fix", list(FIXES))
def test_fixable_arrays_cast_exactly(fix):
    """With ``float_dtype``, fixable arrays are cast in the one copy, as PyTorch casts them."""
    plain = _arrays(np.float64)
    samples = [FIXES[fix](a) for a in plain]
    expected = default_collate(plain).to(torch.float16)
    same(tb.collate(samples, float_dtype=torch.float16), expected)


def test_mixed_leaf_kinds_in_one_field():
    """A field mixing tensors, arrays, NumPy scalars and numbers of one dtype batches by value."""
    samples = [torch.tensor(1), np.array(2), np.int64(3), 4, _read_only(np.array(5))]
    same(tb.collate(samples), torch.tensor([1, 2, 3, 4, 5]))
    w = torch.ones(2, requires_grad=True)
    batch = tb.collate([w, _read_only(np.ones(2, np.float32))[::-1]])
    assert batch.requires_grad and torch.equal(batch.detach(), torch.ones(2, 2))


def test_bgr_flip_batches_without_error():
    """A BGR→RGB flip (``[..., ::-1]``), which default_collate cannot stack, batches exactly."""
    images = [np.arange(24, dtype=np.uint8).reshape(2, 4, 3) + i for i in range(3)]
    flipped = [im[..., ::-1] for im in images]
    with pytest.raises(ValueError):
        default_collate(flipped)
    expected = torch.from_numpy(np.stack([np.ascontiguousarray(f) for f in flipped]))
    same(tb.collate(flipped), expected)


@pytest.mark.parametrize("row", [r for r in DTYPES if r.is_ml], ids=lambda r: r.name)
def test_ml_dtypes_arrays_batch_as_their_torch_dtype(row):
    """bfloat16 and float8 arrays batch into the PyTorch dtype of the same bits."""
    samples = [sample_array(row.np_dtype, (2, 2)) for _ in range(3)]
    with quiet():
        expected = torch.stack([tensor_from_array(a) for a in samples])
    same(tb.collate(samples), expected)


def test_memmap_samples(tmp_path):
    """Samples sliced from a read-only memmap (a memory-mapped dataset) batch with no warning."""
    data = np.arange(40, dtype=np.float32).reshape(4, 10)
    path = tmp_path / "data.npy"
    np.save(path, data)
    mm = np.load(path, mmap_mode="r")
    same(tb.collate([mm[i] for i in range(4)]), torch.from_numpy(data.copy()))


@settings(max_examples=60, deadline=None)
@given(view=numpy_views(), n=st.integers(1, 4), read_only=st.booleans())
def test_any_view_batches_bit_exact(view, n, read_only):
    """Any NumPy view (strides, offsets, byte order, NaN payloads) batches bit for bit."""
    samples = [view.copy() if i % 2 else view for i in range(n)]
    if read_only:
        view.flags.writeable = False
    with quiet():
        expected = torch.stack([tensor_from_array(a) for a in samples])
    same(tb.collate(samples), expected)


# --- one copy, straight into the batch --------------------------------------------------


def test_batch_never_shares_memory_with_a_sample():
    """The batch is a fresh tensor: writing to it never changes a sample (tensors and arrays)."""
    arrays = [np.ones(4) for _ in range(3)]
    tensors = [torch.ones(4) for _ in range(3)]
    for samples in (arrays, tensors):
        batch = tb.collate(samples)
        assert not any(np_shares(batch, s) for s in samples)


def test_one_copy_per_sample_in_memory():
    """Batching fixable arrays allocates the batch and nothing of its size beside it."""
    samples = [np.ones((256, 1024), np.float32)[::-1] for _ in range(8)]  # 8 MiB in all
    batch_bytes = sum(a.nbytes for a in samples)
    tb.collate(samples)  # warm up
    tracemalloc.start()
    try:
        batch = tb.collate(samples)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert batch.nbytes == batch_bytes
    assert peak < batch_bytes * 1.1, peak  # a stack of converted copies would be twice that


def test_batch_in_shared_memory_inside_a_worker(monkeypatch):
    """Inside a DataLoader worker every batched tensor is allocated in shared memory."""
    import torch.utils.data

    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: object())
    samples = [
        {"x": np.ones((2, 3), ">f4")[:, ::-1], "y": i, "t": torch.ones(2), "b": np.ones(2, "u2")}
        for i in range(3)
    ]
    batch = tb.collate(samples)
    for key in ("x", "y", "t", "b"):
        assert batch[key].is_shared(), key
    same(batch["x"], torch.ones(3, 2, 3))
    same(batch["b"], torch.ones(3, 2, dtype=torch.uint16))
    plan = tb.explain(samples, to="collate")
    assert "shared memory" in str(plan)


def test_batch_outside_a_worker_is_not_shared():
    """In the main process the batch is ordinary memory (no shared-memory segment per batch)."""
    assert not tb.collate([np.ones(2), np.ones(2)]).is_shared()


# --- dtype and float_dtype ----------------------------------------------------------------


def test_float_dtype_casts_floats_and_keeps_labels():
    """``float_dtype`` casts float arrays, tensors and numbers; integer labels stay int64."""
    samples = [{"x": np.full(2, 0.1), "t": torch.full((1,), 0.1, dtype=torch.float64),
                "s": 0.1, "label": i} for i in range(2)]  # fmt: skip
    batch = tb.collate(samples, float_dtype=torch.float32)
    same(batch["x"], torch.full((2, 2), 0.1, dtype=torch.float64).to(torch.float32))
    same(batch["t"], torch.full((2, 1), 0.1, dtype=torch.float64).to(torch.float32))
    same(batch["s"], torch.tensor([0.1, 0.1], dtype=torch.float32))
    same(batch["label"], torch.tensor([0, 1]))


def test_dtype_casts_every_leaf_with_pytorch_casting():
    """``dtype`` casts every leaf; values are PyTorch's cast of the same data."""
    data = np.array([[-1.7, 2.5, 300.2], [0.49, -0.5, 1e4]])
    samples = [data, data[::-1].copy()[::-1], data.astype(">f8")]
    expected = torch.from_numpy(np.stack([data] * 3)).to(torch.float16)
    same(tb.collate(samples, dtype=torch.float16), expected)
    same(tb.collate(samples, dtype="int16"), torch.from_numpy(np.stack([data] * 3)).to(torch.int16))


def test_python_numbers_built_in_the_asked_dtype():
    """Python floats are built in the asked dtype directly, never through a narrower one."""
    same(
        tb.collate([0.1, 1e300], dtype=torch.float64),
        torch.tensor([0.1, 1e300], dtype=torch.float64),
    )
    same(tb.collate([1, 2], dtype="bfloat16"), torch.tensor([1, 2], dtype=torch.bfloat16))


MIXED_NUMBERS = [
    [1, 2.5],
    [1, 0.1, 1e300],
    [2.5, 1],
    [True, 2],
    [1, True],
    [True, 0.5],
    [True, -0.0],
    [1, 1j],
    [2**70, 0.5],
]


@pytest.mark.parametrize("samples", MIXED_NUMBERS, ids=repr)
def test_python_numbers_of_mixed_kinds_equal_default_collate(samples):
    """A field mixing Python bools, ints, floats (and complex after an int) batches in the dtype
    default_collate gives: float64 when a float comes first, PyTorch's inferred dtype otherwise."""
    same(tb.collate(samples), default_collate(samples))
    plan = tb.explain(samples, to="collate")
    assert str(default_collate(samples).dtype) in plan.leaves["batch"].steps[0]


def test_mixed_numbers_follow_the_default_dtype():
    """With ``torch.set_default_dtype(torch.float64)``, an int-first mixed field is float64, as in
    default_collate (``torch.tensor`` infers the default dtype)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for samples in ([1, 0.1], [1, 1j]):
            same(tb.collate(samples), default_collate(samples))
    finally:
        torch.set_default_dtype(old)


def test_complex_to_real_is_lossy():
    """Casting complex samples to a real dtype raises ``LossyConversionError``."""
    samples = [{"z": np.ones(2, np.complex64)}] * 2
    with pytest.raises(tb.LossyConversionError, match=r"samples\[0\]\[\"z\"\].*\.real"):
        tb.collate(samples, dtype=torch.float32)
    assert tb.collate(samples, dtype=torch.complex128)["z"].dtype == torch.complex128
    same(
        tb.collate([{"z": s["z"].real} for s in samples], dtype=torch.float32)["z"],
        torch.ones(2, 2),
    )


def test_float_dtype_must_be_floating():
    """A non-floating ``float_dtype`` is a plain TypeError (an argument of the wrong kind)."""
    with pytest.raises(TypeError):
        tb.collate([1.0], float_dtype=torch.int32)


# --- dataclasses, None, strings -----------------------------------------------------------


def test_dataclasses_batch_by_field():
    """Dataclass samples batch field by field into one instance of the same class."""
    samples = [Sample(np.ones(2) * i, i, f"n{i}") for i in range(3)]
    batch = tb.collate(samples)
    assert type(batch) is Sample
    same(batch.image, torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], dtype=torch.float64))
    same(batch.label, torch.tensor([0, 1, 2]))
    assert batch.note == ["n0", "n1", "n2"]
    frozen = tb.collate([Frozen(1, 2.0), Frozen(3, 4.0)])
    assert type(frozen) is Frozen
    same(frozen.x, torch.tensor([1, 3]))


def test_none_batches_into_a_list():
    """``None`` in every sample batches into a list of ``None``, as strings do."""
    batch = tb.collate([{"x": 1, "mask": None}, {"x": 2, "mask": None}])
    assert batch["mask"] == [None, None]
    assert tb.collate([Sample(np.ones(1), 0), Sample(np.ones(1), 1)]).note == [None, None]


@pytest.mark.parametrize(
    "samples",
    [["a", None, "b"], [b"a", None], ["a", 1], ["a", b"b"], [("a", 1), (None, 2)]],
    ids=repr,
)
def test_str_first_field_keeps_every_value_as_default_collate(samples):
    """After a ``str``/``bytes`` first sample the field is the list of every sample's value, as
    default_collate returns it (an optional string that is sometimes ``None`` included)."""
    same(tb.collate(samples), default_collate(samples))
    assert isinstance(tb.explain(samples, to="collate"), tb.Plan)


def test_none_first_then_strings_is_a_list():
    """``None`` first and strings after batch into the list of values (default_collate refuses
    ``None`` first); ``None`` first and a number after is an error naming the sample."""
    assert tb.collate([None, "a", b"b"]) == [None, "a", b"b"]
    with pytest.raises(tb.ConversionError, match=r"samples\[1\].*None"):
        tb.collate([None, 1])


def test_none_beside_an_array_names_the_sample():
    """``None`` in some samples and an array in others is an error naming the sample."""
    samples = [{"mask": np.ones(2)}, {"mask": None}]
    with pytest.raises(tb.ConversionError, match=r"samples\[1\]\[\"mask\"\].*None"):
        tb.collate(samples)
    samples[1]["mask"] = np.zeros(2)  # the fix: the same kind of value in every sample
    same(tb.collate(samples)["mask"], torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=torch.float64))


# --- ragged samples -----------------------------------------------------------------------


def test_ragged_error_names_path_sample_and_both_shapes():
    """Shapes that differ raise naming the path, the sample index and both shapes."""
    samples = [{"tokens": np.arange(5)}, {"tokens": np.arange(5)}, {"tokens": np.arange(3)}]
    with pytest.raises(tb.ConversionError) as info:
        tb.collate(samples)
    msg = str(info.value)
    assert 'samples[2]["tokens"]' in msg and "(3,)" in msg and "(5,)" in msg
    assert 'ragged="pad"' in msg and 'ragged="list"' in msg


def test_ragged_pad_pads_every_axis_with_pad_value():
    """``ragged="pad"`` pads every axis to the largest with ``pad_value`` (the fix works)."""
    a, b = np.ones((2, 3), np.int32), np.full((3, 1), 7, np.int32)[::-1]
    expected = np.full((2, 3, 3), -1, np.int32)
    expected[0, :2, :3] = a
    expected[1, :3, :1] = b
    same(tb.collate([a, b], ragged="pad", pad_value=-1), torch.from_numpy(expected))
    same(tb.collate([{"t": torch.ones(2)}, {"t": torch.ones(1)}], ragged="pad")["t"],
         torch.tensor([[1.0, 1.0], [1.0, 0.0]]))  # fmt: skip


def test_ragged_list_gives_per_sample_tensors():
    """``ragged="list"`` gives a list of per-sample tensors, as to_torch converts each."""
    a, b = np.arange(3.0), np.arange(2.0)[::-1]
    out = tb.collate([{"x": a, "y": 1}, {"x": b, "y": 2}], ragged="list", float_dtype="float32")
    assert isinstance(out["x"], list)
    same(out["x"][0], torch.tensor([0.0, 1.0, 2.0]))
    same(out["x"][1], torch.tensor([1.0, 0.0]))
    same(out["y"], torch.tensor([1, 2]))


def test_ragged_ranks_point_to_list():
    """Different ranks cannot be padded; the error names ``ragged="list"``, which works."""
    samples = [np.ones(2), np.ones((2, 2))]
    with pytest.raises(tb.ConversionError, match='ragged="list"'):
        tb.collate(samples, ragged="pad")
    assert [t.shape for t in tb.collate(samples, ragged="list")] == [(2,), (2, 2)]


def test_pad_value_that_does_not_fit_is_named():
    """A ``pad_value`` the batch's dtype cannot hold is a ``ConversionError`` naming it."""
    samples = [np.ones(2, np.uint8), np.ones(1, np.uint8)]
    with pytest.raises(tb.ConversionError, match="pad_value=-1"):
        tb.collate(samples, ragged="pad", pad_value=-1)
    same(tb.collate(samples, ragged="pad", pad_value=255),
         torch.tensor([[1, 1], [1, 255]], dtype=torch.uint8))  # fmt: skip


@pytest.mark.parametrize(
    "dtype, pad_value",
    [
        (torch.float16, 1e6),
        (torch.float16, 65519.0),
        (torch.float32, 1e39),
        (torch.float8_e4m3fn, 449.0),
        (torch.float8_e4m3fn, float("inf")),
        (torch.complex64, 1e39),
        (torch.float32, 1j),
    ],
    ids=str,
)
def test_pad_value_beyond_a_float_dtype_is_named(dtype, pad_value):
    """A ``pad_value`` beyond a float batch's range (or complex for a real batch) is a
    ``ConversionError`` naming it, never PyTorch's raw overflow error; one it holds works."""
    samples = [torch.zeros(2, dtype=dtype), torch.zeros(1, dtype=dtype)]
    named = re.escape(f"pad_value={pad_value!r}") + f".*{dtype}"
    with pytest.raises(tb.ConversionError, match=named):
        tb.collate(samples, ragged="pad", pad_value=pad_value)
    with pytest.raises(tb.ConversionError, match="pad_value"):
        tb.explain(samples, to="collate", ragged="pad", pad_value=pad_value)
    real = {torch.complex64: torch.float32}.get(dtype, dtype)
    top = torch.finfo(real).max  # the fix: a pad_value the dtype holds
    expected = torch.zeros(2, 2, dtype=dtype)
    expected[1, 1] = top
    same(tb.collate(samples, ragged="pad", pad_value=top), expected)


@pytest.mark.parametrize("pad_value", [np.float32(-1), np.int64(-1), np.float64(-1)], ids=repr)
def test_numpy_scalar_pad_value(pad_value):
    """A NumPy scalar ``pad_value`` pads as the Python number it holds."""
    samples = [np.ones(2, np.float32), np.ones(1, np.float32)]
    same(tb.collate(samples, ragged="pad", pad_value=pad_value),
         torch.tensor([[1.0, 1.0], [1.0, -1.0]]))  # fmt: skip


def test_complex_pad_value_for_a_complex_batch():
    """A complex ``pad_value`` pads a complex batch with both its parts."""
    samples = [np.ones(2, np.complex64), np.ones(1, np.complex64)]
    expected = torch.tensor([[1, 1], [1, 2 - 3j]], dtype=torch.complex64)
    same(tb.collate(samples, ragged="pad", pad_value=2 - 3j), expected)


def test_bad_ragged_is_a_value_error():
    """An unknown ``ragged`` policy is a plain ValueError naming the choices."""
    with pytest.raises(ValueError, match="'pad'"):
        tb.collate([1], ragged="truncate")


# --- structure and dtype errors -----------------------------------------------------------


def test_keys_that_differ_name_the_sample():
    """Samples whose keys differ raise naming the path and the first sample that differs."""
    samples = [{"a": {"x": 1, "y": 2}}, {"a": {"x": 1, "y": 2}}, {"a": {"x": 1, "z": 2}}]
    with pytest.raises(tb.ConversionError) as info:
        tb.collate(samples)
    assert 'samples[2]["a"]' in str(info.value)
    assert "'y'" in str(info.value) and "'z'" in str(info.value)
    samples[2] = {"a": {"x": 1, "y": 2}}  # the fix: the same keys in every sample
    same(tb.collate(samples)["a"]["y"], torch.tensor([2, 2, 2]))


def test_error_paths_spell_keys_as_written():
    """A path names a non-ASCII key as the dataset spells it (``samples[1]["é"]``), as
    ``to_torch`` does, not as an escape."""
    samples = [{"é": np.ones(1)}, {"é": np.ones(2)}]
    with pytest.raises(tb.ConversionError, match=re.escape('at samples[1]["é"]:')):
        tb.collate(samples)
    with pytest.raises(tb.ConversionError, match=re.escape('["é"]')):
        tb.to_torch({"é": np.ma.masked_array([1], [1])})


def test_fields_and_lengths_that_differ_name_the_sample():
    """A different namedtuple type, or a list of another length, names the sample."""
    with pytest.raises(tb.ConversionError, match=r"samples\[1\]"):
        tb.collate([Point(1, 2), (1, 2)])
    with pytest.raises(tb.ConversionError, match=r"samples\[1\]\[0\].*length 1.*np.asarray"):
        tb.collate([([1, 2, 3],), ([1],)])
    fixed = [(np.asarray([1, 2, 3]),), (np.asarray([1]),)]  # the fix: arrays, then ragged=
    same(tb.collate(fixed, ragged="pad"), [torch.tensor([[1, 2, 3], [1, 0, 0]])])


@pytest.mark.parametrize(
    ("first", "other", "fix"),
    [
        (np.ones(2, np.float32), np.ones(2, np.float64), {"float_dtype": torch.float64}),
        (np.ones(2, np.int32), np.ones(2, np.int64), {"dtype": torch.int64}),
        (torch.ones(2, dtype=torch.uint8), np.ones(2, np.float32), {"dtype": torch.float32}),
        (np.float32(1), 2.0, {"float_dtype": torch.float64}),
    ],
    ids=["f32-f64", "i32-i64", "u8-f32", "npscalar-float"],
)
def test_dtypes_that_differ_name_the_fix_which_works(first, other, fix):
    """Leaves of different dtypes raise naming the path, the sample and the ``dtype=`` fix."""
    samples = [{"x": first}, {"x": first}, {"x": other}]
    with pytest.raises(tb.ConversionError) as info:
        tb.collate(samples)
    msg = str(info.value)
    arg, value = next(iter(fix.items()))
    assert 'samples[2]["x"]' in msg and f"{arg}={value}" in msg
    assert tb.collate(samples, **fix)["x"].dtype == value


def test_big_python_int_names_the_sample_and_fix():
    """A Python int beyond int64 names its sample; ``dtype=torch.float64`` (the fix) works."""
    samples = [{"n": 1}, {"n": 2**70}]
    with pytest.raises(tb.ConversionError, match=r"samples\[1\]\[\"n\"\].*dtype=torch.float64"):
        tb.collate(samples)
    same(
        tb.collate(samples, dtype=torch.float64)["n"],
        torch.tensor([1.0, 2.0**70], dtype=torch.float64),
    )


def test_masked_array_is_lossy_with_the_sample_path():
    """A masked array raises ``LossyConversionError`` naming the sample's path and ``.filled()``."""
    samples = [{"x": np.ones(2)}, {"x": np.ones(2)}, {"x": np.ma.masked_array([1.0, 2.0], [0, 1])}]
    with pytest.raises(tb.LossyConversionError, match=r"samples\[2\]\[\"x\"\].*\.filled"):
        tb.collate(samples)
    samples[2]["x"] = samples[2]["x"].filled(0.0)
    same(
        tb.collate(samples)["x"], torch.tensor([[1.0, 1.0]] * 2 + [[1.0, 0.0]], dtype=torch.float64)
    )


def test_long_double_is_lossy_unless_dtype_given():
    """Long double samples raise ``LossyConversionError``; ``dtype=torch.float64`` accepts them."""
    samples = [np.ones(2, np.longdouble)] * 2
    if np.finfo(np.longdouble).bits == 64:
        pytest.skip("long double is float64 on this platform")
    with pytest.raises(tb.LossyConversionError, match=r"samples\[0\].*dtype=torch.float64"):
        tb.collate(samples)
    same(tb.collate(samples, dtype=torch.float64), torch.ones(2, 2, dtype=torch.float64))


def test_datetime_needs_an_integer_dtype():
    """datetime64 samples raise naming ``dtype=``; with an integer dtype they batch as counts."""
    samples = [np.array(["2020-01-01", "2020-01-02"], "datetime64[D]")] * 2
    with pytest.raises(tb.UnsupportedInputError, match=r"samples\[0\].*dtype=torch.int64"):
        tb.collate(samples)
    expected = torch.from_numpy(np.stack(samples).view(np.int64))
    same(tb.collate(samples, dtype=torch.int64), expected)


def test_object_arrays_of_numbers_and_array_protocol_objects():
    """Object arrays of numbers and ``__array__`` objects batch as their numeric arrays."""

    class Wrapped:
        def __init__(self, a: np.ndarray) -> None:
            self.a = a

        def __array__(self, dtype=None, copy=None):
            return self.a

    same(tb.collate([np.array([1, 2], dtype=object)] * 2), torch.tensor([[1, 2], [1, 2]]))
    same(tb.collate([Wrapped(np.ones(2, np.int16))] * 2), torch.ones(2, 2, dtype=torch.int16))


def test_pandas_series_samples():
    """pandas Series samples batch as their values."""
    pd = pytest.importorskip("pandas")
    samples = [pd.Series([1.0, 2.0]), pd.Series([3.0, 4.0])]
    same(tb.collate(samples), torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64))


def test_sparse_tensor_names_to_dense():
    """A sparse tensor sample raises naming ``.to_dense()``, and the fix works."""
    with quiet():
        s = torch.eye(2).to_sparse()
    with pytest.raises(tb.ConversionError, match=r"samples\[0\].*to_dense"):
        tb.collate([s, s])
    same(tb.collate([s.to_dense(), s.to_dense()]), torch.stack([torch.eye(2)] * 2))


def test_str_arrays_and_unknown_objects_are_unsupported():
    """A str array or an object with no array form raises ``UnsupportedInputError`` at its path."""
    with pytest.raises(tb.UnsupportedInputError, match=r"samples\[0\]\[\"s\"\]"):
        tb.collate([{"s": np.array(["a"])}] * 2)
    with pytest.raises(tb.UnsupportedInputError, match=r"samples\[0\]\[\"o\"\]"):
        tb.collate([{"o": object()}] * 2)


def test_empty_and_non_list_samples():
    """No samples, or a dict of columns instead of samples, is an error naming the fix."""
    with pytest.raises(tb.ConversionError, match="empty"):
        tb.collate([])
    samples = iter([np.ones(2), np.ones(2)])
    with pytest.raises(tb.UnsupportedInputError, match=r"list\(samples\)"):
        tb.collate(samples)  # type: ignore[arg-type]
    same(tb.collate(list(samples)), torch.ones(2, 2, dtype=torch.float64))
    with pytest.raises(tb.UnsupportedInputError, match="quantize_per_tensor"):
        tb.collate([1.0], dtype=torch.qint8)
    columns = {"x": np.ones((4, 2)), "y": np.arange(4)}
    with pytest.raises(tb.UnsupportedInputError, match="to_torch"):
        tb.collate(columns)  # type: ignore[arg-type]
    assert tb.to_torch(columns)["x"].shape == (4, 2)


# --- explain ------------------------------------------------------------------------------


def _mixed_samples() -> list[dict[str, Any]]:
    return [
        {
            "image": np.ones((3, 4, 4), np.uint8)[:, :, ::-1],
            "depth": _read_only(np.ones((4, 4), ">f4")),
            "label": i,
            "name": f"s{i}",
            "t": torch.ones(2, dtype=torch.float64),
        }
        for i in range(3)
    ]


def test_explain_reports_what_runs(monkeypatch):
    """The steps collate runs are the steps ``explain(to="collate")`` reports, field by field."""
    from tensorbridge import _collate

    ran: dict[str, tuple[str, ...]] = {}
    original = _collate.run_steps

    def recording(field):
        ran[field.path] = tuple(s.text for s in field.steps)
        return original(field)

    monkeypatch.setattr(_collate, "run_steps", recording)
    samples = _mixed_samples()
    kw = {"float_dtype": torch.float32}
    plan = tb.explain(samples, to="collate", **kw)
    batch = tb.collate(samples, **kw)
    assert {p: leaf.steps for p, leaf in plan.leaves.items()} == ran
    expected_bytes = sum(v.nbytes for v in batch.values() if isinstance(v, torch.Tensor))
    assert plan.bytes_copied == expected_bytes
    assert plan.leaves['batch["image"]'].copies == 1
    assert plan.leaves['batch["name"]'].copies == 0
    text = str(plan)
    for fix in ("negative strides", "read-only", "byte order >f4", "torch.float64 → torch.float32"):
        assert fix in text, fix



def test_core_step_recorder_sees_what_collate_runs():
    """The core's step recorder (``tracing``) sees exactly the steps ``explain`` lists, in order."""
    from tensorbridge._plan import tracing

    samples = [{"x": np.ones((2, 3))[:, ::-1], "y": i, "name": f"s{i}"} for i in range(4)]
    plan = tb.explain(samples, to="collate")
    with tracing() as executed:
        batch = tb.collate(samples)
    listed = [text for leaf in plan.leaves.values() for text in leaf.steps]
    assert [step.text for step, _ in executed] == listed
    assert executed[-1][1] == ["s0", "s1", "s2", "s3"]
    assert batch["name"] == ["s0", "s1", "s2", "s3"]

def test_explain_raises_what_collate_raises():
    """For an input collate refuses, explain raises the same error."""
    samples = [{"x": np.ones(2)}, {"x": np.ones(3)}]
    with pytest.raises(tb.ConversionError) as a:
        tb.collate(samples)
    with pytest.raises(tb.ConversionError) as b:
        tb.explain(samples, to="collate")
    assert (type(a.value), str(a.value)) == (type(b.value), str(b.value))


def test_explain_ragged_list_holds_per_sample_plans():
    """For ``ragged="list"``, explain holds each sample's to_torch plan (read-only: one copy)."""
    samples = [_read_only(np.ones(2)), np.ones(3)]
    plan = tb.explain(samples, to="collate", ragged="list")
    assert plan.leaves["batch[0]"].copies == 1 and plan.leaves["batch[1]"].copies == 0
    out = tb.collate(samples, ragged="list")
    assert not np_shares(out[0], samples[0]) and np_shares(out[1], samples[1])


def test_no_warning_where_default_collate_warns():
    """Read-only arrays make default_collate warn; collate never does (filterwarnings=error)."""
    import subprocess
    import sys

    # PyTorch warns once per process: default_collate is watched in a fresh one.
    code = (
        "import numpy as np; from torch.utils.data import default_collate\n"
        "a = np.ones(2); a.flags.writeable = False; default_collate([a, a])"
    )
    run = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True)
    assert run.returncode != 0 and b"not writable" in run.stderr
    samples = [_read_only(np.ones(2)) for _ in range(2)]
    same(tb.collate(samples), torch.ones(2, 2, dtype=torch.float64))


def test_ml_dtypes_bfloat16_numpy_scalars():
    """ml_dtypes NumPy scalars (bfloat16) batch as bfloat16."""
    same(tb.collate([ml_dtypes.bfloat16(1.5), ml_dtypes.bfloat16(2)]),
         torch.tensor([1.5, 2.0], dtype=torch.bfloat16))  # fmt: skip


def test_bench_cases_report_bytes_copied(capsys):
    """The collate benchmark runs against default_collate and reports the bytes a batch copies."""
    import json

    from tensorbridge.bench import main

    assert main(["--quick", "--rounds", "1", "--filter", "collate: 256 dicts", "--json"]) == 0
    (case,) = json.loads(capsys.readouterr().out)["cases"]
    assert case["status"] in ("PASS", "MISS")
    assert case["extra"]["bytes_copied"] == 256 * 8 * 16 * 4  # every sample copied once


# --- property tests: random schemas, side by side -----------------------------------------

_LEAF_DTYPES = ["bool", "uint8", "int16", "int32", "int64", "float16", "float32", "float64"]


@st.composite
def leaf_schemas(draw):
    """How one leaf is made in every sample: kind, dtype and shape."""
    kind = draw(st.sampled_from(["tensor", "array", "npscalar", "int", "float", "bool", "str"]))
    dtype = draw(st.sampled_from(_LEAF_DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 3), max_size=3)))
    return ("leaf", kind, dtype, shape)


def schemas():
    """A sample's structure: dicts, lists, tuples and namedtuples of leaves."""
    return st.recursive(
        leaf_schemas(),
        lambda inner: st.one_of(
            st.dictionaries(st.sampled_from("abcde"), inner, min_size=1, max_size=3).map(
                lambda d: ("dict", d)
            ),
            st.lists(inner, min_size=1, max_size=3).map(lambda xs: ("list", xs)),
            st.lists(inner, min_size=1, max_size=3).map(lambda xs: ("tuple", xs)),
            st.tuples(inner, inner).map(lambda xy: ("point", xy)),
        ),
        max_leaves=6,
    )


def make(schema, rng: np.random.Generator) -> Any:
    """One sample of ``schema``, with random values."""
    tag = schema[0]
    if tag == "dict":
        return {k: make(v, rng) for k, v in schema[1].items()}
    if tag in ("list", "tuple"):
        items = [make(v, rng) for v in schema[1]]
        return items if tag == "list" else tuple(items)
    if tag == "point":
        return Point(*(make(v, rng) for v in schema[1]))
    _, kind, dtype, shape = schema
    values = np.asarray(np.abs(rng.standard_normal(shape) * 50)).astype(dtype)
    if kind == "tensor":
        return torch.from_numpy(values)
    if kind == "array":
        return values
    scalar = values.reshape(-1)[0] if values.size else np.zeros((), dtype)[()]
    if kind == "npscalar":
        return np.dtype(dtype).type(scalar)
    if kind == "str":
        return str(scalar)
    return {"int": int, "float": float, "bool": bool}[kind](scalar)


@settings(max_examples=80, deadline=None)
@given(schema=schemas(), n=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_random_schemas_equal_default_collate(schema, n, seed):
    """Samples of any (dict, list, tuple, namedtuple) structure batch as default_collate does."""
    rng = np.random.default_rng(seed)
    samples = [make(schema, rng) for _ in range(n)]
    same(tb.collate(samples), default_collate(samples))


def _perturb(sample: Any, how: str) -> tuple[Any, bool]:
    """``sample`` with its first leaf changed in one way; whether anything changed."""
    if isinstance(sample, dict):
        for k, v in sample.items():
            new, changed = _perturb(v, how)
            if changed:
                return {**sample, k: new}, True
        return sample, False
    if isinstance(sample, (list, tuple)):
        for i, v in enumerate(sample):
            new, changed = _perturb(v, how)
            if changed:
                items = list(sample)
                items[i] = new
                return (Point(*items) if isinstance(sample, Point) else type(sample)(items)), True
        return sample, False
    if isinstance(sample, (np.ndarray, torch.Tensor)):
        a = np.asarray(sample)
        if how == "shape":
            a = np.zeros((*a.shape, 1), a.dtype)
        elif how == "dtype":
            a = a.astype(np.complex64)
        elif how == "kind":
            return "text", True
        return (torch.from_numpy(a) if isinstance(sample, torch.Tensor) else a), True
    return sample, False


@settings(max_examples=60, deadline=None)
@given(
    schema=schemas(),
    n=st.integers(2, 4),
    seed=st.integers(0, 2**16),
    how=st.sampled_from(["shape", "dtype", "kind"]),
)
def test_a_sample_that_differs_is_named(schema, n, seed, how):
    """One sample whose leaf differs in shape, dtype or kind raises a ``ConversionError`` that
    names that sample (never a raw exception)."""
    rng = np.random.default_rng(seed)
    samples = [make(schema, rng) for _ in range(n)]
    bad, changed = _perturb(samples[-1], how)
    if not changed:
        return
    samples[-1] = bad
    with pytest.raises(tb.ConversionError, match=rf"samples\[{n - 1}\]"):
        tb.collate(samples)


class DLPackOnly:
    """An object exposing its data only through ``__dlpack__`` (as JAX and CuPy arrays do)."""

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self._a.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._a.__dlpack_device__()


def test_dlpack_matrix_and_image_samples():
    """DLPack producers, ``np.matrix`` and PIL images batch as their array forms."""
    same(tb.collate([DLPackOnly(np.arange(3, dtype=np.int32))] * 2),
         torch.tensor([[0, 1, 2]] * 2, dtype=torch.int32))  # fmt: skip
    with quiet():
        m = np.matrix([[1.0, 2.0]])
    same(tb.collate([m, m]), torch.tensor([[[1.0, 2.0]]] * 2, dtype=torch.float64))
    image = pytest.importorskip("PIL.Image")
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    img = image.fromarray(pixels)
    same(tb.collate([img, img]), torch.from_numpy(np.stack([pixels, pixels])))


def test_xarray_samples():
    """xarray DataArray samples batch as their values."""
    xr = pytest.importorskip("xarray")
    da = xr.DataArray(np.arange(4.0).reshape(2, 2), dims=("y", "x"))
    same(tb.collate([da, da]), torch.from_numpy(np.stack([da.values, da.values])))


def test_casts_across_kinds():
    """``dtype=`` casts floats to integers as PyTorch does: tensors, arrays, flipped arrays."""
    data = torch.tensor([[1.7, -2.5, 300.2]], dtype=torch.float64)
    expected = torch.cat([data, data, data]).to(torch.int16).reshape(3, 1, 3)
    for samples in ([data[0:1], data[0:1], data[0:1]], [data.numpy()] * 3,
                    [data.numpy()[:, ::-1].copy()[:, ::-1]] * 3):  # fmt: skip
        same(tb.collate(samples, dtype=torch.int16), expected)


def test_nan_into_an_integer_dtype_names_the_sample():
    """A Python NaN asked into an integer dtype raises naming its sample, not a raw error."""
    samples = [{"v": 1.0}, {"v": float("nan")}]
    with pytest.raises(tb.ConversionError, match=r"samples\[1\]\[\"v\"\].*dtype=torch.float64"):
        tb.collate(samples, dtype=torch.int64)
    assert tb.collate(samples, dtype=torch.float64)["v"].isnan()[1]


def test_sequences_of_numbers_and_tensor_batches():
    """``array.array`` samples batch by position (a list, as for lists); a tensor or an array
    passed as the samples batches its rows."""
    out = tb.collate([array.array("f", [1, 2]), array.array("f", [3, 4])])
    same(
        out,
        [
            torch.tensor([1.0, 3.0], dtype=torch.float64),
            torch.tensor([2.0, 4.0], dtype=torch.float64),
        ],
    )
    rows = torch.arange(6.0).reshape(3, 2)
    same(tb.collate(rows), default_collate(list(rows)))
    same(tb.collate(rows.numpy()), default_collate(rows.numpy()))


ODD_SAMPLES = {
    "generators": lambda: [(i for i in range(2)) for _ in range(2)],
    "sets": lambda: [{1, 2}] * 2,
    "modules": lambda: [torch.nn.Identity()] * 2,
    "meta-tensors": lambda: [torch.empty(2, device="meta")] * 2,
    "str-and-int": lambda: ["a", 1],
    "dict-and-list": lambda: [{"a": 1}, [1]],
    "huge-int": lambda: [2**70, 1],
    "nan": lambda: [np.array([np.nan]), np.array([1.0])],
    "negative-floats": lambda: [np.array([-1.5, 300.0])[::-1]] * 2,
    "complex": lambda: [1j, np.complex64(2)],
    "uint64": lambda: [np.array([2**63 + 5], np.uint64)] * 2,
    "object-strs": lambda: [np.array(["a"], dtype=object)] * 2,
    "structured": lambda: [np.zeros(2, dtype=[("a", "f4")])] * 2,
    "ragged-int8": lambda: [np.ones(2, np.int8), np.ones(1, np.int8)],
    "ragged-float16": lambda: [np.ones(2, np.float16), np.ones(1, np.float16)],
    "chain-maps": lambda: [collections.ChainMap({"a": np.ones(1)})] * 2,
    "deques": lambda: [collections.deque([1, 2])] * 2,
}
ODD_KWARGS = [
    {},
    {"dtype": torch.int64},
    {"dtype": torch.uint8},
    {"dtype": torch.bool},
    {"dtype": "complex128"},
    {"float_dtype": "bfloat16"},
    {"ragged": "pad", "pad_value": -200},
    {"ragged": "pad", "pad_value": 1.5},
    {"ragged": "pad", "pad_value": 1e39},
    {"ragged": "pad", "pad_value": 1j},
    {"ragged": "list"},
]


@pytest.mark.parametrize("kw", ODD_KWARGS, ids=repr)
@pytest.mark.parametrize("name", list(ODD_SAMPLES))
def test_never_a_raw_error(name, kw):
    """Whatever the samples and arguments, collate returns or raises a ``ConversionError``, and
    explain does the same."""
    samples = ODD_SAMPLES[name]()
    try:
        tb.collate(samples, **kw)
    except tb.ConversionError as e:
        with pytest.raises(type(e)):
            tb.explain(samples, to="collate", **kw)
    else:
        assert isinstance(tb.explain(samples, to="collate", **kw), tb.Plan)


def test_no_warning_in_a_fresh_process():
    """In a fresh process (where PyTorch's warn-once warnings have not fired yet), collating
    read-only arrays (plain, cast, padded, beside tensors that require grad), complex32 tensors
    and NaN casts warns nothing."""
    import os
    import subprocess
    import sys

    code = """
import numpy as np, torch, tensorbridge as tb
ro = np.frombuffer(np.arange(6.0).tobytes(), np.float64).reshape(2, 3)
tb.collate([ro, ro])
tb.collate([ro, ro], float_dtype=torch.float32)
tb.collate([ro, ro[:1]], ragged="pad")
tb.collate([ro, ro], dtype=torch.int8)
tb.collate([np.array([np.nan])] * 2, dtype=torch.int32)
tb.collate([torch.tensor([np.nan])] * 2, dtype=torch.int32)
tb.collate([ro[0]] * 2, dtype="complex32")
tb.explain([ro, ro], to="collate", float_dtype=torch.float16)
w = torch.ones(3, requires_grad=True)
tb.collate([w * 2, ro[0]], float_dtype=torch.float32)
tb.collate([ro, ro[:1]], ragged="pad", dtype=torch.float8_e4m3fn, pad_value=np.float32(-1))
"""
    src = os.path.join(os.path.dirname(tb.__file__), os.pardir)
    env = {**os.environ, "PYTHONPATH": os.path.abspath(src)}
    run = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr[-2000:]


def test_nested_and_quantized_tensors_name_their_fix():
    """Nested and quantized tensor samples raise naming the fix (``unbind``, ``dequantize``),
    and the fix works."""
    with quiet():
        nested = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)])
    with pytest.raises(tb.ConversionError, match=r"samples\[0\].*unbind"):
        tb.collate([nested, nested])
    parts = [list(nested.unbind()), list(nested.unbind())]
    same(tb.collate(parts, ragged="pad"), [torch.ones(2, 2), torch.ones(2, 3)])
    with quiet():
        q = torch.quantize_per_tensor(torch.ones(2), 0.5, 0, torch.qint8)
        plain = q.dequantize()
    with pytest.raises(tb.ConversionError, match=r"samples\[0\].*dequantize"):
        tb.collate([q, q])
    same(tb.collate([plain, plain]), torch.ones(2, 2))
