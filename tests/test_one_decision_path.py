"""The disagreements between ``explain`` and the conversions that one decision path removed:
each input's plan and outcome, checked from the outside."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.testing._internal.two_tensor import TwoTensor

import tensorbridge as tb
from strategies import ArrayProducer, CopyingProducer, InterfaceProducer, OldArrayProducer


@pytest.mark.parametrize(
    "options", [{}, {"dtype": torch.float32}], ids=["no-options", "no-op-dtype"]
)
@pytest.mark.parametrize("call", ["to_torch", "explain"])
def test_meta_tensor_is_refused_with_or_without_a_no_op_dtype(call, options):
    """A meta tensor has no data: to_torch and explain refuse it alike, whatever the options."""
    t = torch.empty(3, device="meta")
    with pytest.raises(tb.UnsupportedInputError, match="meta tensor"):
        if call == "explain":
            tb.explain(t, to="torch", **options)
        else:
            tb.to_torch(t, **options)


def test_nested_tensor_to_torch_is_explained_as_the_tensor_it_returns():
    """explain(nested, to="torch") describes one tensor kept as it is, which is what returns."""
    n = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)], layout=torch.jagged)
    plan = tb.explain(n, to="torch")
    out = tb.to_torch(n)
    assert not plan.leaves and plan.steps == () and plan.shares_memory
    assert out is n


def test_nested_tensor_to_numpy_is_explained_as_its_components():
    """explain(nested) lists one plan per component, as to_numpy returns one array each."""
    n = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)], layout=torch.jagged)
    plan = tb.explain(n)
    out = tb.to_numpy(n)
    assert list(plan.leaves) == ["obj[0]", "obj[1]"]
    assert [a.shape for a in out] == [(2,), (3,)]


def test_wrapper_tensor_subclass_is_refused_by_explain_as_by_to_numpy():
    """A tensor subclass that dispatches itself: explain and to_numpy raise the same error."""
    t = TwoTensor(torch.ones(2), torch.ones(2))
    with pytest.raises(tb.UnsupportedInputError) as planned:
        tb.explain(t)
    with pytest.raises(tb.UnsupportedInputError) as converted:
        tb.to_numpy(t)
    assert str(planned.value) == str(converted.value)
    assert type(tb.to_torch(t)) is TwoTensor  # to_torch keeps it


@pytest.mark.parametrize(
    "make",
    [
        lambda: CopyingProducer(np.arange(4.0)),
        lambda: OldArrayProducer(np.arange(4.0)),
        lambda: InterfaceProducer(np.arange(4.0), by_bytes=True),
    ],
    ids=["cannot-share", "old-array-protocol", "interface-by-bytes"],
)
@pytest.mark.parametrize("to", ["numpy", "torch"])
def test_producer_that_cannot_promise_a_view_is_a_counted_copy(make, to):
    """An __array__/__array_interface__ producer that cannot promise a view (a mixed-dtype
    DataFrame, a PIL image): explain counts its copy, the result shares nothing, and copy=False
    raises in explain and conversion."""
    obj = make()
    convert = tb.to_numpy if to == "numpy" else tb.to_torch
    plan = tb.explain(obj, to=to)
    assert plan.copies == 1 and not plan.shares_memory
    assert not tb.shares_memory(convert(obj), obj)
    with pytest.raises(tb.CopyRequiredError, match="cannot share its memory"):
        tb.explain(obj, to=to, copy=False)
    with pytest.raises(tb.CopyRequiredError, match="cannot share its memory"):
        convert(obj, copy=False)


def test_producer_that_promises_a_view_shares_under_copy_false():
    """An __array__ producer that gives its memory (NumPy 2's copy=False): copy=False shares it."""
    a = np.arange(4.0)
    producer = ArrayProducer(a)
    assert tb.explain(producer, to="torch", copy=False).shares_memory
    assert tb.shares_memory(tb.to_torch(producer, copy=False), a)


def test_to_python_returns_json_shapes():
    """to_python flattens like the conversions and rebuilds JSON's shapes: dicts and lists."""
    import dataclasses
    from collections import namedtuple

    @dataclasses.dataclass
    class Sample:
        x: torch.Tensor
        label: str

    Pair = namedtuple("Pair", "a b")
    out = tb.to_python(
        {"s": Sample(torch.tensor([1, 2]), "cat"), "p": Pair(np.float32(0.5), (1, 2))}
    )
    assert out == {"s": {"x": [1, 2], "label": "cat"}, "p": [0.5, [1, 2]]}
    assert type(out["p"]) is list and type(out["p"][1]) is list
