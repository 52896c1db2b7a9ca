"""Plans: the ordered steps a conversion takes, decided before any data moves.

A ``Step`` is a function of the value so far and what it costs. A ``LeafPlan`` is the cached
decision for one kind of leaf (its steps, or the error it is refused with); ``Plan`` is what
``explain`` returns: the same steps, described for one input.

Every leaf plan is executed through ``compose``, the one step runner; ``tracing`` records the
steps it runs, so tests can compare what ran with what ``explain`` said.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ._errors import ConversionError, CopyRequiredError, describe

__all__ = ["LeafPlan", "Plan", "Refusal", "Step", "copy_mode", "format_bytes"]

SIZE = "{size}"  # replaced, in a step's text, by the bytes that step writes


class Step:
    """One step of a conversion, and what it costs: ``Step(text, call, ...)``.

    ``call(value) -> value`` runs it; a step that needs an argument binds it into ``call``
    (``functools.partial`` or a closure). ``copies`` is 1 when the step writes a full new copy
    of the data, 0 for a view. The bytes it writes are ``nbytes`` plus ``itemsize`` per element
    of the input: a cached plan gives ``itemsize`` (its size is known for any input once the
    element count is), a plan made for one input (an image, a collated batch) gives its whole
    size as ``nbytes`` and is reported with ``Plan.of_leaf(..., LeafPlan(steps))`` (numel 0).
    ``text`` may hold ``{size}`` for those bytes, or be a function formatted only when read (a
    per-call planner's text can be costly to build and is only read by ``explain``).
    ``reason`` says why a copying step is needed (``copy=False`` errors name it). ``batch``
    names a step a container conversion runs for many leaves at once ("to_host"/"to_device");
    ``dtype`` the PyTorch dtype a step produces, where it sets one; ``checks`` that ``call``
    refuses inputs whose facts differ from the plain ones its plan was made for (see
    ``_planner``).

    >>> Step("negate (no copy)", lambda t: -t).call(1)
    -1
    """

    __slots__ = (
        "_reason",
        "_text",
        "batch",
        "call",
        "checks",
        "copies",
        "dtype",
        "itemsize",
        "nbytes",
        "syncs",
    )

    def __init__(
        self,
        text: str | Callable[[], str],
        call: Callable[[Any], Any],
        *,
        nbytes: int = 0,
        itemsize: int = 0,
        copies: int = 0,
        reason: str | Callable[[], str] = "",
        syncs: bool = False,
        batch: str = "",
        dtype: Any = None,
        checks: bool = False,
    ) -> None:
        self._text = text
        self.call = call
        self.nbytes = nbytes
        self.itemsize = itemsize
        self.copies = copies
        self._reason = reason
        self.syncs = syncs
        self.batch = batch
        self.dtype = dtype
        self.checks = checks

    @property
    def text(self) -> str:
        return self._text if isinstance(self._text, str) else self._text()

    @property
    def reason(self) -> str:
        return self._reason if isinstance(self._reason, str) else self._reason()

    def bytes_for(self, numel: int) -> int:
        """Bytes this step writes for an input of ``numel`` elements."""
        return self.nbytes + numel * self.itemsize if self.copies else 0

    def describe(self, numel: int) -> str:
        """The step's line in ``explain``, sized for ``numel`` elements."""
        text = self.text
        if SIZE not in text:
            return text
        return text.replace(SIZE, format_bytes(self.nbytes + numel * self.itemsize))

    def __repr__(self) -> str:
        return f"Step({self.text!r})"


class Refusal(Exception):
    """Raised by a planner: this key cannot convert. ``make(subject)`` builds the error."""

    def __init__(self, make: Callable[[Any], ConversionError]) -> None:
        super().__init__()
        self.make = make


def copy_mode(steps: list[Step], copy: bool | None, copy_step: Step) -> list[Step]:
    """The one place the ``copy`` option is applied: ``True`` adds ``copy_step`` when no step
    copies; ``False`` refuses, naming every step that copies."""
    if copy is None:
        return steps
    reasons = [s.reason for s in steps if s.copies]
    if copy:
        return steps if reasons else [*steps, copy_step]
    if reasons:
        raise Refusal(lambda subject: _copy_required(subject, reasons))
    return steps


def _copy_required(subject: Any, reasons: list[str]) -> CopyRequiredError:
    err = CopyRequiredError(
        f"{describe(subject)} cannot be converted without a copy: "
        + "; ".join(reasons)
        + ". Pass copy=None (copy only when needed) or copy=True"
    )
    err.reasons = tuple(reasons)
    return err


# The step runner. ``_trace`` is None except inside ``tracing()``; plans composed while tracing
# record each step they run (plan caches are emptied on the way in and out, so the hot path
# never pays for the check).
_trace: list[tuple[Step, Any]] | None = None
_on_trace_change: list[Callable[[], None]] = []  # plan caches register their ``clear`` here


def compose(steps: Sequence[Step]) -> Callable[[Any], Any]:
    """One function running ``steps`` in order (the single step runner)."""
    fns = tuple(s.call for s in steps)
    if _trace is not None:
        return _traced(tuple(steps))
    if not fns:
        return _identity
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        first, second = fns
        return lambda value: second(first(value))

    def run(value: Any) -> Any:
        for fn in fns:
            value = fn(value)
        return value

    return run


def _identity(value: Any) -> Any:
    return value


def _traced(steps: tuple[Step, ...]) -> Callable[[Any], Any]:
    def run(value: Any) -> Any:
        trace = _trace
        mark = len(trace) if trace is not None else 0
        try:
            for step in steps:
                value = step.call(value)
                if trace is not None:
                    trace.append((step, value))
        except BaseException:
            if trace is not None:
                del trace[mark:]  # a plan that did not finish ran none of its steps
            raise
        return value

    return run


def record(step: Step, value: Any) -> None:
    """Record a step run outside ``compose`` (a batched transfer), when tracing."""
    if _trace is not None:
        _trace.append((step, value))


@contextlib.contextmanager
def tracing() -> Iterator[list[tuple[Step, Any]]]:
    """Record ``(step, value after it)`` for every step run inside the block (for tests)."""
    global _trace
    for clear in _on_trace_change:
        clear()
    _trace = []
    try:
        yield _trace
    finally:
        _trace = None
        for clear in _on_trace_change:
            clear()


class LeafPlan:
    """The cached decision for one key: the steps (and their runner), or the refusal.

    The first ``ran`` steps are the adapter's, already run when the plan is looked up; ``run``
    runs the rest. ``batch_at`` is the index of the first step a container may batch (-1: none).
    """

    __slots__ = (
        "batch_at",
        "copies",
        "error",
        "fixed_bytes",
        "per_element",
        "ran",
        "run",
        "steps",
        "syncs",
    )

    def __init__(
        self,
        steps: Sequence[Step],
        error: Callable[[Any], ConversionError] | None = None,
        ran: int = 0,
    ) -> None:
        self.steps = tuple(steps)
        self.error = error
        self.ran = ran
        self.run = compose(self.steps[ran:])
        self.batch_at = next((i for i, s in enumerate(self.steps) if s.batch), -1)
        # what explain reports: passes, and bytes per element of the input (plus fixed ones)
        self.copies = sum(s.copies for s in self.steps)
        self.per_element = sum(s.itemsize for s in self.steps if s.copies)
        self.fixed_bytes = sum(s.nbytes for s in self.steps if s.copies)
        self.syncs = any(s.syncs for s in self.steps)

    def check(self, subject: Any) -> None:
        """Raise the refusal, if this plan is one, naming ``subject``."""
        if self.error is not None:
            raise self.error(subject)


def format_bytes(n: int) -> str:
    """Human-readable byte count.

    >>> format_bytes(4 * 1024 * 1024)
    '4.0 MiB'
    """
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}"
    raise AssertionError("unreachable")


class Plan:
    """What a conversion does, step by step, without doing it.

    ``copies`` counts full passes over the data, ``bytes_copied`` the bytes those passes write;
    ``copies == 0`` exactly when the result shares memory with the input. For a container,
    ``leaves`` maps each converted leaf's path to its own plan and the numbers are totals.

    >>> import torch, tensorbridge as tb
    >>> print(tb.explain(torch.zeros(2, requires_grad=True)))
    to numpy: torch.Tensor(dtype=torch.float32, shape=(2,), device=cpu)
      1. detach from autograd (no copy)
      2. view as numpy.ndarray float32 (no copy)
      = 0 copies, 0 B copied, shares memory, no device sync
    """

    __slots__ = (
        "_input",
        "_leaves",
        "_numel",
        "_steps",
        "bytes_copied",
        "copies",
        "shares_memory",
        "syncs_device",
        "target",
    )

    def __init__(
        self,
        target: str,
        input: Any,
        steps: Sequence[str | Step],
        copies: int,
        bytes_copied: int,
        shares_memory: bool,
        syncs_device: bool,
        leaves: Mapping[str, Plan] | Callable[[], dict[str, Plan]] | None = None,
        numel: int = 0,
    ) -> None:
        self.target = target
        self._input = input  # described when first read (a large tree formats only what is read)
        self._steps = steps  # Step objects are described (sized for ``numel``) when first read
        self._numel = numel
        self.copies = copies
        self.bytes_copied = bytes_copied
        self.shares_memory = shares_memory
        self.syncs_device = syncs_device
        self._leaves = {} if leaves is None else leaves  # a function: written when first read

    @classmethod
    def of_leaf(cls, target: str, input: Any, plan: LeafPlan, numel: int = 0) -> Plan:
        """The plan of running ``plan`` on an input of ``numel`` elements (0: a plan made for
        one input, whose steps give their sizes as ``nbytes``)."""
        nbytes = numel * plan.per_element + plan.fixed_bytes
        return cls(
            target, input, plan.steps, plan.copies, nbytes, not plan.copies, plan.syncs, None, numel
        )

    @property
    def steps(self) -> tuple[str, ...]:
        """The steps in order, one line each."""
        if type(self._steps) is not tuple or not all(type(s) is str for s in self._steps):
            self._steps = tuple(
                s if isinstance(s, str) else s.describe(self._numel) for s in self._steps
            )
        return self._steps  # type: ignore[return-value]

    @property
    def leaves(self) -> Mapping[str, Plan]:
        """Each converted leaf's plan, by path (a container's plan; empty for one leaf)."""
        if callable(self._leaves):
            self._leaves = self._leaves()
        return self._leaves

    @property
    def input(self) -> str:
        """What is converted: type, dtype, shape and device (or the container's type)."""
        if not isinstance(self._input, str):
            self._input = describe(self._input)
        return self._input

    def with_extra_copies(self, extra: int, nbytes: int) -> Plan:
        """The same plan with ``extra`` more passes of ``nbytes`` each (batched packing)."""
        copies = self.copies + extra
        return Plan(
            self.target,
            self._input,
            self._steps,
            copies,
            self.bytes_copied + extra * nbytes,
            copies == 0,
            self.syncs_device,
            self._leaves,
            self._numel,
        )

    def __repr__(self) -> str:
        return (
            f"Plan(target={self.target!r}, input={self.input!r}, steps={self.steps!r}, "
            f"copies={self.copies}, bytes_copied={self.bytes_copied}, "
            f"shares_memory={self.shares_memory}, syncs_device={self.syncs_device}, "
            f"leaves={len(self.leaves)})"
        )

    def __str__(self) -> str:
        lines = [f"to {self.target}: {self.input}"]
        for path, leaf in self.leaves.items():
            lines.append(f"  {path}: {leaf.input}")
            lines.extend(f"      - {text}" for text in leaf.steps)
        lines.extend(f"  {i}. {text}" for i, text in enumerate(self.steps, 1))
        share = "shares memory" if self.shares_memory else "no memory shared"
        sync = "syncs device" if self.syncs_device else "no device sync"
        noun = "copy" if self.copies == 1 else "copies"
        lines.append(
            f"  = {self.copies} {noun}, {format_bytes(self.bytes_copied)} copied, {share}, {sync}"
        )
        return "\n".join(lines)
