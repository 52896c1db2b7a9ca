"""What a benchmark case is: a name, a target, and a function that measures it.

>>> Target("<=", 0.8).met(0.75), str(Target("<=", 0.8))
(True, '≤ 0.80×')
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ._harness import Comparison, compare

__all__ = ["Case", "Config", "Result", "Skip", "Status", "Target", "timed"]

Status = Literal["PASS", "MISS", "SKIP", "ERROR"]


class Skip(Exception):
    """Raised by a case that cannot run here (a peer library is not installed, --quick, ...)."""


@dataclass(frozen=True)
class Target:
    """A bound on a case's median ratio: ``ratio <= value`` or ``ratio >= value``."""

    op: Literal["<=", ">="]
    value: float

    def met(self, ratio: float) -> bool:
        """Whether ``ratio`` is within the target."""
        return ratio <= self.value if self.op == "<=" else ratio >= self.value

    def __str__(self) -> str:
        return f"{'≤' if self.op == '<=' else '≥'} {self.value:.2f}×"


@dataclass(frozen=True)
class Config:
    """How hard to measure: rounds per case, seconds per timed batch, batches per side and
    round (the fastest counts), input sizes, and the timer."""

    quick: bool = False
    rounds: int = 31
    round_s: float = 0.001
    repeats: int = 3
    bulk_bytes: int = 64 << 20
    big_bytes: int = 1 << 30
    timer: Callable[[], float] = time.perf_counter

    def compare(self, a: Callable[[], object], b: Callable[[], object]) -> Comparison:
        """``compare(a, b)`` with this configuration's rounds, batch time and timer."""
        return compare(
            a, b, rounds=self.rounds, round_s=self.round_s, timer=self.timer, repeats=self.repeats
        )


@dataclass(frozen=True)
class Case:
    """One benchmark: ``ours`` (tensorbridge) against ``idiom``, judged by ``target``.

    ``measure`` builds its inputs, runs the comparison and returns it; ``ratio`` says what the
    ratio means (``"time"``: tensorbridge ÷ idiom per call; ``"scaling"``: big ÷ small input;
    ``"memory"``: peak ÷ (input + output)).
    """

    group: str
    name: str
    ours: str
    idiom: str
    target: Target
    measure: Callable[[Config], Comparison]
    ratio: str = "time"


@dataclass
class Result:
    """A case's outcome, as the report prints it and ``--json`` emits it."""

    case: Case
    status: Status
    comparison: Comparison | None = None
    note: str = ""
    seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """The JSON form: names, target, ratio (median, min, max), per-call times, status."""
        c = self.comparison
        return {
            "group": self.case.group,
            "name": self.case.name,
            "ours": self.case.ours,
            "idiom": self.case.idiom,
            "ratio_kind": self.case.ratio,
            "target": {"op": self.case.target.op, "value": self.case.target.value},
            "status": self.status,
            "ratio": None if c is None else c.ratio,
            "min": None if c is None else c.lo,
            "max": None if c is None else c.hi,
            "ours_s": None if c is None else c.a_s,
            "idiom_s": None if c is None else c.b_s,
            "rounds": 0 if c is None else len(c.ratios),
            "extra": dict(c.extra) if c is not None else {},
            "note": self.note,
        }


def timed(a: Callable[[], object], b: Callable[[], object]) -> Callable[[Config], Comparison]:
    """A ``measure`` function timing ``a`` against ``b`` with the run's configuration."""
    return lambda cfg: cfg.compare(a, b)
