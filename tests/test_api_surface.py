"""The public surface: names, signatures and the exception hierarchy (SPEC: "Public API")."""

from __future__ import annotations

import inspect
from importlib import resources

import pytest

import tensorbridge as tb

PUBLIC = [
    "ConversionError",
    "CopyRequiredError",
    "LossyConversionError",
    "Plan",
    "UnsupportedInputError",
    "collate",
    "explain",
    "item",
    "shares_memory",
    "to_numpy",
    "to_python",
    "to_torch",
]


def test_all_is_pinned():
    """``__all__`` lists exactly the public names, nothing more and nothing less."""
    assert sorted(tb.__all__) == PUBLIC


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_is_importable(name):
    """Every public name is an attribute of the package."""
    assert getattr(tb, name) is not None


def test_star_import_gives_public_names():
    """``from tensorbridge import *`` brings in exactly ``__all__``."""
    ns: dict = {}
    exec("from tensorbridge import *", ns)
    assert sorted(k for k in ns if not k.startswith("__")) == PUBLIC


@pytest.mark.parametrize(
    ("cls", "bases"),
    [
        pytest.param("ConversionError", (Exception,), id="ConversionError"),
        pytest.param("UnsupportedInputError", ("ConversionError", TypeError), id="Unsupported"),
        pytest.param("CopyRequiredError", ("ConversionError", ValueError), id="CopyRequired"),
        pytest.param("LossyConversionError", ("ConversionError", ValueError), id="Lossy"),
    ],
)
def test_exception_bases(cls, bases):
    """Each exception subclasses the bases the SPEC table gives, so callers can catch either."""
    klass = getattr(tb, cls)
    for base in bases:
        base = getattr(tb, base) if isinstance(base, str) else base
        assert issubclass(klass, base), f"{cls} should subclass {base.__name__}"


def test_conversion_error_is_not_a_builtin_specialisation():
    """``ConversionError`` itself is a plain ``Exception`` (neither TypeError nor ValueError)."""
    assert not issubclass(tb.ConversionError, (TypeError, ValueError))


def _params(func):
    return inspect.signature(func).parameters


def test_to_numpy_signature():
    """``to_numpy(obj, /, *, dtype=None, float_dtype=None, copy=None)``."""
    p = _params(tb.to_numpy)
    assert list(p) == ["obj", "dtype", "float_dtype", "copy"]
    assert p["obj"].kind is inspect.Parameter.POSITIONAL_ONLY
    for name in ("dtype", "float_dtype", "copy"):
        assert p[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert p[name].default is None


def test_to_torch_signature():
    """``to_torch`` takes the SPEC's keywords with the SPEC's defaults."""
    p = _params(tb.to_torch)
    assert list(p) == [
        "obj", "dtype", "float_dtype", "device", "copy",
        "requires_grad", "pin_memory", "non_blocking",
    ]  # fmt: skip
    assert p["obj"].kind is inspect.Parameter.POSITIONAL_ONLY
    expected = {
        "dtype": None, "float_dtype": None, "device": None, "copy": None,
        "requires_grad": None, "pin_memory": False, "non_blocking": False,
    }  # fmt: skip
    for name, default in expected.items():
        assert p[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert p[name].default is default, name


@pytest.mark.parametrize(
    ("func", "names"),
    [
        pytest.param("to_python", ["obj"], id="to_python"),
        pytest.param("item", ["obj"], id="item"),
        pytest.param("shares_memory", ["a", "b"], id="shares_memory"),
    ],
)
def test_positional_only_helpers(func, names):
    """``to_python``, ``item`` and ``shares_memory`` take their inputs positionally only."""
    p = _params(getattr(tb, func))
    pos = [n for n, v in p.items() if v.kind is inspect.Parameter.POSITIONAL_ONLY]
    assert len(pos) == len(names)
    assert all(v.kind is inspect.Parameter.POSITIONAL_ONLY for v in p.values())


def test_explain_signature():
    """``explain(obj, /, to=..., **kw)``: one positional input, ``to`` and the target's keywords."""
    p = _params(tb.explain)
    first = next(iter(p.values()))
    assert first.kind is inspect.Parameter.POSITIONAL_ONLY
    assert "to" in p
    assert any(v.kind is inspect.Parameter.VAR_KEYWORD for v in p.values()) or {
        "dtype", "copy"
    } <= set(p)  # fmt: skip


def test_obj_is_positional_only_at_runtime():
    """Passing the input by keyword is a TypeError (it is positional-only)."""
    with pytest.raises(TypeError):
        tb.to_numpy(obj=[1, 2])  # type: ignore[call-arg]


def test_unknown_keyword_rejected():
    """A misspelt keyword is a TypeError, not silently ignored."""
    with pytest.raises(TypeError):
        tb.to_numpy([1, 2], dytpe="float32")  # type: ignore[call-arg]


def test_package_is_typed():
    """The package ships ``py.typed`` (PEP 561)."""
    assert resources.files("tensorbridge").joinpath("py.typed").is_file()


def test_plan_is_a_class():
    """``Plan`` is the class ``explain`` returns."""
    assert isinstance(tb.Plan, type)
    assert isinstance(tb.explain([1.0, 2.0], to="numpy"), tb.Plan)


def test_collate_signature():
    """``collate(samples, /, *, dtype=None, float_dtype=None, ragged="error", pad_value=0)``."""
    p = _params(tb.collate)
    assert list(p) == ["samples", "dtype", "float_dtype", "ragged", "pad_value"]
    assert p["samples"].kind is inspect.Parameter.POSITIONAL_ONLY
    expected = {"dtype": None, "float_dtype": None, "ragged": "error", "pad_value": 0}
    for name, default in expected.items():
        assert p[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert p[name].default == default, name
