"""Errors: which exception, when, and a message naming the input, its path and the fix.

SPEC: "Every message names the input (type, dtype, shape, device, and its path inside a
container), the reason, and the fix (the argument or call that makes it work)."
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch

import tensorbridge as tb
from helpers import assert_message, quiet

SHAPE = (2, 3)


def _masked():
    return np.ma.masked_array(np.ones(SHAPE), mask=np.zeros(SHAPE, dtype=bool))


def _conj():
    return torch.ones(SHAPE, dtype=torch.complex64).conj()


def _sparse():
    with quiet():
        return torch.eye(2, 3).to_sparse()


@dataclass
class ErrCase:
    """One failing call: its input, the call, the expected class and what the message must name."""

    id: str
    exc: type
    make: Callable[[], Any]
    call: Callable[[Any], Any]
    type_name: str
    dtype: str | tuple[str, ...] | None
    fix: str | tuple[str, ...] | None
    words: tuple[str, ...] = field(default_factory=tuple)  # reason words, any one must appear
    device: bool = False


CASES = [
    ErrCase(
        "lossy-masked-to_torch", tb.LossyConversionError, _masked, tb.to_torch,
        "MaskedArray", "float64", ".filled(", ("mask",),
    ),
    ErrCase(
        "lossy-masked-to_numpy", tb.LossyConversionError, _masked, tb.to_numpy,
        "MaskedArray", "float64", ".filled(", ("mask",),
    ),
    ErrCase(
        "lossy-longdouble", tb.LossyConversionError,
        lambda: np.ones(SHAPE, dtype=np.longdouble), tb.to_torch,
        "ndarray", ("float128", "longdouble", "float96"), "dtype=", ("precision", "long double"),
    ),
    ErrCase(
        "lossy-complex-to-real-to_torch", tb.LossyConversionError,
        lambda: np.ones(SHAPE, dtype=np.complex128), lambda x: tb.to_torch(x, dtype=torch.float64),
        "ndarray", "complex128", ".real", ("imag",),
    ),
    ErrCase(
        "lossy-complex-to-real-to_numpy", tb.LossyConversionError,
        lambda: torch.ones(SHAPE, dtype=torch.complex64),
        lambda x: tb.to_numpy(x, dtype=np.float32),
        "Tensor", "complex64", ".real", ("imag",), True,
    ),
    ErrCase(
        "copy-negative-strides", tb.CopyRequiredError,
        lambda: np.ones((2, 6))[:, ::-2], lambda x: tb.to_torch(x, copy=False),
        "ndarray", "float64", "copy=", ("stride",),
    ),
    ErrCase(
        "copy-byte-order", tb.CopyRequiredError,
        lambda: np.ones(SHAPE, dtype=">i4"), lambda x: tb.to_torch(x, copy=False),
        "ndarray", ("int32", ">i4"), "copy=", ("byte order", "endian"),
    ),
    ErrCase(
        "copy-cast", tb.CopyRequiredError,
        lambda: np.ones(SHAPE), lambda x: tb.to_torch(x, dtype=torch.float32, copy=False),
        "ndarray", "float64", "copy=", ("float32",),
    ),
    ErrCase(
        "copy-conj", tb.CopyRequiredError, _conj, lambda x: tb.to_numpy(x, copy=False),
        "Tensor", "complex64", "copy=", ("conj",), True,
    ),
    ErrCase(
        "copy-sparse", tb.CopyRequiredError, _sparse, lambda x: tb.to_numpy(x, copy=False),
        "Tensor", "float32", "copy=", ("sparse", "layout"), True,
    ),
    ErrCase(
        "unsupported-str-array", tb.UnsupportedInputError,
        lambda: np.full(SHAPE, "a"), tb.to_torch,
        "ndarray", ("<U1", "str"), "dtype", (),
    ),
    ErrCase(
        "unsupported-datetime", tb.UnsupportedInputError,
        lambda: np.zeros(SHAPE, dtype="datetime64[D]"), tb.to_torch,
        "ndarray", "datetime64", "dtype=", (),
    ),
    ErrCase(
        "unsupported-meta", tb.UnsupportedInputError,
        lambda: torch.empty(SHAPE, device="meta"), tb.to_numpy,
        "Tensor", "float32", None, ("meta",), True,
    ),
]  # fmt: skip

IDS = [c.id for c in CASES]


def _raise(case: ErrCase) -> BaseException:
    obj = case.make()
    with pytest.raises(case.exc) as ei:
        case.call(obj)
    return ei.value


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_raises_the_documented_class(case):
    """Each failure raises the class the SPEC table names for it."""
    _raise(case)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_caught_as_builtin_and_base(case):
    """Each error is also a ConversionError and the builtin its class specialises."""
    err = _raise(case)
    assert isinstance(err, tb.ConversionError)
    builtin = TypeError if case.exc is tb.UnsupportedInputError else ValueError
    assert isinstance(err, builtin)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_message_names_type(case):
    """The message names the input's type."""
    assert_message(_raise(case), type_name=case.type_name)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_message_names_dtype(case):
    """The message names the input's dtype."""
    msg = str(_raise(case))
    dtypes = (case.dtype,) if isinstance(case.dtype, str) else case.dtype
    assert any(d in msg for d in dtypes), f"none of {dtypes} in: {msg}"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_message_names_shape(case):
    """The message names the input's shape."""
    assert_message(_raise(case), shape=SHAPE)


@pytest.mark.parametrize("case", [c for c in CASES if c.fix], ids=[c.id for c in CASES if c.fix])
def test_message_names_the_fix(case):
    """The message names the argument or call that makes the conversion work."""
    assert_message(_raise(case), fix=case.fix)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.words], ids=[c.id for c in CASES if c.words]
)
def test_message_names_the_reason(case):
    """The message says why (mask, precision, stride, byte order, conj, layout, meta...)."""
    msg = str(_raise(case)).lower()
    assert any(w.lower() in msg for w in case.words), f"none of {case.words} in: {msg}"


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.device], ids=[c.id for c in CASES if c.device]
)
def test_message_names_tensor_device(case):
    """For a tensor input the message names its device."""
    obj = case.make()
    msg = str(_raise(case))
    assert str(obj.device.type) in msg, msg


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_message_names_path_inside_container(case):
    """Inside a container, the same error names the leaf's path ``obj["images"][3]``."""
    obj = case.make()
    batch = {"labels": None, "images": ["a", 3, None, obj]}  # fillers pass through untouched
    with pytest.raises(case.exc) as ei:
        case.call(batch)
    assert_message(ei.value, path='obj["images"][3]')


@pytest.mark.parametrize(
    "obj", [pytest.param("text", id="str"), pytest.param(object(), id="object")]
)
@pytest.mark.parametrize("func", ["to_numpy", "to_torch"])
def test_unknown_top_level_message_names_type(func, obj):
    """An unsupported top-level object's message names its type."""
    with pytest.raises(tb.UnsupportedInputError) as ei:
        getattr(tb, func)(obj)
    assert type(obj).__name__ in str(ei.value)


def test_item_on_many_elements_is_lossy():
    """``item`` of a tensor of more than one element raises LossyConversionError (a ValueError)."""
    with pytest.raises(tb.LossyConversionError) as ei:
        tb.item(torch.ones(SHAPE))
    assert isinstance(ei.value, ValueError)
    assert_message(ei.value, type_name="Tensor", dtype="float32", shape=SHAPE)


def test_item_on_empty_is_lossy():
    """``item`` of an empty array raises LossyConversionError (there is no element)."""
    with pytest.raises(tb.LossyConversionError):
        tb.item(np.empty((0,)))


def test_errors_do_not_chain_internal_tracebacks():
    """Errors are raised ``from None``-style: no implicit internal exception context is shown."""
    with pytest.raises(tb.ConversionError) as ei:
        tb.to_torch(np.ma.masked_array([1.0], mask=[True]))
    assert ei.value.__cause__ is None
    assert ei.value.__suppress_context__ or ei.value.__context__ is None


def test_shape_regex_sanity():
    """The test helper finds shapes written in the common ways (and not inside other numbers)."""
    from helpers import shape_regex

    for text in ("shape (2, 3)", "torch.Size([2, 3])", "2x3", "2×3", "[2,3]"):
        assert shape_regex(SHAPE).search(text), text
    assert not shape_regex(SHAPE).search("shape (12, 3)")


@pytest.mark.parametrize("dtype", [torch.qint8, torch.quint8], ids=["qint8", "quint8"])
def test_quantized_target_dtype_is_a_conversion_error(dtype):
    """A quantized target dtype (it needs a scale) raises a ConversionError, not a raw error."""
    with pytest.raises(tb.ConversionError) as ei:
        tb.to_torch(np.ones(SHAPE), dtype=dtype)
    assert_message(ei.value, type_name="ndarray", shape=SHAPE)


@pytest.mark.parametrize(
    "np_dtype",
    ["int4", "float8_e4m3", "float4_e2m1fn"],
    ids=["int4", "float8_e4m3", "float4_e2m1fn"],
)
def test_ml_dtype_without_torch_twin_is_unsupported(np_dtype):
    """An ml_dtypes type PyTorch lacks is UnsupportedInputError naming that dtype."""
    import ml_dtypes

    dt = getattr(ml_dtypes, np_dtype, None)
    if dt is None:
        pytest.skip(f"ml_dtypes has no {np_dtype}")
    with pytest.raises(tb.UnsupportedInputError) as ei:
        tb.to_torch(np.zeros(SHAPE, dtype=dt))
    assert_message(ei.value, dtype=np_dtype, shape=SHAPE, fix="dtype=")
