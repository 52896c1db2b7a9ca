"""What runs is what ``explain`` reports, for every input: the differential test.

For generated inputs (every dtype, views, flags, lazy bits, layouts, subclasses, foreign
producers, containers) and option combinations, the steps the conversion actually executes —
recorded by the step runner itself — equal ``explain(...).steps``; both raise the same exception
class or both succeed; and ``plan.shares_memory`` equals ``shares_memory(result, input)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings

import tensorbridge as tb
from strategies import NUMPY_OPTIONS, TORCH_OPTIONS, any_input
from tensorbridge._plan import tracing

EXAMPLES = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _numel(value: Any) -> int:
    return value.numel() if isinstance(value, torch.Tensor) else int(np.size(value))


def _outcome(fn: Any) -> tuple[Any, type | None]:
    try:
        return fn(), None
    except tb.ConversionError as e:
        return None, type(e)


def _leaves(obj: Any, out: Any, plan: tb.Plan) -> list[tuple[Any, Any, tb.Plan]]:
    """(input leaf, result leaf, its plan) for the generated shapes: a leaf or the dict."""
    if not plan.leaves:
        return [(obj, out, plan)]
    if not isinstance(obj, dict):
        return []  # a jagged tensor: its components are views of it (tests/test_to_numpy.py)
    pairs = [('obj["a"]', obj["a"], out["a"])]
    pairs += [(f'obj["b"][{i}]', obj["b"][i], out["b"][i]) for i in (0, 3)]
    return [(x, y, plan.leaves[p]) for p, x, y in pairs if p in plan.leaves]


def check_differential(obj: Any, to: str, options: dict[str, Any]) -> None:
    convert = tb.to_numpy if to == "numpy" else tb.to_torch
    with tracing() as executed:
        plan, planned_error = _outcome(lambda: tb.explain(obj, to=to, **options))
        executed.clear()  # explain runs adapters (reading a producer): not the conversion
        for _ in range(2):  # the second time, from the plan caches
            out, error = _outcome(lambda: convert(obj, **options))
            assert error is planned_error, (error, planned_error)
            ran = [step.describe(_numel(value)) for step, value in executed]
            executed.clear()
            if plan is None:
                continue
            expected = [s for leaf in plan.leaves.values() for s in leaf.steps] or list(plan.steps)
            assert ran == expected
    if plan is None:
        return
    for x, y, leaf_plan in _leaves(obj, out, plan):
        if (
            isinstance(y, (np.ndarray, torch.Tensor))
            and _numel(y)
            and not getattr(y, "is_nested", False)
        ):
            if isinstance(x, (np.ndarray, torch.Tensor)) and _numel(x) == 0:
                continue  # no memory: shares nothing, whatever the plan
            if isinstance(x, torch.Tensor) and x._is_zerotensor():
                continue  # a ZeroTensor has no memory either
            if isinstance(x, torch.Tensor) and x.layout is not torch.strided and not x._nnz():
                continue  # nor has a sparse tensor that stores no element
            assert leaf_plan.shares_memory == tb.shares_memory(y, x), leaf_plan


@EXAMPLES
@given(obj=any_input(), options=NUMPY_OPTIONS)
def test_to_numpy_runs_what_explain_reports(obj, options):
    """to_numpy executes exactly explain's steps, with its outcome and memory sharing."""
    check_differential(obj, "numpy", options)


@EXAMPLES
@given(obj=any_input(), options=TORCH_OPTIONS)
def test_to_torch_runs_what_explain_reports(obj, options):
    """to_torch executes exactly explain's steps, with its outcome and memory sharing."""
    check_differential(obj, "torch", options)
