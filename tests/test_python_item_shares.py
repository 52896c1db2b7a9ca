"""``to_python``, ``item`` and ``shares_memory`` (SPEC: "Public API")."""

from __future__ import annotations

import json
import math

import ml_dtypes
import numpy as np
import pytest
import torch

import tensorbridge as tb
from conftest import cuda_only
from helpers import quiet

# ------------------------------------------------------------------ item


@pytest.mark.parametrize(
    ("obj", "expected", "kind"),
    [
        pytest.param(torch.tensor(3), 3, int, id="torch-int64-0d"),
        pytest.param(torch.tensor([[2.5]]), 2.5, float, id="torch-float32-1x1"),
        pytest.param(torch.tensor([True]), True, bool, id="torch-bool"),
        pytest.param(torch.tensor(1 + 2j), 1 + 2j, complex, id="torch-complex64"),
        pytest.param(torch.tensor(1.5, dtype=torch.bfloat16), 1.5, float, id="torch-bfloat16"),
        pytest.param(torch.tensor([7], dtype=torch.uint64), 7, int, id="torch-uint64"),
        pytest.param(np.array([[4]], dtype=np.int16), 4, int, id="numpy-int16-1x1"),
        pytest.param(np.float32(0.25), 0.25, float, id="numpy-float32-scalar"),
        pytest.param(np.bool_(False), False, bool, id="numpy-bool-scalar"),
        pytest.param(np.array(2.0, dtype=ml_dtypes.bfloat16), 2.0, float, id="numpy-bfloat16"),
        pytest.param(np.array([2**63 + 5], dtype=np.uint64), 2**63 + 5, int, id="numpy-uint64-big"),
    ],
)
def test_item_returns_python_scalar(obj, expected, kind):
    """``item`` returns one plain Python scalar of the natural Python type."""
    out = tb.item(obj)
    assert type(out) is kind
    assert out == expected


def test_item_requires_grad():
    """``item`` works on a tensor that requires grad (a graph node too)."""
    x = torch.tensor([3.0], requires_grad=True)
    assert tb.item(x * 2) == 6.0


def test_item_float64_is_exact():
    """``item`` of a float64 keeps every bit."""
    v = 0.1 + 0.2
    assert tb.item(np.array([v])) == v


def test_item_nan():
    """``item`` of NaN is a float NaN."""
    assert math.isnan(tb.item(torch.tensor(float("nan"))))


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(torch.ones(2), id="torch-2"),
        pytest.param(np.ones((1, 2)), id="numpy-1x2"),
        pytest.param(torch.empty(0), id="torch-empty"),
    ],
)
def test_item_needs_exactly_one_element(obj):
    """``item`` of anything but exactly one element raises LossyConversionError (a ValueError)."""
    with pytest.raises(tb.LossyConversionError):
        tb.item(obj)
    with pytest.raises(ValueError):
        tb.item(obj)


@cuda_only
def test_item_cuda():
    """``item`` works on a CUDA tensor."""
    assert tb.item(torch.tensor([5], device="cuda")) == 5


# ------------------------------------------------------------------ to_python


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(torch.tensor([1, 2, 3]), [1, 2, 3], id="torch-int-1d"),
        pytest.param(torch.tensor([[1.5, 2.0]]), [[1.5, 2.0]], id="torch-float-2d"),
        pytest.param(torch.tensor(4), 4, id="torch-0d"),
        pytest.param(np.array([True, False]), [True, False], id="numpy-bool"),
        pytest.param(np.float32(0.5), 0.5, id="numpy-scalar"),
        pytest.param(
            np.arange(4, dtype=np.uint8).reshape(2, 2)[::-1], [[2, 3], [0, 1]], id="reversed"
        ),
        pytest.param(np.array([1, 2], dtype=ml_dtypes.bfloat16), [1.0, 2.0], id="numpy-bfloat16"),
        pytest.param(torch.tensor([1.0], dtype=torch.bfloat16), [1.0], id="torch-bfloat16"),
        pytest.param(torch.ones(3, requires_grad=True), [1.0, 1.0, 1.0], id="requires-grad"),
        pytest.param(np.empty((0,)), [], id="empty"),
    ],
)
def test_to_python_values(obj, expected):
    """``to_python`` gives nested lists / scalars of plain Python values."""
    out = tb.to_python(obj)
    assert out == expected


def test_to_python_types_are_plain():
    """``to_python`` leaves contain only int/float/bool, never NumPy scalars."""
    out = tb.to_python(np.array([[1, 2]], dtype=np.int32))
    assert type(out) is list
    assert type(out[0]) is list
    assert type(out[0][0]) is int


def test_to_python_is_json_ready():
    """The result of ``to_python`` on a nested batch serialises with ``json.dumps``."""
    batch = {
        "x": torch.ones(2, 2),
        "y": np.arange(3, dtype=np.int64),
        "name": "s1",
        "extra": None,
        "bf": torch.tensor([0.5], dtype=torch.bfloat16),
        "scalar": np.float64(2.0),
    }
    text = json.dumps(tb.to_python(batch))
    assert json.loads(text)["y"] == [0, 1, 2]


def test_to_python_sparse():
    """``to_python`` of a sparse tensor gives its dense values."""
    with quiet():
        s = torch.eye(2).to_sparse()
    assert tb.to_python(s) == [[1.0, 0.0], [0.0, 1.0]]


# ------------------------------------------------------------------ shares_memory


def test_shares_memory_tensor_and_its_numpy():
    """A tensor and ``t.numpy()`` share memory."""
    t = torch.arange(4.0)
    assert tb.shares_memory(t, t.numpy()) is True
    assert tb.shares_memory(t.numpy(), t) is True


def test_shares_memory_array_and_from_numpy():
    """An array and ``torch.from_numpy(a)`` share memory."""
    a = np.arange(4.0)
    assert tb.shares_memory(a, torch.from_numpy(a)) is True


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param(torch.arange(4.0), torch.arange(4.0), id="two-tensors"),
        pytest.param(np.arange(4.0), torch.arange(4.0), id="array-tensor"),
        pytest.param(np.arange(4.0), np.arange(4.0), id="two-arrays"),
    ],
)
def test_shares_memory_false_for_independent(a, b):
    """Independently allocated data never shares memory."""
    assert tb.shares_memory(a, b) is False


def test_shares_memory_clone_is_false():
    """A clone does not share memory with its source."""
    t = torch.arange(4.0)
    assert tb.shares_memory(t, t.clone()) is False


def test_shares_memory_disjoint_slices_of_one_buffer():
    """Two non-overlapping halves of one buffer do not share memory (as np.shares_memory)."""
    t = torch.arange(8.0)
    assert tb.shares_memory(t[:4], t[4:].numpy()) is False


def test_shares_memory_overlapping_views():
    """Overlapping views of one buffer share memory, whatever their dtypes."""
    t = torch.arange(8, dtype=torch.int32)
    assert tb.shares_memory(t[2:6], t.numpy().view(np.uint8)[10:12]) is True


def test_shares_memory_tensor_tensor_views():
    """Two tensor views of one storage share memory."""
    t = torch.arange(8.0)
    assert tb.shares_memory(t[1:5], t.view(2, 4)) is True


def test_shares_memory_requires_grad_and_bfloat16():
    """``shares_memory`` accepts tensors that require grad and ml_dtypes arrays."""
    t = torch.ones(4, requires_grad=True)
    assert tb.shares_memory(t, t.detach()) is True
    b = torch.ones(4, dtype=torch.bfloat16)
    assert tb.shares_memory(b, b.view(torch.int16).numpy().view(ml_dtypes.bfloat16)) is True


def test_shares_memory_empty_is_false():
    """Empty arrays share no memory (nothing to share), as np.shares_memory says."""
    a = np.empty(0)
    assert tb.shares_memory(a, a) is False


@cuda_only
def test_shares_memory_cuda_and_host():
    """A CUDA tensor never shares memory with a host array."""
    t = torch.ones(4)
    assert tb.shares_memory(t.cuda(), t.numpy()) is False
