"""Accelerator cases: whole containers between host and GPU against the per-leaf idioms.

Each case says SKIP where no CUDA device is present. Every timed call ends with
``torch.cuda.synchronize()`` on both sides, so a ratio compares finished work.

- 1,000 small leaves, device → host and host → device: target ≥ 5× faster than per-leaf
  ``.cpu().numpy()`` / ``.to("cuda")`` (a ratio ≤ 0.20);
- 10 large leaves (64 MiB each, 16 MiB in ``--quick``), both ways: target ≥ 85 % of the pinned
  bandwidth measured in the same run with one ``copy_`` of the same bytes (a ratio ≤ 1/0.85).

The sweeps behind the transfer thresholds are in ``benchmarks/bench_transfer.py``.

>>> [c.name for c in cases(Config())][:1]
['1,000 small leaves cuda → numpy vs per-leaf .cpu().numpy()']
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

import tensorbridge as tb

from ._case import Case, Config, Skip, Target
from ._harness import Comparison

__all__ = ["cases"]

_SMALL = Target("<=", 0.2)  # ≥ 5× faster
_BANDWIDTH = Target("<=", 1 / 0.85)  # ≥ 85 % of one pinned copy of the same bytes


def _synced(fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        out = fn()
        torch.cuda.synchronize()
        return out

    return run


def _need_cuda() -> None:
    if not torch.cuda.is_available():
        raise Skip("no CUDA device here")


def _small_d2h(cfg: Config) -> Comparison:
    _need_cuda()
    tensors = [torch.randn(16, 16, device="cuda") for _ in range(1000)]
    return cfg.compare(
        _synced(lambda: tb.to_numpy(tensors)),
        _synced(lambda: [t.cpu().numpy() for t in tensors]),
    )


def _small_h2d(cfg: Config) -> Comparison:
    _need_cuda()
    arrays = [np.random.default_rng(i).standard_normal((16, 16)) for i in range(1000)]
    return cfg.compare(
        _synced(lambda: tb.to_torch(arrays, device="cuda")),
        _synced(lambda: [torch.from_numpy(a).to("cuda") for a in arrays]),
    )


def _leaf_bytes(cfg: Config) -> int:
    return (16 if cfg.quick else 64) << 20


def _large_d2h(cfg: Config) -> Comparison:
    _need_cuda()
    n = _leaf_bytes(cfg)
    tensors = [torch.randn(n // 4, device="cuda") for _ in range(10)]
    device = torch.empty(10 * n, dtype=torch.uint8, device="cuda")
    host = torch.empty(10 * n, dtype=torch.uint8, pin_memory=True)
    return cfg.compare(
        _synced(lambda: tb.to_numpy(tensors)),
        _synced(lambda: host.copy_(device, non_blocking=True)),
    )


def _large_h2d(cfg: Config) -> Comparison:
    _need_cuda()
    n = _leaf_bytes(cfg)
    arrays = [np.random.default_rng(i).standard_normal(n // 8) for i in range(10)]
    host = torch.empty(10 * n, dtype=torch.uint8, pin_memory=True)
    device = torch.empty(10 * n, dtype=torch.uint8, device="cuda")
    return cfg.compare(
        _synced(lambda: tb.to_torch(arrays, device="cuda")),
        _synced(lambda: device.copy_(host, non_blocking=True)),
    )


def cases(cfg: Config) -> list[Case]:
    """The accelerator cases (each SKIPs without CUDA)."""
    return [
        Case(
            "gpu",
            "1,000 small leaves cuda → numpy vs per-leaf .cpu().numpy()",
            "tb.to_numpy(tensors)",
            "[t.cpu().numpy() for t in tensors]",
            _SMALL,
            _small_d2h,
        ),
        Case(
            "gpu",
            "1,000 small arrays → cuda vs per-leaf .to('cuda')",
            "tb.to_torch(arrays, device='cuda')",
            "[torch.from_numpy(a).to('cuda') for a in arrays]",
            _SMALL,
            _small_h2d,
        ),
        Case(
            "gpu",
            "10 large tensors cuda → numpy vs one pinned copy of the same bytes",
            "tb.to_numpy(tensors)",
            "host.copy_(device, non_blocking=True)",
            _BANDWIDTH,
            _large_d2h,
        ),
        Case(
            "gpu",
            "10 large arrays → cuda vs one pinned copy of the same bytes",
            "tb.to_torch(arrays, device='cuda')",
            "device.copy_(host, non_blocking=True)",
            _BANDWIDTH,
            _large_h2d,
        ),
    ]
