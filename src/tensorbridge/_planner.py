"""The one decision path: the plan of a leaf, decided once per key and cached.

A leaf is planned from its *key* — everything the planner reads: input type, dtype, the layout,
flag and bit facts, device, plus the adapter step that made it (for foreign inputs) — under
one resolved ``Options`` (which holds the cache). ``_to_numpy`` and ``_to_torch`` decide; this
module only reads keys, caches their answers and hands out the plans.

Two tables make the commonest inputs one lookup: for an exact ``torch.Tensor`` going to NumPy,
the plans of a plain CPU tensor by ``(dtype, requires_grad)``; for an exact ``ndarray``, the plan
by dtype (to PyTorch: of a writeable, aligned, C-contiguous array, the flag bits checked by the
caller). They are the planner's own plans for those keys, and where the table's key leaves a
fact unread, only plans whose first step that touches data checks it are put there
(``Step.checks``: ``Tensor.numpy`` refuses another device or layout, a bit, a graph;
``torch.from_numpy`` a negative stride; the resolving and byte-order copies check the same):
a refusal sends the input to its full key. ``tests/test_differential.py``
checks, over generated inputs, that what runs is what ``explain`` reports.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from . import _adapt, _foreign, _to_numpy, _to_torch
from ._errors import ConversionError, UnsupportedInputError, describe
from ._kinds import Kind
from ._options import Options
from ._plan import LeafPlan, Refusal, Step

__all__ = [
    "ARRAY_FLAGS",
    "C_CONTIGUOUS",
    "NEGATIVE",
    "hot_array_entry",
    "hot_array_run",
    "hot_tensor_entry",
    "plan_leaf",
    "plan_value",
]

_CACHE_LIMIT = 4096  # keys per Options; new types beyond this start a fresh cache


def decide(planner: Any, key: Any, o: Options, prefix: tuple[Step, ...]) -> LeafPlan:
    """The planner's answer for ``key``: its steps, or its refusal."""
    try:
        return LeafPlan(planner(key, o, prefix), ran=len(prefix))
    except Refusal as r:
        return LeafPlan((), error=r.make)


def plan_value(
    value: np.ndarray | torch.Tensor, o: Options, prefix: tuple[Step, ...] = ()
) -> LeafPlan:
    """The cached plan of a tensor or ndarray ``value`` (after ``prefix``, an adapter's step)."""
    side = _to_numpy if o.target == "numpy" else _to_torch
    if isinstance(value, torch.Tensor):
        key: Any = side.tensor_key(value, o)
        tensor = True
    else:
        key = side.array_key(value, o)
        tensor = False
    full = (prefix, key) if prefix else key
    plans = o.plans
    plan = plans.get(full)
    if plan is None:
        if tensor:
            plan = decide(side.plan_from_tensor, side.TensorKey._make(key), o, prefix)
        else:
            plan = decide(side.plan_from_array, side.ArrayKey._make(key), o, prefix)
        if len(plans) >= _CACHE_LIMIT:
            plans.clear()
        plans[full] = plan
    return plan


def plan_leaf(obj: Any, kind: str, o: Options) -> tuple[LeafPlan, Any]:
    """The plan of one leaf of any kind, and the value it runs on.

    Inputs other than tensors and ndarrays are adapted first (their adapter runs here, in the
    conversion and in ``explain`` alike: its step is the plan's first).
    """
    if kind is Kind.TORCH or (
        kind is Kind.NUMPY and not (o.target == "torch" and obj.dtype.kind == "O")
    ):
        return plan_value(obj, o), obj
    try:
        if kind is Kind.NUMPY:  # an object array going to PyTorch
            step, value = _adapt.unobject(obj, _item_to_numpy)
        elif kind is Kind.FOREIGN:  # pandas, scipy.sparse, h5py, ...: its adapter decides
            adapted = _foreign.leaf(obj, o)
            if isinstance(adapted, LeafPlan):
                return adapted, obj  # the whole plan (a wrapper tensor subclass's own .to)
            step, value = adapted
        else:
            step, value = _adapt.adapt(obj, kind, o)
    except ConversionError:
        raise
    except Exception as e:  # the object's own protocol failed (__array__, __dlpack__, ...)
        raise UnsupportedInputError(
            f"{describe(obj)} raised {type(e).__name__} while giving its array form ({e}); "
            f"check the object, or convert it with its own library first"
        ) from e
    return plan_value(value, o, (step,)), value


def _item_to_numpy(x: Any) -> Any:
    plan, value = plan_leaf(x, Kind.TORCH if isinstance(x, torch.Tensor) else Kind.NUMPY, _NUMPY)
    plan.check(x)
    return plan.run(value)


def hot_tensor_entry(o: Options, dtype: torch.dtype) -> Any:
    """The runners of a plain CPU ``torch.Tensor`` of ``dtype`` to NumPy, indexed by
    ``requires_grad``; None when those plans do not start with the checking view."""
    entry = o.tensor_plans.get(dtype, False)
    if entry is False:
        runs = [_plain_tensor_run(o, dtype, grad) for grad in (False, True)]
        entry = None if None in runs else tuple(runs)
        o.tensor_plans[dtype] = entry
    return entry


def _plain_tensor_run(o: Options, dtype: torch.dtype, grad: bool) -> Any:
    key = _to_numpy.plain_tensor_key(dtype, grad)
    plain = decide(_to_numpy.plan_from_tensor, key, o, ())
    if not _checked(plain):
        return None
    if _to_numpy.torch_kind(dtype) != "c":
        return plain.run
    # A complex tensor's conjugate bit is part of its key: two plans, by the bit.
    conj = decide(_to_numpy.plan_from_tensor, key._replace(conj=True), o, ())
    return _by_conj(plain.run, conj.run) if _checked(conj) else None


def _by_conj(plain: Any, conj: Any) -> Any:
    def run(t: torch.Tensor) -> Any:
        return conj(t) if t.is_conj() else plain(t)

    return run


def hot_array_entry(o: Options, dtype: np.dtype[Any]) -> Any:
    """The runner of an exact ``ndarray`` of ``dtype`` going to NumPy (its key is complete);
    None when that plan is a refusal."""
    entry = o.array_plans.get(dtype, False)
    if entry is False:
        plan = decide(_to_numpy.plan_from_array, _to_numpy.ArrayKey(np.ndarray, dtype), o, ())
        entry = plan.run if plan.error is None else None
        o.array_plans[dtype] = entry
    return entry


C_CONTIGUOUS, ALIGNED, WRITEABLE = 0x1, 0x100, 0x400  # NumPy's NPY_ARRAY_* flag bits
ARRAY_FLAGS = C_CONTIGUOUS | ALIGNED | WRITEABLE
NEGATIVE = 0x10000  # not a NumPy flag: some stride is negative (read when not C-contiguous)


def hot_array_run(o: Options, dtype: np.dtype[Any], flags: int) -> Any:
    """The runner of an exact ``ndarray`` of ``dtype`` with ``flags`` (``ARRAY_FLAGS`` bits, and
    ``NEGATIVE`` when not C-contiguous and some stride is negative) going to
    PyTorch, stored in ``array_plans`` for plain flags, else in ``array_flag_plans``; None where
    the plan is a refusal or needs a pointer check (items wider than their alignment).

    A C-contiguous array has positive strides except on axes of length 1: its plans must start
    with a step that refuses negative strides (``torch.from_numpy``, or a checking copy)."""
    run = None
    if dtype.itemsize <= dtype.alignment and dtype.kind != "O":
        aligned, writeable = bool(flags & ALIGNED), bool(flags & WRITEABLE)
        key = _to_torch.ArrayKey(np.ndarray, dtype, aligned, writeable, bool(flags & NEGATIVE))
        plan = decide(_to_torch.plan_from_array, key, o, ())
        checked = _checked(plan) if flags & C_CONTIGUOUS else plan.error is None
        run = plan.run if checked else None
    if flags == ARRAY_FLAGS:
        o.array_plans[dtype] = run
    else:
        o.array_flag_plans.setdefault(flags, {})[dtype] = run
    return run


def _checked(plan: LeafPlan) -> bool:
    """Whether the plan's first step that touches data is a checking view."""
    if plan.error is not None:
        return False
    for step in plan.steps:
        if step.checks:
            return True
        if step.copies:
            return False
    return False


_NUMPY = Options("numpy")
