"""``shares_memory``: whether two tensors or arrays overlap in memory, exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from . import _foreign
from ._adapt import import_dlpack, producer_array
from ._errors import ConversionError, UnsupportedInputError, describe
from ._kinds import Kind, kind_of
from ._options import NUMPY_DEFAULT
from ._plan import LeafPlan


def _storage_bytes(t: torch.Tensor) -> np.ndarray:
    """A uint8 ndarray over the whole storage of a CPU tensor (no copy)."""
    storage = t.untyped_storage()
    whole = torch.empty(0, dtype=torch.uint8)
    whole.set_(storage, 0, (storage.nbytes(),), (1,))
    return whole.numpy()


def _footprint(t: torch.Tensor) -> np.ndarray:
    """An ndarray over exactly the bytes a CPU tensor addresses (same offset, shape, strides)."""
    size = t.element_size()
    return np.ndarray(
        shape=tuple(t.shape),
        dtype=np.dtype((np.void, size)),
        buffer=_storage_bytes(t),
        offset=t.storage_offset() * size,
        strides=tuple(s * size for s in t.stride()),
    )


def _as_array(x: Any) -> np.ndarray | torch.Tensor | None:
    """A NumPy view of ``x``'s memory, a device tensor, or None when it owns no memory."""
    kind = kind_of(x)
    if kind is Kind.TORCH:
        t = x.detach()
        if t.is_nested or t.is_meta or t._is_zerotensor() or t.numel() == 0:
            return None  # no memory of its own to compare
        if t.layout is not torch.strided:
            t = t._values() if t.layout is torch.sparse_coo else t.values()
        return _footprint(t) if t.device.type == "cpu" else t
    if kind is Kind.NUMPY:
        return x
    if kind in (Kind.NUMPY_SCALAR, Kind.PY_SCALAR, Kind.STR, Kind.NONE, Kind.SEQUENCE):
        return None  # values, not memory
    if kind in (Kind.ARRAY_LIKE, Kind.BUFFER, Kind.BYTES):
        if kind is not Kind.ARRAY_LIKE:
            return np.asarray(memoryview(x))
        return producer_array(x)[0]
    if kind is Kind.DLPACK:
        value = import_dlpack(x)
        return value if isinstance(value, np.ndarray) else _as_array(value)
    if kind is Kind.FOREIGN:  # its adapter's array form (a DataFrame's values, ...)
        adapted = _foreign.leaf(x, NUMPY_DEFAULT)
        return None if isinstance(adapted, LeafPlan) else _as_array(adapted[1])
    raise UnsupportedInputError(f"shares_memory() compares tensors and arrays, not {describe(x)}")


def _read(x: Any) -> np.ndarray | torch.Tensor | None:
    """``_as_array``, with an exception from the object's own protocol as one error."""
    try:
        return _as_array(x)
    except ConversionError:
        raise
    except Exception as e:
        raise UnsupportedInputError(
            f"{describe(x)} raised {type(e).__name__} while giving its memory ({e}); check the "
            f"object, or convert it with its own library first"
        ) from e


def _device_overlap(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.device != b.device or a.numel() == 0 or b.numel() == 0:
        return False
    if a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr():
        return False

    def extent(t: torch.Tensor) -> tuple[int, int]:
        start = t.data_ptr()
        last = sum((n - 1) * s for n, s in zip(t.shape, t.stride(), strict=True)) * t.element_size()
        return start, start + last + t.element_size()

    (a0, a1), (b0, b1) = extent(a), extent(b)
    return a0 < b1 and b0 < a1


def shares_memory(a: Any, b: Any, /) -> bool:
    """Whether ``a`` and ``b`` (tensors or arrays, any mix) address a common byte.

    Exact for CPU memory, whatever the strides; for two tensors on one accelerator, whether
    their byte ranges overlap.

    >>> import torch
    >>> t = torch.arange(6)
    >>> shares_memory(t[::2], t.numpy()[1::2]), shares_memory(t, t.numpy()[5:])
    (False, True)
    """
    x, y = _read(a), _read(b)
    if x is None or y is None:
        return False
    if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            return _device_overlap(x, y)
        return False  # one on an accelerator, one in host memory
    return bool(np.shares_memory(x, y))  # the default max_work solves exactly
