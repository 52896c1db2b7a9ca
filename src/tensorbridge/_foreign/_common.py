"""What the adapters share: a step that hands over a value built while planning, and the rule
that an exception raised by a user object's own protocol becomes one ``ConversionError``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from .._errors import ConversionError, describe
from .._plan import Step

T = TypeVar("T")


def _const(_: Any, value: Any) -> Any:
    return value


def handed_over(text: str, value: Any, *, nbytes: int = 0, reason: str = "") -> Step:
    """A step handing over ``value``, built while planning; it copied if ``reason`` says why."""
    return Step(text, _const, value, nbytes=nbytes, copies=1 if reason else 0, reason=reason)


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


def key_text(key: Any) -> str:
    """A member's path suffix, as the container walk writes it: ``["name"]`` or ``[3]``."""
    return f"[{json.dumps(key) if isinstance(key, str) else repr(key)}]"
