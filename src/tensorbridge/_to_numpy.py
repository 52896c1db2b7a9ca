"""Deciding conversions whose result is a NumPy array (``to_numpy``).

``tensor_key`` / ``array_key`` read everything the planners may look at; ``plan_from_tensor`` /
``plan_from_array`` decide from that key alone (never from the value), so their answer can be
cached per key. Steps take the value as their input and are the only code that moves data.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, NamedTuple

import numpy as np
import torch

from . import _transfer
from ._dtypes import _BY_TORCH, TABLE, DType, by_numpy, by_torch, numpy_backed_empty, quietly
from ._errors import ConversionError, LossyConversionError, UnsupportedInputError, describe
from ._options import Options
from ._plan import SIZE, Refusal, Step, copy_mode

_is_functorch_wrapped = getattr(
    getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", lambda t: False
)
_STRIDED = torch.strided
_CPU = torch.device("cpu")
QUANTIZED = frozenset(
    getattr(torch, n)
    for n in ("qint8", "quint8", "qint32", "quint4x2", "quint2x4")
    if hasattr(torch, n)
)
_PLAIN_DISPATCH = torch.Tensor.__torch_dispatch__


def is_wrapper(cls: type) -> bool:
    """A tensor subclass that dispatches itself (DTensor, MaskedTensor): its data is not its
    own strided memory. ``nn.Parameter`` and ``as_subclass`` types are plain tensors."""
    return getattr(cls, "__torch_dispatch__", _PLAIN_DISPATCH) is not _PLAIN_DISPATCH


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


def check_not_lossy_cast(kind: str, target: Any) -> None:
    """Refuse complex → real casts: the imaginary part is information no argument asked to drop."""
    target_kind = dtype_kind(target) if isinstance(target, np.dtype) else torch_kind(target)
    if kind == "c" and target_kind != "c":
        raise Refusal(
            lambda subject: LossyConversionError(
                f"{describe(subject)} is complex and dtype={target} is not: the imaginary part "
                f"would be dropped; take .real (or .imag, or abs()) first, or pass a complex dtype"
            )
        )


def refuse(error: type[ConversionError], message: str) -> Refusal:
    """A refusal whose message starts with the input's description."""
    return Refusal(lambda subject: error(f"{describe(subject)}{message}"))


# --- keys: everything a planner reads ----------------------------------------------------


class TensorKey(NamedTuple):
    cls: type
    dtype: torch.dtype
    requires_grad: bool
    layout: torch.layout
    device: torch.device
    conj: bool
    neg: bool
    zero: bool  # a ZeroTensor (no memory)
    functorch: bool  # wrapped by a functorch transform (no values yet)


def tensor_key(t: torch.Tensor, o: Options | None = None) -> tuple[Any, ...]:
    del o  # nothing to_numpy decides depends on the options' reading of the tensor
    layout = t.layout
    dtype = t.dtype
    strided = layout is _STRIDED
    return (  # a plain tuple: cheaper to build than the TensorKey it stands for
        type(t),
        dtype,
        t.requires_grad,
        layout,
        t.device,
        strided and dtype.is_complex and t.is_conj(),  # (a real tensor has no conjugate bit)
        strided and t.is_neg(),
        strided and t.is_cpu and t._is_zerotensor(),  # (is_cpu: device.type costs ~0.5 µs)
        _is_functorch_wrapped(t),
    )


def plain_tensor_key(dtype: torch.dtype, requires_grad: bool) -> TensorKey:
    """The key of a plain CPU tensor (what ``Tensor.numpy`` accepts) of ``dtype``."""
    return TensorKey(torch.Tensor, dtype, requires_grad, _STRIDED, _CPU, False, False, False, False)


class ArrayKey(NamedTuple):
    cls: type
    dtype: np.dtype[Any]


def array_key(a: np.ndarray, o: Options | None = None) -> tuple[Any, ...]:
    del o
    return (type(a), a.dtype)


# --- step functions ----------------------------------------------------------------------


def _detach(t: torch.Tensor) -> torch.Tensor:
    return t.detach()


def _to_dense(t: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta" and the like
        warnings.simplefilter("ignore")
        return t.to_dense()


def _dequantize(t: torch.Tensor) -> torch.Tensor:
    return t.dequantize()


def resolved_copy(t: torch.Tensor) -> torch.Tensor:
    """One pass that writes the logical values of a conjugate- or negative-bit view."""
    return quietly(_copy_into_numpy, t, t.dtype)


def _plain_resolved_copy(t: torch.Tensor) -> torch.Tensor:
    return numpy_backed_empty(tuple(t.shape), t.dtype).copy_(t)  # no complex32: nothing warns


_COMPLEX32 = getattr(torch, "complex32", None)


def _to_host(t: torch.Tensor) -> torch.Tensor:
    return _transfer.to_host([t])[0]


def _copy_into_numpy(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return numpy_backed_empty(tuple(t.shape), dtype).copy_(t)


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


def _copy(a: np.ndarray) -> np.ndarray:
    return a.copy(order="K")


def _base_view(a: np.ndarray) -> np.ndarray:
    return a.view(np.ndarray)


def _viewer(row: DType) -> Any:
    if row.torch_carrier is None:
        return torch.Tensor.numpy
    carrier, np_dtype = row.torch_carrier, row.numpy

    def view(t: torch.Tensor) -> np.ndarray:
        return t.view(carrier).numpy().view(np_dtype)

    return view


DETACH = Step("detach from autograd (no copy)", call=_detach)
# The view of a plain CPU tensor. Tensor.numpy refuses any other tensor (another device, a
# layout, a bit, a graph): the planner's cache relies on that (see ``_planner``).
VIEWS = {
    row.torch: Step(
        f"view as numpy.ndarray {row.numpy} (no copy)"
        if row.native
        else f"view {row.tag} as ml_dtypes.{row.numpy} (no copy)",
        call=_viewer(row),
        checks=True,
    )
    for row in TABLE
}


def check_numpy_castable(source: np.dtype[Any], target: np.dtype[Any]) -> None:
    """Refuse casts NumPy cannot do between these dtypes at all (str → bfloat16, structured)."""
    if not np.can_cast(source, target, casting="unsafe"):
        raise refuse(
            UnsupportedInputError,
            f" cannot be cast to dtype={target} (NumPy has no cast from {source}); pass a dtype "
            f"its values can be cast to, or convert them yourself first",
        )


def cast_step(source: np.dtype[Any], target: np.dtype[Any], what: str = "") -> Step:
    """NumPy's cast of the array (``what`` names a source PyTorch lacks, e.g. "long double ")."""
    check_numpy_castable(source, target)
    return Step(
        f"cast {what}{source} → {target} (NumPy casting, {SIZE})",
        call=lambda a: numpy_cast(a, target),
        itemsize=target.itemsize,
        copies=1,
        reason=f"dtype cast {source} → {target}",
    )


def copy_step(itemsize: int) -> Step:
    return Step(f"copy ({SIZE})", call=_copy, itemsize=itemsize, copies=1, reason="copy=True")


def meta_refusal() -> Refusal:
    return refuse(
        UnsupportedInputError,
        " is a meta tensor: it has a shape and dtype but no data; "
        "materialise it first (e.g. torch.empty_like(t, device='cpu'))",
    )


def dequantize_step(dtype: torch.dtype) -> Step:
    """Dequantize to float32: how both libraries read a quantized tensor's values."""
    return Step(
        f"dequantize {dtype} → float32 ({SIZE})",
        call=_dequantize,
        itemsize=4,
        copies=1,
        reason=f"quantized dtype {dtype}",
        dtype=torch.float32,
    )


class NotPlain(RuntimeError):
    """A checking step met a tensor whose facts are not the ones its plan was made for."""


def _resolved_plain_copy(bit: str, dtype: torch.dtype) -> Any:
    neg = bit == "negative"
    copy = resolved_copy if dtype is _COMPLEX32 else _plain_resolved_copy

    def resolve(t: torch.Tensor) -> torch.Tensor:
        # The check Tensor.numpy makes for a view, made here for a copy (see _planner): a
        # strided CPU tensor, not under a functorch transform, with exactly this plan's bit.
        if (
            t.layout is not _STRIDED
            or not t.is_cpu
            or t.is_neg() is not neg
            or _is_functorch_wrapped(t)
        ):
            raise NotPlain  # (a ZeroTensor with this bit has this same plan)
        return copy(t)

    return resolve


@functools.cache
def _materialize(bit: str, dtype: torch.dtype, itemsize: int) -> Step:
    if bit == "zero":
        text, reason = "write out the zeros of a ZeroTensor", "a ZeroTensor has no memory to share"
        return Step(
            f"{text} ({SIZE})", call=resolved_copy, itemsize=itemsize, copies=1, reason=reason
        )
    text, reason = (
        f"resolve the {bit} bit",
        f"{bit}-bit view (its logical values are not in memory)",
    )
    fn = _resolved_plain_copy(bit, dtype)
    return Step(
        f"{text} ({SIZE})", call=fn, itemsize=itemsize, copies=1, reason=reason, checks=True
    )


# --- the planners ------------------------------------------------------------------------


def plan_from_tensor(k: TensorKey, o: Options, prefix: tuple[Step, ...] = ()) -> list[Step]:
    """Steps turning a (non-nested) tensor into an ndarray with the logical values."""
    if is_wrapper(k.cls):
        raise refuse(
            UnsupportedInputError,
            f" is a {k.cls.__name__}, a tensor subclass that dispatches itself: its values are "
            f"not its own memory; take the plain tensor it stands for first (its own method, "
            f"e.g. .to_local(), .full_tensor() or .get_data())",
        )
    if k.functorch:
        raise refuse(
            UnsupportedInputError,
            " is being traced by a functorch transform (vmap/grad): its values do not exist "
            "yet; convert outside the transform, or return the tensor from it",
        )
    steps = [*prefix, DETACH] if k.requires_grad else list(prefix)
    dtype = k.dtype
    strided = k.layout is _STRIDED
    if not strided:
        layout = str(k.layout).removeprefix("torch.")
        row = by_torch(dtype)
        steps.append(
            Step(
                f"densify {layout} tensor ({SIZE})",
                call=_to_dense,
                itemsize=row.itemsize if row else dtype.itemsize,
                copies=1,
                reason=f"{layout} layout (sparse data is stored densely)",
            )
        )
    elif dtype in QUANTIZED:
        steps.append(dequantize_step(dtype))
        dtype = torch.float32
    row = _BY_TORCH.get(dtype)
    if row is None:
        raise refuse(
            UnsupportedInputError,
            f": dtype {dtype} has no NumPy form (not even through ml_dtypes); view its bytes "
            f"with t.view(torch.uint8), or cast it in PyTorch first (t.to(torch.float32))",
        )
    cpu = k.device.type == "cpu"
    if not cpu:
        if k.device.type == "meta":
            raise meta_refusal()
        lazy = "; it is a conjugate/negative-bit view" if k.conj or k.neg else ""
        steps.append(
            Step(
                f"copy {k.device} → cpu ({SIZE})",
                call=_to_host,
                itemsize=row.itemsize,
                copies=1,
                syncs=True,
                reason=f"the tensor is on {k.device}" + lazy,
                batch="to_host",
            )
        )
    target = o.float_dtype if row.kind == "f" and o.float_dtype is not None else o.dtype
    if target is not None and target != row.numpy:
        check_not_lossy_cast(row.kind, target)
        widened = _widening(row, target)
        if widened is not None:
            # An exact cast: PyTorch's (multi-threaded) into a NumPy buffer gives the same
            # values as NumPy's (integer, bool and bfloat16 sources carry no lazy bits).
            to = widened.torch
            steps.append(
                Step(
                    f"cast {dtype} → {widened.numpy} (exact; {SIZE})",
                    call=lambda t: quietly(_copy_into_numpy, t, to, target=to),
                    itemsize=widened.itemsize,
                    copies=1,
                    reason=f"dtype cast {dtype} → {widened.numpy}",
                )
            )
            steps.append(VIEWS[to])
            return copy_mode(steps, o.copy, copy_step(widened.itemsize))
    if cpu and strided and ((row.kind == "c" and k.conj) or k.neg):
        steps.append(_materialize("negative" if k.neg else "conjugate", dtype, row.itemsize))
    elif cpu and strided and k.zero:
        steps.append(_materialize("zero", dtype, row.itemsize))
    steps.append(VIEWS[dtype])
    itemsize = row.itemsize
    if target is not None and target != row.numpy:
        steps.append(cast_step(row.numpy, target))
        itemsize = target.itemsize
    return copy_mode(steps, o.copy, copy_step(itemsize))


_WIDENING: dict[tuple[torch.dtype, np.dtype[Any]], DType | None] = {}
_WIDE_FLOATS = frozenset({"float32", "float64", "complex64", "complex128"})


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


def masked_refusal(fix: str) -> Refusal:
    return refuse(
        LossyConversionError,
        f" is a masked array: converting it would drop its mask; call .filled(fill_value) for "
        f"{fix}, or convert .data and .mask separately",
    )


def plan_from_array(k: ArrayKey, o: Options, prefix: tuple[Step, ...] = ()) -> list[Step]:
    """Steps turning an ndarray (or subclass) into a plain ndarray of the requested dtype."""
    if issubclass(k.cls, np.ma.MaskedArray):
        raise masked_refusal("a plain array")
    steps = list(prefix)
    if k.cls is not np.ndarray:
        steps.append(Step(f"view {k.cls.__name__} as numpy.ndarray (no copy)", call=_base_view))
    kind = dtype_kind(k.dtype)
    target = o.target_dtype(kind)
    itemsize = k.dtype.itemsize
    if target is not None and target != k.dtype:
        check_not_lossy_cast(kind, target)
        steps.append(cast_step(k.dtype, target))
        itemsize = target.itemsize
    return copy_mode(steps, o.copy, copy_step(itemsize))
