"""Tensor subclasses that wrap other tensors (``__torch_dispatch__``), and ``PackedSequence``.

A plain subclass (``as_subclass``, ``nn.Parameter``, ``nn.Buffer``) is a tensor with memory of
its own and converts as one: no adapter claims it. A wrapper subclass (``DTensor``,
``MaskedTensor``, any class overriding ``__torch_dispatch__``) holds no memory NumPy could view:
``to_torch`` keeps it (dtype and device through its own ``.to``), ``to_numpy`` refuses it with
the call that unwraps it. A ``PackedSequence`` is a container whose only converted member is
``.data``: ``dtype``/``float_dtype`` never touch ``batch_sizes`` or the index tensors.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .._errors import ConversionError, LossyConversionError, UnsupportedInputError, describe
from .._plan import SIZE, LeafPlan, Refusal, Step, copy_mode
from .._to_numpy import is_wrapper
from .._tree import _Attr
from . import Adapter
from ._common import guarded


def recognise(cls: type) -> Adapter | None:
    if issubclass(cls, torch.Tensor):
        if not is_wrapper(cls) or cls.__module__.startswith("torch.nested."):
            return None  # a plain subclass, or a jagged tensor: the core converts those
        return Adapter(f"tensor subclass {cls.__name__}", "leaf", leaf=_wrapper)
    packed = getattr(sys.modules.get("torch.nn.utils.rnn"), "PackedSequence", None)
    if packed is not None and issubclass(cls, packed):
        return Adapter("PackedSequence", "container", children=_packed_data, note=_packed_note)
    return None


def _refusal(t: Any) -> ConversionError:
    name = type(t).__name__
    if name == "DTensor":
        return UnsupportedInputError(
            f"{describe(t)} is a DTensor, spread over a device mesh: this process may hold only "
            f"a shard of its values; call .full_tensor() for the whole tensor (a collective "
            f"every rank must call) or .to_local() for this rank's shard, and convert that"
        )
    if name == "MaskedTensor":
        return LossyConversionError(
            f"{describe(t)} is a MaskedTensor: an array of its values would drop its mask; "
            f"convert .get_data() and .get_mask() separately"
        )
    return UnsupportedInputError(
        f"{describe(t)} is a tensor subclass that wraps other tensors (__torch_dispatch__): it "
        f"has no memory NumPy could view; unwrap it with its own API first, then convert that"
    )


def _own(t: torch.Tensor, what: str, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``fn()``, an operation of the subclass's own: its warnings stay inside (prototype
    notices), and an exception it raises becomes one ``ConversionError`` naming the tensor."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return guarded(t, f"its own {what}", fn)


def _detach(t: torch.Tensor) -> torch.Tensor:
    return _own(t, ".detach()", t.detach)


def _clone(t: torch.Tensor) -> torch.Tensor:
    return _own(t, ".clone()", t.clone)


def _require_grad(t: torch.Tensor) -> torch.Tensor:
    if t.requires_grad:
        return t
    return _own(t, ".requires_grad_()", lambda: t.detach().requires_grad_(True))


def _to_step(name: str, source: torch.dtype, dtype: Any, device: Any) -> Step:
    def to(t: torch.Tensor) -> torch.Tensor:
        return _own(t, ".to()", lambda: t.to(device=device, dtype=dtype))

    what = ", ".join(x for x in (dtype and f"{source} → {dtype}", device and str(device)) if x)
    return Step(
        f"{name}.to({what}) ({SIZE})",
        call=to,
        itemsize=(dtype or source).itemsize,
        copies=1,
        reason=f"{name}.to({what})",
    )


def _wrapper(t: Any, o: Any) -> LeafPlan:
    """``to_numpy``: refused. ``to_torch``: kept, with its own ``.to`` for dtype and device."""
    if o.target == "numpy":
        return LeafPlan((), error=_refusal)
    name = type(t).__name__
    steps: list[Step] = []
    if o.requires_grad is False and t.requires_grad:
        steps.append(Step("detach from autograd (no copy)", call=_detach))
    kind = "c" if t.dtype.is_complex else "f" if t.dtype.is_floating_point else "i"
    dtype = o.target_dtype(kind)
    dtype = None if dtype == t.dtype else dtype
    device = o.device if o.device is not None and o.device != t.device else None
    final = dtype or t.dtype
    if dtype is not None or device is not None:
        steps.append(_to_step(name, t.dtype, dtype, device))
    clone = Step(
        f"{name}.clone() ({SIZE})",
        call=_clone,
        itemsize=final.itemsize,
        copies=1,
        reason="copy=True",
    )
    try:
        steps = copy_mode(steps, o.copy, clone)
    except Refusal as r:
        return LeafPlan((), error=r.make)
    if o.requires_grad:
        if not (final.is_floating_point or final.is_complex):
            return LeafPlan((), error=lambda subject: _not_float(subject, final))
        steps.append(Step("make the result require grad (no copy)", call=_require_grad))
    return LeafPlan(steps)


def _not_float(t: Any, final: torch.dtype) -> UnsupportedInputError:
    return UnsupportedInputError(
        f"{describe(t)}: requires_grad=True needs a floating-point or complex result, not "
        f"{final}; pass dtype=torch.float32 (or another float dtype) as well"
    )


def _packed_data(ps: Any) -> tuple[list[str], list[Any], Callable[[list[Any]], Any]]:
    def rebuild(new: list[Any]) -> Any:
        (data,) = new
        if isinstance(data, torch.Tensor):  # the indices follow .data's device, as in .to()
            return ps._replace(
                data=data,
                sorted_indices=_moved(ps.sorted_indices, data.device),
                unsorted_indices=_moved(ps.unsorted_indices, data.device),
            )
        index = [ps.batch_sizes, ps.sorted_indices, ps.unsorted_indices]
        arrays = [None if i is None else i.detach().cpu().numpy() for i in index]
        if not isinstance(data, np.ndarray):  # to_python: plain lists
            arrays = [None if a is None else a.tolist() for a in arrays]
        return dict(zip(ps._fields, [data, *arrays], strict=True))

    return [_Attr("data")], [ps.data], rebuild  # the path reads obj.data


def _moved(index: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    return None if index is None else index.to(device)


def _packed_note(ps: Any) -> str:
    return (
        "PackedSequence: only .data is converted (dtype applies to it alone); batch_sizes and "
        "the index tensors are kept as they are (to_numpy: a plain dict of arrays)"
    )
