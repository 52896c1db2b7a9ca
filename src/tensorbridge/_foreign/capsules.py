"""Raw DLPack capsules (``x.__dlpack__()``, the ``PyCapsule`` named ``"dltensor"``).

A capsule can be imported only once: importing renames it ``"used_dltensor"``. ``explain``
imports it too (its dtype and shape are not readable otherwise), so the last capsule imported is
remembered with its tensor and the conversion that follows uses that same tensor. A capsule
already imported elsewhere is refused: ask the producer for a new one.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import torch

from .._errors import UnsupportedInputError, describe
from .._plan import Step
from . import Adapter
from ._common import adapted, guarded

_is_valid = ctypes.pythonapi.PyCapsule_IsValid
_is_valid.restype = ctypes.c_int
_is_valid.argtypes = [ctypes.py_object, ctypes.c_char_p]
_last: list[tuple[Any, torch.Tensor]] = []  # the last capsule imported, and its tensor
_lock = threading.Lock()


def recognise(cls: type) -> Adapter | None:
    if cls.__module__ == "builtins" and cls.__name__ == "PyCapsule":
        return Adapter("DLPack capsule", "leaf", leaf=_capsule)
    return None


def _import(capsule: Any) -> torch.Tensor:
    with _lock:
        if _last and _last[0][0] is capsule:
            return _last[0][1]
        if not (_is_valid(capsule, b"dltensor") or _is_valid(capsule, b"dltensor_versioned")):
            raise UnsupportedInputError(
                f"{describe(capsule)} is not an unused DLPack capsule (a capsule can be imported "
                f"only once); ask its producer for a new one, e.g. x.__dlpack__(), or pass x"
            )
        t = guarded(capsule, "torch.from_dlpack", lambda: torch.from_dlpack(capsule))
        _last[:] = [(capsule, t)]
        return t


def _capsule(capsule: Any, o: Any) -> tuple[Step, Any]:
    return adapted("import DLPack capsule (no copy)", _import(capsule))
