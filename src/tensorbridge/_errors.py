"""The exception classes and the one helper that describes an input in a message.

Every message has three parts: what the input was (type, dtype, shape, device, path inside a
container), why it cannot convert, and the argument or call that fixes it.
"""

from __future__ import annotations

import contextlib
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
    cls = type(obj)
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    name = name.replace("torch.nn.parameter.", "torch.nn.").replace("numpy.ma.core.", "numpy.ma.")
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
        text = repr(obj)
        return f"{name} {text[:60]}{'...' if len(text) > 60 else ''}"
    return f"{name}({', '.join(parts)})"
