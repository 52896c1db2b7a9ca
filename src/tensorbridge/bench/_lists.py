"""Python lists: a 3-million-element list of floats and of ints, against ``np.asarray`` and
``torch.tensor`` on the same list (the idioms a user writes by hand).

>>> sorted({c.group for c in cases()})
['lists']
"""

from __future__ import annotations

import random

import numpy as np
import torch

import tensorbridge as tb

from ._case import Case, Config, Target, timed
from ._harness import Comparison

__all__ = ["cases"]

N = 3_000_000


def _floats() -> list[float]:
    rng = random.Random(0)
    return [rng.random() for _ in range(N)]


def _ints() -> list[int]:
    return list(range(-N // 2, N - N // 2))


def _case(kind: str, make: type[float] | type[int], target: str) -> Case:
    values: list[float] = []  # ints are floats to the type checker

    def build() -> list[float]:
        if not values:
            values.extend(_floats() if make is float else _ints())
        return values

    if target == "numpy":
        ours, idiom = "tb.to_numpy(xs)", "np.asarray(xs)"

        def measure(cfg: Config) -> Comparison:
            xs = build()
            try:
                return timed(lambda: tb.to_numpy(xs), lambda: np.asarray(xs))(cfg)
            finally:
                values.clear()

    else:
        ours, idiom = "tb.to_torch(xs)", "torch.tensor(xs)"

        def measure(cfg: Config) -> Comparison:
            xs = build()
            try:
                return timed(lambda: tb.to_torch(xs), lambda: torch.tensor(xs))(cfg)
            finally:
                values.clear()

    return Case("lists", f"3M-{kind} list → {target}", ours, idiom, Target("<=", 1.3), measure)


def cases() -> list[Case]:
    """The list cases: floats and ints, to NumPy and to PyTorch."""
    return [
        _case("float", float, "numpy"),
        _case("int", int, "numpy"),
        _case("float", float, "torch"),
        _case("int", int, "torch"),
    ]
