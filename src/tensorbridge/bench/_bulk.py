"""Bulk cases: copying conversions at 64 MiB against a plain ``ndarray.copy()`` of the same bytes,
zero-copy conversions at 4 KiB against 1 GiB (O(1)), and the peak memory of copying conversions.

Inputs are built inside each case's ``measure`` and dropped when it returns, so at most one case's
data is alive at a time. The 1 GiB buffer is allocated once per case with ``torch.empty`` and never
written: a zero-copy conversion never touches its pages, so it costs address space, not memory.

>>> sorted({c.group for c in cases()})
['copy', 'memory', 'o(1)']
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
import torch

import tensorbridge as tb

from ._case import Case, Config, Target
from ._harness import Comparison, peak_memory

__all__ = ["cases"]

SMALL_BYTES = 4 << 10
# Peak ÷ (input + output) may exceed 1 by page rounding and allocator headers (a page or two);
# one extra full copy of a 64 MiB input would show as ≥ 1.33.
MEMORY_SLACK = 1.01
# A conversion: (input, the tensorbridge call, a C-contiguous ndarray holding the same bytes).
Setup = Callable[[int], tuple[Any, Callable[[], Any], np.ndarray]]


def _mib(n: int) -> str:
    return f"{n / (1 << 30):g} GiB" if n >= 1 << 30 else f"{n / (1 << 20):g} MiB"


# --- copying conversions -------------------------------------------------------------------


def _big_endian(nbytes: int) -> tuple[Any, Callable[[], Any], np.ndarray]:
    a = np.ones(nbytes // 4, dtype=">f4")
    return a, lambda: tb.to_torch(a), a


def _negative_strides(nbytes: int) -> tuple[Any, Callable[[], Any], np.ndarray]:
    base = np.ones(nbytes // 4, dtype=np.float32)
    a = base[::-1]
    return a, lambda: tb.to_torch(a), base


def _conj(nbytes: int) -> tuple[Any, Callable[[], Any], np.ndarray]:
    t = torch.ones(nbytes // 8, dtype=torch.complex64)
    c = t.conj()
    return c, lambda: tb.to_numpy(c), t.numpy()


def _f64_to_f32(nbytes: int) -> tuple[Any, Callable[[], Any], np.ndarray]:
    t = torch.ones(nbytes // 8, dtype=torch.float64)
    return t, lambda: tb.to_numpy(t, dtype=np.float32), t.numpy()


def _bf16_to_f32(nbytes: int) -> tuple[Any, Callable[[], Any], np.ndarray]:
    t = torch.ones(nbytes // 2, dtype=torch.bfloat16)
    return t, lambda: tb.to_numpy(t, dtype=np.float32), t.view(torch.int16).numpy()


def _np_f64_to_f32(nbytes: int) -> tuple[Any, Callable[[], Any], np.ndarray]:
    a = np.ones(nbytes // 8, dtype=np.float64)
    return a, lambda: tb.to_torch(a, dtype=torch.float32), a


def _np_copy(nbytes: int) -> tuple[Any, Callable[[], Any], np.ndarray]:
    a = np.ones(nbytes // 4, dtype=np.float32)
    return a, lambda: tb.to_torch(a, copy=True), a


COPIES: list[tuple[str, str, Setup]] = [
    ("big-endian ndarray → torch", "tb.to_torch(a)", _big_endian),
    ("negative-stride ndarray → torch", "tb.to_torch(a[::-1])", _negative_strides),
    ("conjugate-bit tensor → numpy", "tb.to_numpy(t.conj())", _conj),
    ("float64 tensor → float32 ndarray", "tb.to_numpy(t, dtype=np.float32)", _f64_to_f32),
    ("bfloat16 tensor → float32 ndarray", "tb.to_numpy(t, dtype=np.float32)", _bf16_to_f32),
    ("float64 ndarray → float32 tensor", "tb.to_torch(a, dtype=torch.float32)", _np_f64_to_f32),
    ("ndarray → torch, copy=True", "tb.to_torch(a, copy=True)", _np_copy),
]


def _copy_measure(setup: Setup) -> Callable[[Config], Comparison]:
    def measure(cfg: Config) -> Comparison:
        _, ours, same_bytes = setup(cfg.bulk_bytes)
        c = cfg.compare(ours, lambda: same_bytes.copy())
        gbs = same_bytes.nbytes / c.a_s / 1e9
        return dataclasses.replace(c, extra={"input_GB_per_s": gbs})

    return measure


def _transpose(cfg: Config) -> Comparison:
    side = int((cfg.bulk_bytes // 4) ** 0.5)
    t = torch.ones(side, side)
    tt = t.T
    c = cfg.compare(lambda: tb.to_numpy(tt, copy=True), lambda: tt.contiguous())
    return dataclasses.replace(c, extra={"input_GB_per_s": t.nbytes / c.a_s / 1e9})


def _copies(cfg: Config) -> list[Case]:
    size = _mib(cfg.bulk_bytes)
    out = [
        Case(
            "copy",
            f"{label}, {size}",
            ours,
            "a.copy() of the same bytes",
            Target("<=", 1.25),
            _copy_measure(setup),
        )
        for label, ours, setup in COPIES
    ]
    out.append(
        Case(
            "copy",
            f"transposed tensor → numpy copy, {size}",
            "tb.to_numpy(t.T, copy=True)",
            "t.T.contiguous()",
            Target("<=", 1.0),
            _transpose,
        )
    )
    return out


# --- zero-copy conversions are O(1) --------------------------------------------------------

ZERO_COPY: list[tuple[str, str, Callable[[torch.Tensor], Any], Callable[[Any], Any]]] = [
    ("float32 tensor → numpy", "tb.to_numpy(t)", lambda u: u.view(torch.float32), tb.to_numpy),
    (
        "float32 ndarray → torch",
        "tb.to_torch(a)",
        lambda u: u.view(torch.float32).numpy(),
        tb.to_torch,
    ),
    ("bfloat16 tensor → numpy", "tb.to_numpy(t)", lambda u: u.view(torch.bfloat16), tb.to_numpy),
    (
        "float8_e4m3fn tensor → numpy",
        "tb.to_numpy(t)",
        lambda u: u.view(torch.float8_e4m3fn),
        tb.to_numpy,
    ),
    (
        "ml_dtypes.bfloat16 ndarray → torch",
        "tb.to_torch(a)",
        lambda u: u.numpy().view(ml_dtypes.bfloat16),
        tb.to_torch,
    ),
]


def _scaling_measure(
    view: Callable[[torch.Tensor], Any], convert: Callable[[Any], Any]
) -> Callable[[Config], Comparison]:
    def measure(cfg: Config) -> Comparison:
        big = view(torch.empty(cfg.big_bytes, dtype=torch.uint8))  # never written: no RSS
        small = view(torch.empty(SMALL_BYTES, dtype=torch.uint8))
        if not tb.shares_memory(convert(big), big):
            raise AssertionError("the big conversion copied: it is not zero-copy")
        return cfg.compare(lambda: convert(big), lambda: convert(small))

    return measure


def _scaling(cfg: Config) -> list[Case]:
    big = _mib(cfg.big_bytes)
    return [
        Case(
            "o(1)",
            f"{label}, {big} vs 4 KiB",
            ours,
            "the same call at 4 KiB",
            Target("<=", 1.2),
            _scaling_measure(view, convert),
            ratio="scaling",
        )
        for label, ours, view, convert in ZERO_COPY
    ]


# --- peak memory ---------------------------------------------------------------------------


def _memory_measure(setup: Setup) -> Callable[[Config], Comparison]:
    def measure(cfg: Config) -> Comparison:
        _, ours, same_bytes = setup(cfg.bulk_bytes)
        out_bytes = _nbytes(ours())  # also warms up the code path, so it allocates nothing new
        return memory_comparison(ours, same_bytes.nbytes, out_bytes)

    return measure


def memory_comparison(
    ours: Callable[[], Any],
    in_bytes: int,
    out_bytes: int,
    before_each: Callable[[], None] | None = None,
) -> Comparison:
    """Peak memory of ``ours`` in five calls: ratios (input + extra peak) ÷ (input + output).

    ``before_each`` runs before every call (outside the measurement)."""
    ratios, peaks = [], []
    method = "rss"
    for _ in range(5):
        if before_each is not None:
            before_each()
        extra, method = peak_memory(ours)
        peaks.append(extra)
        ratios.append((in_bytes + extra) / (in_bytes + out_bytes))
    return Comparison(
        ratios=tuple(ratios),
        a_s=0.0,
        b_s=0.0,
        n_a=1,
        n_b=0,
        extra={
            "input_MiB": in_bytes / (1 << 20),
            "output_MiB": out_bytes / (1 << 20),
            "extra_peak_MiB": statistics.median(peaks) / (1 << 20),
            "rss": float(method == "rss"),
        },
    )


def _nbytes(x: Any) -> int:
    if isinstance(x, torch.Tensor):
        return x.numel() * x.element_size()
    return int(np.asarray(x).nbytes)


def _memory(cfg: Config) -> list[Case]:
    size = _mib(cfg.bulk_bytes)
    return [
        Case(
            "memory",
            f"peak: {label}, {size}",
            ours,
            "input + output bytes",
            Target("<=", MEMORY_SLACK),
            _memory_measure(setup),
            ratio="memory",
        )
        for label, ours, setup in COPIES
    ]


def cases(cfg: Config | None = None) -> list[Case]:
    """Bulk copies ("copy"), O(1) zero-copy scaling ("o(1)") and peak memory ("memory")."""
    cfg = cfg or Config()
    return _copies(cfg) + _scaling(cfg) + _memory(cfg)
