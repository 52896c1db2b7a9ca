"""Plans: the ordered steps a conversion takes, built before any data moves.

The planners in ``_numpy_side`` and ``_torch_side`` return a tuple of ``Step`` objects; the
conversion runs them in order and ``explain`` reports them, so what is explained is what runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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

    def __call__(self, value: Any) -> Any:
        return self.fn(value, self.arg)

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


@dataclass(frozen=True)
class Plan:
    """What a conversion does, step by step, without doing it.

    ``copies`` counts full passes over the data, ``bytes_copied`` the bytes those passes write;
    ``copies == 0`` exactly when the result shares memory with the input. For a container,
    ``leaves`` maps each converted leaf's path to its own plan and the numbers are totals.

    >>> import torch, tensorbridge as tb
    >>> print(tb.explain(torch.zeros(2, requires_grad=True)))
    to numpy: torch.Tensor(dtype=torch.float32, shape=(2,))
      1. detach from autograd (no copy)
      2. view as numpy.ndarray float32 (no copy)
      = 0 copies, 0 B copied, shares memory, no device sync
    """

    target: str
    input: str
    steps: tuple[str, ...]
    copies: int
    bytes_copied: int
    shares_memory: bool
    syncs_device: bool
    leaves: Mapping[str, Plan] = field(default_factory=dict)

    @classmethod
    def from_steps(cls, target: str, input: str, steps: tuple[Step, ...]) -> Plan:
        copies = sum(s.copies for s in steps)
        return cls(
            target=target,
            input=input,
            steps=tuple(s.text for s in steps),
            copies=copies,
            bytes_copied=sum(s.nbytes for s in steps if s.copies),
            shares_memory=copies == 0,
            syncs_device=any(s.syncs for s in steps),
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
