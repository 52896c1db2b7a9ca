"""What kind of input an object is, decided once per type and cached.

Objects of the rest of the ecosystem (pandas, xarray, scipy.sparse, h5py, tensor subclasses,
``PackedSequence``, refused objects) are claimed first by their adapter in ``_foreign``; other
libraries (JAX, CuPy, TensorFlow, PIL) are recognised by the protocols they implement
(``__dlpack__``, ``__array_interface__``, ``__array__``, the buffer protocol). None is imported.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import optree
import torch

from . import _foreign

NAMESPACE = "tensorbridge"  # optree namespace: nodes registered here (or globally) are walked


class Kind:
    """The kinds, as interned strings: cheap to hash in the per-leaf set lookups."""

    TORCH = "torch.Tensor"
    NUMPY = "numpy.ndarray"
    NUMPY_SCALAR = "numpy scalar"
    PY_SCALAR = "Python number"
    SEQUENCE = "list or tuple"
    STR = "str"
    BYTES = "bytes"
    NONE = "None"
    NODE = "container"
    MAPPING = "mapping"
    DATACLASS = "dataclass"
    DLPACK = "DLPack producer"
    ARRAY_LIKE = "array-protocol object"
    BUFFER = "buffer-protocol object"
    UNKNOWN = "unknown object"
    FOREIGN = "foreign array"  # an adapter in _foreign converts it (pandas, scipy.sparse, ...)
    FOREIGN_NODE = "foreign container"  # an adapter walks it (xarray.Dataset, h5py.Group, ...)
    REFUSED = "refused object"  # an adapter refuses it with its fix (generators, nn.Module, ...)


_ROLES = {"leaf": Kind.FOREIGN, "container": Kind.FOREIGN_NODE, "refused": Kind.REFUSED}


_cache: dict[type, str] = {}
_lock = threading.Lock()
# An unknown type may be registered with optree later, so it is looked at again each time;
# every other answer (dataclasses and mappings too, which are walked either way) is cached.
_UNCACHED = frozenset({Kind.UNKNOWN})


def _has_buffer(obj: Any) -> bool:
    try:
        memoryview(obj).release()
    except TypeError:
        return False
    return True


def _classify(obj: Any) -> str:
    try:
        return _classify_type(obj)
    except Exception:  # a property of the object's own that raises: nothing to convert
        return Kind.UNKNOWN


def _classify_type(obj: Any) -> str:
    cls = type(obj)
    adapter = _foreign.adapter_for(cls)  # ecosystem objects first: no registration changes them
    if adapter is not None:
        return _ROLES[adapter.role]
    if issubclass(cls, torch.Tensor):
        return Kind.TORCH
    if issubclass(cls, np.ndarray):
        return Kind.NUMPY
    if issubclass(cls, np.generic):
        return Kind.NUMPY_SCALAR
    if issubclass(cls, (bool, int, float, complex)):
        return Kind.PY_SCALAR
    if issubclass(cls, str):
        return Kind.STR
    if issubclass(cls, (bytes, bytearray)):
        return Kind.BYTES
    if obj is None:
        return Kind.NONE
    if cls is list or cls is tuple or issubclass(cls, torch.Size):
        return Kind.SEQUENCE  # torch.Size is a sequence of integers, whoever registers it
    if optree.register_pytree_node.get(cls, namespace=NAMESPACE) is not None:
        return Kind.NODE  # registered in our namespace or the global one (optree's public API)
    if issubclass(cls, (list, tuple)):
        return Kind.SEQUENCE  # e.g. torch.Size; namedtuples are optree nodes, caught above
    if isinstance(obj, Mapping):
        return Kind.MAPPING
    if dataclasses.is_dataclass(cls):
        return Kind.DATACLASS
    if hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__"):
        return Kind.DLPACK
    if any(hasattr(obj, a) for a in ("__array_interface__", "__array_struct__", "__array__")):
        return Kind.ARRAY_LIKE
    if _has_buffer(obj):
        return Kind.BUFFER
    return Kind.UNKNOWN


def kind_of(obj: Any) -> str:
    """The kind of ``obj``: one dict lookup for every type seen before.

    >>> kind_of(np.zeros(2)), kind_of([1, 2]), kind_of("a")
    ('numpy.ndarray', 'list or tuple', 'str')
    """
    kind = _cache.get(type(obj))
    if kind is None:
        kind = _classify(obj)
        if kind not in _UNCACHED:
            with _lock:
                _cache[type(obj)] = kind
    return kind


LEAF_KINDS = frozenset(
    {
        Kind.TORCH,
        Kind.NUMPY,
        Kind.NUMPY_SCALAR,
        Kind.DLPACK,
        Kind.ARRAY_LIKE,
        Kind.BUFFER,
        Kind.FOREIGN,
    }
)
"""Kinds converted wherever they appear; Python numbers, str, bytes and None pass through
unchanged inside containers and convert (or are refused) only at the top level."""

CONTAINER_KINDS = frozenset(
    {Kind.NODE, Kind.MAPPING, Kind.DATACLASS, Kind.SEQUENCE, Kind.FOREIGN_NODE}
)
