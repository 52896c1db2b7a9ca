"""What the adapters share: the step an adapter reports (run while planning, as every adapter
step is) and the rule that an exception raised by a user object's own code becomes one
``ConversionError``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from .._adapt import _ran, _step
from .._errors import ConversionError, describe
from .._plan import SIZE, Step

__all__ = ["SIZE", "adapted", "fixed", "guarded"]

T = TypeVar("T")


def adapted(text: str, value: Any, reason: str = "") -> tuple[Step, Any]:
    """The adapter's step (shared, so it can be part of a plan's cache key) and its value; the
    step copied when ``reason`` says why (``text`` may hold ``SIZE`` for its bytes)."""
    itemsize = value.itemsize if isinstance(value, np.ndarray) else value.element_size()
    return _ran(_step(text, itemsize if reason else 0, reason), value)


def _unused(value: Any) -> Any:
    raise AssertionError("adapter steps run while planning")


def fixed(text: str, value: Any, nbytes: int, reason: str) -> tuple[Step, Any]:
    """The adapter's step for a copy of ``nbytes`` bytes (not a per-element size)."""
    step = Step(f"{text} ({SIZE})", call=_unused, nbytes=nbytes, copies=1, reason=reason)
    return _ran(step, value)


def guarded(obj: Any, what: str, fn: Callable[[], T]) -> T:
    """``fn()``, with any exception from ``obj``'s own code re-raised as a ``ConversionError``
    naming ``obj`` (the original kept as ``__cause__``)."""
    try:
        return fn()
    except ConversionError:
        raise
    except Exception as e:
        raise ConversionError(
            f"{describe(obj)}: {what} raised {type(e).__name__}: {e}; fix the object (is its "
            f"file still open, its buffer alive?) or convert it with its own library first"
        ) from e


def tensor_bytes(t: torch.Tensor) -> int:
    """The bytes of a tensor's own arrays (a sparse tensor's values and indices)."""
    return t.numel() * t.element_size()
