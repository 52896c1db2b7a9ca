"""Adapting inputs that are neither a tensor nor an ndarray into one, as the first step of a plan.

A NumPy scalar is boxed, a buffer or ``__array_interface__`` viewed, a DLPack capsule imported,
Python numbers (and object arrays of numbers) built into an array, an ``__array__`` producer
asked for a view first and read (a copy) only when it cannot give one. Each adapter returns the
``Step`` it ran and the value it made; the planner then plans that value. The steps are shared
constants (one per outcome and dtype), so they can be part of a plan's cache key.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ._errors import LossyConversionError, UnsupportedInputError, describe
from ._kinds import CONTAINER_KINDS, LEAF_KINDS, Kind, kind_of
from ._options import Options
from ._plan import SIZE, Step, record

_NUMBER_TYPES = (bool, int, float, complex, np.generic)
_DLPACK_CPU = 1  # kDLCPU in the DLPack device enum
_DLPACK_CUDA_HOST = 3  # kDLCUDAHost: pinned host memory, readable by the CPU


def all_numbers(seq: Any) -> bool:
    """Whether a (nested) list/tuple holds only numbers: then it is data, not a container."""
    for x in seq:
        cls = type(x)
        if cls is list or cls is tuple:
            if not all_numbers(x):
                return False
        elif not isinstance(x, _NUMBER_TYPES):
            return False
    return True


def has_leaf(seq: Any) -> bool:
    """Whether a (nested) list/tuple holds anything that converts (a tensor, an array, ...)."""
    for x in seq:
        kind = kind_of(x)
        if kind in LEAF_KINDS:
            return True
        if kind is Kind.SEQUENCE and has_leaf(x):
            return True
        if kind in CONTAINER_KINDS and kind is not Kind.SEQUENCE:
            return True  # a mapping or node: walked as a container, whatever it holds
    return False


# --- the adapter steps: one shared Step per outcome (and dtype) ----------------------------


@functools.cache
def _step(text: str, itemsize: int = 0, reason: str = "") -> Step:
    """The shared step of one adapter outcome (its ``fn`` is never composed: adapters run it)."""
    return Step(text, call=_unused, itemsize=itemsize, copies=1 if reason else 0, reason=reason)


def _unused(value: Any) -> Any:
    raise AssertionError("adapter steps run in adapt()")


def _ran(step: Step, value: Any) -> tuple[Step, Any]:
    record(step, value)
    return step, value


def _itemsize(value: np.ndarray | torch.Tensor) -> int:
    return value.itemsize if isinstance(value, np.ndarray) else value.element_size()


# --- Python numbers ------------------------------------------------------------------------


def _python_to_numpy(obj: Any, o: Options) -> np.ndarray:
    try:
        a = np.asarray(obj)
    except (ValueError, OverflowError) as e:
        raise UnsupportedInputError(
            f"{describe(obj)} does not form an array ({e}); lists must be rectangular "
            f"(every row the same length) and hold numbers"
        ) from None
    if a.dtype.kind not in "biufc":
        raise UnsupportedInputError(
            f"{describe(obj)} holds numbers NumPy can only keep as Python objects ({a.dtype}), "
            f"such as integers beyond 64 bits; pass dtype=float64 or convert them first"
        )
    target = o.target_dtype(a.dtype.kind)
    if target is not None and target != a.dtype:
        _check_real(a.dtype.kind, target.kind == "c", obj, target)
        with np.errstate(all="ignore"):
            a = np.asarray(obj, dtype=target)  # built in the target dtype directly
    return a


def _python_to_torch(obj: Any, o: Options) -> torch.Tensor:
    try:
        t = torch.tensor(obj)
        kind = "c" if t.is_complex() else "f" if t.is_floating_point() else "i"
        target = o.target_dtype(kind)
        if target is not None and target != t.dtype:
            _check_real(kind, target.is_complex, obj, target)
            t = torch.tensor(obj, dtype=target)  # built in the target dtype directly
    except (ValueError, TypeError, RuntimeError, OverflowError) as e:
        raise UnsupportedInputError(
            f"{describe(obj)} does not form a tensor ({e}); lists must be rectangular (every "
            f"row the same length) and hold numbers that fit int64 or a float dtype"
        ) from None
    return t


def _check_real(kind: str, target_complex: bool, obj: Any, target: Any) -> None:
    if kind == "c" and not target_complex:
        raise LossyConversionError(
            f"{describe(obj)} is complex and dtype={target} is not: the imaginary part would "
            f"be dropped; take .real (or .imag, or abs()) first, or pass a complex dtype"
        )


def _built(obj: Any, o: Options) -> tuple[Step, Any]:
    value = _python_to_numpy(obj, o) if o.target == "numpy" else _python_to_torch(obj, o)
    step = _step(
        f"build from Python numbers ({SIZE})",
        _itemsize(value),
        "Python numbers are separate objects, not one block of memory",
    )
    return _ran(step, value)


# --- object arrays ---------------------------------------------------------------------------


def unobject(a: np.ndarray, item_to_numpy: Callable[[Any], Any]) -> tuple[Step, np.ndarray]:
    """The numeric array an object array of numbers or same-shaped arrays stands for."""
    items = a.ravel().tolist() if a.size else []
    if items and all(isinstance(x, (np.ndarray, torch.Tensor)) for x in items):
        parts = [item_to_numpy(x) for x in items]
        if len({p.shape for p in parts}) != 1:
            raise UnsupportedInputError(
                f"{describe(a)} holds arrays of different shapes "
                f"({', '.join(sorted({str(p.shape) for p in parts}))}); stack equal shapes only, "
                f"or convert the items one by one"
            )
        out = np.stack(parts).reshape(a.shape + parts[0].shape)
    else:
        bad = next((x for x in items if not isinstance(x, _NUMBER_TYPES)), None)
        if bad is not None:
            raise UnsupportedInputError(
                f"{describe(a)} holds a {type(bad).__name__} item ({bad!r:.40}); only object "
                f"arrays of numbers or same-shaped arrays convert; pass dtype= or convert the "
                f"items yourself"
            )
        out = np.array(items)
        if out.dtype.kind not in "biufc":
            raise UnsupportedInputError(f"{describe(a)} does not hold numbers; pass dtype=")
        out = out.reshape(a.shape)
    step = _step(
        f"unpack object array into {out.dtype} ({SIZE})",
        out.itemsize,
        "object dtype (the items are separate Python objects)",
    )
    return _ran(step, out)


# --- memory producers ------------------------------------------------------------------------


def import_dlpack(obj: Any) -> np.ndarray | torch.Tensor:
    """The array or tensor over a DLPack producer's memory (no copy)."""
    device_type, _ = obj.__dlpack_device__()
    if device_type in (_DLPACK_CPU, _DLPACK_CUDA_HOST):
        try:
            return np.from_dlpack(obj)  # NumPy validates strides and flags itself
        except (BufferError, TypeError, RuntimeError):
            pass  # a dtype NumPy cannot import (e.g. bfloat16): PyTorch can, below
    strides = getattr(obj, "strides", None)
    if strides is not None and any(s < 0 for s in strides):
        # torch.from_dlpack aborts the process on negative strides: refuse before calling it.
        raise UnsupportedInputError(
            f"{describe(obj)} has negative strides {tuple(strides)} on a device PyTorch "
            f"imports through DLPack; make it contiguous with its own library first "
            f"(e.g. cupy.ascontiguousarray(x))"
        )
    try:
        return torch.from_dlpack(obj)
    except (BufferError, TypeError, RuntimeError, ValueError) as e:
        raise UnsupportedInputError(
            f"{describe(obj)} cannot be exported through DLPack ({e}); convert it with its own "
            f"library first (a native-byte-order, contiguous array of a standard dtype)"
        ) from None


class _Interface:
    """Holds an ``__array_interface__`` dict, so NumPy reads it without asking the producer
    again (some producers build their bytes each time the attribute is read)."""

    def __init__(self, interface: dict[str, Any], owner: Any) -> None:
        self.__array_interface__ = interface
        self.owner = owner  # keeps the producer, and so its memory, alive


def _read_error(obj: Any, e: BaseException) -> UnsupportedInputError:
    return UnsupportedInputError(
        f"{describe(obj)}: NumPy cannot read its array interface ({e}); export it through "
        f"its own library first (e.g. x.numpy() or np.array(x.tolist()))"
    )


def producer_array(obj: Any) -> tuple[np.ndarray, bool]:
    """``obj``'s array form, and whether it is a view of ``obj``'s own memory.

    An ``__array_interface__`` with a data pointer is a view; one that hands over a bytes
    object (PIL images) is a copy. An ``__array__`` producer is asked for a view (NumPy 2's
    ``copy=False``); one that cannot give it makes a fresh array, and one that predates the
    ``copy`` keyword promises nothing, so its array is copied here (the copy ``explain``
    counts is then a real one).
    """
    try:
        interface = getattr(obj, "__array_interface__", None)
        if isinstance(interface, dict):
            shared = isinstance(interface.get("data"), tuple)
            return np.asarray(_Interface(interface, obj)), shared
        if hasattr(obj, "__array_struct__"):
            return np.asarray(obj), True
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            try:
                return np.asarray(obj, copy=False), True
            except ValueError:
                return np.asarray(obj), False  # it cannot share: it made a fresh array
            except DeprecationWarning:
                pass  # an __array__ without NumPy 2's copy keyword
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return np.array(obj, copy=True), False
    except (TypeError, ValueError, BufferError, AttributeError) as e:
        raise _read_error(obj, e) from None


def _produced(obj: Any) -> tuple[Step, Any]:
    a, shared = producer_array(obj)
    name = type(obj).__name__
    how = "__array_interface__" if hasattr(obj, "__array_interface__") else "__array__"
    if shared:
        return _ran(_step(f"view {name} through {how} (no copy)"), a)
    step = _step(
        f"read {name} through {how} (a copy, {SIZE})",
        a.itemsize,
        f"{name} cannot share its memory through {how}",
    )
    return _ran(step, a)


def adapt(obj: Any, kind: str, o: Options) -> tuple[Step, Any]:
    """Run the adapter of ``obj``: the step it took and the tensor or ndarray it made."""
    if kind is Kind.NUMPY_SCALAR:
        a = np.asarray(obj)
        step = _step(
            f"box numpy scalar {a.dtype} as a 0-d array ({SIZE})",
            a.itemsize,
            "a numpy scalar is a value, not memory",
        )
        return _ran(step, a)
    if kind is Kind.PY_SCALAR or kind is Kind.SEQUENCE:
        return _built(obj, o)
    if kind is Kind.BUFFER or kind is Kind.BYTES:
        a = np.asarray(memoryview(obj))
        return _ran(_step(f"view buffer as ndarray {a.dtype} (no copy)"), a)
    if kind is Kind.ARRAY_LIKE:
        return _produced(obj)
    if kind is Kind.DLPACK:
        value = import_dlpack(obj)
        return _ran(_step(f"import {type(obj).__name__} through DLPack (no copy)"), value)
    raise unsupported(obj, kind)


def not_numbers(seq: Any) -> UnsupportedInputError:
    """A top-level list that is neither numbers nor a container of tensors/arrays."""
    bad = next((x for x in _flat(seq) if not isinstance(x, _NUMBER_TYPES)), None)
    return UnsupportedInputError(
        f"{describe(seq)} holds a {type(bad).__name__} ({bad!r:.40}) and no tensor or array: "
        f"a list converts when it holds only numbers; parse or drop the other items first"
    )


def _flat(seq: Any) -> Any:
    for x in seq:
        if type(x) is list or type(x) is tuple:
            yield from _flat(x)
        else:
            yield x


def unsupported(obj: Any, kind: str) -> UnsupportedInputError:
    """The error for a top-level object with no array form."""
    if kind is Kind.STR:
        return UnsupportedInputError(
            f"{describe(obj)}: a string has no array form; parse it first "
            f"(e.g. float(s)), or use np.array(s) for a NumPy str array and pass dtype="
        )
    return UnsupportedInputError(
        f"{describe(obj)} has no array form: tensorbridge converts tensors, arrays, numbers, "
        f"lists of numbers, and objects with __dlpack__, __array__, __array_interface__ or the "
        f"buffer protocol; register container types with optree (namespace 'tensorbridge')"
    )
