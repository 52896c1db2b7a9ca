"""The public functions: ``to_numpy``, ``to_torch``, ``explain`` (and re-exports).

Each call resolves its options once, then either converts one leaf or walks a container. The
first lines of ``to_numpy`` and ``to_torch`` are the planners' most common outcome written
inline — a plain CPU tensor or ndarray that only needs a view — so the hot path makes no plan
object; ``tests/test_explain.py`` checks that they agree with ``explain``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch

from . import _foreign, _leaves
from ._dtypes import TABLE, DType
from ._errors import ConversionError, UnsupportedInputError, describe
from ._kinds import CONTAINER_KINDS, LEAF_KINDS, Kind, kind_of
from ._numpy_side import resolved_copy
from ._options import DEFAULT, Options, numpy_options, torch_options
from ._plan import Plan, Step, run
from ._tree import visit, walk, walk_with_paths

__all__ = ["explain", "to_numpy", "to_torch"]

_Tensor = torch.Tensor
_ndarray = np.ndarray


def _carrier_view(row: DType) -> Callable[[torch.Tensor], np.ndarray]:
    carrier, np_dtype = row.torch_carrier, row.numpy
    assert carrier is not None

    def view(t: torch.Tensor) -> np.ndarray:
        return t.view(carrier).numpy().view(np_dtype)

    return view


def _carrier_wrap(row: DType) -> Callable[[np.ndarray], torch.Tensor]:
    carrier, torch_dtype = row.numpy_carrier, row.torch
    assert carrier is not None

    def wrap(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.view(carrier)).view(torch_dtype)

    return wrap


# The planners' most common outcome, as one dict lookup per dtype: the view of a plain CPU
# tensor as an ndarray, and of a plain (C-contiguous, aligned, writeable) ndarray as a tensor.
# complex32 is left to the planner (its conjugate bit needs a look); so are NumPy's complex
# types going to PyTorch (their item size exceeds their alignment: the planner checks the
# pointer).
class _NotFast(Exception):
    """Raised inside a fast path to hand the input to the planner (cheaper than PyTorch's own
    exception, which formats a message and a C++ backtrace)."""


def _complex_view(t: torch.Tensor) -> np.ndarray:
    if t.is_conj():
        if not t.is_cpu or t.layout is not torch.strided or t.is_neg():
            raise _NotFast
        return resolved_copy(t).numpy()  # the planner's one copy that resolves the bit
    return t.numpy()


_FAST_VIEW: dict[Any, Callable[[torch.Tensor], np.ndarray]] = {
    row.torch: _complex_view
    if row.kind == "c"
    else torch.Tensor.numpy
    if row.native
    else _carrier_view(row)
    for row in TABLE
    if row.tag != "complex32"
}
_FAST_WRAP: dict[Any, Callable[[np.ndarray], torch.Tensor]] = {
    row.numpy: torch.from_numpy if row.native else _carrier_wrap(row)
    for row in TABLE
    if row.kind != "c"
}
# The planner's outcome for an aligned ndarray whose only problems are byte order, negative
# strides or read-only memory: one copy to a native, positive-stride array, then a view.
_FAST_FIX: dict[Any, tuple[np.dtype[Any], Callable[[np.ndarray], torch.Tensor]]] = {}
for _row in TABLE:
    if _row.kind != "c":
        _FAST_FIX[_row.numpy] = _FAST_FIX[_row.numpy.newbyteorder()] = (
            _row.numpy,
            _FAST_WRAP[_row.numpy],
        )
_view_for = _FAST_VIEW.get  # bound once: saves an attribute lookup on the hottest path
_wrap_for = _FAST_WRAP.get
_ALIGNED, _WRITEABLE = 0x100, 0x400
_FAST_FLAGS = 0x1 | _ALIGNED | _WRITEABLE  # C-contiguous, aligned, writeable (NPY_ARRAY_* bits)


# --- one leaf ------------------------------------------------------------------------------


class _Pending:
    """A leaf waiting for a batched device transfer; replaced once the batch has run."""

    __slots__ = ("after", "batch", "value")

    def __init__(self, value: Any, batch: Step, after: list[Step]) -> None:
        self.value = value
        self.batch = batch
        self.after = after


def _run_leaf(steps: list[Step], value: Any, pending: list[_Pending] | None) -> Any:
    for i, step in enumerate(steps):
        if step.batch and pending is not None:
            p = _Pending(value, step, steps[i + 1 :])
            pending.append(p)
            return p
        value = step.fn(value, step.arg)
    return value


def _numpy_leaf(obj: Any, o: Options, pending: list[_Pending] | None) -> Any:
    kind = kind_of(obj)
    if kind is Kind.TORCH:
        if obj.is_nested:
            return [_numpy_leaf(x, o, pending) for x in obj.unbind()]
    elif kind not in LEAF_KINDS:
        return obj  # Python numbers, str, bytes, None and unknown objects pass through
    steps, value = _leaves.plan_numpy(obj, kind, o)
    return _run_leaf(steps, value, pending)


def _torch_leaf(obj: Any, o: Options, pending: list[_Pending] | None) -> Any:
    kind = kind_of(obj)
    if kind is Kind.TORCH:
        if o is DEFAULT:
            return obj
    elif kind not in LEAF_KINDS:
        return obj
    steps, value = _leaves.plan_torch(obj, kind, o)
    return _run_leaf(steps, value, pending)


def _leaf_function(
    leaf: Callable[[Any, Options, list[_Pending] | None], Any],
    o: Options,
    pending: list[_Pending],
) -> Callable[[Any], Any]:
    """The per-leaf function of one container walk, with the fast paths inlined."""
    if o is not DEFAULT:
        return lambda x: leaf(x, o, pending)
    if leaf is _numpy_leaf:

        def numpy_leaf(x: Any) -> Any:
            if type(x) is _Tensor and x.is_cpu:  # a device tensor goes to the batched transfer
                view = _view_for(x.dtype)
                if view is not None:
                    try:
                        return view(x.detach() if x.requires_grad else x)
                    except (RuntimeError, TypeError, _NotFast):
                        pass  # conj/neg bit, sparse, nested, ...: the planner decides
            return _numpy_leaf(x, o, pending)

        return numpy_leaf

    def torch_leaf(x: Any) -> Any:
        if type(x) is _ndarray:
            wrap = _wrap_for(x.dtype)
            if wrap is not None and x.flags.num & _FAST_FLAGS == _FAST_FLAGS:
                try:
                    return wrap(x)
                except (ValueError, TypeError):
                    pass  # a negative stride on a size-1 axis, a platform alias: the planner
        return _torch_leaf(x, o, pending)

    return torch_leaf


def _run_batches(pending: list[_Pending]) -> None:
    from . import _transfer

    groups: dict[tuple[Any, ...], list[_Pending]] = {}
    for p in pending:
        o = p.batch.arg
        key: tuple[Any, ...] = ("host", False, False)
        if p.batch.batch == "to_device":
            key = (o.device, o.non_blocking, o.pin_memory)
        groups.setdefault(key, []).append(p)
    for key, group in groups.items():
        values = [p.value for p in group]
        if key[0] == "host":
            moved = _transfer.to_host(values)
        else:
            moved = _transfer.to_device(values, key[0], non_blocking=key[1], pin_memory=key[2])
        for p, value in zip(group, moved, strict=True):
            p.value = run(tuple(p.after), value)


def _resolve_pending(leaf: Any) -> Any:
    return leaf.value if type(leaf) is _Pending else leaf


def _convert(obj: Any, o: Options, leaf: Any, to: str) -> Any:
    try:
        return _convert_any(obj, o, leaf, to)
    except RecursionError:
        raise _too_deep(obj) from None


def _too_deep(obj: Any) -> UnsupportedInputError:
    return UnsupportedInputError(
        f"{describe(obj)} is nested too deeply, or contains itself: a container that refers to "
        f"itself has no array form; break the cycle (or flatten the nesting) first"
    )


def _top_level(obj: Any, o: Options, to: str) -> tuple[Any, str, str]:
    """What a top-level input is: ``(obj, kind, role)``, role "leaf" (a tensor, array or other
    leaf), "data" (Python numbers, a list of them, bytes) or "container". Shared by the
    conversions and ``explain``, so both read an input the same way."""
    if type(obj) is range:
        obj = list(obj)  # as np.asarray and torch.tensor read it: numbers
    kind = kind_of(obj)
    if kind in LEAF_KINDS:
        return obj, kind, "leaf"
    if (
        kind is Kind.PY_SCALAR
        or kind is Kind.BYTES
        or (kind is Kind.SEQUENCE and _leaves.is_number_data(obj, _leaves.python_dtype(o, to)))
    ):
        return obj, kind, "data"
    if kind not in CONTAINER_KINDS:
        raise _leaves.unsupported(obj, kind)
    if kind is Kind.SEQUENCE and not _leaves.has_leaf(obj):
        raise _leaves.not_numbers(obj)
    return obj, kind, "container"


def _convert_any(obj: Any, o: Options, leaf: Any, to: str) -> Any:
    obj, kind, role = _top_level(obj, o, to)
    if role == "leaf":
        return leaf(obj, o, None)  # the caller has tried the fast path
    if role == "data":
        steps, value = (_leaves.plan_numpy if to == "numpy" else _leaves.plan_torch)(obj, kind, o)
        return run(tuple(steps), value)
    pending: list[_Pending] = []
    try:
        out = walk(obj, _leaf_function(leaf, o, pending))
    except ConversionError:
        _locate_error(obj, o, leaf)
        raise
    if pending:
        _run_batches(pending)
        out = walk(out, _resolve_pending)
    return out


def _locate_error(obj: Any, o: Options, leaf: Any) -> None:
    """Convert again, leaf by leaf, to re-raise the first error with the leaf's path."""

    def convert_at(x: Any, k: str, path: str) -> Any:
        try:
            return leaf(x, o, [])
        except ConversionError as e:
            raise e.at(path) from None

    walk_with_paths(obj, convert_at)


def to_numpy(
    obj: Any, /, *, dtype: Any = None, float_dtype: Any = None, copy: bool | None = None
) -> Any:
    """Convert a tensor, array, number, list or container of them to NumPy.

    Always detaches; bfloat16, float8 and complex32 come back as ``ml_dtypes`` arrays sharing
    memory; device tensors are copied to the host; conjugate and negative views are resolved.

    >>> import torch
    >>> to_numpy(torch.arange(3, dtype=torch.int32))
    array([0, 1, 2], dtype=int32)
    >>> to_numpy({"x": torch.ones(2, dtype=torch.float64)}, float_dtype="float32")
    {'x': array([1., 1.], dtype=float32)}
    """
    if dtype is None and float_dtype is None and copy is None:
        try:
            view = _view_for(obj.dtype)  # only a tensor has a torch.dtype
            if view is not None:
                return view(obj.detach() if obj.requires_grad else obj)
        except Exception:  # (AttributeError, RuntimeError, _NotFast, or a user .dtype raising)
            # No dtype, a conj/neg bit, another device or layout: the planner decides. A device
            # tensor pays PyTorch's exception here (~15 µs, beside a host copy and sync of 20 µs
            # or more); testing is_cpu first would cost every CPU call ~60 ns (bench: 0.76× →
            # 0.80× of .detach().cpu().numpy()). Containers test is_cpu: there it pays off.
            pass
    return _convert(obj, numpy_options(dtype, float_dtype, copy), _numpy_leaf, "numpy")


def to_torch(
    obj: Any,
    /,
    *,
    dtype: Any = None,
    float_dtype: Any = None,
    device: Any = None,
    copy: bool | None = None,
    requires_grad: bool | None = None,
    pin_memory: bool = False,
    non_blocking: bool = False,
) -> Any:
    """Convert an array, tensor, number, list or container of them to PyTorch.

    Shares memory with the input whenever that is possible and safe (``copy=None``); copies
    negative-stride, non-native byte order, misaligned and read-only arrays; keeps a tensor's
    autograd state unless ``requires_grad`` says otherwise.

    >>> import numpy as np
    >>> to_torch(np.arange(3, dtype=np.int32))
    tensor([0, 1, 2], dtype=torch.int32)
    >>> to_torch({"x": np.ones(2), "y": np.arange(2)}, float_dtype=torch.float32)
    {'x': tensor([1., 1.]), 'y': tensor([0, 1])}
    """
    if (
        type(obj) is _ndarray
        and dtype is None
        and float_dtype is None
        and device is None
        and copy is None
        and requires_grad is None
        and not pin_memory
    ):
        flags = obj.flags.num
        wrap = _wrap_for(obj.dtype)
        if wrap is not None and flags & _FAST_FLAGS == _FAST_FLAGS:
            try:
                return wrap(obj)
            except (ValueError, TypeError):
                pass  # a negative stride on a size-1 axis, a platform alias: the planner decides
        else:
            fix = _FAST_FIX.get(obj.dtype)
            if (
                fix is not None
                and flags & _ALIGNED
                and (
                    not flags & _WRITEABLE
                    or not obj.dtype.isnative
                    or (obj.ndim and min(obj.strides) < 0)
                )
            ):
                return fix[1](np.array(obj, dtype=fix[0], order="K"))
    o = torch_options(dtype, float_dtype, copy, device, requires_grad, pin_memory, non_blocking)
    return _convert(obj, o, _torch_leaf, "torch")


# --- explain -------------------------------------------------------------------------------


def _leaf_plan(obj: Any, kind: str, o: Options, to: str) -> Plan:
    """The plan of a single top-level leaf."""
    planner = _leaves.plan_numpy if to == "numpy" else _leaves.plan_torch
    steps, _ = planner(obj, kind, o)
    return Plan.from_steps(to, obj, steps)


def explain(obj: Any, /, to: Literal["numpy", "torch"] = "numpy", **kwargs: Any) -> Plan:
    """What ``to_numpy(obj, **kwargs)`` or ``to_torch(obj, **kwargs)`` would do, without doing it.

    >>> import torch
    >>> plan = explain(torch.ones(4, dtype=torch.bfloat16))
    >>> plan.steps, plan.copies, plan.shares_memory
    (('view bfloat16 as ml_dtypes.bfloat16 (no copy)',), 0, True)
    """
    if to == "numpy":
        o = numpy_options(**kwargs)
    elif to == "torch":
        o = torch_options(**_torch_kwargs(kwargs))
    else:
        raise ValueError(f"to must be 'numpy' or 'torch', not {to!r}")
    try:
        return _explain(obj, to, o)
    except RecursionError:
        raise _too_deep(obj) from None


def _explain(obj: Any, to: str, o: Options) -> Plan:
    obj, kind, role = _top_level(obj, o, to)
    if kind is Kind.TORCH and obj.is_nested:
        obj = list(obj.unbind())  # a jagged tensor converts as a list of its components
    elif role != "container":
        return _leaf_plan(obj, kind, o, to)
    planner = _leaves.plan_numpy if to == "numpy" else _leaves.plan_torch
    planned: dict[str, tuple[Any, list[Step]]] = {}
    passed = 0

    def plan_leaf(leaf: Any, leaf_kind: str, path: str) -> None:
        nonlocal passed
        if leaf_kind not in LEAF_KINDS:
            passed += 1
            return
        if leaf_kind is Kind.TORCH and leaf.is_nested:
            for i, part in enumerate(leaf.unbind()):
                plan_leaf(part, leaf_kind, f"{path}[{i}]")
            return
        try:
            planned[path] = (leaf, planner(leaf, leaf_kind, o)[0])
        except ConversionError as e:
            raise e.at(path) from None

    visit(obj, plan_leaf)
    return _container_plan(obj, to, planned, passed, o)


def _container_plan(
    obj: Any, to: str, planned: dict[str, tuple[Any, list[Step]]], passed: int, o: Options
) -> Plan:
    """Totals over the leaves, with the device transfers planned as the batches that run."""
    from . import _transfer

    leaves = {path: Plan.from_steps(to, x, s) for path, (x, s) in planned.items()}
    steps = [
        f"convert {len(leaves)} leaves" + (f", pass {passed} through unchanged" if passed else "")
    ]
    note = _foreign.note(obj) if kind_of(obj) is Kind.FOREIGN_NODE else None
    if note:
        steps.insert(0, note)
    syncs = any(p.syncs_device for p in leaves.values())
    to_device = o.device is not None and o.device.type != "cpu"
    for batch in ("to_host", "to_device") if syncs or to_device else ():
        moved = [
            (p, x, st, i)
            for p, (x, st) in planned.items()
            for i, s in enumerate(st)
            if s.batch == batch
        ]
        if not moved:
            continue
        tensors = [_value_before(x, st[:i]) for _, x, st, i in moved]
        if batch == "to_host":
            plan = _transfer.plan_to_host(tensors)
        else:
            assert o.device is not None
            plan = _transfer.plan_to_device(
                tensors, o.device, non_blocking=o.non_blocking, pin_memory=o.pin_memory
            )
        steps.extend(plan.steps)
        syncs = syncs or plan.syncs > 0
        for i, (path, _, leaf_steps, at) in enumerate(moved):
            step = leaf_steps[at]
            extra = (plan.leaf_copies[i] if plan.leaf_copies else 1) - 1  # packing passes
            if extra:
                leaves[path] = leaves[path].with_extra_copies(extra, step.nbytes)
    copies = sum(p.copies for p in leaves.values())
    return Plan(
        target=to,
        input=f"{type(obj).__name__} container",
        steps=tuple(steps),
        copies=copies,
        bytes_copied=sum(p.bytes_copied for p in leaves.values()),
        shares_memory=copies == 0,
        syncs_device=syncs,
        leaves=leaves,
    )


def _value_before(x: Any, steps: list[Step]) -> torch.Tensor:
    """The tensor a batched transfer step will receive, without moving data: the views before it
    are taken; after a copying step, an uninitialised tensor of the same shape and dtype stands
    in (its pages are never touched)."""
    if not any(s.copies for s in steps):
        return run(tuple(steps), x)
    for s in steps:  # an adapted input (a DataFrame, an HDF5 dataset) is an array from here on
        if isinstance(s.arg, (np.ndarray, torch.Tensor)):
            x = s.arg
    dtype = next(
        (s.arg for s in reversed(steps) if isinstance(s.arg, torch.dtype)),
        x.dtype if isinstance(x, torch.Tensor) else _torch_dtype_of(x),
    )
    return torch.empty(tuple(x.shape), dtype=dtype)


def _torch_dtype_of(a: np.ndarray) -> torch.dtype:
    from ._dtypes import torch_dtype

    return torch_dtype(a.dtype)


def _torch_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    allowed = (
        "dtype",
        "float_dtype",
        "copy",
        "device",
        "requires_grad",
        "pin_memory",
        "non_blocking",
    )
    unknown = set(kwargs) - set(allowed)
    if unknown:
        raise TypeError(f"explain(to='torch') got unexpected keyword(s) {sorted(unknown)}")
    full: dict[str, Any] = dict.fromkeys(allowed)
    full.update(pin_memory=False, non_blocking=False)
    full.update(kwargs)
    return full
