"""``collate``: one batch from a list of samples, as a DataLoader's ``collate_fn``.

Samples are batched the way ``torch.utils.data.default_collate`` batches them — mappings by key
(type kept), namedtuples and dataclasses by field, tuples and lists by position, leaves stacked
along a new first axis, ``str``/``bytes``/``None`` into lists — with the inputs that make it warn
or fail fixed in the one copy each sample needs anyway: read-only, negative-stride, non-native
byte order, misaligned and ``ml_dtypes`` arrays are copied straight into the batch tensor, which
is allocated once (in shared memory inside a DataLoader worker).

A collate is planned, then run: ``plan`` walks the samples' structure once and returns a tree
whose fields (planned by ``_stack.plan_leaves``) are lists of ``Step``s (allocate, fill);
``collate`` runs them and ``explain`` reports them, so what is explained is what runs.

>>> import numpy as np
>>> batch = collate([{"x": np.ones(2)[::-1], "y": 1}, {"x": np.zeros(2), "y": 0}])
>>> batch["x"].shape, batch["y"]
(torch.Size([2, 2]), tensor([1, 0]))
"""

from __future__ import annotations

import collections.abc as cabc
import copy
import dataclasses
import functools
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.utils.data

from ._api import EXPLAIN_TARGETS
from ._dtypes import by_torch, torch_dtype
from ._errors import ConversionError, UnsupportedInputError, describe
from ._plan import LeafPlan, Plan, Step, compose
from ._stack import (
    NUMBERS,
    Field,
    Options,
    const,
    count,
    differs,
    input_text,
    kind_error,
    plan_leaves,
)

__all__ = ["collate", "explain", "plan"]

_RAGGED = ("error", "list", "pad")


def options(
    dtype: Any = None, float_dtype: Any = None, ragged: str = "error", pad_value: Any = 0
) -> Options:
    """Resolve ``collate``'s keywords; a wrong kind of argument is a plain ``TypeError``."""
    if ragged not in _RAGGED:
        raise ValueError(f"ragged must be 'error', 'list' or 'pad', not {ragged!r}")
    if isinstance(pad_value, (np.number, np.bool_)):
        pad_value = pad_value.item()  # np.float32(-1) pads as -1.0 does
    if not isinstance(pad_value, (int, float, complex)):
        raise TypeError(f"pad_value must be a number, not {pad_value!r}")
    tdt = None if dtype is None else torch_dtype(dtype)
    fdt = None if float_dtype is None else torch_dtype(float_dtype)
    for name, dt in (("dtype", tdt), ("float_dtype", fdt)):
        if dt is not None and by_torch(dt) is None:
            raise UnsupportedInputError(
                f"{name}={dt} is not a plain value dtype (quantized dtypes need a scale and a "
                f"zero point); collate in a value dtype, then call torch.quantize_per_tensor"
            )
    if fdt is not None and not fdt.is_floating_point:
        raise TypeError(f"float_dtype must be a real floating-point dtype, not {fdt}")
    return Options(tdt, fdt, ragged, pad_value, torch.utils.data.get_worker_info() is not None)


# --- the planned tree ----------------------------------------------------------------------


def _key(key: Any) -> str:
    return f"[{json.dumps(key, ensure_ascii=False) if isinstance(key, str) else repr(key)}]"


class Node:
    """A container of the batch: its children and how it is rebuilt from their results."""

    __slots__ = ("children", "rebuild")

    def __init__(self, children: list[Any], rebuild: Callable[[list[Any]], Any]) -> None:
        self.children = children
        self.rebuild = rebuild


def run_steps(field: Field) -> Any:
    """Run one field's steps in order (through the core's step runner)."""
    return compose(field.steps)(None)


def build(tree: Field | Node) -> Any:
    """Run a planned tree: every field's steps, every container rebuilt."""
    if type(tree) is Field:
        return run_steps(tree)
    assert isinstance(tree, Node)
    return tree.rebuild([build(c) for c in tree.children])


def fields(tree: Field | Node) -> list[Field]:
    """The fields of a planned tree, in order."""
    if type(tree) is Field:
        return [tree]
    assert isinstance(tree, Node)
    return [f for c in tree.children for f in fields(c)]


# --- planning ------------------------------------------------------------------------------


def plan(samples: Any, o: Options, explaining: bool = False) -> Field | Node:
    """The planned batch of ``samples``: containers to rebuild, fields with their steps.

    ``explaining`` adds what only ``explain`` reports (the costs of per-sample ``to_torch``
    and ``to_numpy`` conversions); the steps are the same.
    """
    if isinstance(samples, (np.ndarray, torch.Tensor)) and samples.ndim:
        samples = list(samples)  # rows, as default_collate indexes them
    if isinstance(samples, (str, bytes, cabc.Mapping)) or not isinstance(samples, Sequence):
        fix = (
            "a dict of columns is a batch already: convert it with tb.to_torch(columns)"
            if isinstance(samples, cabc.Mapping)
            else "pass a list of samples (list(samples))"
        )
        raise UnsupportedInputError(f"{describe(samples)} is not a list of samples; {fix}")
    if len(samples) == 0:
        raise ConversionError("samples is empty: a batch needs at least one sample")
    column = samples if type(samples) in (list, tuple) else list(samples)
    return _plan_column(column, "", o, explaining)


def _plan_column(column: Sequence[Any], suffix: str, o: Options, explaining: bool) -> Field | Node:
    first = column[0]
    if isinstance(first, (torch.Tensor, np.ndarray, np.number, np.bool_)):
        return plan_leaves(column, suffix, o, explaining)
    if first is None or isinstance(first, (str, bytes)):
        return _plan_values(column, suffix)
    if isinstance(first, NUMBERS):
        return plan_leaves(column, suffix, o, explaining)
    if isinstance(first, cabc.Mapping):
        return _plan_mapping(column, suffix, o, explaining)
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return _plan_namedtuple(column, suffix, o, explaining)
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        return _plan_dataclass(column, suffix, o, explaining)
    if isinstance(first, Sequence):
        return _plan_sequence(column, suffix, o, explaining)
    return plan_leaves(column, suffix, o, explaining)  # an array-protocol object, or refused


def _plan_values(column: Sequence[Any], suffix: str) -> Field:
    """``str``, ``bytes`` and ``None`` values: a list, as default_collate keeps them.

    After a ``str`` or ``bytes`` first sample, default_collate keeps whatever the others hold
    (an optional caption's ``None`` included); after ``None`` only these three kinds are kept."""
    if column[0] is None:
        for i, x in enumerate(column):
            if x is not None and not isinstance(x, (str, bytes)):
                raise kind_error(column, i, suffix)
    # default_collate hands these back in the sequence it batched them in: the samples' own
    # list (or tuple), a tuple inside tuples, lists and namedtuples, a list inside mappings.
    values = tuple(column) if type(column) is tuple else list(column)
    kinds = sorted({"None" if x is None else type(x).__name__ for x in values})
    step = Step(
        f"keep {len(values)} values in a list (no copy)", functools.partial(const, value=values)
    )
    return Field(f"batch{suffix}", f"{len(values)} × {'/'.join(kinds)}", [step])


def _check_same_type(column: Sequence[Any], suffix: str) -> None:
    cls = type(column[0])
    for i, x in enumerate(column):
        if type(x) is not cls:
            raise kind_error(column, i, suffix)


def _plan_mapping(column: Sequence[Any], suffix: str, o: Options, explaining: bool) -> Node:
    first = column[0]
    keys = first.keys()
    for i, x in enumerate(column):
        if not isinstance(x, cabc.Mapping):
            raise kind_error(column, i, suffix)
        if x.keys() != keys:
            missing = [k for k in keys if k not in x]
            extra = [k for k in x if k not in keys]
            raise differs(
                column,
                i,
                suffix,
                f"its keys differ from samples[0]{suffix}'s (missing {missing}, extra {extra})",
                "return the same keys from every item (fill a default where a value is missing)",
            )
    names = list(keys)
    children = [
        _plan_column([x[k] for x in column], suffix + _key(k), o, explaining) for k in names
    ]

    def rebuild(values: list[Any]) -> Any:
        return _rebuild_mapping(first, dict(zip(names, values, strict=True)))

    return Node(children, rebuild)


def _rebuild_mapping(elem: Any, items: dict[Any, Any]) -> Any:
    # default_collate's rule: a mutable mapping is copied and updated (its type and extra state,
    # such as a defaultdict's factory, kept); others are built from a dict; a plain dict if not.
    try:
        if isinstance(elem, cabc.MutableMapping):
            clone = copy.copy(elem)
            clone.update(items)
            return clone
        return type(elem)(items)
    except TypeError:
        return items


def _plan_namedtuple(column: Sequence[Any], suffix: str, o: Options, explaining: bool) -> Node:
    _check_same_type(column, suffix)
    cls = type(column[0])
    children = [
        _plan_column(tuple([x[j] for x in column]), f"{suffix}.{name}", o, explaining)
        for j, name in enumerate(cls._fields)
    ]
    return Node(children, lambda values: cls(*values))


def _plan_dataclass(column: Sequence[Any], suffix: str, o: Options, explaining: bool) -> Node:
    _check_same_type(column, suffix)
    first = column[0]
    names = [f.name for f in dataclasses.fields(first) if hasattr(first, f.name)]
    children = [
        _plan_column([getattr(x, n) for x in column], f"{suffix}.{n}", o, explaining) for n in names
    ]

    def rebuild(values: list[Any]) -> Any:
        out = copy.copy(first)  # no __init__/__post_init__ runs on the batched values
        for name, value in zip(names, values, strict=True):
            object.__setattr__(out, name, value)  # frozen dataclasses too
        return out

    return Node(children, rebuild)


def _plan_sequence(column: Sequence[Any], suffix: str, o: Options, explaining: bool) -> Node:
    first = column[0]
    n = len(first)
    for i, x in enumerate(column):
        if isinstance(x, (str, bytes)) or not isinstance(x, Sequence):
            raise kind_error(column, i, suffix)
        if len(x) != n:
            raise differs(
                column,
                i,
                suffix,
                f"its length {len(x)} differs from samples[0]{suffix}'s {n}",
                "a list or tuple is batched by position; make it an array (np.asarray) to batch "
                'it as one leaf, which ragged="pad" or ragged="list" then accept',
            )
    children = [
        _plan_column(tuple([x[j] for x in column]), f"{suffix}[{j}]", o, explaining)
        for j in range(n)
    ]
    return Node(children, lambda values: _rebuild_sequence(first, values))


def _rebuild_sequence(elem: Any, values: list[Any]) -> Any:
    # default_collate's rule: a tuple becomes a list; a mutable sequence is copied and updated;
    # other sequences are built from a list; a plain list if that fails.
    if isinstance(elem, tuple):
        return values
    try:
        if isinstance(elem, cabc.MutableSequence):
            clone = copy.copy(elem)
            for i, v in enumerate(values):
                clone[i] = v
            return clone
        return type(elem)(values)
    except (TypeError, ValueError):  # array.array and the like hold numbers, not tensors
        return values


# --- the public functions ------------------------------------------------------------------


def collate(
    samples: Sequence[Any],
    /,
    *,
    dtype: Any = None,
    float_dtype: Any = None,
    ragged: str = "error",
    pad_value: float = 0,
) -> Any:
    """Batch ``samples`` for a training loop: a drop-in ``collate_fn`` for ``DataLoader``.

    Like ``torch.utils.data.default_collate`` (mappings by key, namedtuples and dataclasses by
    field, sequences by position, leaves stacked; ``str``, ``bytes`` and ``None`` into lists),
    with read-only, negative-stride, big-endian and ``ml_dtypes`` arrays copied once, straight
    into the batch, and never a warning. ``dtype``/``float_dtype`` cast as in ``to_torch``;
    ``ragged`` says what samples of different shapes become ("error", "list" or "pad").

    >>> import numpy as np
    >>> collate([(np.ones(2, dtype=">f4"), 1.5), (np.zeros(2, dtype=">f4"), 2.5)],
    ...         float_dtype="float32")
    [tensor([[1., 1.],
            [0., 0.]]), tensor([1.5000, 2.5000])]
    """
    o = options(dtype, float_dtype, ragged, pad_value)
    return build(plan(samples, o))


def explain(samples: Sequence[Any], /, **kwargs: Any) -> Plan:
    """What ``collate(samples, **kwargs)`` would do, field by field, without doing it.

    >>> import numpy as np
    >>> plan = explain([np.ones(3)[::-1], np.ones(3)])
    >>> plan.copies, plan.bytes_copied
    (1, 48)
    """
    o = options(**kwargs)
    tree = plan(samples, o, explaining=True)
    leaves: dict[str, Plan] = {}
    batched = fields(tree)
    for f in batched:
        text = f.input if isinstance(f.input, str) else input_text(f.input)
        leaves[f.path] = Plan.of_leaf("torch", text, LeafPlan(f.steps))
        if f.leaves:
            leaves.update(f.leaves)
    copies = sum(p.copies for p in leaves.values())
    where = " in shared memory (DataLoader worker)" if o.shared else ""
    return Plan(
        target="torch",
        input=f"{len(samples)} samples of {type(samples[0]).__name__}",
        steps=(f"collate {len(samples)} samples into {count(len(batched), 'field')}{where}",),
        copies=copies,
        bytes_copied=sum(p.bytes_copied for p in leaves.values()),
        shares_memory=copies == 0,
        syncs_device=False,
        leaves=leaves,
    )


EXPLAIN_TARGETS["collate"] = explain  # tb.explain(samples, to="collate")
