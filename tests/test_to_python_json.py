"""``to_python`` is JSON-ready (SPEC: "Containers"): only dict, list, str, int, float, bool and
None come back; a value with no exact JSON form raises with a fix that works."""

import collections
import dataclasses
import datetime
import json
import types
from typing import NamedTuple

import numpy as np
import pytest
import torch

import tensorbridge as tb


@dataclasses.dataclass
class Metrics:
    """A dataclass of metrics, as a training loop returns them."""

    loss: torch.Tensor
    step: int


class Pair(NamedTuple):
    """A namedtuple of two leaves."""

    a: torch.Tensor
    b: float


def _plain(x):
    if isinstance(x, dict):
        return all(type(k) is str for k in x) and all(_plain(v) for v in x.values())
    if isinstance(x, list):
        return all(_plain(v) for v in x)
    return x is None or type(x) in (str, int, float, bool)


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(Metrics(torch.tensor(0.5), 3), {"loss": 0.5, "step": 3}, id="dataclass"),
        pytest.param(collections.UserDict(a=np.int32(1)), {"a": 1}, id="UserDict"),
        pytest.param(types.MappingProxyType({"a": np.ones(1)}), {"a": [1.0]}, id="mappingproxy"),
        pytest.param(collections.ChainMap({"a": 1}, {"b": 2.5}), {"a": 1, "b": 2.5}, id="ChainMap"),
        pytest.param(collections.OrderedDict(x=torch.ones(1)), {"x": [1.0]}, id="OrderedDict"),
        pytest.param(collections.defaultdict(list, k=[1]), {"k": [1]}, id="defaultdict"),
        pytest.param((torch.tensor(1), "s", None), [1, "s", None], id="tuple"),
        pytest.param(Pair(torch.tensor([2]), 1.5), [[2], 1.5], id="namedtuple"),
        pytest.param(np.float16(0.5), 0.5, id="float16-scalar"),
        pytest.param(torch.tensor([1.5], dtype=torch.bfloat16), [1.5], id="bfloat16"),
        pytest.param(np.array([1, 2.5], dtype=object), [1, 2.5], id="object-array"),
        pytest.param(np.array(["ab", "c"]), ["ab", "c"], id="str-array"),
    ],
)
def test_to_python_gives_plain_json_values(obj, expected):
    """Mappings and dataclasses become dicts, sequences lists, leaves Python numbers."""
    out = tb.to_python(obj)
    assert out == expected
    assert _plain(out)
    assert json.loads(json.dumps(out)) == expected


@pytest.mark.parametrize(
    ("obj", "error", "fix", "apply"),
    [
        pytest.param(
            np.ones(2, dtype=np.longdouble),
            tb.LossyConversionError,
            r"astype\(np\.float64\)",
            lambda x: x.astype(np.float64),
            id="long-double",
        ),
        pytest.param(
            np.array(["2020-01-02"], dtype="M8[D]"),
            tb.UnsupportedInputError,
            r"astype\('int64'\).*np\.datetime_as_string",
            lambda x: np.datetime_as_string(x),
            id="datetime64",
        ),
        pytest.param(
            np.timedelta64(5, "s"),
            tb.UnsupportedInputError,
            r"astype\('int64'\)",
            lambda x: x.astype("int64"),
            id="timedelta64-scalar",
        ),
        pytest.param(
            torch.tensor([1 + 2j]),
            tb.LossyConversionError,
            r"torch\.view_as_real\(t\)",
            torch.view_as_real,
            id="complex",
        ),
        pytest.param(
            {"b": b"raw"},
            tb.UnsupportedInputError,
            r"b\.decode\(\)",
            lambda d: {"b": d["b"].decode()},
            id="bytes-in-dict",
        ),
    ],
)
def test_values_with_no_json_form_raise_with_a_fix_that_works(obj, error, fix, apply):
    """Long double, datetimes, complex and bytes raise naming the fix; the fix makes it work."""
    with pytest.raises(error, match=fix):
        tb.to_python(obj)
    json.dumps(tb.to_python(apply(obj)))


def test_error_inside_a_container_names_the_path():
    """A value with no JSON form inside a container is named by its path."""
    with pytest.raises(tb.ConversionError, match=r'obj\["m"\]\.when'):
        tb.to_python({"m": _When(np.datetime64("2020-01-01"))})


@dataclasses.dataclass
class _When:
    """A dataclass holding a datetime64 scalar."""

    when: np.datetime64


def test_unknown_objects_are_refused():
    """to_python(object()) raises UnsupportedInputError at the top level and inside a container."""
    with pytest.raises(tb.UnsupportedInputError):
        tb.to_python(object())
    with pytest.raises(tb.UnsupportedInputError, match=r'obj\["o"\]'):
        tb.to_python({"o": object()})


def test_top_level_values_follow_to_numpy():
    """At the top level, numbers and lists of numbers convert as to_numpy reads them; str and None
    have no array form and are refused, as in to_numpy; inside a container they pass through."""
    assert tb.to_python(3) == 3
    assert tb.to_python([1, 2]) == [1, 2]
    with pytest.raises(tb.UnsupportedInputError):
        tb.to_python("s")
    with pytest.raises(tb.UnsupportedInputError, match=r"backward\(\)"):
        tb.to_python(None)
    assert tb.to_python({"s": "x", "n": None, "l": [1, [2.5, True]]}) == {
        "s": "x",
        "n": None,
        "l": [1, [2.5, True]],
    }


def test_non_string_keys():
    """int keys are kept (json writes them); a tuple key raises naming the fix."""
    assert tb.to_python({1: torch.tensor(2)}) == {1: 2}
    with pytest.raises(tb.UnsupportedInputError, match=r"keys to str"):
        tb.to_python({(1, 2): 3})


def test_a_python_datetime_in_a_container_names_isoformat():
    """A datetime inside a container is refused naming .isoformat(), which gives JSON text."""
    when = datetime.datetime(2020, 1, 2, 3, 4, 5)
    with pytest.raises(tb.UnsupportedInputError, match=r'obj\["t"\].*isoformat'):
        tb.to_python({"t": when})
    assert json.loads(json.dumps(tb.to_python({"t": when.isoformat()}))) == {
        "t": "2020-01-02T03:04:05"
    }
