"""h5py ``Dataset``, ``Group`` and ``File``.

A Dataset is read from the file into a new array in native byte order (one copy: HDF5 swaps
big-endian data while reading); like every adapter, the read is the plan's first step, so
``explain`` reads it too. A Group or File is a
container: a plain ``dict`` of its members, read the same way (attributes are left out).
Strings, compound and variable-length datasets are refused with the read that fits them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._errors import UnsupportedInputError, describe
from .._plan import Step
from . import Adapter
from ._common import SIZE, adapted, guarded


def recognise(cls: type) -> Adapter | None:
    import h5py

    if issubclass(cls, h5py.Dataset):
        return Adapter("h5py.Dataset", "leaf", leaf=_dataset)
    if issubclass(cls, h5py.Group):
        return Adapter("h5py.Group", "container", children=_members, note=_attrs_left_out)
    return None


def _read(ds: Any) -> tuple[Step, Any]:
    if ds.shape is None:
        raise UnsupportedInputError(
            f"{describe(ds)} {ds.name!r} is empty (h5py.Empty): it holds no data to convert"
        )
    dtype = ds.dtype
    if dtype.kind not in "biufcmM" or dtype.names is not None or dtype.subdtype is not None:
        raise UnsupportedInputError(
            f"{describe(ds)} {ds.name!r} holds {dtype} values (strings, records or "
            f"variable-length data), which have no array form; read what you need yourself, "
            f"e.g. ds.asstr()[()] for text or ds.fields('name')[()] for one numeric field"
        )
    native = dtype.newbyteorder("=")
    out = np.empty(ds.shape, dtype=native)
    if out.size:
        ds.read_direct(out)  # HDF5 converts the byte order while reading
    swap = "" if dtype.isnative else f", {dtype.str} read as native {native.str}"
    why = "an HDF5 dataset lives in a file: it is read into a new array"
    return adapted(f"read HDF5 dataset ({SIZE}{swap})", out, why)


def _dataset(ds: Any, o: Any) -> tuple[Step, Any]:
    return guarded(ds, "reading it", lambda: _read(ds))


def _members(group: Any) -> tuple[list[str], list[Any], Callable[[list[Any]], Any]]:
    def list_members() -> tuple[list[Any], list[Any]]:
        keys = list(group.keys())
        return keys, [group[k] for k in keys]

    keys, values = guarded(group, "listing its members", list_members)

    def rebuild(new: list[Any]) -> dict[Any, Any]:
        return dict(zip(keys, new, strict=True))

    return keys, values, rebuild


def _attrs_left_out(group: Any) -> str:
    return (
        f"{type(group).__name__} {group.name!r}: a plain dict of its members (attributes left out)"
    )
