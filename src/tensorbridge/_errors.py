"""The exception classes and the one helper that describes an input in a message.

Every message has three parts: what the input was (type, dtype, shape, device, path inside a
container), why it cannot convert, and the argument or call that fixes it.
"""

from __future__ import annotations

import contextlib
import reprlib
import sys
from typing import Any


class ConversionError(Exception):
    """Base of every error tensorbridge raises for an input it cannot convert."""

    def __init__(self, message: str, *, path: str = "") -> None:
        self.bare_message = message
        self.path = path
        super().__init__(f"{message}" if not path else f"at {path}: {message}")

    def at(self, path: str) -> ConversionError:
        """The same error, located at ``path`` inside a container."""
        err = type(self)(self.bare_message, path=path)
        if isinstance(self, CopyRequiredError):
            err.reasons = self.reasons  # type: ignore[attr-defined]
        return err


class UnsupportedInputError(ConversionError, TypeError):
    """The input has no meaningful array form (strings, meta tensors, unknown objects, ...)."""


class CopyRequiredError(ConversionError, ValueError):
    """``copy=False`` was asked, but the result cannot share memory with the input."""

    reasons: tuple[str, ...] = ()


class LossyConversionError(ConversionError, ValueError):
    """The conversion would drop information that no argument asked to drop."""


def describe(obj: Any) -> str:
    """A short description of ``obj`` for messages: type, dtype, shape and device where known.

    >>> import numpy as np
    >>> describe(np.zeros((2, 3), dtype=np.float32))
    'numpy.ndarray(dtype=float32, shape=(2, 3), device=cpu)'
    """
    try:
        return _describe(obj)
    except Exception:  # a property or __repr__ of the object's own that raises, a deep nesting
        return _type_name(type(obj))


def _type_name(cls: type) -> str:
    """``module.Name``, shortened to the top-level package where it exports the class there
    (``pandas.DataFrame``, not ``pandas.core.frame.DataFrame``)."""
    module = str(getattr(cls, "__module__", "") or "")
    if module == "builtins":
        return cls.__qualname__
    parts = module.split(".")
    for n in (1, 2):  # pandas.DataFrame, scipy.sparse.csr_array
        package = ".".join(parts[:n])
        if getattr(sys.modules.get(package), cls.__qualname__, None) is cls:
            return f"{package}.{cls.__qualname__}"
    name = f"{module}.{cls.__qualname__}"
    return name.replace("numpy.ma.core.", "numpy.ma.")


def _describe(obj: Any) -> str:
    name = _type_name(type(obj)).replace("torch.nn.parameter.", "torch.nn.")
    parts = []
    dtype = getattr(obj, "dtype", None)
    if dtype is not None and not callable(dtype):
        parts.append(f"dtype={dtype}")
    if getattr(obj, "is_nested", False) is True:
        parts.append("nested")  # a nested tensor's shape is ragged: PyTorch raises on .shape
    else:
        shape = getattr(obj, "shape", None)
        if shape is not None and not callable(shape):
            with contextlib.suppress(TypeError):
                parts.append(f"shape={tuple(shape)}")
    device = getattr(obj, "device", None)
    if device is not None and not callable(device):
        parts.append(f"device={device}")
    if not parts:
        return f"{name} {_short_repr(obj)}"
    return f"{name}({', '.join(parts)})"


def _short_repr(obj: Any) -> str:
    """At most 60 characters of ``repr(obj)``; a list too deep to print is described by size."""
    try:
        text = _REPR.repr(obj)
    except Exception:
        return f"of {len(obj)} items" if isinstance(obj, (list, tuple)) else "object"
    return f"{text[:60]}{'...' if len(text) > 60 else ''}"


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxstring = 3, 8, 8, 6, 60
_REPR.maxother = 60
