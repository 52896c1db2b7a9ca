"""Container cases: 10,000 small leaves flat and nested, ``explain`` on them, and peer libraries
(imported only when installed; they are never dependencies of tensorbridge).

>>> sorted({c.group for c in cases()})
['explain', 'peer', 'tree']
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np
import optree
import torch

import tensorbridge as tb

from ._case import Case, Config, Skip, Target
from ._harness import Comparison

__all__ = ["cases"]

LEAVES = 10_000
OUTER = INNER = 100  # nested: OUTER dicts of INNER leaves each


@functools.cache
def flat_tensors() -> dict[str, torch.Tensor]:
    """``{"k0": tensor, ...}``: 10,000 four-element float32 tensors."""
    return {f"k{i}": torch.ones(4) for i in range(LEAVES)}


@functools.cache
def nested_tensors() -> dict[str, dict[str, torch.Tensor]]:
    """``{"g0": {"k0": tensor, ...}, ...}``: 100 dicts of 100 four-element tensors."""
    return {f"g{i}": {f"k{j}": torch.ones(4) for j in range(INNER)} for i in range(OUTER)}


@functools.cache
def flat_arrays() -> dict[str, np.ndarray]:
    """``{"k0": ndarray, ...}``: 10,000 four-element float32 arrays."""
    return {f"k{i}": np.ones(4, dtype=np.float32) for i in range(LEAVES)}


def _leaf(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _lazy(
    make: Callable[[], Any], ours: Callable[[Any], object], idiom: Callable[[Any], object]
) -> Callable[[Config], Comparison]:
    """A measure function building its input on first use (not when the case list is made)."""

    def measure(cfg: Config) -> Comparison:
        x = make()
        return cfg.compare(lambda: ours(x), lambda: idiom(x))

    return measure


def _trees() -> list[Case]:
    flat_rule, tree_map_rule = Target("<=", 0.7), Target("<=", 1.0)
    return [
        Case(
            "tree",
            "dict of 10,000 tensors → numpy vs comprehension",
            "tb.to_numpy(d)",
            "{k: v.detach().cpu().numpy() for k, v in d.items()}",
            flat_rule,
            _lazy(flat_tensors, tb.to_numpy, lambda d: {k: _leaf(v) for k, v in d.items()}),
        ),
        Case(
            "tree",
            "nested 100×100 tensors → numpy vs comprehension",
            "tb.to_numpy(d)",
            "{g: {k: v.detach().cpu().numpy() ...} ...}",
            flat_rule,
            _lazy(
                nested_tensors,
                tb.to_numpy,
                lambda d: {g: {k: _leaf(v) for k, v in s.items()} for g, s in d.items()},
            ),
        ),
        Case(
            "tree",
            "dict of 10,000 tensors → numpy vs optree.tree_map",
            "tb.to_numpy(d)",
            "optree.tree_map(lambda t: t.detach().cpu().numpy(), d)",
            tree_map_rule,
            _lazy(flat_tensors, tb.to_numpy, lambda d: optree.tree_map(_leaf, d)),
        ),
        Case(
            "tree",
            "nested 100×100 tensors → numpy vs optree.tree_map",
            "tb.to_numpy(d)",
            "optree.tree_map(lambda t: t.detach().cpu().numpy(), d)",
            tree_map_rule,
            _lazy(nested_tensors, tb.to_numpy, lambda d: optree.tree_map(_leaf, d)),
        ),
        Case(
            "tree",
            "dict of 10,000 ndarrays → torch vs comprehension",
            "tb.to_torch(d)",
            "{k: torch.from_numpy(v) for k, v in d.items()}",
            Target("<=", 1.3),
            _lazy(
                flat_arrays,
                tb.to_torch,
                lambda d: {k: torch.from_numpy(v) for k, v in d.items()},
            ),
        ),
    ]


def _explain() -> list[Case]:
    return [
        Case(
            "explain",
            "explain(dict of 10,000 tensors) vs the conversion",
            "tb.explain(d)",
            "tb.to_numpy(d)",
            Target("<=", 2.0),
            _lazy(flat_tensors, tb.explain, tb.to_numpy),
        )
    ]


def _lightning(tree: Callable[[], Any]) -> Callable[[Config], Comparison]:
    def measure(cfg: Config) -> Comparison:
        if importlib.util.find_spec("lightning_utilities") is None:
            raise Skip("lightning-utilities is not installed (pip install 'tensorbridge[bench]')")
        from lightning_utilities.core.apply_func import apply_to_collection

        d = tree()
        return cfg.compare(
            lambda: tb.to_numpy(d), lambda: apply_to_collection(d, torch.Tensor, _leaf)
        )

    return measure


def _transformers(cfg: Config) -> Comparison:
    # transformers pulls in tokenizers and huggingface-hub: measured only where already installed.
    if importlib.util.find_spec("transformers") is None:
        raise Skip("transformers is not installed (too heavy to be a benchmark extra)")
    from transformers.utils.generic import to_numpy as hf_to_numpy

    d = flat_tensors()
    return cfg.compare(lambda: tb.to_numpy(d), lambda: hf_to_numpy(d))


def _peers() -> list[Case]:
    faster = Target("<=", 1.0)
    return [
        Case(
            "peer",
            "dict of 10,000 tensors vs lightning apply_to_collection",
            "tb.to_numpy(d)",
            "apply_to_collection(d, torch.Tensor, lambda t: t.detach().cpu().numpy())",
            faster,
            _lightning(flat_tensors),
        ),
        Case(
            "peer",
            "nested 100×100 tensors vs lightning apply_to_collection",
            "tb.to_numpy(d)",
            "apply_to_collection(d, torch.Tensor, lambda t: t.detach().cpu().numpy())",
            faster,
            _lightning(nested_tensors),
        ),
        Case(
            "peer",
            "dict of 10,000 tensors vs transformers to_numpy",
            "tb.to_numpy(d)",
            "transformers.utils.generic.to_numpy(d)",
            faster,
            _transformers,
        ),
    ]


def cases() -> list[Case]:
    """The container cases ("tree"), ``explain`` on a container, and the peers."""
    return _trees() + _explain() + _peers()
