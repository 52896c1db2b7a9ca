"""Deciding conversions whose result is a PyTorch tensor (``to_torch``).

``array_key`` / ``tensor_key`` read everything the planners may look at; ``plan_from_array`` /
``plan_from_tensor`` decide from that key alone, so their answer can be cached per key. Steps
take the value as their input and are the only code that moves data.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, NamedTuple

import numpy as np
import torch

from . import _transfer
from ._dtypes import TABLE, DType, by_numpy, by_torch, numpy_backed_empty, numpy_dtype, quietly
from ._errors import ConversionError, LossyConversionError, UnsupportedInputError
from ._options import Options
from ._plan import SIZE, Step, copy_mode
from ._to_numpy import (
    QUANTIZED,
    NotPlain,
    cast_step,
    check_not_lossy_cast,
    dequantize_step,
    dtype_kind,
    masked_refusal,
    meta_refusal,
    refuse,
    torch_kind,
)

_ALIGNED, _WRITEABLE = 0x100, 0x400  # NPY_ARRAY_* flag bits
_STRIDED = torch.strided

# --- keys: everything a planner reads ----------------------------------------------------


class ArrayKey(NamedTuple):
    cls: type
    dtype: np.dtype[Any]
    aligned: bool  # NumPy's ALIGNED flag, and for items wider than their alignment the pointer
    writeable: bool
    negative: bool  # some stride is negative


def array_key(a: np.ndarray, o: Options | None = None) -> tuple[Any, ...]:
    del o
    flags = a.flags.num
    return (  # a plain tuple: cheaper to build than the ArrayKey it stands for
        type(a),
        a.dtype,
        bool(flags & _ALIGNED) and not _misaligned(a),
        bool(flags & _WRITEABLE),
        negative_strides(a),
    )


def negative_strides(a: np.ndarray) -> bool:
    """Whether some stride is negative (``torch.from_numpy`` refuses any, even on an axis of
    length 1 or an empty array)."""
    return a.ndim > 0 and min(a.strides) < 0


def _misaligned(a: np.ndarray) -> bool:
    isz = a.dtype.itemsize
    if isz <= a.dtype.alignment or a.size == 0:
        return False  # NumPy's own ALIGNED flag already covers it
    ptr = a.__array_interface__["data"][0]
    return ptr % isz != 0 or any(s % isz for s in a.strides)


class TensorKey(NamedTuple):
    cls: type
    dtype: torch.dtype
    requires_grad: bool
    layout: torch.layout
    device: torch.device
    nested: bool
    pinned: bool  # read only when pin_memory=True asks
    inference: bool  # read only when requires_grad=True asks


def tensor_key(t: torch.Tensor, o: Options) -> tuple[Any, ...]:
    device = t.device
    layout = t.layout
    pinned = bool(o.pin_memory and device.type == "cpu" and layout is _STRIDED and t.is_pinned())
    inference = bool(o.requires_grad and t.is_inference())
    return (type(t), t.dtype, t.requires_grad, layout, device, t.is_nested, pinned, inference)


# --- step functions ----------------------------------------------------------------------


def _copy_and_wrap(native: np.dtype[Any], negative: bool, exact: bool, row: DType) -> Any:
    """One call copying to a native, positive-stride array and wrapping it (a hot fix)."""
    wrap = _wrapper(row, False)
    # astype and order="K" keep the memory order of the input but always yield positive
    # strides; astype keeps a subclass, so only an exact ndarray takes it.
    copy = functools.partial(np.array, dtype=native, order="K", copy=True)
    if negative:
        if exact:
            return lambda a: wrap(a.astype(native))
        return lambda a: wrap(copy(a))

    def checked(a: np.ndarray) -> torch.Tensor:
        # Planned for positive strides: refuse others, as torch.from_numpy does (see _planner).
        if a.ndim and min(a.strides) < 0:
            raise NotPlain
        return wrap(a.astype(native) if exact else copy(a))

    return checked


def _wrapper(row: DType, read_only: bool) -> Any:
    carrier, torch_dtype, np_dtype = row.numpy_carrier, row.torch, row.numpy
    if carrier is not None:

        def wrap(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a.view(carrier)).view(torch_dtype)

    elif np_dtype.kind in "iu" and np_dtype.itemsize == 8:

        def wrap(a: np.ndarray) -> torch.Tensor:
            if a.dtype.num != np_dtype.num:
                a = a.view(np_dtype)  # e.g. ulonglong: equal to uint64, yet refused by from_numpy
            return torch.from_numpy(a)

    else:
        wrap = torch.from_numpy  # type: ignore[assignment]
    if not read_only:
        return wrap

    def wrap_read_only(a: np.ndarray) -> torch.Tensor:
        # copy=False on a read-only array: the caller asked to share it, so PyTorch's
        # "not writable" warning says nothing they do not know.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return wrap(a)

    return wrap_read_only


def _requires_grad(t: torch.Tensor) -> torch.Tensor:
    if t.requires_grad:
        return t  # already on a graph: keep it
    # A new leaf that shares memory: never flip the flag on the caller's own tensor.
    return t.detach().requires_grad_(True)


def _wrap_text(row: DType) -> str:
    if row.numpy_carrier is None:
        return f"wrap as torch.Tensor {row.torch} (no copy)"
    return f"view ml_dtypes.{row.numpy} as {row.torch} (no copy)"


# torch.from_numpy refuses negative strides: the planner's tables rely on it (``_planner``).
WRAPS = {
    row.torch: Step(_wrap_text(row), call=_wrapper(row, False), dtype=row.torch, checks=True)
    for row in TABLE
}
_WRAPS_READ_ONLY = {
    row.torch: Step(_wrap_text(row), call=_wrapper(row, True), dtype=row.torch) for row in TABLE
}
_DETACH = Step("detach from autograd (no copy)", call=lambda t: t.detach())
_REQUIRES_GRAD = Step("make the result require grad (no copy)", call=_requires_grad)


@functools.cache
def _inference_copy(itemsize: int) -> Step:
    return Step(
        f"copy an inference-mode tensor ({SIZE})",
        call=torch.Tensor.clone,
        itemsize=itemsize,
        copies=1,
        reason="an inference-mode tensor cannot require grad",
    )


def _numpy_cast_step(source: np.dtype[Any], target: torch.dtype, what: str) -> Step:
    np_target = numpy_dtype(target)
    check_not_lossy_cast(dtype_kind(source), np_target)
    return cast_step(source, np_target, what + " ")


def _prepare(k: ArrayKey, o: Options) -> tuple[list[Step], ArrayKey | None]:
    """Steps for dtypes PyTorch lacks, and the key of the array they leave (None: a fresh,
    native, aligned, writeable one)."""
    dt = k.dtype
    kind = dt.kind
    if kind in "Mm":
        target = o.dtype
        if target is None or target.is_floating_point or target.is_complex or target == torch.bool:
            unit = np.datetime_data(dt)[0]
            raise refuse(
                UnsupportedInputError,
                f": datetime64/timedelta64 has no tensor form; pass an integer dtype (e.g. "
                f"dtype=torch.int64) for its count of {unit} units since the epoch",
            )
        as_int = np.dtype(np.int64) if dt.isnative else np.dtype(dt.str[0] + "i8")
        step = Step("view datetime64 as int64 (no copy)", call=lambda a: a.view(as_int))
        return [step], k._replace(dtype=as_int)
    if by_numpy(dt) is not None or by_numpy(dt.newbyteorder("=")) is not None:
        return [], k
    target = o.target_dtype(dtype_kind(dt))
    if kind in "fc":
        if target is None:
            raise refuse(
                LossyConversionError,
                f": PyTorch has no {dt} (long double), and float64 would drop precision; pass "
                f"dtype=torch.float64 (or complex128) to accept the rounding",
            )
        return [_numpy_cast_step(dt, target, "long double")], None
    if dt.type.__module__.startswith("ml_dtypes"):
        what = f"ml_dtypes.{dt.name} (PyTorch has no such dtype)"
    else:
        what = {"U": "str", "S": "bytes", "V": "void/structured"}.get(kind, str(dt))
    if target is None:
        raise refuse(
            UnsupportedInputError,
            f": a {what} array has no tensor form; pass dtype= to parse or cast it "
            f"(e.g. dtype=torch.float32)",
        )
    return [_numpy_cast_step(dt, target, what)], None


def plan_from_array(k: ArrayKey, o: Options, prefix: tuple[Step, ...] = ()) -> list[Step]:
    """Steps turning an ndarray into a tensor: a view wherever memory can be shared safely."""
    if issubclass(k.cls, np.ma.MaskedArray):
        raise masked_refusal("a tensor of the data")
    prepared, left = _prepare(k, o)
    steps = [*prefix, *prepared]
    if left is None:  # a NumPy cast made a fresh, native, aligned, writeable array
        row = by_numpy(numpy_dtype(o.target_dtype(dtype_kind(k.dtype))))
        assert row is not None
        steps.append(WRAPS[row.torch])
        return _tail(steps, row, o)
    dt = left.dtype
    native = dt if dt.isnative else dt.newbyteorder("=")
    row = by_numpy(native)
    assert row is not None
    swapped = native is not dt
    read_only = not left.writeable
    unsafe = read_only and o.copy is None and not prepared
    reasons = [
        f"non-native byte order ({dt.str})" * swapped,
        "negative strides" * left.negative,
        "misaligned data (pointer or strides not a multiple of the item size)" * (not left.aligned),
        "read-only array (a tensor cannot be marked read-only)" * unsafe,
    ]
    why = "; ".join(r for r in reasons if r)
    if why:
        # the copy and the wrap as one step (one call): these fixes are hot paths
        steps.append(
            Step(
                f"copy to a native, positive-stride torch.Tensor {row.torch} ({SIZE}): {why}",
                call=_copy_and_wrap(native, left.negative, left.cls is np.ndarray, row),
                itemsize=native.itemsize,
                copies=1,
                reason=why,
                dtype=row.torch,
                checks=not left.negative,
            )
        )
    else:
        steps.append(_WRAPS_READ_ONLY[row.torch] if read_only else WRAPS[row.torch])
    return _tail(steps, row, o)


def _tail(steps: list[Step], row: DType, o: Options) -> list[Step]:
    """The steps once a CPU array is a tensor: cast, device move, pinning, copy mode, grad."""
    target = o.target_dtype(row.kind)
    final = row.torch
    if target is not None and target != row.torch:
        check_castable(target)
        check_not_lossy_cast(row.kind, target)
        steps.append(_cast_step(row.torch, target, _into_numpy=True))
        final = target
    device = o.device
    if device is not None and device.type != "cpu":
        steps.append(_device_step(torch.device("cpu"), device, final.itemsize, o))
    elif o.pin_memory:
        steps.append(_pin_step(final.itemsize))
    return _finish(steps, final, o, host=device is None or device.type == "cpu")


def check_castable(target: torch.dtype) -> None:
    """Refuse cast targets that hold no plain values (quantized, packed sub-byte dtypes)."""
    if by_torch(target) is None:
        raise refuse(
            UnsupportedInputError,
            f" cannot be cast to dtype={target}: it is not a plain value dtype (quantized "
            f"dtypes need a scale and zero point: convert first, then call "
            f"torch.quantize_per_tensor(x, scale, zero_point, {target}))",
        )


def _cast_step(source: torch.dtype, target: torch.dtype, *, _into_numpy: bool) -> Step:
    def into_numpy(t: torch.Tensor) -> torch.Tensor:
        # PyTorch's casting rules, into NumPy-allocated memory (see docs/design.md)
        if t.is_neg():
            t = t.resolve_neg()  # PyTorch cannot cast a negative-bit view to some dtypes (bool)
        return numpy_backed_empty(tuple(t.shape), target).copy_(t)

    def with_to(t: torch.Tensor) -> torch.Tensor:
        if t.is_neg():
            t = t.resolve_neg()
        return t.to(target)

    fn = into_numpy if _into_numpy else with_to
    return Step(
        f"cast {source} → {target} (PyTorch casting, {SIZE})",
        call=lambda t: quietly(fn, t, target=target),
        itemsize=target.itemsize,
        copies=1,
        reason=f"dtype cast {source} → {target}",
        dtype=target,
    )


def _device_step(
    source: torch.device, device: torch.device, itemsize: int, o: Options, on_graph: bool = False
) -> Step:
    text = f"copy {source} → {device}"
    reason = f"device move {source} → {device}"
    if on_graph:
        # A tensor on an autograd graph (or a nested one) moves with Tensor.to, which autograd
        # differentiates; the batched transfers copy raw bytes and would cut the graph.
        # Only host → device may be asynchronous: a device → host copy must be complete on return.
        non_blocking = o.non_blocking and device.type != "cpu"
        return Step(
            f"{text} on the autograd graph ({SIZE})",
            call=lambda t: t.to(device, non_blocking=non_blocking),
            itemsize=itemsize,
            copies=1,
            syncs=not non_blocking,
            reason=reason,
        )
    if device.type == "cpu":
        return Step(
            f"{text} ({SIZE})",
            call=lambda t: _transfer.to_host([t])[0],
            itemsize=itemsize,
            copies=1,
            syncs=True,
            reason=reason,
            batch="to_host",
        )
    how = [SIZE]
    if o.pin_memory:
        how.append("staged through pinned memory")
    if o.non_blocking:
        how.append("asynchronous")
    non_blocking, pin = o.non_blocking, o.pin_memory
    return Step(
        f"{text} ({', '.join(how)})",
        call=lambda t: _transfer.to_device([t], device, non_blocking=non_blocking, pin_memory=pin)[
            0
        ],
        itemsize=itemsize,
        copies=1,
        syncs=not o.non_blocking,
        reason=reason,
        batch="to_device" if source.type == "cpu" else "",
    )


def _pin_step(itemsize: int) -> Step:
    return Step(
        f"copy into pinned host memory ({SIZE})",
        call=lambda t: quietly(torch.Tensor.pin_memory, t),
        itemsize=itemsize,
        copies=1,
        reason="pin_memory=True",
    )


def _clone_step(itemsize: int, host: bool) -> Step:
    def into_numpy(t: torch.Tensor) -> torch.Tensor:
        return numpy_backed_empty(tuple(t.shape), t.dtype).copy_(t)

    fn = into_numpy if host else torch.Tensor.clone
    return Step(
        f"copy ({SIZE})",
        call=lambda t: quietly(fn, t),
        itemsize=itemsize,
        copies=1,
        reason="copy=True",
    )


def _finish(steps: list[Step], final: torch.dtype, o: Options, host: bool) -> list[Step]:
    """The copy mode and ``requires_grad``, common to every input."""
    steps = copy_mode(steps, o.copy, _clone_step(final.itemsize, host))
    if o.requires_grad:
        if not (final.is_floating_point or final.is_complex):
            raise refuse(
                ConversionError,
                f": requires_grad=True needs a floating-point or complex result, not {final}; "
                f"pass dtype=torch.float32 (or another float dtype) as well",
            )
        steps.append(_REQUIRES_GRAD)
    return steps


def plan_from_tensor(k: TensorKey, o: Options, prefix: tuple[Step, ...] = ()) -> list[Step]:
    """Steps turning a tensor into the requested tensor: the tensor itself when nothing changes."""
    if k.device.type == "meta":
        raise meta_refusal()
    steps = list(prefix)
    if o.requires_grad is False and k.requires_grad:
        steps.append(_DETACH)
    dtype = k.dtype
    kind = torch_kind(dtype)
    if dtype in QUANTIZED:
        kind = "f"  # a quantized tensor stands for real numbers: float_dtype applies to it
        if (
            o.target_dtype(kind) is not None
        ):  # PyTorch casts quantized values only through dequantize()
            steps.append(dequantize_step(dtype))
            dtype = torch.float32
    target = o.target_dtype(kind)
    final = dtype
    # a plain dense CPU tensor off the graph: copies can land in NumPy-allocated memory
    plain_cpu = (
        k.device.type == "cpu"
        and k.layout is _STRIDED
        and not k.nested
        and not (k.requires_grad and o.requires_grad is not False)
        and dtype not in QUANTIZED
    )
    if target is not None and target != dtype:
        check_castable(target)
        check_not_lossy_cast(kind, target)
        steps.append(_cast_step(dtype, target, _into_numpy=plain_cpu))
        final = target
    device = o.device
    moved = device is not None and not _same_device(k.device, device)
    if moved:
        assert device is not None
        # Sparse layouts move with Tensor.to too: the batched byte copies take dense tensors.
        on_graph = (k.requires_grad and o.requires_grad is not False) or k.nested
        on_graph = on_graph or k.layout is not _STRIDED
        steps.append(_device_step(k.device, device, final.itemsize, o, on_graph))
    at = device if moved else k.device
    assert at is not None
    if o.pin_memory and at.type == "cpu" and not (steps[len(prefix) :] or k.pinned):
        steps.append(_pin_step(final.itemsize))
    if o.requires_grad and k.inference and not any(s.copies for s in steps):
        steps.append(
            _inference_copy(final.itemsize)
        )  # an inference tensor cannot join autograd; a copy can
    return _finish(steps, final, o, host=plain_cpu and at.type == "cpu")


def _same_device(have: torch.device, want: torch.device) -> bool:
    if have.type != want.type:
        return False
    if want.index is None:
        return True  # "cuda" means the current device; a tensor already on a cuda device stays
    return have.index == want.index
