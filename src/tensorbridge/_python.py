"""``to_python`` and ``item``: plain Python values, JSON-ready, from any tensor or array."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._adapt import all_numbers
from ._api import flatten_input, to_numpy, top_level
from ._dtypes import by_numpy
from ._errors import ConversionError, LossyConversionError, UnsupportedInputError, describe
from ._kinds import LEAF_KINDS, Kind, kind_of

_COMPLEX32 = getattr(torch, "complex32", None)


def _widen_ml(a: np.ndarray) -> np.ndarray:
    """ml_dtypes arrays as float32/complex64 (exact), so ``tolist`` gives Python numbers."""
    row = by_numpy(a.dtype)
    if row is None or row.native:
        return a
    return a.astype(np.complex64 if row.kind == "c" else np.float32)


def _leaf_to_python(obj: Any, kind: str) -> Any:
    if kind is Kind.NUMPY_SCALAR:
        return _widen_ml(np.asarray(obj)).item()
    if kind in LEAF_KINDS:
        return _widen_ml(to_numpy(obj)).tolist()
    return obj


def to_python(obj: Any, /) -> Any:
    """Plain Python values: numbers, nested lists, containers of them (JSON-ready).

    >>> import torch
    >>> to_python({"loss": torch.tensor(0.5), "ids": torch.tensor([1, 2])})
    {'loss': 0.5, 'ids': [1, 2]}
    """
    obj, kind, role = top_level(obj, "numpy")
    if role == "leaf" and kind in LEAF_KINDS:
        return _leaf_to_python(obj, kind)
    if kind is Kind.PY_SCALAR or kind is Kind.BYTES:
        return obj
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
    raise UnsupportedInputError(
        f"item() takes one tensor, array or number, not {describe(obj)}; use to_python(x) for "
        f"containers"
    )
