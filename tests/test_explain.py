"""``explain``: the plan is what the conversion does; "no copy" is a promise (SPEC: "explain")."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

import tensorbridge as tb
from conftest import cuda_only
from helpers import mutation_shares, np_shares
from test_copy_modes import ALL_CASES, COPY_CASES, Case


def _to(case: Case) -> str:
    return "numpy" if case.func == "to_numpy" else "torch"


def _is_strided(x) -> bool:
    return not isinstance(x, torch.Tensor) or (x.layout == torch.strided and not x.is_quantized)


def _mode_params():
    params = []
    for case in ALL_CASES:
        modes = [None, True] if case in COPY_CASES else [None, True, False]
        for copy in modes:
            params.append(pytest.param(case, copy, id=f"{case.func}-{case.id}-copy-{copy}"))
    return params


MODE_PARAMS = _mode_params()


def _strided_numbers(case: Case) -> bool:
    _, watched = case.make()
    if isinstance(watched, np.ndarray):
        return not watched.dtype.hasobject
    return _is_strided(watched)


STRIDED_MODE_PARAMS = [p for p in MODE_PARAMS if _strided_numbers(p.values[0])]


# ------------------------------------------------------------------ the Plan object


def test_plan_fields_and_types():
    """A Plan has ordered str steps, int copies/bytes_copied and bool shares_memory/syncs_device."""
    plan = tb.explain(torch.ones(3, requires_grad=True), to="numpy")
    assert isinstance(plan, tb.Plan)
    assert isinstance(plan.steps, (list, tuple))
    assert all(isinstance(s, str) for s in plan.steps)
    assert isinstance(plan.copies, int)
    assert isinstance(plan.bytes_copied, int)
    assert isinstance(plan.shares_memory, bool)
    assert isinstance(plan.syncs_device, bool)


def test_plan_str_reads_well():
    """``str(plan)`` is a readable, multi-line description listing the steps."""
    plan = tb.explain(np.arange(4.0)[::-1], to="torch")
    text = str(plan)
    assert "\n" in text
    for step in plan.steps:
        assert step in text


def test_requires_grad_plan_mentions_detach():
    """Converting a tensor that requires grad lists a detach step that copies nothing."""
    plan = tb.explain(torch.ones(3, requires_grad=True), to="numpy")
    assert any("detach" in s for s in plan.steps)
    assert plan.copies == 0


def test_zero_copy_plan():
    """A plain CPU tensor → NumPy plan: no copies, no bytes, shares memory, no device sync."""
    plan = tb.explain(torch.ones(2, 3), to="numpy")
    assert (plan.copies, plan.bytes_copied, plan.shares_memory, plan.syncs_device) == (
        0,
        0,
        True,
        False,
    )


def test_plain_copy_counts_one_pass_of_all_bytes():
    """``copy=True`` on a float32 (2, 3) array: one copy of 24 bytes."""
    plan = tb.explain(np.ones((2, 3), dtype=np.float32), to="torch", copy=True)
    assert plan.copies == 1
    assert plan.bytes_copied == 24
    assert plan.shares_memory is False


def test_cast_plan_counts_written_bytes():
    """A float64 → float32 cast writes at least the output's bytes."""
    plan = tb.explain(np.ones(4), to="torch", dtype=torch.float32)
    assert plan.copies >= 1
    assert plan.bytes_copied >= 16


@pytest.mark.parametrize("to", ["numpy", "torch"])
def test_explain_accepts_the_target_keywords(to):
    """``explain`` takes the keywords of the function it explains."""
    kw = {"dtype": "float32", "float_dtype": None, "copy": None}
    if to == "torch":
        kw.update(device="cpu", requires_grad=None, pin_memory=False, non_blocking=False)
    assert isinstance(tb.explain(np.ones(2), to=to, **kw), tb.Plan)


def test_explain_rejects_unknown_target():
    """``to`` must be "numpy" or "torch"."""
    with pytest.raises((ValueError, TypeError)):
        tb.explain(np.ones(2), to="jax")


def test_explain_moves_no_data():
    """``explain`` allocates nothing like the data, even for a plan that copies it."""
    a = np.ones(1_000_000)[::-1]  # 8 MB, negative strides: the conversion would copy it
    tracemalloc.start()
    try:
        plan = tb.explain(a, to="torch", copy=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert plan.bytes_copied == a.nbytes
    assert peak < a.nbytes // 4


# ------------------------------------------------------------------ the promise, row by row


@pytest.mark.parametrize(("case", "copy"), MODE_PARAMS)
def test_copies_zero_iff_result_shares(case, copy):
    """``copies == 0`` exactly when the conversion's result shares memory with the input."""
    obj, watched = case.make()
    plan = tb.explain(obj, to=_to(case), copy=copy, **case.kwargs)
    out = case.run(obj, copy)
    shared = mutation_shares(out, watched) if case.probe else np_shares(out, watched)
    assert (plan.copies == 0) == shared, f"{plan}"


@pytest.mark.parametrize(("case", "copy"), STRIDED_MODE_PARAMS)
def test_plan_shares_memory_agrees_with_shares_memory(case, copy):
    """``plan.shares_memory`` agrees with ``tb.shares_memory`` and ``np.shares_memory``."""
    obj, watched = case.make()
    plan = tb.explain(obj, to=_to(case), copy=copy, **case.kwargs)
    out = case.run(obj, copy)
    assert plan.shares_memory == np_shares(out, watched)
    assert plan.shares_memory == tb.shares_memory(out, watched)
    assert plan.shares_memory == (plan.copies == 0)


@pytest.mark.parametrize(("case", "copy"), MODE_PARAMS)
def test_bytes_copied_zero_iff_no_copies(case, copy):
    """``bytes_copied`` is zero exactly when ``copies`` is (for non-empty inputs)."""
    obj, _ = case.make()
    plan = tb.explain(obj, to=_to(case), copy=copy, **case.kwargs)
    assert (plan.bytes_copied == 0) == (plan.copies == 0)
    assert plan.syncs_device is False


# ------------------------------------------------------------------ containers


def test_container_plan_has_leaves_by_path():
    """A container's plan holds one Plan per converted leaf, keyed by its path."""
    plan = tb.explain({"a": torch.ones(3), "b": [np.ones(2)[::-1]], "n": 3}, to="torch")
    assert isinstance(plan.leaves, dict)
    assert len(plan.leaves) == 2
    assert all(isinstance(k, str) and isinstance(v, tb.Plan) for k, v in plan.leaves.items())
    assert any('["a"]' in k for k in plan.leaves)
    assert any('["b"][0]' in k for k in plan.leaves)


def test_container_plan_totals():
    """A container's copies and bytes_copied are the sums over its leaves."""
    src = {
        "a": np.ones(4, dtype=np.float32)[::-1],
        "b": np.ones(2),
        "c": (np.ones(3, dtype=">i2"),),
    }
    plan = tb.explain(src, to="torch")
    assert plan.copies == sum(p.copies for p in plan.leaves.values())
    assert plan.bytes_copied == sum(p.bytes_copied for p in plan.leaves.values())
    assert plan.copies == 2
    assert plan.bytes_copied == 16 + 6


def test_container_plan_promise_per_leaf():
    """Each leaf's "no copy" promise holds in the converted container."""
    src = {"a": np.ones(4)[::-1], "b": np.ones(2), "c": np.ones(3, dtype=">f4")}
    plan = tb.explain(src, to="torch")
    out = tb.to_torch(src)
    for key in ("a", "b", "c"):
        leaf = next(p for k, p in plan.leaves.items() if f'["{key}"]' in k)
        assert (leaf.copies == 0) == np_shares(out[key], src[key]), key


def test_container_shares_memory_total():
    """A container shares memory (and copies == 0) only if every leaf does."""
    assert tb.explain({"a": np.ones(2), "b": np.ones(2)}, to="torch").shares_memory is True
    mixed = tb.explain({"a": np.ones(2), "b": np.ones(2)[::-1]}, to="torch")
    assert mixed.copies > 0
    assert mixed.shares_memory is False


# ------------------------------------------------------------------ devices


@cuda_only
def test_cuda_to_numpy_plan_syncs_and_copies():
    """A CUDA tensor → NumPy plan copies device → host and synchronises."""
    t = torch.ones(1024, device="cuda")
    plan = tb.explain(t, to="numpy")
    assert plan.syncs_device is True
    assert plan.copies >= 1
    assert plan.bytes_copied >= t.numel() * 4
    assert any("cuda" in s for s in plan.steps)
