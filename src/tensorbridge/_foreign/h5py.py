"""h5py ``Dataset``, ``Group`` and ``File``.

A Dataset is read from the file into a new array in native byte order (one copy: HDF5 swaps
big-endian data while reading); ``explain`` plans it without reading. A Group or File is a
container: a plain ``dict`` of its members, read the same way (attributes are left out).
Strings, compound and variable-length datasets are refused with the read that fits them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._errors import UnsupportedInputError, describe
from .._plan import Step, format_bytes
from . import Adapter
from ._common import guarded, key_text


def recognise(cls: type) -> Adapter | None:
    import h5py

    if issubclass(cls, h5py.Dataset):
        return Adapter("h5py.Dataset", "leaf", leaf=_dataset)
    if issubclass(cls, h5py.Group):
        return Adapter("h5py.Group", "container", children=_members, note=_attrs_left_out)
    return None


def _read(ds: Any, like: np.ndarray) -> np.ndarray:
    out = np.empty_like(like)
    if out.size:
        guarded(ds, "reading it", lambda: ds.read_direct(out))
    return out


def _plan_read(ds: Any) -> tuple[list[Any], Any, bool]:
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
    stand_in = np.empty(ds.shape, dtype=native)  # never written: planning reads no data
    nbytes = stand_in.nbytes
    swap = "" if dtype.isnative else f", {dtype.str} read as native {native.str}"
    step = Step(
        f"read HDF5 dataset {ds.name!r} ({format_bytes(nbytes)}{swap})",
        _read,
        stand_in,
        nbytes=nbytes,
        copies=1,
        reason="an HDF5 dataset lives in a file: it is read into a new array",
    )
    return [step], stand_in, False


def _dataset(ds: Any, to: str, o: Any) -> tuple[list[Any], Any, bool]:
    return guarded(ds, "h5py", lambda: _plan_read(ds))


def _members(group: Any) -> tuple[list[str], list[Any], Callable[[list[Any]], Any]]:
    def list_members() -> tuple[list[Any], list[Any]]:
        keys = list(group.keys())
        return keys, [group[k] for k in keys]

    keys, values = guarded(group, "listing its members", list_members)

    def rebuild(new: list[Any]) -> dict[Any, Any]:
        return dict(zip(keys, new, strict=True))

    return [key_text(k) for k in keys], values, rebuild


def _attrs_left_out(group: Any) -> str:
    return (
        f"{type(group).__name__} {group.name!r}: a plain dict of its members (attributes left out)"
    )
