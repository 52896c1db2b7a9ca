"""scipy.sparse matrices and arrays, every format.

``to_torch`` gives a torch sparse tensor with the same stored values and indices: CSR, CSC and
BSR keep their layout, every other format (COO, DOK, LIL, DIA) becomes COO. It is built from
copies of scipy's arrays (indices as int64), so it is one copy and never shares memory.
``to_numpy`` densifies (``.toarray()``, a copy). A scipy object is recognised only where scipy
is already imported.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import numpy as np
import torch

from .._dtypes import by_numpy
from .._errors import LossyConversionError, describe
from .._plan import Step
from . import Adapter
from ._common import SIZE, adapted, fixed, guarded, tensor_bytes


def recognise(cls: type) -> Adapter | None:
    sparse = sys.modules.get("scipy.sparse")
    if sparse is not None and issubclass(cls, sparse.sparray | sparse.spmatrix):
        return Adapter(f"scipy.sparse.{cls.__name__}", "leaf", leaf=_sparse)
    return None


def _index(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.int64))


def _values(m: Any, data: np.ndarray) -> torch.Tensor:
    row = by_numpy(data.dtype)
    if row is None or not row.native:
        raise LossyConversionError(
            f"{describe(m)}: PyTorch has no {data.dtype} values (long double), and float64 "
            f"would drop precision; cast it first, m.astype(np.float64), to accept the rounding"
        )
    return torch.from_numpy(np.array(data))


def _to_torch_sparse(m: Any) -> tuple[torch.Tensor, str]:
    fmt = m.format
    shape = tuple(m.shape)
    with warnings.catch_warnings():  # "sparse CSR/CSC/BSR support is in beta"
        warnings.simplefilter("ignore")
        if fmt in ("csr", "bsr"):
            build = torch.sparse_csr_tensor if fmt == "csr" else torch.sparse_bsr_tensor
            t = build(_index(m.indptr), _index(m.indices), _values(m, m.data), size=shape)
            return t, fmt
        if fmt == "csc":
            ccol, row = _index(m.indptr), _index(m.indices)
            return torch.sparse_csc_tensor(ccol, row, _values(m, m.data), size=shape), fmt
        coo = m if fmt == "coo" else m.tocoo()
        coords = getattr(coo, "coords", None) or (coo.row, coo.col)
        indices = torch.from_numpy(np.vstack([np.asarray(c, dtype=np.int64) for c in coords]))
        return torch.sparse_coo_tensor(indices, _values(m, coo.data), size=shape), "coo"


def _sparse(m: Any, o: Any) -> tuple[Step, Any]:
    name = type(m).__name__
    if o.target == "numpy":
        dense = guarded(m, "toarray()", m.toarray)
        why = f"{name} is sparse (its values are stored densely)"
        return adapted(f"densify {name} ({SIZE})", dense, why)
    t, layout = guarded(m, "its conversion to a torch sparse tensor", lambda: _to_torch_sparse(m))
    parts = (t._indices(), t._values()) if layout == "coo" else (*_compressed(t), t.values())
    nbytes = sum(tensor_bytes(x) for x in parts)
    why = f"{name}'s arrays are copied into a torch sparse tensor (indices as int64)"
    return fixed(f"copy {name} into a torch sparse_{layout} tensor", t, nbytes, why)


def _compressed(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if t.layout in (torch.sparse_csr, torch.sparse_bsr):
        return t.crow_indices(), t.col_indices()
    return t.ccol_indices(), t.row_indices()
