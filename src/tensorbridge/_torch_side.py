"""Planning conversions whose result is a PyTorch tensor (``to_torch``).

``plan_array`` and ``plan_tensor`` return the ordered steps; nothing here moves data except the
steps themselves when they are run.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from ._dtypes import TABLE, DType, by_numpy, by_torch, numpy_backed_empty, numpy_dtype, quietly
from ._errors import ConversionError, LossyConversionError, UnsupportedInputError, describe
from ._numpy_side import (
    check_not_lossy_cast,
    dequantize_step,
    dtype_kind,
    meta_error,
    numpy_cast,
    tensor_nbytes,
    torch_kind,
)
from ._options import Options
from ._plan import Step, format_bytes

_ALIGNED, _WRITEABLE = 0x100, 0x400  # NPY_ARRAY_* flag bits


def _const(_: Any, value: Any) -> Any:
    return value


def _native_copy(a: np.ndarray, dt: np.dtype[Any]) -> np.ndarray:
    # order="K" keeps the memory order of the input but always yields positive strides.
    return np.array(a, dtype=dt, order="K", copy=True)


def _from_numpy(a: np.ndarray, row: DType) -> torch.Tensor:
    if row.numpy_carrier is None:
        if a.dtype.num != row.numpy.num:
            a = a.view(row.numpy)  # e.g. ulonglong: equal to uint64, yet refused by from_numpy
        return torch.from_numpy(a)
    return torch.from_numpy(a.view(row.numpy_carrier)).view(row.torch)


def _from_numpy_readonly(a: np.ndarray, row: DType) -> torch.Tensor:
    # copy=False on a read-only array: the caller asked to share it, so PyTorch's
    # "not writable" warning says nothing they do not know.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return _from_numpy(a, row)


def _plain_cpu(t: torch.Tensor) -> bool:
    """A dense CPU tensor off the autograd graph: its copies can land in a NumPy buffer."""
    return (
        t.is_cpu
        and t.layout is torch.strided
        and not t.requires_grad
        and not t.is_quantized
        and not t.is_nested
    )


def _cast_on_host(t: torch.Tensor, dt: torch.dtype) -> torch.Tensor:
    if t.is_neg():
        t = t.resolve_neg()  # PyTorch cannot cast a negative-bit view to some dtypes (bool)
    if _plain_cpu(t):
        return numpy_backed_empty(tuple(t.shape), dt).copy_(t)  # PyTorch's casting rules
    return t.to(dt)


def _torch_cast(t: torch.Tensor, dt: torch.dtype) -> torch.Tensor:
    return quietly(_cast_on_host, t, dt, target=dt)


def _detach(t: torch.Tensor, _: Any) -> torch.Tensor:
    return t.detach()


def _to_device(t: torch.Tensor, o: Options) -> torch.Tensor:
    from ._transfer import to_device

    assert o.device is not None
    return to_device([t], o.device, non_blocking=o.non_blocking, pin_memory=o.pin_memory)[0]


def _to_cpu(t: torch.Tensor, _: Any) -> torch.Tensor:
    from ._transfer import to_host

    return to_host([t])[0]


def _pin(t: torch.Tensor, _: Any) -> torch.Tensor:
    return quietly(torch.Tensor.pin_memory, t)


def _copy_on_host(t: torch.Tensor) -> torch.Tensor:
    if _plain_cpu(t):
        return numpy_backed_empty(tuple(t.shape), t.dtype).copy_(t)
    return t.clone()


def _clone(t: torch.Tensor, _: Any) -> torch.Tensor:
    return quietly(_copy_on_host, t)


def _requires_grad(t: torch.Tensor, _: Any) -> torch.Tensor:
    if t.requires_grad:
        return t  # already on a graph: keep it
    # A new leaf that shares memory: never flip the flag on the caller's own tensor.
    return t.detach().requires_grad_(True)


def _wrap_text(row: DType) -> str:
    if row.numpy_carrier is None:
        return f"wrap as torch.Tensor {row.torch} (no copy)"
    return f"view ml_dtypes.{row.numpy} as {row.torch} (no copy)"


WRAPS = {row.torch: Step(_wrap_text(row), _from_numpy, row) for row in TABLE}
_WRAPS_READ_ONLY = {row.torch: Step(_wrap_text(row), _from_numpy_readonly, row) for row in TABLE}
_DETACH = Step("detach from autograd (no copy)", _detach)
_REQUIRES_GRAD = Step("make the result require grad (no copy)", _requires_grad)


def _unobject(a: np.ndarray) -> np.ndarray:
    """The numeric array an object array of numbers or same-shaped arrays stands for."""
    items = a.ravel().tolist() if a.size else []
    if items and all(isinstance(x, (np.ndarray, torch.Tensor)) for x in items):
        from ._api import to_numpy

        parts = [to_numpy(x) for x in items]
        parts = [_unobject(p) if p.dtype.kind == "O" else p for p in parts]
        if len({p.shape for p in parts}) != 1:
            raise UnsupportedInputError(
                f"{describe(a)} holds arrays of different shapes "
                f"({', '.join(sorted({str(p.shape) for p in parts}))}); stack equal shapes only, "
                f"or convert the items one by one"
            )
        return np.stack(parts).reshape(a.shape + parts[0].shape)
    if not all(isinstance(x, (bool, int, float, complex, np.generic)) for x in items):
        bad = next(x for x in items if not isinstance(x, (bool, int, float, complex, np.generic)))
        raise UnsupportedInputError(
            f"{describe(a)} holds a {type(bad).__name__} item ({bad!r:.40}); only object arrays of "
            f"numbers or same-shaped arrays convert; pass dtype= or convert the items yourself"
        )
    out = np.array(items)
    if out.dtype.kind not in "biufc":
        raise UnsupportedInputError(f"{describe(a)} does not hold numbers; pass dtype=")
    return out.reshape(a.shape)


def _numpy_cast_step(a: np.ndarray, target: torch.dtype, what: str) -> Step:
    np_target = numpy_dtype(target)
    check_not_lossy_cast(dtype_kind(a.dtype), np_target, a)
    out_bytes = a.size * np_target.itemsize
    return Step(
        lambda: f"cast {what} {a.dtype} → {np_target} (NumPy casting, {format_bytes(out_bytes)})",
        numpy_cast,
        np_target,
        nbytes=out_bytes,
        copies=1,
        reason=lambda: f"dtype cast {a.dtype} → {np_target}",
    )


def _prepare(a: np.ndarray, o: Options) -> tuple[list[Step], np.ndarray | None]:
    """Steps for dtypes PyTorch lacks; returns them and the array they leave (None: a fresh one)."""
    dt = a.dtype
    kind = dt.kind
    if kind == "O":
        out = _unobject(a)
        step = Step(
            lambda: f"unpack object array into {out.dtype} ({format_bytes(out.nbytes)})",
            _const,
            out,
            nbytes=out.nbytes,
            copies=1,
            reason="object dtype (the items are separate Python objects)",
        )
        return [step], out
    if kind in "Mm":
        target = o.dtype
        if target is None or target.is_floating_point or target.is_complex or target == torch.bool:
            raise UnsupportedInputError(
                f"{describe(a)}: datetime64/timedelta64 has no tensor form; pass an integer "
                f"dtype (e.g. dtype=torch.int64) for its count of "
                f"{np.datetime_data(dt)[0]} units since the epoch"
            )
        view = a.view(dt.newbyteorder("=").str[0] + "i8" if not dt.isnative else np.int64)
        return [Step("view datetime64 as int64 (no copy)", _const, view)], view
    if by_numpy(dt) is not None or by_numpy(dt.newbyteorder("=")) is not None:
        return [], a
    target = o.target_dtype(dtype_kind(dt))
    if kind in "fc":
        if target is None:
            raise LossyConversionError(
                f"{describe(a)}: PyTorch has no {dt} (long double), and float64 would drop "
                f"precision; pass dtype=torch.float64 (or complex128) to accept the rounding"
            )
        return [_numpy_cast_step(a, target, "long double")], None
    if dt.type.__module__.startswith("ml_dtypes"):
        what = f"ml_dtypes.{dt.name} (PyTorch has no such dtype)"
    else:
        what = {"U": "str", "S": "bytes", "V": "void/structured"}.get(kind, str(dt))
    if target is None:
        raise UnsupportedInputError(
            f"{describe(a)}: a {what} array has no tensor form; pass dtype= to parse or "
            f"cast it (e.g. dtype=torch.float32)"
        )
    return [_numpy_cast_step(a, target, what)], None


def plan_array(a: np.ndarray, o: Options) -> list[Step]:
    """Steps turning an ndarray into a tensor: a view wherever memory can be shared safely."""
    if type(a) is not np.ndarray and isinstance(a, np.ma.MaskedArray):
        raise LossyConversionError(
            f"{describe(a)} is a masked array: converting it would drop its mask; call "
            f".filled(fill_value) for a tensor of the data, or convert .data and .mask separately"
        )
    steps, prepared = _prepare(a, o)
    if prepared is None:  # a NumPy cast made a fresh, native, aligned, writeable array
        row = by_numpy(numpy_dtype(o.target_dtype(dtype_kind(a.dtype))))
        assert row is not None
        steps.append(WRAPS[row.torch])
        return _tail(steps, row, a, o)
    a = prepared
    dt = a.dtype
    native = dt if dt.isnative else dt.newbyteorder("=")
    row = by_numpy(native)
    assert row is not None
    flags = a.flags.num
    swapped = native is not dt
    negative = a.ndim > 0 and min(a.strides) < 0
    misaligned = not flags & _ALIGNED or _misaligned(a)
    read_only = not flags & _WRITEABLE
    unsafe = read_only and o.copy is None and not steps
    if swapped or negative or misaligned or unsafe:
        strides = a.strides

        def why() -> str:
            reasons = [
                f"non-native byte order ({dt.str})" * swapped,
                f"negative strides {strides}" * negative,
                "misaligned data (pointer or strides not a multiple of the item size)" * misaligned,
                "read-only array (a tensor cannot be marked read-only)" * unsafe,
            ]
            return "; ".join(r for r in reasons if r)

        nbytes = a.nbytes
        steps.append(
            Step(
                lambda: (
                    f"copy to a native, positive-stride array ({format_bytes(nbytes)}): {why()}"
                ),
                _native_copy,
                native,
                nbytes=nbytes,
                copies=1,
                reason=why,
            )
        )
        read_only = False
    steps.append(_WRAPS_READ_ONLY[row.torch] if read_only else WRAPS[row.torch])
    return _tail(steps, row, a, o)


def _misaligned(a: np.ndarray) -> bool:
    isz = a.dtype.itemsize
    if isz <= a.dtype.alignment or a.size == 0:
        return False  # NumPy's own ALIGNED flag already covers it
    ptr = a.__array_interface__["data"][0]
    return ptr % isz != 0 or any(s % isz for s in a.strides)


def _tail(steps: list[Step], row: DType, a: np.ndarray, o: Options) -> list[Step]:
    """The steps once a CPU array is a tensor: cast, device move, pinning, copy mode, grad."""
    target = o.target_dtype(row.kind)
    nbytes = a.size * row.itemsize
    final = row.torch
    if target is not None and target != row.torch:
        check_castable(target, a)
        check_not_lossy_cast(row.kind, target, a)
        nbytes = a.size * target.itemsize
        steps.append(_cast_step(row.torch, target, nbytes))
        final = target
    device = o.device
    if device is not None and device.type != "cpu":
        steps.append(_device_step(torch.device("cpu"), device, nbytes, o))
    elif o.pin_memory:
        steps.append(_pin_step(nbytes))
    return _finish(steps, final, nbytes, o, a)


def check_castable(target: torch.dtype, subject: Any) -> None:
    """Refuse cast targets that hold no plain values (quantized, packed sub-byte dtypes)."""
    if by_torch(target) is None:
        raise UnsupportedInputError(
            f"{describe(subject)} cannot be cast to dtype={target}: it is not a plain value dtype "
            f"(quantized dtypes need a scale and zero point: convert first, then call "
            f"torch.quantize_per_tensor(x, scale, zero_point, {target}))"
        )


def _cast_step(source: torch.dtype, target: torch.dtype, nbytes: int) -> Step:
    return Step(
        lambda: f"cast {source} → {target} (PyTorch casting, {format_bytes(nbytes)})",
        _torch_cast,
        target,
        nbytes=nbytes,
        copies=1,
        reason=lambda: f"dtype cast {source} → {target}",
    )


def _move_on_graph(t: torch.Tensor, target: tuple[torch.device, bool]) -> torch.Tensor:
    device, non_blocking = target
    # Only host → device may be asynchronous: a device → host copy must be complete on return.
    return t.to(device, non_blocking=non_blocking and device.type != "cpu")


def _device_step(
    source: torch.device, device: torch.device, nbytes: int, o: Options, keep_graph: bool = False
) -> Step:
    if keep_graph:
        # A tensor on an autograd graph moves with Tensor.to, which autograd differentiates;
        # the batched transfers copy raw bytes and would cut the graph.
        return Step(
            lambda: f"copy {source} → {device} on the autograd graph ({format_bytes(nbytes)})",
            _move_on_graph,
            (device, o.non_blocking),
            nbytes=nbytes,
            copies=1,
            syncs=device.type == "cpu" or not o.non_blocking,
            reason=lambda: f"device move {source} → {device}",
        )
    if device.type == "cpu":
        return Step(
            lambda: f"copy {source} → cpu ({format_bytes(nbytes)})",
            _to_cpu,
            nbytes=nbytes,
            copies=1,
            syncs=True,
            reason=lambda: f"device move {source} → cpu",
            batch="to_host",
        )
    how = []
    if o.pin_memory:
        how.append("staged through pinned memory")
    if o.non_blocking:
        how.append("asynchronous")
    return Step(
        lambda: f"copy {source} → {device} ({', '.join([format_bytes(nbytes), *how])})",
        _to_device,
        o,
        nbytes=nbytes,
        copies=1,
        syncs=not o.non_blocking,
        reason=lambda: f"device move {source} → {device}",
        batch="to_device" if source.type == "cpu" else "",
    )


def _pin_step(nbytes: int) -> Step:
    return Step(
        lambda: f"copy into pinned host memory ({format_bytes(nbytes)})",
        _pin,
        nbytes=nbytes,
        copies=1,
        reason="pin_memory=True",
    )


def _finish(
    steps: list[Step], final: torch.dtype, nbytes: int, o: Options, subject: Any
) -> list[Step]:
    """The copy mode and ``requires_grad``, common to every input."""
    if o.copy and not any(s.copies for s in steps):
        steps.append(
            Step(
                lambda: f"copy ({format_bytes(nbytes)})",
                _clone,
                nbytes=nbytes,
                copies=1,
                reason="copy=True",
            )
        )
    if o.requires_grad:
        if (
            isinstance(subject, torch.Tensor)
            and subject.is_inference()
            and not any(s.copies for s in steps)
        ):
            # An inference tensor cannot join autograd: a copy made here can.
            steps.append(
                Step(
                    lambda: f"copy an inference-mode tensor ({format_bytes(nbytes)})",
                    _clone,
                    nbytes=nbytes,
                    copies=1,
                    reason="an inference-mode tensor cannot require grad",
                )
            )
        if not (final.is_floating_point or final.is_complex):
            raise ConversionError(
                f"{describe(subject)}: requires_grad=True needs a floating-point or complex "
                f"result, not {final}; pass dtype=torch.float32 (or another float dtype) as well"
            )
        steps.append(_REQUIRES_GRAD)
    return steps


def plan_tensor(t: torch.Tensor, o: Options) -> list[Step]:
    """Steps turning a tensor into the requested tensor: the tensor itself when nothing changes."""
    if t.is_meta:
        raise meta_error(t)
    steps: list[Step] = []
    if o.requires_grad is False and t.requires_grad:
        steps.append(_DETACH)
    dtype = t.dtype
    nbytes = tensor_nbytes(t)
    kind = torch_kind(dtype)
    if t.is_quantized:
        kind = "f"  # a quantized tensor stands for real numbers: float_dtype applies to it
        target = o.target_dtype(kind)
        if target is not None:  # PyTorch casts quantized values only through dequantize()
            steps.append(dequantize_step(t))
            nbytes = t.numel() * 4
            dtype = torch.float32
    target = o.target_dtype(kind)
    final = dtype
    if target is not None and target != dtype:
        check_castable(target, t)
        check_not_lossy_cast(kind, target, t)
        nbytes = t.numel() * target.itemsize
        steps.append(_cast_step(dtype, target, nbytes))
        final = target
    device = o.device
    if device is not None and not _same_device(t.device, device):
        # On a graph, or sparse (the batched byte copies take dense tensors): Tensor.to moves it.
        keep_graph = t.requires_grad and o.requires_grad is not False
        keep_graph = keep_graph or t.layout is not torch.strided
        steps.append(_device_step(t.device, device, nbytes, o, keep_graph))
    if o.pin_memory and (device or t.device).type == "cpu" and not (steps or t.is_pinned()):
        steps.append(_pin_step(nbytes))
    return _finish(steps, final, nbytes, o, t)


def _same_device(have: torch.device, want: torch.device) -> bool:
    if have.type != want.type:
        return False
    if want.index is None:
        return True  # "cuda" means the current device; a tensor already on a cuda device stays
    return have.index == want.index
