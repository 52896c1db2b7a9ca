"""``to_python`` and ``item``: plain Python values, JSON-ready, from any tensor or array."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._adapt import all_numbers, discard_kept, unsupported
from ._api import flatten_input, to_numpy, top_level
from ._dtypes import by_numpy
from ._errors import ConversionError, LossyConversionError, UnsupportedInputError, describe
from ._foreign.refusals import number_fix
from ._kinds import LEAF_KINDS, Kind, kind_of

_COMPLEX32 = getattr(torch, "complex32", None)
_Tensor = torch.Tensor


def _widen_ml(a: np.ndarray) -> np.ndarray:
    """ml_dtypes arrays as float32/complex64 (exact), so ``tolist`` gives Python numbers."""
    row = by_numpy(a.dtype)
    if row is None or row.native:
        return a
    return a.astype(np.complex64 if row.kind == "c" else np.float32)


def _no_json(a: np.ndarray, subject: Any) -> ConversionError | None:
    """Why an array's values have no exact JSON form, with the call that gives them one."""
    kind = a.dtype.kind
    if kind in "Mm":
        unit = np.datetime_data(a.dtype)[0]
        text = ", or np.datetime_as_string(x) for ISO text" if kind == "M" else ""
        since = " since the epoch" if kind == "M" else ""
        return UnsupportedInputError(
            f"{describe(subject)} holds {a.dtype} values, which have no JSON form; convert "
            f"them first: x.astype('int64') for counts of {unit}{since}{text}"
        )
    if kind in "fc" and a.dtype.itemsize > (8 if kind == "f" else 16):
        return LossyConversionError(
            f"{describe(subject)}: long double has no exact JSON form (a JSON number is a "
            f"float64); convert x.astype(np.float64) first to accept the rounding"
        )
    if kind == "c":
        return LossyConversionError(
            f"{describe(subject)} is complex, and JSON has no complex numbers; convert the real "
            f"and imaginary parts as pairs, torch.view_as_real(t) (or np.stack([a.real, a.imag], "
            f"-1))"
        )
    if kind in "SV":
        return UnsupportedInputError(
            f"{describe(subject)} holds {a.dtype} values (bytes or records), which have no JSON "
            f"form; decode or split them first"
        )
    return None


def _array_to_python(a: np.ndarray, subject: Any) -> Any:
    a = _widen_ml(a)  # bfloat16, float8, complex32 as float32/complex64: exact
    problem = _no_json(a, subject)
    if problem is not None:
        raise problem
    out = a.tolist()
    if a.dtype.kind == "O":  # the items of an object array follow the same rules
        return _items_to_python(out)
    return out


def _items_to_python(x: Any) -> Any:
    if type(x) is list:
        return [_items_to_python(v) for v in x]
    return _leaf_to_python(x, kind_of(x))


def _leaf_to_python(obj: Any, kind: str) -> Any:
    """One leaf as JSON's values: an array's ``tolist``, or a plain value as it is."""
    if kind is Kind.NUMPY_SCALAR:
        return _array_to_python(np.asarray(obj), obj)
    if kind in LEAF_KINDS:
        converted = to_numpy(obj)
        if isinstance(converted, list):  # a nested (jagged) tensor
            return [_array_to_python(a, obj) for a in converted]
        return _array_to_python(converted, obj)
    if (
        kind is Kind.STR
        or kind is Kind.NONE
        or (kind is Kind.PY_SCALAR and type(obj) is not complex)
    ):
        return obj
    if kind is Kind.PY_SCALAR:
        raise LossyConversionError(
            f"{describe(obj)} is complex, and JSON has no complex numbers; convert "
            f"[x.real, x.imag] instead"
        )
    if kind is Kind.BYTES:
        raise UnsupportedInputError(
            f"{describe(obj)}: bytes have no JSON form; decode them first (b.decode()) or "
            f"pass list(b) for their values"
        )
    how = "x.isoformat() for ISO text" if hasattr(obj, "isoformat") else "convert it"
    raise UnsupportedInputError(
        f"{describe(obj)} has no JSON form: to_python gives dicts, lists, str, int, float, "
        f"bool and None; {how} (or leave it out) first"
    )


def to_python(obj: Any, /) -> Any:
    """Plain Python values, JSON-ready: dicts, lists, str, int, float, bool and None only.

    Mappings and dataclasses become dicts, tuples and namedtuples lists; a value with no exact
    JSON form (complex, long double, datetime64) raises with the call that gives it one.

    >>> import torch
    >>> to_python({"loss": torch.tensor(0.5), "ids": (torch.tensor([1, 2]), 3)})
    {'loss': 0.5, 'ids': [[1, 2], 3]}
    """
    obj, kind, role = top_level(obj, "numpy")
    discard_kept()  # a list of numbers stays Python numbers here: no array is built from it
    if role == "leaf" and kind in LEAF_KINDS:
        return _leaf_to_python(obj, kind)
    if kind is Kind.BYTES:
        return _leaf_to_python(obj, Kind.BUFFER)  # its bytes, as to_numpy reads them
    if kind is Kind.PY_SCALAR:
        return _leaf_to_python(obj, kind)
    flat = flatten_input(obj, "numpy", plain=True)
    out = []
    for i, leaf in enumerate(flat.leaves):
        try:
            out.append(_leaf_to_python(leaf, kind_of(leaf)))
        except ConversionError as e:
            raise e.at(flat.path(i)) from None
    return flat.rebuild(out)


def _one_element(obj: Any, size: int) -> None:
    if size != 1:
        raise LossyConversionError(
            f"item() needs exactly one element, and {describe(obj)} has {size}: a scalar would "
            f"drop the rest; index it first (x[0], x.flatten()[i]) or use to_python(x)"
        )


def item(obj: Any, /) -> Any:
    """The single value of a one-element tensor, array, scalar or list, as a Python scalar.

    Works on any device and on tensors that require grad.

    >>> import torch
    >>> item(torch.tensor([[2.5]], requires_grad=True))
    2.5
    """
    if type(obj) is _Tensor and obj.dtype is not _COMPLEX32:
        try:
            return obj.item()  # one element, on any device, with or without grad
        except RuntimeError:
            pass  # many elements, meta, nested: the checks below say which
    kind = kind_of(obj)
    if kind is Kind.PY_SCALAR:
        return obj
    if kind is Kind.TORCH:
        t = obj
        if t.is_meta:
            raise UnsupportedInputError(f"{describe(t)} is a meta tensor: it holds no value")
        if t.is_nested or t.layout is not torch.strided or t.is_quantized:
            return item(to_numpy(t) if not t.is_nested else [to_numpy(x) for x in t.unbind()])
        _one_element(t, t.numel())
        if t.dtype is not _COMPLEX32:  # Tensor.item() warns on complex32: go through NumPy
            return t.item()
        return item(to_numpy(t))
    if kind is Kind.SEQUENCE and all_numbers(obj):
        flat = np.asarray(obj, dtype=object).ravel()
        _one_element(obj, flat.size)
        return item(flat[0])
    if kind in LEAF_KINDS:
        a = np.asarray(obj) if kind is Kind.NUMPY_SCALAR else to_numpy(obj)
        _one_element(obj, a.size)
        return _widen_ml(a).item()
    if kind is Kind.SEQUENCE:
        if len(obj) == 1:
            return item(obj[0])
        _one_element(obj, len(obj))
    if kind is Kind.REFUSED or kind is Kind.NONE or number_fix(obj):
        raise unsupported(obj, kind)  # the fix for that object (list(it), backward(), ...)
    raise UnsupportedInputError(
        f"item() takes one tensor, array or number, not {describe(obj)}; use to_python(x) for "
        f"containers"
    )
