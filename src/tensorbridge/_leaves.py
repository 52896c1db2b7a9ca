"""Planning one leaf of any kind, in either direction.

A leaf that is neither a tensor nor an ndarray is first adapted (a NumPy scalar boxed, a buffer
or ``__array_interface__`` viewed, a DLPack capsule imported, Python numbers built into an array);
the adapted value then goes through the tensor or array planner. Adapting moves no data except
where the step says it copies.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np
import torch

from . import _foreign, _numpy_side, _torch_side
from ._dtypes import numpy_dtype
from ._errors import ConversionError, CopyRequiredError, UnsupportedInputError, describe
from ._foreign.refusals import none_error
from ._kinds import CONTAINER_KINDS, LEAF_KINDS, Kind, kind_of
from ._numpy_side import check_not_lossy_cast, dtype_kind
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


_built = threading.local()  # the array a top-level list was read as, kept for its plan


def _first_item(seq: Any) -> Any:
    """The first non-list item of a (nested) list, looked up without recursion."""
    x = seq
    for _ in range(64):  # NumPy's dimension limit
        if (type(x) is not list and type(x) is not tuple) or not x:
            return x
        x = x[0]
    return x


def is_number_data(seq: Any, dtype: np.dtype[Any] | None) -> bool:
    """Whether a top-level list/tuple is numbers, converted as one array.

    A list that starts with a number is read by NumPy straight away (in ``dtype`` when one is
    given: C speed, no scan in Python), and the array is kept for the plan that follows; a list
    NumPy cannot read that way is scanned.
    """
    if isinstance(_first_item(seq), _NUMBER_TYPES):
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                a = np.asarray(seq, dtype=dtype)
        except Exception:  # ragged, or an item's own __array__ failing: the scan decides
            a = None
        if a is not None and dtype_kind(a.dtype) in "biufc":
            _built.value = (seq, dtype, a)
            return True
    return all_numbers(seq)


def _numbers_array(obj: Any, dtype: np.dtype[Any] | None) -> np.ndarray:
    """Python numbers as an ndarray: NumPy's defaults, or built in ``dtype`` directly."""
    kept = getattr(_built, "value", None)
    _built.value = None
    if kept is not None and kept[0] is obj and kept[1] == dtype:
        return kept[2]
    if dtype is not None and dtype_kind(dtype) != "c" and _has_complex(obj):
        check_not_lossy_cast("c", dtype, obj)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            a = np.asarray(obj) if dtype is None else np.asarray(obj, dtype=dtype)
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


def _default_torch_dtype(kind: str, o: Options) -> Options:
    """PyTorch's defaults for Python numbers (as ``torch.tensor``): floats in the default float
    dtype, complex in its complex counterpart; an explicit dtype or float_dtype wins."""
    if o.dtype is not None or kind not in "fc" or (kind == "f" and o.float_dtype is not None):
        return o
    default = torch.get_default_dtype()
    if kind == "c":
        default = {torch.float64: torch.complex128, torch.float16: torch.complex32}.get(
            default, torch.complex64
        )
    return Options(
        default if kind == "c" else o.dtype,
        default if kind == "f" else o.float_dtype,
        o.copy,
        o.device,
        o.requires_grad,
        o.pin_memory,
        o.non_blocking,
    )


def _has_complex(obj: Any) -> bool:
    if isinstance(obj, (complex, np.complexfloating)):
        return True
    if type(obj) is list or type(obj) is tuple:
        return any(_has_complex(x) for x in obj)
    return False


def python_dtype(o: Options, to: str) -> np.dtype[Any] | None:
    """The NumPy dtype to build Python numbers in directly: the explicit ``dtype`` only."""
    if o.dtype is None:
        return None
    if to == "numpy":
        return o.dtype
    try:
        return numpy_dtype(o.dtype)
    except (TypeError, ConversionError):
        return None  # no NumPy form (quantized): built in NumPy's default, then refused


def import_dlpack(obj: Any) -> np.ndarray | torch.Tensor:
    try:
        device_type, _ = obj.__dlpack_device__()
    except Exception as e:
        raise ConversionError(
            f"{describe(obj)}: its own __dlpack_device__ raised {type(e).__name__}: {e}; export "
            f"it with its own library first (e.g. np.asarray(x))"
        ) from e
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
        return torch.from_dlpack(obj)
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
        ) from e


def producer_array(obj: Any) -> np.ndarray:
    """``np.asarray`` of an array-protocol object; a producer NumPy cannot read is one error,
    and an exception from the object's own ``__array__`` is kept as its ``__cause__``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(obj)
    except (TypeError, ValueError, BufferError) as e:
        raise UnsupportedInputError(
            f"{describe(obj)}: NumPy cannot read its array interface ({e}); export it through "
            f"its own library first (e.g. x.numpy() or np.array(x.tolist()))"
        ) from e
    except Exception as e:
        raise ConversionError(
            f"{describe(obj)}: its own __array__ raised {type(e).__name__}: {e}; fix the object "
            f"(is its file or buffer still open?) or export it with its own library first"
        ) from e


def adapt(obj: Any, kind: str, to: str, o: Options) -> tuple[list[Step], Any]:
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
        value = _numbers_array(obj, python_dtype(o, to))
        nbytes = value.nbytes
        return [
            Step(
                lambda: f"build {value.dtype} from Python numbers ({format_bytes(nbytes)})",
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
        imported = import_dlpack(obj)
        name = type(obj).__name__
        return [Step(lambda: f"import {name} through DLPack (no copy)", _const, imported)], imported
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
    if kind is Kind.REFUSED:
        adapter = _foreign.adapter_for(type(obj))
        assert adapter is not None and adapter.refuse is not None
        return adapter.refuse(obj)
    if kind is Kind.NONE:
        return none_error(obj)
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


def _adapted(obj: Any, kind: str, to: str, o: Options) -> tuple[list[Step], Any, bool]:
    """Prefix steps, the value they give, and whether they are the whole plan."""
    if kind is Kind.FOREIGN:
        adapter = _foreign.adapter_for(type(obj))
        assert adapter is not None and adapter.leaf is not None
        steps, value, complete = adapter.leaf(obj, to, o)
        return list(steps), value, complete
    steps, value = adapt(obj, kind, to, o)
    return steps, value, False


def plan_numpy(obj: Any, kind: str, o: Options) -> tuple[list[Step], Any]:
    """The full plan for one leaf going to NumPy, and the value the plan starts from."""
    if kind is Kind.TORCH:
        value = obj
        steps = _numpy_side.plan_tensor(obj, o)
    elif kind is Kind.NUMPY:
        value = obj
        steps = _numpy_side.plan_array(obj, o)
    else:
        steps, value, complete = _adapted(obj, kind, "numpy", o)
        if complete:
            pass
        elif isinstance(value, torch.Tensor):
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
        prefix, value, complete = _adapted(obj, kind, "torch", o)
        if complete:
            rest = []
        elif isinstance(value, torch.Tensor):
            rest = _torch_side.plan_tensor(value, _no_copy_rule(o, prefix))
        else:
            if kind is Kind.PY_SCALAR or kind is Kind.SEQUENCE:
                o = _default_torch_dtype(dtype_kind(value.dtype), o)
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
