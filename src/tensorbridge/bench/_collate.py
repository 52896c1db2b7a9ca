"""Collate cases: ``tb.collate`` against ``torch.utils.data.default_collate`` on the same samples,
in the same run — image batches, dicts of small fields, the same dicts with read-only and
negative-stride arrays (which default_collate warns on or refuses: it is timed on plain copies),
and a DataLoader with two workers. Each reports the bytes ``explain`` says a batch copies.

>>> sorted({c.group for c in cases()})
['collate']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

import tensorbridge as tb

from ._case import Case, Config, Target
from ._harness import Comparison, compare

__all__ = ["cases"]

IMAGES, IMAGE_SHAPE = 64, (3, 224, 224)
DICTS, FIELDS, FIELD_SIZE = 256, 8, 16
LOADER_SAMPLES, LOADER_BATCH, LOADER_SHAPE = 512, 64, (3, 64, 64)


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, IMAGE_SHAPE, dtype=np.uint8) for _ in range(IMAGES)]


def _dicts() -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [
        {f"f{j}": rng.standard_normal(FIELD_SIZE).astype(np.float32) for j in range(FIELDS)}
        for _ in range(DICTS)
    ]


def _fixable(samples: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """The same values, half of them read-only, the other half negative-stride views."""
    out = []
    for i, s in enumerate(samples):
        fixed = {}
        for k, v in s.items():
            if i % 2:
                v = v.copy()
                v.flags.writeable = False
            else:
                v = v[::-1].copy()[::-1]
            fixed[k] = v
        out.append(fixed)
    return out


def _against_default(
    make: Callable[[], list[Any]], plain: Callable[[list[Any]], list[Any]] | None = None
) -> Callable[[Config], Comparison]:
    """``collate(samples)`` vs ``default_collate`` (on ``plain(samples)`` when given)."""

    def measure(cfg: Config) -> Comparison:
        from torch.utils.data import default_collate

        samples = make()
        theirs = samples if plain is None else plain(samples)
        c = cfg.compare(lambda: tb.collate(samples), lambda: default_collate(theirs))
        copied = tb.explain(samples, to="collate").bytes_copied
        return dataclasses.replace(c, extra={"bytes_copied": float(copied)})

    return measure


def _plain_copies(samples: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    return [{k: np.ascontiguousarray(v).copy() for k, v in s.items()} for s in samples]


def _loader(cfg: Config) -> Comparison:
    """One epoch of a DataLoader with two persistent workers, tb.collate vs default_collate."""
    from torch.utils.data import DataLoader, default_collate

    rng = np.random.default_rng(2)
    data = [
        {"image": rng.integers(0, 256, LOADER_SHAPE, dtype=np.uint8), "label": i}
        for i in range(LOADER_SAMPLES)
    ]

    def loader(collate_fn: Callable[[list[Any]], Any]) -> DataLoader:
        return DataLoader(
            data,  # type: ignore[arg-type]
            batch_size=LOADER_BATCH,
            num_workers=2,
            persistent_workers=True,
            collate_fn=collate_fn,
        )

    ours, theirs = loader(tb.collate), loader(default_collate)

    def epoch(dl: DataLoader) -> Callable[[], None]:
        def run() -> None:
            for _ in dl:
                pass

        return run

    # One epoch per batch of calls (tens of milliseconds); workers' scheduling makes single
    # epochs vary widely, so the median over the run's rounds is the figure.
    c = compare(
        epoch(ours), epoch(theirs), rounds=cfg.rounds, round_s=0, n_a=1, n_b=1, repeats=cfg.repeats
    )
    copied = tb.explain(data[:LOADER_BATCH], to="collate").bytes_copied
    del ours, theirs  # shuts the persistent workers down
    return dataclasses.replace(c, extra={"bytes_copied": float(copied)})


def cases() -> list[Case]:
    """The collate cases, each timed against default_collate in the same run."""
    return [
        Case(
            "collate",
            f"{IMAGES} × {'×'.join(map(str, IMAGE_SHAPE))} uint8 arrays vs default_collate",
            "tb.collate(samples)",
            "default_collate(samples)",
            Target("<=", 1.0),
            _against_default(_images),
        ),
        Case(
            "collate",
            f"{DICTS} dicts of {FIELDS} float32[{FIELD_SIZE}] fields vs default_collate",
            "tb.collate(samples)",
            "default_collate(samples)",
            Target("<=", 1.0),
            _against_default(_dicts),
        ),
        Case(
            "collate",
            "same, read-only / negative-stride vs default_collate on plain copies",
            "tb.collate(fixable)",
            "default_collate(plain copies)",
            Target("<=", 1.2),
            _against_default(lambda: _fixable(_dicts()), _plain_copies),
        ),
        Case(
            "collate",
            f"DataLoader, 2 workers, {LOADER_SAMPLES} samples: epoch vs default_collate",
            "DataLoader(..., collate_fn=tb.collate)",
            "DataLoader(..., collate_fn=default_collate)",
            Target("<=", 1.0),
            _loader,
        ),
    ]
