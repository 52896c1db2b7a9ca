"""Single-leaf cases: plain conversions and inputs that need a fix, small enough that the cost
measured is the per-call overhead, not the data.

>>> [c.group for c in cases()][:1]
['leaf']
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import torch

import tensorbridge as tb

from ._case import Case, Target, timed

__all__ = ["cases"]

N = 16  # elements per leaf: small, so the overhead is what is measured


# Both sides of every case are lambdas, so the call overhead of the wrapper cancels out.


def _plain() -> list[Case]:
    t = torch.ones(N)
    a = np.ones(N, dtype=np.float32)
    return [
        Case(
            "leaf",
            "to_numpy(t) vs .detach().cpu().numpy()",
            "tb.to_numpy(t)",
            "t.detach().cpu().numpy()",
            Target("<=", 0.8),
            timed(lambda: tb.to_numpy(t), lambda: t.detach().cpu().numpy()),
        ),
        Case(
            "leaf",
            "to_numpy(t) vs t.numpy()",
            "tb.to_numpy(t)",
            "t.numpy()",
            Target("<=", 1.3),
            timed(lambda: tb.to_numpy(t), lambda: t.numpy()),
        ),
        Case(
            "leaf",
            "to_torch(a) vs torch.from_numpy(a)",
            "tb.to_torch(a)",
            "torch.from_numpy(a)",
            Target("<=", 1.3),
            timed(lambda: tb.to_torch(a), lambda: torch.from_numpy(a)),
        ),
    ]


def _fixes() -> list[Case]:
    fix = Target("<=", 2.0)
    grad = torch.ones(N, requires_grad=True)
    bf16 = torch.ones(N, dtype=torch.bfloat16)
    f8 = torch.ones(N, dtype=torch.float8_e4m3fn)
    conj = torch.ones(N, dtype=torch.complex64).conj()
    f64 = torch.ones(N, dtype=torch.float64)
    neg = np.ones(N, dtype=np.float32)[::-1]
    big_endian = np.ones(N, dtype=">f4")
    np_bf16 = np.ones(N, dtype=ml_dtypes.bfloat16)
    return [
        Case(
            "fix",
            "requires_grad tensor → numpy",
            "tb.to_numpy(t)",
            "t.detach().numpy()",
            fix,
            timed(lambda: tb.to_numpy(grad), lambda: grad.detach().numpy()),
        ),
        Case(
            "fix",
            "bfloat16 tensor → numpy (view)",
            "tb.to_numpy(t)",
            "t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)",
            fix,
            timed(
                lambda: tb.to_numpy(bf16),
                lambda: bf16.view(torch.int16).numpy().view(ml_dtypes.bfloat16),
            ),
        ),
        Case(
            "fix",
            "float8_e4m3fn tensor → numpy (view)",
            "tb.to_numpy(t)",
            "t.view(torch.uint8).numpy().view(ml_dtypes.float8_e4m3fn)",
            fix,
            timed(
                lambda: tb.to_numpy(f8),
                lambda: f8.view(torch.uint8).numpy().view(ml_dtypes.float8_e4m3fn),
            ),
        ),
        Case(
            "fix",
            "conjugate-bit tensor → numpy",
            "tb.to_numpy(t)",
            "t.resolve_conj().numpy()",
            fix,
            timed(lambda: tb.to_numpy(conj), lambda: conj.resolve_conj().numpy()),
        ),
        Case(
            "fix",
            "float64 tensor → float32 ndarray",
            "tb.to_numpy(t, dtype=np.float32)",
            "t.numpy().astype(np.float32)",
            fix,
            timed(
                lambda: tb.to_numpy(f64, dtype=np.float32),
                lambda: f64.numpy().astype(np.float32),
            ),
        ),
        Case(
            "fix",
            "bfloat16 tensor → float32 ndarray",
            "tb.to_numpy(t, dtype=np.float32)",
            "t.float().numpy()",
            fix,
            timed(lambda: tb.to_numpy(bf16, dtype=np.float32), lambda: bf16.float().numpy()),
        ),
        Case(
            "fix",
            "negative-stride ndarray → torch",
            "tb.to_torch(a[::-1])",
            "torch.from_numpy(a[::-1].copy())",
            fix,
            timed(lambda: tb.to_torch(neg), lambda: torch.from_numpy(neg.copy())),
        ),
        Case(
            "fix",
            "big-endian ndarray → torch",
            "tb.to_torch(a)",
            "torch.from_numpy(a.astype(np.float32))",
            fix,
            timed(
                lambda: tb.to_torch(big_endian),
                lambda: torch.from_numpy(big_endian.astype(np.float32)),
            ),
        ),
        Case(
            "fix",
            "ml_dtypes.bfloat16 ndarray → torch (view)",
            "tb.to_torch(a)",
            "torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)",
            fix,
            timed(
                lambda: tb.to_torch(np_bf16),
                lambda: torch.from_numpy(np_bf16.view(np.int16)).view(torch.bfloat16),
            ),
        ),
    ]


def _item() -> list[Case]:
    t = torch.tensor(2.5)
    return [
        Case(
            "leaf",
            "item(t) vs t.item()",
            "tb.item(t)",
            "t.item()",
            Target("<=", 2.0),
            timed(lambda: tb.item(t), lambda: t.item()),
        )
    ]


def cases() -> list[Case]:
    """The single-leaf cases: plain conversions ("leaf") and inputs needing a fix ("fix")."""
    return _plain() + _item() + _fixes()
