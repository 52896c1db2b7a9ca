"""Planning conversions whose result is a NumPy array (``to_numpy``).

``plan_tensor`` and ``plan_array`` return the ordered steps; nothing here moves data except the
steps themselves when they are run.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from ._dtypes import _BY_TORCH, TABLE, DType, by_numpy, by_torch, numpy_backed_empty, quietly
from ._errors import ConversionError, LossyConversionError, UnsupportedInputError, describe
from ._options import Options
from ._plan import Step, format_bytes

_is_functorch_wrapped = getattr(
    getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", lambda t: False
)


def tensor_nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def torch_kind(dt: torch.dtype) -> str:
    """ "b", "i", "u", "f" or "c" for a PyTorch dtype (quantized dtypes count as "i")."""
    row = by_torch(dt)
    if row is not None:
        return row.kind
    return "c" if dt.is_complex else "f" if dt.is_floating_point else "i"


def dtype_kind(dt: np.dtype[Any]) -> str:
    """NumPy's dtype kind, with the ml_dtypes types reported as "f" or "c" (NumPy says "V")."""
    row = by_numpy(dt)
    return row.kind if row is not None else dt.kind


def check_not_lossy_cast(kind: str, target: Any, subject: Any) -> None:
    """Refuse complex → real casts: the imaginary part is information no argument asked to drop."""
    target_kind = dtype_kind(target) if isinstance(target, np.dtype) else torch_kind(target)
    if kind == "c" and target_kind != "c":
        raise LossyConversionError(
            f"{describe(subject)} is complex and dtype={target} is not: the imaginary part would "
            f"be dropped; take .real (or .imag, or abs()) first, or pass a complex dtype"
        )


# --- step functions: (value, arg) -> value -------------------------------------------------


def _detach(t: torch.Tensor, _: Any) -> torch.Tensor:
    return t.detach()


def _to_dense(t: torch.Tensor, _: Any) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta" and the like
        warnings.simplefilter("ignore")
        return t.to_dense()


def _dequantize(t: torch.Tensor, _: Any) -> torch.Tensor:
    return t.dequantize()


def resolved_copy(t: torch.Tensor) -> torch.Tensor:
    """One pass that writes the logical values of a conjugate- or negative-bit view."""
    return numpy_backed_empty(tuple(t.shape), t.dtype).copy_(t)


def _materialize(t: torch.Tensor, _: Any) -> torch.Tensor:
    return quietly(resolved_copy, t)


def _to_host(t: torch.Tensor, _: Any) -> torch.Tensor:
    from ._transfer import to_host

    return to_host([t])[0]


def numpy_view(t: torch.Tensor, row: DType) -> np.ndarray:
    """The ndarray over a CPU tensor's memory; ml_dtypes types through an integer carrier."""
    try:
        if row.torch_carrier is None:
            return t.numpy()
        return t.view(row.torch_carrier).numpy().view(row.numpy)
    except RuntimeError as e:
        if _is_functorch_wrapped(t):
            raise UnsupportedInputError(
                f"{describe(t)} is being traced by a functorch transform (vmap/grad): its values "
                f"do not exist yet; convert outside the transform, or return the tensor from it"
            ) from None
        raise ConversionError(f"{describe(t)} cannot be viewed as an ndarray: {e}") from None


def numpy_cast(a: np.ndarray, dt: np.dtype[Any]) -> np.ndarray:
    """``a.astype(dt)`` with NumPy's casting; a cast NumPy cannot do is one clear error."""
    # NaN → int, overflow, and even exact casts of signalling NaNs raise floating-point flags:
    # the values follow NumPy's casting, silently.
    try:
        with np.errstate(all="ignore"):
            return a.astype(dt)
    except (TypeError, ValueError) as e:
        raise UnsupportedInputError(
            f"{describe(a)} cannot be cast to dtype={dt} ({e}); pass a dtype its values can "
            f"be cast to, or convert them yourself first"
        ) from None


def _copy(a: np.ndarray, _: Any) -> np.ndarray:
    return a.copy(order="K")


def _base_view(a: np.ndarray, _: Any) -> np.ndarray:
    return a.view(np.ndarray)


_DETACH = Step("detach from autograd (no copy)", _detach)
_STRIDED = torch.strided
VIEWS = {
    row.torch: Step(
        f"view as numpy.ndarray {row.numpy} (no copy)"
        if row.native
        else f"view {row.tag} as ml_dtypes.{row.numpy} (no copy)",
        numpy_view,
        row,
    )
    for row in TABLE
}


def cast_step(source: np.dtype[Any], target: np.dtype[Any], nbytes: int) -> Step:
    return Step(
        lambda: f"cast {source} → {target} (NumPy casting, {format_bytes(nbytes)})",
        numpy_cast,
        target,
        nbytes=nbytes,
        copies=1,
        reason=lambda: f"dtype cast {source} → {target}",
    )


def copy_step(nbytes: int) -> Step:
    return Step(
        lambda: f"copy ({format_bytes(nbytes)})", _copy, nbytes=nbytes, copies=1, reason="copy=True"
    )


def meta_error(t: torch.Tensor) -> UnsupportedInputError:
    return UnsupportedInputError(
        f"{describe(t)} is a meta tensor: it has a shape and dtype but no data; "
        f"materialise it first (e.g. torch.empty_like(t, device='cpu'))"
    )


def dequantize_step(t: torch.Tensor) -> Step:
    """Dequantize to float32: how both libraries read a quantized tensor's values."""
    dtype, nbytes = t.dtype, t.numel() * 4
    return Step(
        lambda: f"dequantize {dtype} → float32 ({format_bytes(nbytes)})",
        _dequantize,
        nbytes=nbytes,
        copies=1,
        reason=lambda: f"quantized dtype {dtype}",
    )


def _unsupported_dtype(t: torch.Tensor, dtype: torch.dtype) -> UnsupportedInputError:
    return UnsupportedInputError(
        f"{describe(t)}: dtype {dtype} has no NumPy form (not even through ml_dtypes); view its "
        f"bytes with t.view(torch.uint8), or cast it in PyTorch first (t.to(torch.float32))"
    )


def plan_tensor(t: torch.Tensor, o: Options) -> list[Step]:
    """Steps turning a (non-nested) tensor into an ndarray with the logical values."""
    steps: list[Step] = [_DETACH] if t.requires_grad else []
    dtype = t.dtype
    strided = t.layout is _STRIDED
    if not strided:
        nbytes = tensor_nbytes(t)
        layout = str(t.layout).removeprefix("torch.")
        steps.append(
            Step(
                lambda: f"densify {layout} tensor ({format_bytes(nbytes)})",
                _to_dense,
                nbytes=nbytes,
                copies=1,
                reason=lambda: f"{layout} layout (sparse data is stored densely)",
            )
        )
    elif t.is_quantized:
        steps.append(dequantize_step(t))
        dtype = torch.float32
    row = _BY_TORCH.get(dtype)
    if row is None:
        raise _unsupported_dtype(t, dtype)
    cpu = t.is_cpu
    nbytes = 0 if cpu and strided else t.numel() * row.itemsize  # only copies need the size
    if not cpu:
        if t.is_meta:
            raise meta_error(t)
        device = t.device
        lazy = (
            "; it is a conjugate/negative-bit view"
            if strided and (t.is_conj() or t.is_neg())
            else ""
        )
        steps.append(
            Step(
                lambda: f"copy {device} → cpu ({format_bytes(nbytes)})",
                _to_host,
                nbytes=nbytes,
                copies=1,
                syncs=True,
                reason=lambda: f"the tensor is on {device}" + lazy,
                batch="to_host",
            )
        )
    target = o.float_dtype if row.kind == "f" and o.float_dtype is not None else o.dtype
    if target is not None and target != row.numpy:
        check_not_lossy_cast(row.kind, target, t)
        widened = _widening(row, target)
        if widened is not None:
            # An exact cast: PyTorch's (multi-threaded) into a NumPy buffer gives the same
            # values as NumPy's (integer, bool and bfloat16 sources carry no lazy bits).
            out_bytes = t.numel() * widened.itemsize
            steps.append(
                Step(
                    lambda: f"cast {dtype} → {widened.numpy} (exact; {format_bytes(out_bytes)})",
                    _cast_into_numpy,
                    widened.torch,
                    nbytes=out_bytes,
                    copies=1,
                    reason=lambda: f"dtype cast {dtype} → {widened.numpy}",
                )
            )
            steps.append(VIEWS[widened.torch])
            return steps
    if cpu and strided and t._is_zerotensor():
        nbytes = t.numel() * row.itemsize
        steps.append(
            Step(
                lambda: f"write out the zeros of a ZeroTensor ({format_bytes(nbytes)})",
                _materialize,
                nbytes=nbytes,
                copies=1,
                reason="a ZeroTensor has no memory to share",
            )
        )
    elif cpu and strided and ((row.kind == "c" and t.is_conj()) or t.is_neg()):
        bit = "negative" if t.is_neg() else "conjugate"
        nbytes = t.numel() * row.itemsize
        steps.append(
            Step(
                lambda: f"resolve the {bit} bit ({format_bytes(nbytes)})",
                _materialize,
                nbytes=nbytes,
                copies=1,
                reason=lambda: f"{bit}-bit view (its logical values are not in memory)",
            )
        )
    steps.append(VIEWS[dtype])
    if target is not None and target != row.numpy:
        steps.append(cast_step(row.numpy, target, t.numel() * target.itemsize))
    return steps


_WIDENING: dict[tuple[torch.dtype, np.dtype[Any]], DType | None] = {}


def _widening(row: DType, target: np.dtype[Any]) -> DType | None:
    """The table row of ``target`` when PyTorch casts ``row`` to it bit for bit as NumPy does.

    That holds for exact casts from integers and bools, and from bfloat16 (a bit shift in both
    libraries); other float casts may differ in NaN payloads, so NumPy does those.
    """
    key = (row.torch, target)
    if key not in _WIDENING:
        out = by_numpy(target)
        exact = out is not None and bool(np.can_cast(row.numpy, target, "safe"))
        same_bits = out is not None and (
            (row.kind in "biu" and out.tag != "float8_e8m0fnu")
            or (row.tag == "bfloat16" and out.tag in _WIDE_FLOATS)
        )
        _WIDENING[key] = out if exact and same_bits else None
    return _WIDENING[key]


_WIDE_FLOATS = frozenset({"float32", "float64", "complex64", "complex128"})


def _cast_into_numpy(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return quietly(_copy_into_numpy, t, dtype, target=dtype)


def _copy_into_numpy(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return numpy_backed_empty(tuple(t.shape), dtype).copy_(t)


def plan_array(a: np.ndarray, o: Options) -> list[Step]:
    """Steps turning an ndarray (or subclass) into a plain ndarray of the requested dtype."""
    if isinstance(a, np.ma.MaskedArray):
        raise LossyConversionError(
            f"{describe(a)} is a masked array: converting it would drop its mask; call "
            f".filled(fill_value) for a plain array, or convert .data and .mask separately"
        )
    steps: list[Step] = []
    if type(a) is not np.ndarray:
        name = type(a).__name__
        steps.append(Step(lambda: f"view {name} as numpy.ndarray (no copy)", _base_view))
    kind = dtype_kind(a.dtype)
    target = o.target_dtype(kind)
    if target is not None and target != a.dtype:
        check_not_lossy_cast(kind, target, a)
        steps.append(cast_step(a.dtype, target, a.size * target.itemsize))
    return steps


def finish(steps: list[Step], o: Options, nbytes: int) -> list[Step]:
    """Apply the copy mode: ``copy=True`` adds a copy if no step copies."""
    if o.copy and not any(s.copies for s in steps):
        steps.append(copy_step(nbytes))
    return steps
