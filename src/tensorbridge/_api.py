"""The public functions: ``to_numpy``, ``to_torch`` and ``explain``.

Each call resolves its options once and reads its input once (``top_level``); a leaf is planned
(``_planner``: a cache lookup after the first time) and its steps run; a container is flattened
once (``_tree``), each leaf planned and run, its device transfers batched (``_batches``), and
the container rebuilt. ``explain`` takes the same path without running the steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch

from . import _adapt, _foreign
from ._batches import Pending, plan_groups, run_groups, stand_in, start
from ._errors import ConversionError, UnsupportedInputError, describe
from ._kinds import CONTAINER_KINDS, LEAF_KINDS, Kind, kind_of
from ._options import NUMPY_DEFAULT, TORCH_DEFAULT, Options, numpy_options, torch_options
from ._plan import LeafPlan, Plan
from ._planner import (
    ARRAY_FLAGS,
    C_CONTIGUOUS,
    NEGATIVE,
    hot_array_entry,
    hot_array_run,
    hot_tensor_entry,
    plan_leaf,
    plan_value,
)
from ._tree import Flat, flatten

__all__ = ["explain", "to_numpy", "to_torch"]

# The plans of targets built on the core, by their ``to=`` name: ``_collate`` adds "collate"
# when imported, so the core never imports what is built on it (design rule 9).
EXPLAIN_TARGETS: dict[str, Callable[..., Plan]] = {}

_Tensor = torch.Tensor
_ndarray = np.ndarray
_MISSING = object()
_NO_PLANS: dict[Any, Any] = {}
# The default options' plan tables, bound once (the hottest lookups; tables are only cleared)
_numpy_tensor_plans = NUMPY_DEFAULT.tensor_plans.get
_torch_array_plans = TORCH_DEFAULT.array_plans.get
_torch_flag_plans = TORCH_DEFAULT.array_flag_plans.get


# --- one leaf ------------------------------------------------------------------------------
# The commonest leaves (an exact torch.Tensor going to NumPy, an exact ndarray either way) are
# one lookup in the plan tables ``_planner`` fills with its own plans; any other leaf, or one
# whose table plan refused it, is planned from its full key.


def _run(plan: LeafPlan, value: Any, obj: Any) -> Any:
    plan.check(obj)
    return plan.run(value)


def _convert_leaf(obj: Any, kind: str, o: Options) -> Any:
    plan, value = plan_leaf(obj, kind, o)
    return _run(plan, value, obj)


def _tensor_to_numpy(t: torch.Tensor, o: Options) -> Any:
    entry = o.tensor_plans.get(t.dtype, _MISSING)
    if entry is _MISSING:
        entry = hot_tensor_entry(o, t.dtype)
    if entry is not None:
        try:
            return entry[t.requires_grad](t)
        except (RuntimeError, TypeError):
            # Not a plain CPU tensor (or an error the full path words): its full key decides.
            # A device tensor pays PyTorch's exception here (~15 µs, beside a host copy and
            # sync of 20 µs or more); reading is_cpu first would cost every CPU call ~70 ns.
            pass
    return _tensor_by_key(t, o)


def _tensor_by_key(t: torch.Tensor, o: Options) -> Any:
    if t.is_nested:
        return _convert(t, o)  # a jagged tensor: the list of its components
    return _convert_leaf(t, Kind.TORCH, o)


def _array_to_torch(a: np.ndarray, o: Options, flags: int = -1) -> Any:
    if flags < 0:
        flags = a.flags.num & ARRAY_FLAGS
    if not flags & C_CONTIGUOUS and a.ndim and min(a.strides) < 0:
        flags |= NEGATIVE  # read here: C-contiguous plans check it themselves (``_planner``)
    if flags == ARRAY_FLAGS:
        run = o.array_plans.get(a.dtype, _MISSING)
    else:
        run = o.array_flag_plans.get(flags, _NO_PLANS).get(a.dtype, _MISSING)
    if run is _MISSING:
        run = hot_array_run(o, a.dtype, flags)
    if run is not None:
        try:
            return run(a)
        except (ValueError, RuntimeError):
            pass  # a negative stride on a length-1 axis: its full key decides
    return _convert_leaf(a, Kind.NUMPY, o)


def _array_to_numpy(a: np.ndarray, o: Options) -> Any:
    run = o.array_plans.get(a.dtype, _MISSING)
    if run is _MISSING:
        run = hot_array_entry(o, a.dtype)
    if run is not None:
        return run(a)  # the key (type, dtype) is complete: nothing to fall back from
    return _convert_leaf(a, Kind.NUMPY, o)


def _convert_any(obj: Any, o: Options) -> Any:
    cls = type(obj)
    if cls is _Tensor and o.target == "numpy":
        return _tensor_to_numpy(obj, o)
    if cls is _ndarray:
        return _array_to_numpy(obj, o) if o.target == "numpy" else _array_to_torch(obj, o)
    return _convert(obj, o)


# --- top level -----------------------------------------------------------------------------


def top_level(obj: Any, target: str, dtype: Any = None) -> tuple[Any, str, str]:
    """What a top-level input is: ``(obj, kind, role)``, role "leaf" (a tensor, array, number,
    list of numbers, other array form) or "container". Shared by the conversions, ``explain``
    and ``to_python``, so all read an input the same way. ``dtype`` is the NumPy dtype a list of
    numbers is built in (``_adapt.python_dtype``)."""
    try:
        return _read_top_level(obj, target, dtype)
    except RecursionError:
        raise _too_deep(obj) from None


def _read_top_level(obj: Any, target: str, dtype: Any) -> tuple[Any, str, str]:
    if type(obj) is range:
        obj = list(obj)  # as np.asarray and torch.tensor read it: numbers
    kind = kind_of(obj)
    if kind in LEAF_KINDS:
        if kind is Kind.TORCH and target == "numpy" and obj.is_nested:
            return obj, kind, "container"  # a jagged tensor converts as its list of components
        return obj, kind, "leaf"
    if (
        kind is Kind.PY_SCALAR
        or kind is Kind.BYTES
        or (kind is Kind.SEQUENCE and _adapt.is_number_data(obj, dtype))
    ):
        return obj, kind, "leaf"
    if kind not in CONTAINER_KINDS:
        raise _adapt.unsupported(obj, kind)
    if kind is Kind.SEQUENCE and not _adapt.has_leaf(obj):
        raise _adapt.not_numbers(obj)
    return obj, kind, "container"


def _too_deep(obj: Any) -> UnsupportedInputError:
    return UnsupportedInputError(
        f"{describe(obj)} is nested too deeply, or contains itself: a container that refers to "
        f"itself has no array form; break the cycle (or flatten the nesting) first"
    )


def flatten_input(obj: Any, target: str, *, plain: bool = False) -> Flat:
    """``flatten`` with the cycle check every public function needs."""
    try:
        return flatten(obj, split_nested=target == "numpy", plain=plain)
    except RecursionError:
        raise _too_deep(obj) from None
    except ConversionError:
        raise
    except Exception as e:  # a container's own keys(), __getitem__ or fields raising
        raise UnsupportedInputError(
            f"{describe(obj)}: reading its contents raised {type(e).__name__} ({e}); fix the "
            f"container, or pass a plain dict or list of its values"
        ) from e


def _convert(obj: Any, o: Options) -> Any:
    obj, kind, role = top_level(obj, o.target, _adapt.python_dtype(o))
    if role == "leaf":
        return _convert_leaf(obj, kind, o)
    flat = flatten_input(obj, o.target)
    out: list[Any] = []
    append = out.append
    pending: list[Pending] = []
    # The plan tables, inline for the commonest leaves (see ``_tensor_to_numpy`` and
    # ``_array_to_torch``); any other leaf goes to ``_container_leaf``.
    if o.target == "numpy":
        tensor_plan = o.tensor_plans.get
        for leaf in flat.leaves:
            if type(leaf) is _Tensor and leaf.is_cpu:
                entry = tensor_plan(leaf.dtype)
                if entry is not None:
                    try:
                        append(entry[leaf.requires_grad](leaf))
                        continue
                    except (RuntimeError, TypeError):
                        pass
            append(_container_leaf(leaf, len(out), flat, o, pending))
    else:
        array_plan = o.array_plans.get
        for leaf in flat.leaves:
            if type(leaf) is _ndarray and leaf.flags.num & ARRAY_FLAGS == ARRAY_FLAGS:
                run = array_plan(leaf.dtype)
                if run is not None:
                    try:
                        append(run(leaf))
                        continue
                    except ConversionError:
                        pass  # the full path below words it, with the leaf's path
                    except (ValueError, RuntimeError):
                        pass  # a negative stride on a length-1 axis: its full key decides
            append(_container_leaf(leaf, len(out), flat, o, pending))
    if pending:
        run_groups(pending, o, out)
    return flat.rebuild(out)


def _container_leaf(leaf: Any, i: int, flat: Flat, o: Options, pending: list[Pending]) -> Any:
    """Leaf ``i`` of a container, by its full key (a batched one waits in ``pending``)."""
    try:
        cls = type(leaf)
        if cls is _Tensor or cls is _ndarray:
            return _convert_any(leaf, o)
        kind = kind_of(leaf)
        if kind not in LEAF_KINDS:
            return leaf  # numbers, str, bytes, None and unknown objects pass through
        if kind is Kind.TORCH and o.target == "numpy" and leaf.is_nested:
            return _convert(leaf, o)  # a jagged tensor: the list of its components
        plan, value = plan_leaf(leaf, kind, o)
        if plan.batch_at >= 0:
            plan.check(leaf)
            pending.append(start(i, plan, value))
            return None
        return _run(plan, value, leaf)
    except ConversionError as e:
        raise e.at(flat.path(i)) from None


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
        if type(obj) is _Tensor:  # the commonest call: one lookup in the plan table
            entry = _numpy_tensor_plans(obj.dtype)
            if entry is None:
                return _tensor_to_numpy(obj, NUMPY_DEFAULT)  # fills the table
            try:
                return entry[obj.requires_grad](obj)
            except (RuntimeError, TypeError):
                return _tensor_by_key(obj, NUMPY_DEFAULT)  # not a plain CPU tensor
        return _convert_any(obj, NUMPY_DEFAULT)
    return _convert_any(obj, numpy_options(dtype, float_dtype, copy))


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
        dtype is None
        and float_dtype is None
        and device is None
        and copy is None
        and requires_grad is None
        and not pin_memory
        and not non_blocking
    ):
        if type(obj) is _ndarray:
            flags = obj.flags.num & ARRAY_FLAGS
            if flags == ARRAY_FLAGS:  # the commonest call: one lookup in the table
                run = _torch_array_plans(obj.dtype)
            else:  # the same lookup, for the other flag bits (see _array_to_torch)
                if not flags & C_CONTIGUOUS and obj.ndim and min(obj.strides) < 0:
                    flags |= NEGATIVE
                run = _torch_flag_plans(flags, _NO_PLANS).get(obj.dtype)
            if run is not None:
                try:
                    return run(obj)
                except (ValueError, RuntimeError):
                    pass  # a negative stride on a length-1 axis: see _array_to_torch
            return _array_to_torch(obj, TORCH_DEFAULT, flags)
        return _convert_any(obj, TORCH_DEFAULT)
    o = torch_options(dtype, float_dtype, copy, device, requires_grad, pin_memory, non_blocking)
    return _convert_any(obj, o)


# --- explain -------------------------------------------------------------------------------


def _numel(value: Any) -> int:
    return value.numel() if isinstance(value, torch.Tensor) else int(np.size(value))


def _leaf_decision(obj: Any, kind: str, o: Options) -> tuple[LeafPlan, Any, int]:
    """The plan of one leaf, the value it runs on and its element count (refusals raise)."""
    if kind is Kind.TORCH:  # the commonest leaf: no adapter, the same plan_leaf would give
        plan, value, numel = plan_value(obj, o), obj, obj.numel()
    else:
        plan, value = plan_leaf(obj, kind, o)
        numel = _numel(value)
    if plan.error is not None:
        raise plan.error(obj)
    return plan, value, numel


def explain(
    obj: Any, /, to: Literal["numpy", "torch", "collate"] = "numpy", **kwargs: Any
) -> Plan:
    """What ``to_numpy(obj, **kwargs)`` or ``to_torch(obj, **kwargs)`` would do, without doing it.

    >>> import torch
    >>> plan = explain(torch.ones(4, dtype=torch.bfloat16))
    >>> plan.steps, plan.copies, plan.shares_memory
    (('view bfloat16 as ml_dtypes.bfloat16 (no copy)',), 0, True)
    """
    if to in EXPLAIN_TARGETS:  # "collate": obj is a list of samples, the plan of tb.collate
        return EXPLAIN_TARGETS[to](obj, **kwargs)
    if to == "numpy":
        o = numpy_options(**kwargs)
    elif to == "torch":
        o = torch_options(**_torch_kwargs(kwargs))
    else:
        raise ValueError(f"to must be 'numpy', 'torch' or 'collate', not {to!r}")
    obj, kind, role = top_level(obj, o.target, _adapt.python_dtype(o))
    if role == "leaf":
        plan, _, numel = _leaf_decision(obj, kind, o)
        return Plan.of_leaf(o.target, obj, plan, numel)
    flat = flatten_input(obj, o.target)
    entries: list[_Entry] = []
    pending: list[Pending] = []
    passed = 0
    for i, leaf in enumerate(flat.leaves):
        leaf_kind = kind_of(leaf)
        if leaf_kind not in LEAF_KINDS:
            passed += 1
            continue
        parts: Any = ((None, leaf),)
        if leaf_kind is Kind.TORCH and o.target == "numpy" and leaf.is_nested:
            parts = enumerate(leaf.unbind())
        for j, part in parts:
            try:
                plan, value, numel = _leaf_decision(part, leaf_kind, o)
            except ConversionError as e:
                raise e.at(_Entry(flat, i, j, part, plan=None, numel=0).path) from None
            entry = _Entry(flat, i, j, part, plan, numel)
            entries.append(entry)
            if plan.batch_at >= 0:
                pending.append(Pending(len(entries) - 1, plan, stand_in(plan, value)))
    steps = [
        f"convert {len(entries)} leaves" + (f", pass {passed} through unchanged" if passed else "")
    ]
    note = _foreign.note(obj) if kind is Kind.FOREIGN_NODE else None
    if note:
        steps.insert(0, note)  # what a foreign container leaves out (xarray coordinates, ...)
    syncs = any(e.plan.syncs for e in entries)
    for batch, members in plan_groups(pending, o):
        steps.extend(batch.steps)
        syncs = syncs or batch.syncs > 0
        for k, p in enumerate(members):
            extra = (batch.leaf_copies[k] if batch.leaf_copies else 1) - 1  # packing passes
            if extra:
                entry = entries[p.index]
                entry.extra = (extra, p.plan.steps[p.plan.batch_at].bytes_for(_numel(p.value)))
    copies = sum(e.copies for e in entries)
    return Plan(
        target=o.target,
        input=f"{type(obj).__name__} container",
        steps=steps,
        copies=copies,
        bytes_copied=sum(e.bytes_copied for e in entries),
        shares_memory=copies == 0,
        syncs_device=syncs,
        leaves=lambda: {e.path: e.report(o.target) for e in entries},
    )


class _Entry:
    """One planned leaf of a container (component ``j`` of a jagged tensor when not None)."""

    __slots__ = ("extra", "flat", "i", "j", "numel", "obj", "plan")

    def __init__(self, flat: Flat, i: int, j: Any, obj: Any, plan: Any, numel: int) -> None:
        self.flat, self.i, self.j, self.obj, self.plan, self.numel = flat, i, j, obj, plan, numel
        self.extra = (0, 0)  # packing passes of a batched transfer, and their bytes

    @property
    def path(self) -> str:
        path = self.flat.path(self.i)
        return path if self.j is None else f"{path}[{self.j}]"

    @property
    def copies(self) -> int:
        return int(self.plan.copies) + self.extra[0]

    @property
    def bytes_copied(self) -> int:
        return self.numel * int(self.plan.per_element) + self.extra[0] * self.extra[1]

    def report(self, target: str) -> Plan:
        plan = Plan.of_leaf(target, self.obj, self.plan, self.numel)
        return plan.with_extra_copies(*self.extra) if self.extra[0] else plan


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
