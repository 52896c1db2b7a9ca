"""Decisions the core takes where SPEC.md is silent (see docs/design.md), each pinned here."""

import numpy as np
import pytest
import torch

import tensorbridge as tb

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")


@no_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:1", 0], ids=["cuda", "cuda-1", "int"])
def test_unavailable_device_is_one_clear_error(device):
    """Asking for a device this machine lacks raises ConversionError naming it and the fix."""
    with pytest.raises(tb.ConversionError, match=r"no cuda device is available.*device='cpu'"):
        tb.to_torch(np.ones(3), device=device)


@no_cuda
def test_pin_memory_without_accelerator_is_one_clear_error():
    """pin_memory=True with no accelerator raises ConversionError naming the argument."""
    with pytest.raises(tb.ConversionError, match="pin_memory=False"):
        tb.to_torch(np.ones(3), pin_memory=True)


class _DeviceProducer:
    """A DLPack producer that claims to live on a CUDA device and has negative strides."""

    dtype = np.dtype(np.float32)
    shape = (4,)
    strides = (-4,)
    called = False

    def __dlpack_device__(self):
        return (2, 0)  # kDLCUDA, device 0

    def __dlpack__(self, **kwargs):
        type(self).called = True
        raise AssertionError("torch.from_dlpack must never see negative strides")


def test_device_dlpack_with_negative_strides_is_refused():
    """A device DLPack producer with negative strides is refused before PyTorch sees it."""
    with pytest.raises(tb.UnsupportedInputError, match="negative strides"):
        tb.to_torch(_DeviceProducer())
    assert not _DeviceProducer.called


def test_ml_dtype_pytorch_lacks_is_named():
    """An ml_dtypes type with no PyTorch twin is named as such in the error."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    with pytest.raises(tb.UnsupportedInputError, match=r"ml_dtypes\.int4 \(PyTorch has no"):
        tb.to_torch(np.zeros(2, dtype=ml_dtypes.int4))


def test_python_numbers_inside_containers_pass_through():
    """Inside a container, Python numbers stay Python numbers; at the top they convert."""
    out = tb.to_torch({"x": np.ones(2), "epoch": 3, "sizes": [224, 224]})
    assert out["epoch"] == 3 and type(out["epoch"]) is int
    assert out["sizes"] == [224, 224]
    assert tb.to_torch([224, 224]).dtype == torch.int64


def _table_pairs():
    from tensorbridge._dtypes import TABLE

    return [
        pytest.param(src, dst, id=f"{src.tag}-{dst.tag}")
        for src in TABLE
        for dst in TABLE
        if src is not dst and np.can_cast(src.numpy, dst.numpy, "safe")
    ]


@pytest.mark.parametrize(("src", "dst"), _table_pairs())
def test_exact_casts_to_numpy_match_numpy_bit_for_bit(src, dst):
    """to_numpy(t, dtype=...) gives NumPy's bits for every exact cast, NaN payloads included."""
    raw = np.random.default_rng(7).integers(0, 256, size=512 * src.itemsize, dtype=np.uint8)
    if src.tag == "bool":
        a = (raw % 2).astype(bool)
    else:
        a = raw.view(src.numpy_carrier or src.numpy).view(src.numpy)
    with np.errstate(all="ignore"):
        expected = a.astype(dst.numpy)
    t = torch.from_numpy(a.view(src.numpy_carrier or src.numpy)).view(src.torch)
    out = tb.to_numpy(t, dtype=dst.numpy)
    assert out.dtype == dst.numpy
    assert out.tobytes() == expected.tobytes()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_grad_tensor_moved_to_cuda_stays_on_the_graph():
    """to_torch(device='cuda') of a tensor on a graph keeps it connected (as Tensor.to does)."""
    x = torch.ones(3, requires_grad=True)
    out = tb.to_torch({"y": x * 2}, device="cuda")["y"]
    assert out.is_cuda and out.requires_grad
    out.sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), 2.0))


class _Box:
    """A container type another project registers with optree under its own namespace."""

    def __init__(self, value):
        self.value = value


def test_node_of_another_optree_namespace_is_walked_once_registered_in_ours():
    """Another project's optree namespace is its own: such a node passes through unchanged,
    and registering it in the "tensorbridge" namespace (the fix) makes it a container."""
    import optree

    def flatten(b):
        return [b.value], None, ["value"]

    def unflatten(_, children):
        return _Box(children[0])

    optree.register_pytree_node(_Box, flatten, unflatten, namespace="someone-elses-project")
    box = _Box(torch.arange(3))
    out = tb.to_numpy({"box": box})
    assert out["box"] is box and isinstance(box.value, torch.Tensor)
    optree.register_pytree_node(_Box, flatten, unflatten, namespace="tensorbridge")
    out = tb.to_numpy({"box": box})
    assert isinstance(out["box"], _Box) and type(out["box"].value) is np.ndarray
    np.testing.assert_array_equal(out["box"].value, np.arange(3))


@pytest.mark.parametrize("func", [tb.to_numpy, tb.to_torch, tb.explain], ids=lambda f: f.__name__)
def test_top_level_list_of_non_numbers_is_refused(func):
    """A top-level list with no numbers-only form and nothing to convert raises, naming the item."""
    with pytest.raises(tb.UnsupportedInputError, match="holds a str"):
        func([0, "torch"])


def test_top_level_list_with_a_tensor_is_a_container():
    """A top-level list holding a tensor is a container: the tensor converts, the rest stays."""
    out = tb.to_numpy([torch.ones(2), "label"])
    assert isinstance(out, list) and out[1] == "label"
    np.testing.assert_array_equal(out[0], np.ones(2, dtype=np.float32))


@pytest.mark.parametrize(
    ("make", "dtype"),
    [
        (lambda: np.zeros(2, dtype=[("a", "i4"), ("b", "f4")]), "uint8"),
        (lambda: np.array(["1.5", "x"]), "float32"),
        (lambda: np.array([1, "x"], dtype=object), "float64"),
    ],
    ids=["structured", "unparsable-str", "object-with-str"],
)
@pytest.mark.parametrize("func", [tb.to_numpy, tb.to_torch], ids=lambda f: f.__name__)
def test_casts_numpy_cannot_do_are_one_clear_error(func, make, dtype):
    """A cast NumPy refuses raises UnsupportedInputError naming the dtype, not a raw error."""
    with pytest.raises(tb.UnsupportedInputError, match=f"dtype={dtype}|dtype="):
        func(make(), dtype=dtype)


def test_sparse_tensor_cast_in_to_torch():
    """to_torch(sparse, dtype=...) casts the sparse tensor (PyTorch's casting), no raw error."""
    s = torch.eye(3).to_sparse()
    out = tb.to_torch(s, dtype=torch.float64)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.to_dense(), torch.eye(3, dtype=torch.float64))


def test_negative_bit_view_casts_to_bool():
    """A negative-bit view casts to bool by its logical values in both directions."""
    c = torch.tensor([1 + 2j, 3 - 0j], dtype=torch.complex128)
    view = c.conj().imag  # logical values -2, 0 held through the negative bit
    assert view.is_neg()
    expected = np.array([True, False])
    np.testing.assert_array_equal(tb.to_numpy(view, dtype=bool), expected)
    np.testing.assert_array_equal(tb.to_torch(view, dtype=bool).numpy(), expected)


class _RefusingProducer:
    """A CPU DLPack producer whose export fails, as producers do for dtypes DLPack lacks."""

    def __dlpack_device__(self):
        return (1, 0)  # kDLCPU

    def __dlpack__(self, **kwargs):
        raise BufferError("DLPack only supports native byte order")


class _UnreadableInterface:
    """An object whose __array_interface__ names a type string NumPy cannot read."""

    @property
    def __array_interface__(self):
        return {"shape": (2,), "typestr": "<f1", "data": (0, True), "version": 3}


@pytest.mark.parametrize("make", [_RefusingProducer, _UnreadableInterface], ids=["dlpack", "iface"])
@pytest.mark.parametrize("func", [tb.to_numpy, tb.to_torch], ids=lambda f: f.__name__)
def test_producers_that_cannot_export_are_one_clear_error(func, make):
    """A producer whose export fails raises UnsupportedInputError, not the producer's error."""
    with pytest.raises(tb.UnsupportedInputError):
        func(make())


def test_nested_tensor_errors_describe_it():
    """An error about a nested tensor describes it without asking PyTorch for its shape."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nested tensors are a prototype feature and say so
        nested = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)])
    with pytest.raises(tb.CopyRequiredError, match="nested"):
        tb.to_torch(nested, dtype=torch.float64, copy=False)


def test_empty_views_share_nothing():
    """An empty view (even one offset past its storage) shares no memory with anything."""
    c = torch.zeros(2, 0, dtype=torch.complex128)
    assert not tb.shares_memory(c.conj().imag, c)


def test_threads_converting_at_once_get_their_own_results():
    """Eight threads converting different containers at once each get exactly their values."""
    from concurrent.futures import ThreadPoolExecutor

    def work(seed):
        g = torch.Generator().manual_seed(seed)
        batch = {
            "x": torch.randn(64, 8, generator=g),
            "y": torch.randint(0, 9, (64,), generator=g),
            "b": torch.randn(16, generator=g).to(torch.bfloat16),
            "n": np.arange(seed, seed + 32)[::-1],
        }
        for _ in range(50):
            out = tb.to_torch(tb.to_numpy(batch), float_dtype=torch.float64)
        return batch, out

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    for batch, out in results:
        torch.testing.assert_close(out["x"], batch["x"].double())
        assert torch.equal(out["y"], batch["y"])
        torch.testing.assert_close(out["b"], batch["b"].double())
        np.testing.assert_array_equal(out["n"].numpy(), batch["n"])
