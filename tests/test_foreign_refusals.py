"""Objects with no array form are refused with the fix that fits them, and that fix works when
applied; an exception from a user object's own code becomes one ConversionError (SPEC: "Objects
from the rest of the ecosystem")."""

import collections
import collections.abc
import decimal
import fractions
import types

import numpy as np
import pytest
import torch

import tensorbridge as tb


@pytest.mark.parametrize("func", ["to_numpy", "to_torch", "to_python", "item", "explain"])
@pytest.mark.parametrize(
    ("make", "fix", "apply"),
    [
        pytest.param(lambda: (x for x in [1.0, 2.0]), r"list\(it\)", list, id="generator"),
        pytest.param(lambda: iter([1.0, 2.0]), r"list\(it\)", list, id="iterator"),
        pytest.param(lambda: map(float, [1, 2]), r"list\(it\)", list, id="map"),
        pytest.param(lambda: {2.0, 1.0}, r"sorted\(s\)", sorted, id="set"),
        pytest.param(lambda: frozenset({1.0, 2.0}), r"sorted\(s\)", sorted, id="frozenset"),
        pytest.param(lambda: {"a": 1.0, "b": 2.0}.values(), r"list\(it\)", list, id="dict-values"),
        pytest.param(lambda: decimal.Decimal("1.5"), r"float\(x\)", float, id="Decimal"),
        pytest.param(lambda: fractions.Fraction(1, 3), r"float\(x\)", float, id="Fraction"),
        pytest.param(
            lambda: torch.nn.Linear(2, 2),
            r"\.state_dict\(\)",
            lambda m: m.state_dict(),
            id="nn.Module",
        ),
        pytest.param(
            lambda: torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1),
            r"\.state_dict\(\)",
            lambda o: o.state_dict(),
            id="optimizer",
        ),
    ],
)
def test_refused_objects_name_the_fix_that_works(make, fix, apply, func):
    """Each object is refused naming its own fix, and applying that fix converts."""
    obj = make()
    with pytest.raises(tb.UnsupportedInputError, match=fix):
        if func == "explain":
            tb.explain(obj)
        else:
            getattr(tb, func)(obj)
    tb.to_numpy(apply(make()))  # the fix works


def test_none_and_grad_none_name_backward():
    """None (often a .grad read before backward()) names backward(); after it, .grad converts."""
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(tb.UnsupportedInputError, match=r"backward\(\)") as e:
        tb.to_numpy(w.grad)
    assert "optree" not in str(e.value)
    (w * 3).sum().backward()
    np.testing.assert_array_equal(tb.to_numpy(w.grad), [3.0, 3.0])


def test_refused_objects_inside_containers_pass_through():
    """Inside a container a refused object passes through unchanged, like any non-array value."""
    gen = (x for x in [1])
    out = tb.to_numpy({"g": gen, "x": torch.ones(1)})
    assert out["g"] is gen


class RaisingArray:
    """An object whose __array__ raises, as a broken producer would."""

    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("device lost")


class RaisingDLPack:
    """An object whose DLPack export raises."""

    def __dlpack__(self, **kwargs):
        raise RuntimeError("export failed")

    def __dlpack_device__(self):
        raise ZeroDivisionError("no device")


class RaisingProperties:
    """An object whose dtype, shape and repr all raise."""

    @property
    def dtype(self):
        raise KeyError("dtype")

    @property
    def shape(self):
        raise ValueError("shape")

    def __repr__(self):
        raise RuntimeError("repr")


@pytest.mark.parametrize("obj", [RaisingArray(), RaisingDLPack()], ids=["__array__", "DLPack"])
@pytest.mark.parametrize("func", ["to_numpy", "to_torch", "to_python", "item"])
def test_a_protocol_that_raises_is_one_conversion_error(obj, func):
    """An exception from the object's own protocol is a ConversionError naming the input, with
    the original as __cause__."""
    with pytest.raises(tb.ConversionError, match=type(obj).__name__) as e:
        getattr(tb, func)(obj)
    assert isinstance(e.value.__cause__, (RuntimeError, ZeroDivisionError))


@pytest.mark.parametrize("func", ["to_numpy", "to_torch", "to_python"])
def test_properties_and_repr_that_raise_give_one_error(func):
    """An object whose dtype, shape and repr raise is refused cleanly, named by its type."""
    with pytest.raises(tb.UnsupportedInputError, match="RaisingProperties"):
        getattr(tb, func)(RaisingProperties())


def test_a_5000_deep_list_is_one_error():
    """A 5,000-deep list raises UnsupportedInputError (no RecursionError, even in its repr)."""
    deep = [1.0]
    for _ in range(5000):
        deep = [deep]
    for func in (tb.to_numpy, tb.to_torch, tb.to_python, tb.explain):
        with pytest.raises(tb.UnsupportedInputError, match="nested too deeply"):
            func(deep)


def test_object_array_of_object_arrays_converts():
    """An object array of same-shaped object arrays of numbers stacks (no AssertionError)."""
    a = np.empty(2, dtype=object)
    a[0] = np.array([1, 2], dtype=object)
    a[1] = np.array([3, 4], dtype=object)
    assert torch.equal(tb.to_torch(a), torch.tensor([[1, 2], [3, 4]]))


def test_unknown_device_name_names_cuda():
    """device="gpu" raises a ConversionError naming the valid names; 'cpu' works."""
    with pytest.raises(tb.ConversionError, match=r"'cuda' is the name for a GPU"):
        tb.to_torch(np.ones(2), device="gpu")
    assert tb.to_torch(np.ones(2), device="cpu").device.type == "cpu"


def test_requires_grad_on_an_inference_tensor_copies_it():
    """requires_grad=True on an inference tensor gives a new leaf (one counted copy)."""
    with torch.inference_mode():
        t = torch.ones(3)
    out = tb.to_torch(t, requires_grad=True)
    assert out.requires_grad and out.is_leaf and not out.is_inference()
    assert tb.explain(t, to="torch", requires_grad=True).copies == 1
    with pytest.raises(tb.CopyRequiredError, match="inference"):
        tb.to_torch(t, requires_grad=True, copy=False)
    (out * 2).sum().backward()
    assert out.grad.tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize(
    "mapping",
    [
        pytest.param(lambda d: collections.ChainMap(d, {"z": np.zeros(1)}), id="ChainMap"),
        pytest.param(types.MappingProxyType, id="mappingproxy"),
    ],
)
def test_other_mappings_come_back_as_plain_dicts(mapping):
    """ChainMap and mappingproxy come back as plain dicts holding every key, converted."""
    m = mapping({"a": np.arange(2.0)})
    out = tb.to_torch(m)
    assert type(out) is dict
    assert set(out) == set(m)
    assert torch.equal(out["a"], torch.tensor([0.0, 1.0], dtype=torch.float64))


def test_userdict_and_ordered_dict_keep_their_type():
    """UserDict and OrderedDict are rebuilt as their own type."""
    u = tb.to_numpy(collections.UserDict(a=torch.ones(1)))
    assert type(u) is collections.UserDict and type(u["a"]) is np.ndarray
    o = tb.to_numpy(collections.OrderedDict(b=torch.ones(1), a=torch.zeros(1)))
    assert type(o) is collections.OrderedDict and list(o) == ["b", "a"]


class FakeGPUArray:
    """A DLPack producer on a CUDA device (kDLCUDA = 2), as a JAX-GPU or CuPy array is."""

    shape = (2,)
    dtype = "float32"

    def __dlpack__(self, **kwargs):
        raise BufferError("this device's memory cannot be exported here")

    def __dlpack_device__(self):
        return (2, 0)


def test_accelerator_array_without_that_accelerator_names_the_host_copy():
    """A device array PyTorch here cannot import is refused naming the host copy that fixes it."""
    with pytest.raises(tb.UnsupportedInputError, match=r"jax\.device_get\(x\).*cupy\.asnumpy"):
        tb.to_torch(FakeGPUArray())


class BrokenMapping(collections.abc.Mapping):
    """A mapping whose item lookup raises."""

    def __getitem__(self, key):
        raise RuntimeError("backend gone")

    def __iter__(self):
        return iter(["a"])

    def __len__(self):
        return 1


@pytest.mark.parametrize("func", ["to_numpy", "to_torch", "to_python", "explain"])
def test_a_container_whose_items_raise_is_one_conversion_error(func):
    """A mapping whose own __getitem__ raises gives one ConversionError, original as cause."""
    with pytest.raises(tb.ConversionError, match="BrokenMapping") as e:
        getattr(tb, func)(BrokenMapping())
    assert isinstance(e.value.__cause__, RuntimeError)
