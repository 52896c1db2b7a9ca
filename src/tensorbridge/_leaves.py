"""Planning one leaf of any kind, in either direction.

A leaf that is neither a tensor nor an ndarray is first adapted (a NumPy scalar boxed, a buffer
or ``__array_interface__`` viewed, a DLPack capsule imported, Python numbers built into an array);
the adapted value then goes through the tensor or array planner. Adapting moves no data except
where the step says it copies.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from . import _numpy_side, _torch_side
from ._errors import CopyRequiredError, UnsupportedInputError, describe
from ._kinds import CONTAINER_KINDS, LEAF_KINDS, Kind, kind_of
from ._options import Options
from ._plan import Step, format_bytes

_NUMBER_TYPES = (bool, int, float, complex, np.generic)
_DLPACK_CPU = 1  # kDLCPU in the DLPack device enum
_DLPACK_CUDA_HOST = 3  # kDLCUDAHost: pinned host memory, readable by the CPU


def _const(_: Any, value: Any) -> Any:
    return value


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


def _python_to_numpy(obj: Any) -> np.ndarray:
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
    return a


def _python_to_torch(obj: Any) -> torch.Tensor:
    try:
        return torch.tensor(obj)
    except (ValueError, TypeError, RuntimeError, OverflowError) as e:
        raise UnsupportedInputError(
            f"{describe(obj)} does not form a tensor ({e}); lists must be rectangular (every "
            f"row the same length) and hold numbers that fit int64 or a float dtype"
        ) from None


def import_dlpack(obj: Any) -> np.ndarray | torch.Tensor:
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


def producer_array(obj: Any) -> np.ndarray:
    """``np.asarray`` of an array-protocol object; a producer NumPy cannot read is one error."""
    try:
        return np.asarray(obj)
    except (TypeError, ValueError, BufferError) as e:
        raise UnsupportedInputError(
            f"{describe(obj)}: NumPy cannot read its array interface ({e}); export it through "
            f"its own library first (e.g. x.numpy() or np.array(x.tolist()))"
        ) from None


def adapt(obj: Any, kind: str, to: str) -> tuple[list[Step], Any]:
    """Prefix steps and the tensor or ndarray that ``obj`` becomes before planning proper."""
    if kind is Kind.NUMPY_SCALAR:
        a = np.asarray(obj)
        return [
            Step(
                lambda: f"box numpy scalar {a.dtype} as a 0-d array ({format_bytes(a.nbytes)})",
                _const,
                a,
                nbytes=a.nbytes,
                copies=1,
                reason="a numpy scalar is a value, not memory",
            )
        ], a
    if kind is Kind.PY_SCALAR or kind is Kind.SEQUENCE:
        value = _python_to_numpy(obj) if to == "numpy" else _python_to_torch(obj)
        nbytes = value.nbytes
        return [
            Step(
                lambda: f"build from Python numbers ({format_bytes(nbytes)})",
                _const,
                value,
                nbytes=nbytes,
                copies=1,
                reason="Python numbers are separate objects, not one block of memory",
            )
        ], value
    if kind is Kind.BUFFER or kind is Kind.BYTES:
        a = np.asarray(memoryview(obj))
        return [Step(lambda: f"view buffer as ndarray {a.dtype} (no copy)", _const, a)], a
    if kind is Kind.ARRAY_LIKE:
        has_interface = hasattr(obj, "__array_interface__") or hasattr(obj, "__array_struct__")
        a = producer_array(obj)
        how = "__array_interface__ (no copy)" if has_interface else "__array__ (no copy here)"
        name = type(obj).__name__
        return [Step(lambda: f"view {name} through {how}", _const, a)], a
    if kind is Kind.DLPACK:
        value = import_dlpack(obj)
        name = type(obj).__name__
        return [Step(lambda: f"import {name} through DLPack (no copy)", _const, value)], value
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


def plan_numpy(obj: Any, kind: str, o: Options) -> tuple[list[Step], Any]:
    """The full plan for one leaf going to NumPy, and the value the plan starts from."""
    if kind is Kind.TORCH:
        value = obj
        steps = _numpy_side.plan_tensor(obj, o)
    elif kind is Kind.NUMPY:
        value = obj
        steps = _numpy_side.plan_array(obj, o)
    else:
        steps, value = adapt(obj, kind, "numpy")
        if isinstance(value, torch.Tensor):
            steps += _numpy_side.plan_tensor(value, o)
        else:
            steps += _numpy_side.plan_array(value, o)
    if o.copy is not None:
        if o.copy:
            nbytes = (
                value.nbytes if isinstance(value, np.ndarray) else _numpy_side.tensor_nbytes(value)
            )
            _numpy_side.finish(steps, o, nbytes)
        else:
            check_copy(steps, o, obj)
    return steps, obj


def plan_torch(obj: Any, kind: str, o: Options) -> tuple[list[Step], Any]:
    """The full plan for one leaf going to PyTorch, and the value the plan starts from."""
    if kind is Kind.TORCH:
        steps = _torch_side.plan_tensor(obj, o)
    elif kind is Kind.NUMPY:
        steps = _torch_side.plan_array(obj, o)
    else:
        prefix, value = adapt(obj, kind, "torch")
        if isinstance(value, torch.Tensor):
            rest = _torch_side.plan_tensor(value, _no_copy_rule(o, prefix))
        else:
            rest = _torch_side.plan_array(value, _no_copy_rule(o, prefix))
        steps = prefix + rest
    if o.copy is False:
        check_copy(steps, o, obj)
    return steps, obj


def _no_copy_rule(o: Options, prefix: list[Step]) -> Options:
    """After a copying prefix, ``copy=True`` is already satisfied."""
    if o.copy and any(s.copies for s in prefix):
        return Options(
            o.dtype, o.float_dtype, None, o.device, o.requires_grad, o.pin_memory, o.non_blocking
        )
    return o


def check_copy(steps: list[Step], o: Options, obj: Any) -> None:
    """``copy=False``: raise naming every reason a copy would be needed."""
    if o.copy is False:
        reasons = [s.reason for s in steps if s.copies]
        if reasons:
            err = CopyRequiredError(
                f"{describe(obj)} cannot be converted without a copy: "
                + "; ".join(reasons)
                + ". Pass copy=None (copy only when needed) or copy=True"
            )
            err.reasons = tuple(reasons)
            raise err
