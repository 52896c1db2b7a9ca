"""Objects with no array form, each refused with the fix that fits it.

Generators and other iterators are read once (``list(...)`` them), sets have no order
(``sorted(...)``), a ``nn.Module`` or an optimizer holds its tensors in ``.state_dict()``, an
open file is read with its own reader, and ``None`` at the top level is most often a ``.grad``
read before ``backward()``. Inside a container these objects pass through unchanged, as every
non-array value does.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, ItemsView, Iterator, KeysView, ValuesView
from typing import Any

from .._errors import ConversionError, UnsupportedInputError, describe
from . import Adapter


def _refused(name: str, fix: str) -> Adapter:
    def refuse(obj: Any) -> ConversionError:
        return UnsupportedInputError(f"{describe(obj)} has no array form: {fix}")

    return Adapter(name, "refused", refuse=refuse)


def _module_types() -> tuple[type, ...]:
    torch = sys.modules.get("torch")
    if torch is None:
        return ()
    return (torch.nn.Module, torch.optim.Optimizer)


_RULES: list[tuple[Callable[[type], bool], Adapter]] = [
    (
        lambda cls: issubclass(cls, _module_types()),
        _refused(
            "module",
            "its tensors are in .state_dict() (or .parameters()); convert "
            "model.state_dict() instead",
        ),
    ),
    (
        lambda cls: issubclass(cls, io.IOBase),
        _refused("file", "read the file with its own reader first (np.load, torch.load, ...)"),
    ),
    (
        lambda cls: issubclass(cls, (set, frozenset)),
        _refused("set", "a set has no order; pass sorted(s) (or list(s)) instead"),
    ),
    (
        lambda cls: issubclass(cls, (KeysView, ValuesView, ItemsView, Iterator)),
        _refused(
            "iterator",
            "an iterator or generator is consumed as it is read, and its length is unknown; "
            "pass list(it) instead",
        ),
    ),
]


def recognise(cls: type) -> Adapter | None:
    for applies, adapter in _RULES:
        if applies(cls):
            return adapter
    return None


def none_error(obj: Any) -> UnsupportedInputError:
    """``None`` at the top level: most often a ``.grad`` read before ``backward()``."""
    return UnsupportedInputError(
        "None has no array form. If it is a tensor's .grad: a .grad is None before backward() "
        "has run (call loss.backward() first), and for a tensor that does not require grad "
        "(create it with requires_grad=True); inside a container None passes through unchanged"
    )


def number_fix(obj: Any) -> str:
    """The fix for a number type NumPy does not know (``Decimal``, ``Fraction``): ``float(x)``."""
    cls = type(obj)
    if isinstance(obj, (str, bytes)) or not (
        hasattr(cls, "__float__") or hasattr(cls, "__index__")
    ):
        return ""
    call = "int(x)" if hasattr(cls, "__index__") else "float(x)"
    return f"it is a number NumPy and PyTorch do not know; convert it first, {call}"
