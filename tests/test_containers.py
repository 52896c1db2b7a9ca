"""Containers: the tree walk, what passes through and what converts (SPEC: "Containers")."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict, defaultdict, namedtuple
from typing import NamedTuple

import numpy as np
import optree
import pytest
import torch

import tensorbridge as tb
from helpers import assert_ndarray_identical, assert_tensor_identical, np_shares

Pair = namedtuple("Pair", ["image", "label"])


class Sample(NamedTuple):
    x: np.ndarray
    name: str


@dataclasses.dataclass
class Batch:
    images: np.ndarray
    labels: np.ndarray
    note: str = "train"


@dataclasses.dataclass(frozen=True)
class FrozenBatch:
    images: np.ndarray
    count: int


@dataclasses.dataclass
class WithDerived:
    data: np.ndarray
    derived: np.ndarray = dataclasses.field(init=False)

    def __post_init__(self):
        self.derived = self.data * 2


class Box:
    """A custom node type, registered with optree in the tensorbridge namespace."""

    def __init__(self, content, tag):
        self.content = content
        self.tag = tag


optree.register_pytree_node(
    Box,
    lambda b: ((b.content,), b.tag, None),
    lambda tag, children: Box(children[0], tag),
    namespace="tensorbridge",
)


def f32(*shape):
    return np.ones(shape, dtype=np.float32)


# ------------------------------------------------------------------ structure is kept


def test_dict_values_convert_and_key_order_is_kept():
    """A dict's array values convert and its keys keep their order."""
    d = {"z": f32(2), "a": np.arange(3), "m": f32(1)}
    out = tb.to_torch(d)
    assert type(out) is dict
    assert list(out) == ["z", "a", "m"]
    assert_tensor_identical(out["a"], torch.arange(3))


def test_ordered_dict_type_is_kept():
    """An OrderedDict comes back as an OrderedDict, order kept."""
    d = OrderedDict([("b", torch.ones(1)), ("a", torch.zeros(1))])
    out = tb.to_numpy(d)
    assert type(out) is OrderedDict
    assert list(out) == ["b", "a"]


def test_defaultdict_factory_is_kept():
    """A defaultdict comes back as a defaultdict with the same default factory."""
    d = defaultdict(list, {"x": torch.ones(2)})
    out = tb.to_numpy(d)
    assert type(out) is defaultdict
    assert out.default_factory is list
    assert_ndarray_identical(out["x"], np.ones(2, dtype=np.float32))


@pytest.mark.parametrize("kind", [list, tuple], ids=["list", "tuple"])
def test_sequence_type_is_kept(kind):
    """Lists stay lists and tuples stay tuples."""
    out = tb.to_numpy(kind([torch.ones(1), torch.zeros(2)]))
    assert type(out) is kind
    assert len(out) == 2


def test_namedtuple_type_is_kept():
    """A namedtuple comes back as the same namedtuple type with converted fields."""
    out = tb.to_torch(Pair(np.ones(2), np.array(3)))
    assert type(out) is Pair
    assert_tensor_identical(out.image, torch.ones(2, dtype=torch.float64))
    assert_tensor_identical(out.label, torch.tensor(3))


def test_typing_namedtuple_keeps_str_field():
    """A ``typing.NamedTuple`` converts its array field and leaves its str field alone."""
    out = tb.to_torch(Sample(np.zeros(2), "cat"))
    assert type(out) is Sample
    assert out.name == "cat"
    assert isinstance(out.x, torch.Tensor)


def test_dataclass_is_rebuilt():
    """A dataclass instance comes back as the same class with converted fields."""
    out = tb.to_torch(Batch(f32(2, 2), np.arange(2)))
    assert type(out) is Batch
    assert_tensor_identical(out.images, torch.ones(2, 2))
    assert out.note == "train"


def test_frozen_dataclass_is_rebuilt():
    """A frozen dataclass is rebuilt (not mutated), its int field passed through."""
    src = FrozenBatch(f32(3), 7)
    out = tb.to_torch(src)
    assert type(out) is FrozenBatch
    assert isinstance(out.images, torch.Tensor)
    assert out.count == 7
    assert isinstance(src.images, np.ndarray), "the input dataclass must not be changed"


def test_dataclass_init_false_field_is_converted():
    """A dataclass field with ``init=False`` is converted too."""
    out = tb.to_torch(WithDerived(np.arange(3.0)))
    assert type(out) is WithDerived
    assert_tensor_identical(out.derived, torch.tensor([0.0, 2.0, 4.0], dtype=torch.float64))


def test_registered_optree_node_is_walked():
    """A node type registered with optree (namespace "tensorbridge") is walked and rebuilt."""
    out = tb.to_numpy(Box(torch.ones(2), "meta"))
    assert type(out) is Box
    assert out.tag == "meta"
    assert_ndarray_identical(out.content, np.ones(2, dtype=np.float32))


def test_deep_nesting():
    """Containers nest to any depth."""
    src = {"a": [({"b": torch.ones(1)},)]}
    out = tb.to_numpy(src)
    assert_ndarray_identical(out["a"][0][0]["b"], np.ones(1, dtype=np.float32))


def test_input_container_is_not_modified():
    """Converting a container builds a new one; the input still holds its arrays."""
    src = {"x": np.ones(2)}
    out = tb.to_torch(src)
    assert out is not src
    assert isinstance(src["x"], np.ndarray)


@pytest.mark.parametrize("func", ["to_numpy", "to_torch"])
def test_empty_dict(func):
    """An empty dict comes back as an empty dict."""
    out = getattr(tb, func)({})
    assert type(out) is dict
    assert out == {}


# ------------------------------------------------------------------ leaves: convert or pass through


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("label", id="str"),
        pytest.param(b"raw", id="bytes"),
        pytest.param(None, id="None"),
        pytest.param(3, id="int"),
        pytest.param(2.5, id="float"),
        pytest.param(True, id="bool"),
        pytest.param(1 + 2j, id="complex"),
    ],
)
@pytest.mark.parametrize("func", ["to_numpy", "to_torch"])
def test_plain_python_leaves_pass_through(func, value):
    """Inside a container, str, bytes, None and Python numbers pass through unchanged."""
    out = getattr(tb, func)({"x": torch.ones(1), "meta": value})
    assert out["meta"] is value or (out["meta"] == value and type(out["meta"]) is type(value))


@pytest.mark.parametrize(
    ("leaf", "np_dtype"),
    [
        pytest.param(torch.ones(2, dtype=torch.int16), np.int16, id="tensor"),
        pytest.param(np.ones(2, dtype=np.int16), np.int16, id="ndarray"),
        pytest.param(np.float32(1.5), np.float32, id="numpy-scalar"),
    ],
)
def test_array_leaves_convert_to_numpy(leaf, np_dtype):
    """Inside a container, tensors, arrays and NumPy scalars convert to ndarrays."""
    out = tb.to_numpy({"leaf": leaf})
    assert type(out["leaf"]) is np.ndarray
    assert out["leaf"].dtype == np_dtype


@pytest.mark.parametrize(
    ("leaf", "torch_dtype"),
    [
        pytest.param(torch.ones(2, dtype=torch.int16), torch.int16, id="tensor"),
        pytest.param(np.ones(2, dtype=np.int16), torch.int16, id="ndarray"),
        pytest.param(np.float32(1.5), torch.float32, id="numpy-scalar"),
    ],
)
def test_array_leaves_convert_to_torch(leaf, torch_dtype):
    """Inside a container, tensors, arrays and NumPy scalars convert to tensors."""
    out = tb.to_torch({"leaf": leaf})
    assert isinstance(out["leaf"], torch.Tensor)
    assert out["leaf"].dtype == torch_dtype


def test_list_of_numbers_inside_container_passes_through():
    """A list of Python numbers inside a container is a list of metadata, left as it is."""
    out = tb.to_torch({"sizes": [3, 4], "x": np.ones(2)})
    assert out["sizes"] == [3, 4]
    assert all(type(v) is int for v in out["sizes"])


def test_top_level_tuple_of_numbers_is_one_array():
    """At top level, a tuple whose leaves are all numbers converts as one array."""
    assert_tensor_identical(tb.to_torch((1, 2, 3)), torch.tensor([1, 2, 3]))


def test_top_level_list_with_a_tensor_is_a_container():
    """At top level, a list holding a tensor next to numbers is a container (numbers pass)."""
    out = tb.to_numpy([torch.ones(1), 5])
    assert isinstance(out, list)
    assert out[1] == 5


def test_leaves_share_memory_in_containers():
    """Container leaves obey ``copy=None``: every shareable leaf is shared."""
    src = {"a": np.ones(3), "b": [np.arange(4)]}
    out = tb.to_torch(src)
    assert np_shares(out["a"], src["a"])
    assert np_shares(out["b"][0], src["b"][0])


def test_copy_true_in_container_copies_every_leaf():
    """Under ``copy=True`` no leaf of a container shares memory."""
    src = {"a": torch.ones(3), "b": (torch.arange(4),)}
    out = tb.to_numpy(src, copy=True)
    assert not np_shares(out["a"], src["a"])
    assert not np_shares(out["b"][0], src["b"][0])


def test_float_dtype_across_leaves():
    """``float_dtype`` casts float leaves and leaves int/bool leaves alone (the model-input fix)."""
    batch = {"x": np.ones((2, 3)), "y": np.array([0, 1]), "m": np.array([True, False])}
    out = tb.to_torch(batch, float_dtype=torch.float32)
    assert out["x"].dtype == torch.float32
    assert out["y"].dtype == torch.int64
    assert out["m"].dtype == torch.bool


def test_mixed_tensor_and_array_container_to_numpy():
    """A container mixing tensors and arrays converts each to an ndarray."""
    out = tb.to_numpy({"t": torch.ones(2), "a": np.zeros(2)})
    assert all(type(v) is np.ndarray for v in out.values())


def test_to_python_walks_containers():
    """``to_python`` walks containers too, turning leaves into Python lists and scalars."""
    out = tb.to_python({"a": torch.tensor([1, 2]), "b": (np.float32(0.5), "s")})
    assert out == {"a": [1, 2], "b": (0.5, "s")} or out == {"a": [1, 2], "b": [0.5, "s"]}
    assert type(out["b"][0]) is float


# ------------------------------------------------------------------ errors name the leaf's path


def test_error_names_dict_and_index_path():
    """An error inside a container names the leaf as ``obj["images"][3]``."""
    batch = {"images": [np.ones(1), np.ones(1), np.ones(1), np.ma.masked_array([1.0], mask=[True])]}
    with pytest.raises(tb.LossyConversionError) as ei:
        tb.to_torch(batch)
    assert 'obj["images"][3]' in str(ei.value)


def test_error_names_namedtuple_field():
    """An error in a namedtuple field names it with ``.field``."""
    with pytest.raises(tb.LossyConversionError) as ei:
        tb.to_torch({"pair": Pair(np.ones(1), np.array([1 + 1j]))}, dtype=torch.float32)
    assert 'obj["pair"].label' in str(ei.value)


def test_error_names_dataclass_field():
    """An error in a dataclass field names it with ``.field``."""
    bad = Batch(np.array(["a"]), np.arange(2))
    with pytest.raises(tb.UnsupportedInputError) as ei:
        tb.to_torch([bad])
    assert "obj[0].images" in str(ei.value)


def test_error_in_tuple_names_index():
    """An error in a tuple names the index."""
    with pytest.raises(tb.CopyRequiredError) as ei:
        tb.to_torch((np.ones(2), np.ones(2)[::-1]), copy=False)
    assert "obj[1]" in str(ei.value)


def test_unknown_leaf_inside_container_passes_through():
    """Only unknown objects at top level are refused; inside a container they pass through."""
    thing = object()
    out = tb.to_numpy({"x": torch.ones(1), "other": thing})
    assert out["other"] is thing


@dataclasses.dataclass(frozen=True)
class FrozenDerived:
    data: np.ndarray
    total: np.ndarray = dataclasses.field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "total", self.data.sum(keepdims=True))


def test_frozen_dataclass_with_init_false_field():
    """A frozen dataclass with an ``init=False`` field is rebuilt with both fields converted."""
    out = tb.to_torch(FrozenDerived(np.arange(3.0)))
    assert type(out) is FrozenDerived
    assert isinstance(out.data, torch.Tensor)
    assert_tensor_identical(out.total, torch.tensor([3.0], dtype=torch.float64))


def test_read_only_leaf_copy_false_is_shared_silently():
    """A read-only leaf inside a container is shared under ``copy=False`` without a warning."""
    ro = np.arange(3.0)
    ro.flags.writeable = False
    out = tb.to_torch({"ro": ro}, copy=False)
    assert np_shares(out["ro"], ro)


def test_float_dtype_keeps_graph_in_container():
    """``float_dtype`` on a graph tensor leaf keeps it connected (gradients flow back)."""
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    out = tb.to_torch({"x": x}, float_dtype=torch.float32)
    assert out["x"].dtype == torch.float32
    out["x"].sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]


def test_container_to_python_keeps_strings_and_none():
    """``to_python`` of a container leaves strings and None alone."""
    out = tb.to_python({"s": "x", "n": None, "v": np.int64(3)})
    assert out == {"s": "x", "n": None, "v": 3}
    assert type(out["v"]) is int
