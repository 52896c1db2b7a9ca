"""Grouping a container's device transfers into batches: one function, used by the conversion
(which runs them) and by ``explain`` (which plans them).

A leaf whose plan has a batchable step (``Step.batch``: "to_host" or "to_device") runs the
steps before it, waits in a ``Pending`` record, and, once every leaf is planned, travels with
the others of its group in one ``_transfer`` call; then the rest of its steps run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from . import _transfer, _transfer_plan
from ._dtypes import torch_dtype
from ._options import Options
from ._plan import LeafPlan, compose, record

__all__ = ["Pending", "group", "plan_groups", "run_groups"]


class Pending:
    """Leaf ``index``, its plan, and its value just before the batched step."""

    __slots__ = ("index", "plan", "value")

    def __init__(self, index: int, plan: LeafPlan, value: Any) -> None:
        self.index = index
        self.plan = plan
        self.value = value

    @property
    def step_kind(self) -> str:
        return self.plan.steps[self.plan.batch_at].batch


def start(index: int, plan: LeafPlan, value: Any) -> Pending:
    """Run a leaf's steps up to its batched one."""
    return Pending(index, plan, compose(plan.steps[plan.ran : plan.batch_at])(value))


def group(pending: list[Pending]) -> dict[str, list[Pending]]:
    """The batches: one per kind of transfer (one call has one target device)."""
    groups: dict[str, list[Pending]] = {}
    for p in pending:
        groups.setdefault(p.step_kind, []).append(p)
    return groups


def _each_group(
    pending: list[Pending], o: Options, to_host: Any, to_device: Any
) -> Iterator[tuple[Any, list[Pending]]]:
    """``to_host(values)`` or ``to_device(values, device, ...)`` of each group, with it."""
    for kind, members in group(pending).items():
        values = [p.value for p in members]
        if kind == "to_host":
            yield to_host(values), members
        else:
            assert o.device is not None
            moved = to_device(
                values, o.device, non_blocking=o.non_blocking, pin_memory=o.pin_memory
            )
            yield moved, members


def run_groups(pending: list[Pending], o: Options, out: list[Any]) -> None:
    """Run every batch, then each leaf's remaining steps; results go to ``out[index]``."""
    for moved, members in _each_group(pending, o, _transfer.to_host, _transfer.to_device):
        for p, value in zip(members, moved, strict=True):
            at = p.plan.batch_at
            record(p.plan.steps[at], value)
            out[p.index] = compose(p.plan.steps[at + 1 :])(value)


def plan_groups(
    pending: list[Pending], o: Options
) -> list[tuple[_transfer_plan.BatchPlan, list[Pending]]]:
    """What ``run_groups`` will do, without moving data (``Pending.value`` may stand in)."""
    planners = (_transfer_plan.plan_to_host, _transfer_plan.plan_to_device)
    return list(_each_group(pending, o, *planners))


def stand_in(plan: LeafPlan, value: Any) -> torch.Tensor:
    """The tensor the batched step will receive, without moving data: the steps before it are
    views (run), or after a copying one an uninitialised tensor of the shape and dtype stands
    in (its pages are never touched)."""
    before = plan.steps[plan.ran : plan.batch_at]
    if not any(s.copies for s in before):
        return compose(before)(value)
    dtype = next((s.dtype for s in reversed(before) if s.dtype is not None), None)
    if dtype is None:
        dtype = value.dtype if isinstance(value, torch.Tensor) else torch_dtype(value.dtype)
    return torch.empty(tuple(value.shape), dtype=dtype)
