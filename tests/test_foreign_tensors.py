"""Tensor subclasses, PackedSequence, torch.Size and DLPack producers (SPEC: "Objects from the
rest of the ecosystem"), with the real libraries."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_sequence

import tensorbridge as tb

# ------------------------------------------------------------------------- tensor subclasses


class Plain(torch.Tensor):
    """A plain subclass made with as_subclass: memory of its own."""


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda t: t.as_subclass(Plain), id="as_subclass"),
        pytest.param(lambda t: torch.nn.Parameter(t), id="Parameter"),
        pytest.param(lambda t: torch.nn.Buffer(t), id="Buffer"),
    ],
)
def test_plain_subclasses_convert_as_tensors(make):
    """as_subclass, nn.Parameter and nn.Buffer convert as tensors, sharing memory."""
    base = torch.arange(3.0)
    x = make(base)
    out = tb.to_numpy(x)
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, [0.0, 1.0, 2.0])
    assert np.shares_memory(out, base.numpy())


def _masked():
    from torch.masked import masked_tensor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "MaskedTensors is in prototype stage"
        return masked_tensor(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([True, False, True]))


def test_masked_tensor_to_numpy_is_lossy_and_the_fix_works():
    """to_numpy of a MaskedTensor raises LossyConversionError naming .get_data()/.get_mask()."""
    mt = _masked()
    with pytest.raises(tb.LossyConversionError, match=r"get_data\(\).*get_mask\(\)"):
        tb.to_numpy(mt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, mask = mt.get_data(), mt.get_mask()
    np.testing.assert_array_equal(tb.to_numpy(mask), [True, False, True])
    assert tb.to_numpy(data).shape == (3,)


def test_masked_tensor_to_torch_stays_a_masked_tensor():
    """to_torch keeps a MaskedTensor; a dtype goes through its own .to()."""
    mt = _masked()
    assert tb.to_torch(mt) is mt
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = tb.to_torch(mt, dtype=torch.float64)
        assert type(out) is type(mt) and out.dtype == torch.float64
        assert out.get_mask().tolist() == [True, False, True]
    with pytest.raises(tb.CopyRequiredError):
        tb.to_torch(mt, dtype=torch.float64, copy=False)


@pytest.fixture
def dtensor():
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,))
        yield distribute_tensor(torch.arange(4.0), mesh, [Shard(0)])
    finally:
        dist.destroy_process_group()


def test_dtensor_to_numpy_names_full_tensor_and_to_local(dtensor):
    """to_numpy of a DTensor names .full_tensor() and .to_local(); both fixes work."""
    with pytest.raises(tb.UnsupportedInputError, match=r"full_tensor\(\).*to_local\(\)"):
        tb.to_numpy(dtensor)
    np.testing.assert_array_equal(tb.to_numpy(dtensor.to_local()), np.arange(4.0))
    np.testing.assert_array_equal(tb.to_numpy(dtensor.full_tensor()), np.arange(4.0))
    with pytest.raises(tb.UnsupportedInputError, match=r'obj\["w"\].*full_tensor'):
        tb.to_numpy({"w": torch.nn.Parameter(dtensor)})  # an FSDP2 state dict's parameter


def test_dtensor_to_torch_stays_a_dtensor(dtensor):
    """to_torch keeps a DTensor; dtype goes through its own .to(), and explain says so."""
    assert tb.to_torch(dtensor) is dtensor
    out = tb.to_torch(dtensor, dtype=torch.float64)
    assert type(out) is type(dtensor) and out.dtype == torch.float64
    plan = tb.explain(dtensor, to="torch", dtype=torch.float64)
    assert plan.steps == ("DTensor.to(torch.float32 → torch.float64) (32 B)",)


# ------------------------------------------------------------------------- PackedSequence


def _packed():
    return pack_sequence(
        [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0])], enforce_sorted=False
    )


def test_packed_sequence_dtype_applies_to_data_only():
    """dtype= casts .data; batch_sizes and the index tensors keep int64."""
    ps = _packed()
    out = tb.to_torch(ps, dtype=torch.float64)
    assert type(out) is type(ps)
    assert out.data.dtype == torch.float64
    assert torch.equal(out.data, ps.data.double())
    assert out.batch_sizes is ps.batch_sizes and out.batch_sizes.dtype == torch.int64
    assert torch.equal(out.sorted_indices, ps.sorted_indices)
    assert out.unsorted_indices.dtype == torch.int64
    plan = tb.explain(ps, to="torch", dtype=torch.float64)
    assert list(plan.leaves) == ["obj.data"]


def test_packed_sequence_to_numpy_is_a_dict_of_arrays():
    """to_numpy of a PackedSequence is a plain dict of arrays (data, batch_sizes, indices)."""
    ps = _packed()
    out = tb.to_numpy(ps)
    assert list(out) == ["data", "batch_sizes", "sorted_indices", "unsorted_indices"]
    np.testing.assert_array_equal(out["data"], ps.data.numpy())
    np.testing.assert_array_equal(out["batch_sizes"], [2, 2, 1])
    assert tb.to_python(ps)["batch_sizes"] == [2, 2, 1]


# ------------------------------------------------------------------------- torch.Size


def test_torch_size_is_a_sequence_after_dynamo_import():
    """torch.Size converts as a sequence of ints even once torch._dynamo registered it with optree
    (checked in a fresh process, dynamo imported first)."""
    code = (
        "import torch, torch._dynamo, numpy as np, tensorbridge as tb\n"
        "s = torch.Size([2, 3])\n"
        "assert tb.to_numpy(s).tolist() == [2, 3]\n"
        "assert tb.to_torch(s).tolist() == [2, 3]\n"
        "out = tb.to_numpy({'shape': s, 'x': torch.ones(1)})\n"
        "assert type(out['shape']) is torch.Size, type(out['shape'])\n"
        "assert tb.to_python(s) == [2, 3]\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


# ------------------------------------------------------------------------- DLPack


def test_jax_cpu_arrays_convert_exactly():
    """JAX CPU arrays (bool, bfloat16, int8, float32) convert bit for bit through DLPack."""
    jnp = pytest.importorskip("jax.numpy")
    for dtype, torch_dtype in [
        (jnp.bool_, torch.bool),
        (jnp.bfloat16, torch.bfloat16),
        (jnp.int8, torch.int8),
        (jnp.float32, torch.float32),
    ]:
        x = jnp.asarray(np.array([1, 0, 1, 1]), dtype=dtype)
        t = tb.to_torch(x)
        assert t.dtype == torch_dtype
        expected = np.asarray(x)
        got = tb.to_numpy(x)
        assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float8_e4m3fn", "bool"])
def test_jax_read_only_buffer_is_not_written_through(dtype):
    """A JAX buffer (immutable) is copied by to_torch under copy=None, so writing is safe, for
    dtypes NumPy imports and those only PyTorch does (bfloat16, float8); to_numpy gives a
    read-only view."""
    jnp = pytest.importorskip("jax.numpy")
    x = jnp.asarray(np.array([1, 0, 1]), dtype=getattr(jnp, dtype))
    before = np.asarray(x).tobytes()
    t = tb.to_torch(x)
    t[0] = 0
    assert np.asarray(x).tobytes() == before
    assert not tb.to_numpy(x).flags.writeable


def test_raw_dlpack_capsule_converts_once_and_explain_agrees():
    """A raw capsule converts (after explain, which plans the same tensor); a used one is refused
    with the fix (a new capsule), which works."""
    base = torch.arange(4, dtype=torch.int32)
    capsule = base.__dlpack__()
    plan = tb.explain(capsule, to="torch")
    assert plan.copies == 0
    out = tb.to_torch(capsule)
    assert torch.equal(out, base) and out.data_ptr() == base.data_ptr()
    used = base.__dlpack__()
    torch.from_dlpack(used)
    with pytest.raises(tb.UnsupportedInputError, match=r"__dlpack__\(\)"):
        tb.to_numpy(used)
    np.testing.assert_array_equal(tb.to_numpy(base.__dlpack__()), [0, 1, 2, 3])
