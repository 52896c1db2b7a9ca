"""Objects from the rest of the ecosystem: one adapter per foreign kind, decided once per type.

A foreign type is recognised without importing its library: a class whose module's top-level
package (pandas, xarray, scipy, h5py) is already in ``sys.modules`` is handed to that library's
adapter module, which returns an ``Adapter`` (or ``None``: not a kind it knows); kinds of
PyTorch's and Python's own (wrapper tensor subclasses, ``PackedSequence``, ``nn.Module``,
generators, sets, raw DLPack capsules) are recognised by their type. The answer is cached per
type, so every later object of that type costs one dict lookup. An adapter says one of three
things:

- ``leaf``: the object converts; ``leaf(obj, options)`` runs the adapter and returns its step
  (a shared constant, part of the plan's cache key) and the ndarray or tensor it made, which
  the planner then plans; or, where the object plans itself (a wrapper tensor subclass, whose
  own ``.to`` is what runs), the whole ``LeafPlan``;
- ``children``: the object is a container: ``children(obj)`` gives its keys, its values and
  ``rebuild(new_values)``;
- ``refuse``: the object has no array form; ``refuse(obj)`` is the error with the fix for it.

>>> adapter_for(type(x for x in ())).role
'refused'
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._errors import ConversionError

__all__ = ["Adapter", "adapter_for", "leaf", "note"]

Leaf = Callable[[Any, Any], Any]  # (obj, options) -> (step, value) or a LeafPlan
Children = Callable[[Any], tuple[list[str], list[Any], Callable[[list[Any]], Any]]]


@dataclass(frozen=True)
class Adapter:
    """One foreign kind's decision: how it converts, how it is walked, or why it is refused."""

    name: str
    role: str  # "leaf", "container" or "refused"
    leaf: Leaf | None = None
    children: Children | None = None
    refuse: Callable[[Any], ConversionError] | None = None
    note: Callable[[Any], str] | None = None  # a line ``explain`` adds for a container


def _by_package() -> dict[str, Callable[[type], Adapter | None]]:
    from . import h5py, pandas, scipy_sparse, xarray

    return {
        "pandas": pandas.recognise,
        "xarray": xarray.recognise,
        "scipy": scipy_sparse.recognise,
        "h5py": h5py.recognise,
    }


_PACKAGES: dict[str, Callable[[type], Adapter | None]] = {}
_cache: dict[type, Adapter | None] = {}
_lock = threading.Lock()


def _recognise(cls: type) -> Adapter | None:
    from . import capsules, refusals, tensors

    if not _PACKAGES:
        _PACKAGES.update(_by_package())
    for base in cls.__mro__:
        package = str(getattr(base, "__module__", "") or "").partition(".")[0]
        recognise = _PACKAGES.get(package)
        if recognise is not None and package in sys.modules:
            adapter = recognise(cls)
            if adapter is not None:
                return adapter
    return tensors.recognise(cls) or capsules.recognise(cls) or refusals.recognise(cls)


def adapter_for(cls: type) -> Adapter | None:
    """The adapter for objects of type ``cls``, or ``None`` for a type no adapter claims."""
    try:
        return _cache[cls]
    except KeyError:
        pass
    adapter = _recognise(cls)
    with _lock:
        _cache[cls] = adapter
    return adapter


def note(obj: Any) -> str | None:
    """The line ``explain`` adds for a foreign container (e.g. what is left out)."""
    adapter = adapter_for(type(obj))
    if adapter is None or adapter.note is None:
        return None
    return adapter.note(obj)


def leaf(obj: Any, o: Any) -> Any:
    """Run the adapter of a foreign leaf: ``(step, value)``, or a whole ``LeafPlan``."""
    adapter = adapter_for(type(obj))
    assert adapter is not None and adapter.leaf is not None
    return adapter.leaf(obj, o)
