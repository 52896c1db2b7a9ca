"""xarray ``DataArray``/``Variable`` and ``Dataset``.

A DataArray is its values: the NumPy array it holds, shared; a lazy (dask) or wrapped array is
computed with ``np.asarray`` (a copy). A Dataset is a container: a plain ``dict`` of its data
variables. Coordinates are labels, not data, and are left out (``explain`` says which).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._plan import Step
from . import Adapter
from ._common import SIZE, adapted, guarded


def recognise(cls: type) -> Adapter | None:
    import xarray as xr

    if issubclass(cls, (xr.DataArray, xr.Variable)):
        return Adapter(f"xarray.{cls.__name__}", "leaf", leaf=_values)
    if issubclass(cls, xr.Dataset):
        return Adapter("xarray.Dataset", "container", children=_data_vars, note=_coords_left_out)
    return None


def _values(obj: Any, o: Any) -> tuple[Step, Any]:
    data = obj.data
    if type(data) is np.ndarray:
        return adapted(f"view {type(obj).__name__} values (no copy)", data)
    values = guarded(obj, "np.asarray()", lambda: np.asarray(obj))
    kind = type(data).__name__
    why = f"its values are a {kind}, not memory (computed into a new array)"
    return adapted(f"compute {kind} values ({SIZE})", values, why)


def _data_vars(ds: Any) -> tuple[list[str], list[Any], Callable[[list[Any]], Any]]:
    names = list(ds.data_vars)

    def rebuild(values: list[Any]) -> dict[Any, Any]:
        return dict(zip(names, values, strict=True))

    return names, [ds[n] for n in names], rebuild


def _coords_left_out(ds: Any) -> str:
    coords = ", ".join(repr(c) for c in ds.coords)
    if not coords:
        return "xarray.Dataset: a plain dict of its data variables"
    return f"xarray.Dataset: a plain dict of its data variables; coordinates {coords} left out"
