"""Plans: the ordered steps a conversion takes, built before any data moves.

The planners in ``_numpy_side`` and ``_torch_side`` return a tuple of ``Step`` objects; the
conversion runs them in order and ``explain`` reports them, so what is explained is what runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["Plan", "Step", "format_bytes"]


class Step:
    """One step of a conversion: a function of the value so far, and what it costs.

    ``copies`` is 1 when the step writes a full new copy of the data (``nbytes`` bytes), 0 for
    a view; ``reason`` says why a copying step is needed (used by ``copy=False`` errors);
    ``batch`` names a step that a container conversion may run for many leaves at once
    ("to_host" / "to_device").
    """

    __slots__ = ("_reason", "_text", "arg", "batch", "copies", "fn", "nbytes", "syncs")

    def __init__(
        self,
        text: str | Callable[[], str],
        fn: Callable[[Any, Any], Any],
        arg: Any = None,
        *,
        nbytes: int = 0,
        copies: int = 0,
        reason: str | Callable[[], str] = "",
        syncs: bool = False,
        batch: str = "",
    ) -> None:
        # Texts may be given as functions: only explain() and copy=False errors read them,
        # so the conversion itself does not pay for formatting.
        self._text = text
        self.fn = fn
        self.arg = arg
        self.nbytes = nbytes
        self.copies = copies
        self._reason = reason
        self.syncs = syncs
        self.batch = batch

    @property
    def text(self) -> str:
        return self._text if isinstance(self._text, str) else self._text()

    @property
    def reason(self) -> str:
        return self._reason if isinstance(self._reason, str) else self._reason()

    def __repr__(self) -> str:
        return f"Step({self.text!r})"


def run(steps: tuple[Step, ...], value: Any) -> Any:
    """Run ``steps`` in order on ``value``."""
    for step in steps:
        value = step.fn(value, step.arg)
    return value


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
    ``input`` (a description of what is converted) and ``steps`` (one line per step) are
    written when first read, so planning a large tree formats nothing it is not asked for.

    >>> import torch, tensorbridge as tb
    >>> print(tb.explain(torch.zeros(2, requires_grad=True)))
    to numpy: torch.Tensor(dtype=torch.float32, shape=(2,), device=cpu)
      1. detach from autograd (no copy)
      2. view as numpy.ndarray float32 (no copy)
      = 0 copies, 0 B copied, shares memory, no device sync
    """

    __slots__ = (
        "_input",
        "_steps",
        "bytes_copied",
        "copies",
        "leaves",
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
        leaves: Mapping[str, Plan] | None = None,
    ) -> None:
        self.target = target
        self._input = input
        self._steps = steps
        self.copies = copies
        self.bytes_copied = bytes_copied
        self.shares_memory = shares_memory
        self.syncs_device = syncs_device
        self.leaves: Mapping[str, Plan] = {} if leaves is None else leaves

    @classmethod
    def from_steps(cls, target: str, input: Any, steps: Sequence[Step]) -> Plan:
        copies = nbytes = 0
        syncs = False
        for s in steps:
            if s.copies:
                copies += s.copies
                nbytes += s.nbytes
            syncs = syncs or s.syncs
        return cls(target, input, steps, copies, nbytes, copies == 0, syncs)

    @property
    def input(self) -> str:
        """What is converted: type, dtype, shape and device (or the container's type)."""
        if not isinstance(self._input, str):
            from ._errors import describe

            self._input = describe(self._input)  # the input itself, described when first read
        return self._input

    @property
    def steps(self) -> tuple[str, ...]:
        """The steps in order, one line each."""
        if type(self._steps) is not tuple or not all(isinstance(s, str) for s in self._steps):
            self._steps = tuple(s if isinstance(s, str) else s.text for s in self._steps)
        return self._steps  # type: ignore[return-value]

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
            self.leaves,
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
        if self.leaves:
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
