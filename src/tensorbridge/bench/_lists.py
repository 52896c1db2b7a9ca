"""Python lists: a 3-million-element list of floats and of ints, against ``np.asarray`` and
``torch.tensor`` on the same list (the idioms a user writes by hand).

>>> sorted({c.group for c in cases()})
['lists']
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

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


def _ints() -> list[float]:  # ints, which the type checker counts as floats
    return list(range(-N // 2, N - N // 2))


_CALLS: dict[str, tuple[str, str, Callable[[Any], Any], Callable[[Any], Any]]] = {
    "numpy": ("tb.to_numpy(xs)", "np.asarray(xs)", tb.to_numpy, np.asarray),
    "torch": ("tb.to_torch(xs)", "torch.tensor(xs)", tb.to_torch, torch.tensor),
}


def _case(kind: str, make: Callable[[], list[float]], target: str) -> Case:
    ours, idiom, ours_fn, idiom_fn = _CALLS[target]

    def measure(cfg: Config) -> Comparison:
        xs = make()  # built here and dropped on return: one case's list alive at a time
        return timed(lambda: ours_fn(xs), lambda: idiom_fn(xs))(cfg)

    return Case("lists", f"3M-{kind} list → {target}", ours, idiom, Target("<=", 1.3), measure)


def cases() -> list[Case]:
    """The list cases: floats and ints, to NumPy and to PyTorch."""
    return [
        _case("float", _floats, "numpy"),
        _case("int", _ints, "numpy"),
        _case("float", _floats, "torch"),
        _case("int", _ints, "torch"),
    ]
