"""Adapting inputs that are neither a tensor nor an ndarray into one, as the first step of a plan.

A NumPy scalar is boxed, a buffer or ``__array_interface__`` viewed, a DLPack capsule imported,
Python numbers (and object arrays of numbers) built into an array, an ``__array__`` producer
asked for a view first and read (a copy) only when it cannot give one. Each adapter returns the
``Step`` it ran and the value it made; the planner then plans that value. The steps are shared
constants (one per outcome and dtype), so they can be part of a plan's cache key.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from . import _foreign
from ._dtypes import by_torch, numpy_dtype
from ._errors import ConversionError, LossyConversionError, UnsupportedInputError, describe
from ._foreign.refusals import none_error, number_fix
from ._kinds import CONTAINER_KINDS, LEAF_KINDS, Kind, kind_of
from ._options import Options
from ._plan import SIZE, Step, record

_NUMBER_TYPES = (bool, int, float, complex, np.generic)
_PY_NUMBERS = frozenset({bool, int, float, complex})
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

_kept = threading.local()  # the array a top-level list was read as, kept for its adapter


def _first_item(seq: Any) -> Any:
    """The first non-list item of a (nested) list, looked up without recursion."""
    x = seq
    for _ in range(64):  # NumPy's dimension limit
        if (type(x) is not list and type(x) is not tuple) or not x:
            return x
        x = x[0]
    return x


def is_number_data(seq: Any, dtype: np.dtype[Any] | None = None) -> bool:
    """Whether a top-level list/tuple is numbers, converted as one array.

    A list that starts with a number is read by NumPy straight away (C speed, no scan in
    Python) and kept for the adapter that follows, in ``dtype`` when one is given: floats are
    cast (one rounding from the double each Python float is, as a direct build gives), integers
    built in ``dtype`` directly. A list NumPy does not read as numbers (``None``, strings,
    arrays, integers beyond 64 bits) is scanned.
    """
    if isinstance(_first_item(seq), _NUMBER_TYPES):
        # Only an item with its own __array__ can warn: a short flat list of Python numbers
        # is read without the (costly) warnings guard.
        plain = len(seq) <= 64 and all(type(x) in _PY_NUMBERS for x in seq)
        try:
            with contextlib.nullcontext() if plain else warnings.catch_warnings():
                if not plain:
                    warnings.simplefilter("ignore")
                a = _read_numbers(seq, dtype)
        except Exception:  # ragged, an item's own __array__ failing, an int too big for dtype
            a = None
        if a is not None:
            _kept.value = (seq, dtype, a)
            return True
    return all_numbers(seq)


def _read_numbers(seq: Any, dtype: np.dtype[Any] | None) -> np.ndarray | None:
    a = np.asarray(seq)
    if a.dtype.kind not in "biufc" or (a.dtype.kind == "c" and dtype is not None):
        return None  # objects, or complex into a dtype: the scan and the build decide
    if dtype is None or a.dtype == dtype:
        return a
    with np.errstate(all="ignore"):  # overflow to inf is the cast asked for
        return np.asarray(seq, dtype=dtype) if a.dtype.kind in "iu" else a.astype(dtype)


def discard_kept() -> None:
    """Forget the array ``is_number_data`` kept, when no adapter will take it (``to_python``)."""
    _kept.value = None


def python_dtype(o: Options) -> np.dtype[Any] | None:
    """The NumPy dtype Python numbers are built in directly: the explicit ``dtype`` only."""
    if o.dtype is None:
        return None
    if o.target == "numpy":
        return o.dtype
    try:
        return numpy_dtype(o.dtype)
    except (TypeError, ConversionError):
        return None  # no NumPy form (quantized): built in NumPy's default, then refused


def _has_complex(obj: Any) -> bool:
    if isinstance(obj, (complex, np.complexfloating)):
        return True
    if type(obj) is list or type(obj) is tuple:
        return any(_has_complex(x) for x in obj)
    return False


def _numbers_array(obj: Any, dtype: np.dtype[Any] | None) -> np.ndarray:
    """Python numbers as an ndarray: NumPy's defaults, or built in ``dtype`` directly (never
    through a narrower dtype: ``[0.1]`` in float64 is exactly 0.1)."""
    kept = getattr(_kept, "value", None)
    _kept.value = None
    if kept is not None and kept[0] is obj and kept[1] == dtype:
        return kept[2]
    if dtype is not None and dtype.kind != "c" and _has_complex(obj):
        _check_real("c", False, obj, dtype)
    try:
        if dtype is None:
            a = np.asarray(obj)  # plain Python numbers (checked): nothing to warn about
        else:
            with np.errstate(all="ignore"):  # overflow to inf is the cast asked for
                a = np.asarray(obj, dtype=dtype)
    except (ValueError, OverflowError, TypeError) as e:
        if dtype is not None and isinstance(e, OverflowError):
            raise UnsupportedInputError(
                f"{describe(obj)} holds an integer that dtype={dtype} cannot hold ({e}); pass a "
                f"wider dtype (e.g. dtype='float64', which rounds it) or reduce the values first"
            ) from None
        raise UnsupportedInputError(
            f"{describe(obj)} does not form an array ({e}); lists must be rectangular "
            f"(every row the same length) and hold numbers"
        ) from None
    if a.dtype.kind not in "biufc" and dtype is None:
        raise UnsupportedInputError(
            f"{describe(obj)} holds integers beyond 64 bits, which NumPy keeps only as Python "
            f"objects; pass dtype='float64' (rounded to the nearest float) to convert them"
        )
    return a


def _torch_default(a: np.ndarray, o: Options) -> np.ndarray | torch.Tensor:
    """PyTorch's defaults for Python numbers, as ``torch.tensor`` has them: floats in the default
    float dtype, complex in its complex counterpart (an explicit dtype or float_dtype wins)."""
    kind = a.dtype.kind
    if o.dtype is not None or kind not in "fc" or (kind == "f" and o.float_dtype is not None):
        return a
    default = torch.get_default_dtype()
    if kind == "c":
        default = torch.complex128 if default == torch.float64 else torch.complex64
    t = torch.from_numpy(a)
    return t if t.dtype == default else t.to(default)


def _check_real(kind: str, target_complex: bool, obj: Any, target: Any) -> None:
    if kind == "c" and not target_complex:
        raise LossyConversionError(
            f"{describe(obj)} is complex and dtype={target} is not: the imaginary part would "
            f"be dropped; take .real (or .imag, or abs()) first, or pass a complex dtype"
        )


def _built(obj: Any, o: Options) -> tuple[Step, Any]:
    a = _numbers_array(obj, python_dtype(o))
    # NumPy scalars keep their dtype in torch.tensor too (read from the first item: no scan).
    numpy_items = isinstance(_first_item(obj), np.generic)
    value = a if o.target == "numpy" or numpy_items else _torch_default(a, o)
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
        parts = [unobject(p, item_to_numpy)[1] if p.dtype.kind == "O" else p for p in parts]
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
        except Exception:
            pass  # a dtype NumPy cannot import (e.g. bfloat16): PyTorch can, below (or says why)
    strides = getattr(obj, "strides", None)
    if strides is not None and any(s < 0 for s in strides):
        # torch.from_dlpack aborts the process on negative strides: refuse before calling it.
        raise UnsupportedInputError(
            f"{describe(obj)} has negative strides {tuple(strides)} on a device PyTorch "
            f"imports through DLPack; make it contiguous with its own library first "
            f"(e.g. cupy.ascontiguousarray(x))"
        )
    try:
        t = torch.from_dlpack(obj)
    except Exception as e:
        if device_type not in (_DLPACK_CPU, _DLPACK_CUDA_HOST):
            raise UnsupportedInputError(
                f"{describe(obj)} lives on an accelerator (DLPack device type {device_type}) "
                f"that this PyTorch cannot import ({e}); copy it to the host with its own "
                f"library first (np.asarray(x), jax.device_get(x), cupy.asnumpy(x))"
            ) from e
        raise UnsupportedInputError(
            f"{describe(obj)} cannot be exported through DLPack ({e}); convert it with its own "
            f"library first (a native-byte-order, contiguous array of a standard dtype)"
        ) from None
    if device_type in (_DLPACK_CPU, _DLPACK_CUDA_HOST):
        return _read_only(t)
    return t


def _read_only(t: torch.Tensor) -> np.ndarray | torch.Tensor:
    """Host memory PyTorch imported where NumPy could not (bfloat16, float8): whether the
    producer allows writes is not known (JAX's buffers are immutable), so it is viewed as a
    read-only array: copied under ``copy=None``, shared only when ``copy=False`` asks."""
    row = by_torch(t.dtype)
    if row is None:
        return t
    try:
        a = t.numpy() if row.torch_carrier is None else t.view(row.torch_carrier).numpy()
    except (RuntimeError, TypeError):
        return t
    a = a.view(row.numpy)
    a.flags.writeable = False
    return a


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


def unsupported(obj: Any, kind: str) -> ConversionError:
    """The error for a top-level object with no array form (with its own fix, where an adapter
    in ``_foreign`` knows one)."""
    if kind is Kind.REFUSED:
        adapter = _foreign.adapter_for(type(obj))
        assert adapter is not None and adapter.refuse is not None
        return adapter.refuse(obj)
    if kind is Kind.NONE:
        return none_error(obj)
    fix = number_fix(obj)
    if fix:
        return UnsupportedInputError(f"{describe(obj)} has no array form: {fix}")
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
