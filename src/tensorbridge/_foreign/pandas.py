"""pandas ``DataFrame``, ``Series``, ``Index`` and extension arrays: their values, exactly.

NumPy-dtype values are read as ``np.asarray`` reads them (a view where pandas keeps one block).
Nullable columns (``Int64``, ``Float64``, ``boolean``, Arrow numbers) with no missing value
become their NumPy dtype exactly (a copy: pandas stores values and mask apart); a missing value
(``pd.NA``, ``NaT``) is refused, since no NumPy number stands for it, naming the column and
``.to_numpy(dtype=..., na_value=...)``. Categorical, string, object and time-zone-aware columns
are refused, each with the fix that fits it. A frame's columns are combined with NumPy's type
promotion (``np.result_type``): an int and a bool column give int64, where ``np.asarray`` would
give an object array.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._errors import LossyConversionError, UnsupportedInputError, describe
from .._plan import Step
from . import Adapter
from ._common import SIZE, adapted, guarded


def recognise(cls: type) -> Adapter | None:
    import pandas as pd

    if issubclass(cls, pd.DataFrame):
        return Adapter("pandas.DataFrame", "leaf", leaf=_frame)
    if issubclass(cls, (pd.Series, pd.Index, pd.api.extensions.ExtensionArray)):
        return Adapter(f"pandas.{cls.__name__}", "leaf", leaf=_column_values)
    return None


def _first_value(values: Any) -> Any:
    return next((x for x in values if x is not None and x == x), None)  # x == x: not NaN


def _is_text(values: Any, dtype: Any) -> bool:
    if getattr(dtype, "kind", "") in "US" or type(dtype).__name__ == "StringDtype":
        return True
    return isinstance(_first_value(values), (str, bytes))


def _objects_fix(values: Any, fix: str) -> str:
    """The fix for a column of Python objects: pd.to_numeric where they are numbers."""
    if isinstance(_first_value(values), (int, float, complex, np.number)):
        return f"convert them to numbers first, pd.to_numeric({fix}), or leave the column out"
    return "convert them to numbers yourself first, or leave the column out"


def numpy_dtype_of(col: Any, what: str, fix: str, whole: str = "") -> np.dtype[Any]:
    """The NumPy dtype ``col``'s values take exactly, or the error naming ``what`` and ``fix``.

    ``what`` names the object for the message (a Series, a DataFrame's column), ``fix`` is the
    expression the suggested call starts from (``s``, ``df['a']``), ``whole`` the object whose
    ``.to_numpy(na_value=...)`` converts everything (``df``; ``fix`` when empty).
    """
    import pandas as pd

    dtype = col.dtype
    # A Series reaches codes and datetimes through its accessors; an Index or array directly.
    cat, dt = (".cat", ".dt") if isinstance(col, pd.Series) else ("", "")
    if isinstance(dtype, pd.CategoricalDtype):
        raise UnsupportedInputError(
            f"{what} is categorical: its categories ({dtype.categories.dtype}) have no array "
            f"form; convert its integer codes instead, {fix}{cat}.codes (and keep "
            f"{fix}{cat}.categories to map them back)"
        )
    if isinstance(dtype, pd.DatetimeTZDtype):
        raise UnsupportedInputError(
            f"{what} holds time-zone-aware datetimes ({dtype}), which have no array form; "
            f"convert them to integer UTC timestamps first: "
            f"{fix}{dt}.tz_convert(None).astype('int64') (in {dtype.unit} since the epoch)"
        )
    np_dtype = dtype if isinstance(dtype, np.dtype) else getattr(dtype, "numpy_dtype", None)
    if type(dtype).__name__ == "SparseDtype":
        np_dtype = dtype.subtype  # its values (the fill value included) as a dense array
    if not isinstance(np_dtype, np.dtype) or np_dtype.kind not in "biufcmM":
        if _is_text(col, dtype):
            raise UnsupportedInputError(
                f"{what} holds strings ({dtype}), which have no array form; encode them first, "
                f"e.g. {fix}.astype('category'){cat}.codes, or leave the column out"
            )
        raise UnsupportedInputError(
            f"{what} holds Python objects ({dtype}), which have no array form; "
            + _objects_fix(col, fix)
        )
    if not isinstance(dtype, np.dtype) or np_dtype.kind in "mM":
        missing = int(col.isna().sum())
        if missing:
            na = "NaT" if np_dtype.kind in "mM" else "pd.NA"
            how = (
                "dtype='int64', na_value=0"
                if np_dtype.kind in "mM"
                else "dtype='float64', na_value=np.nan"
            )
            why = (
                "as a number each would silently become -2**63"
                if np_dtype.kind in "mM"
                else f"no {np_dtype} value can hold them"
            )
            raise LossyConversionError(
                f"{what} has {missing} missing value{'s' * (missing > 1)} ({na}): {why}; "
                f"choose what they become, e.g. {whole or fix}.to_numpy({how})"
            )
    return np_dtype


def _label(obj: Any) -> str:
    name = getattr(obj, "name", None)
    return describe(obj) + (f" named {name!r}" if name is not None else "")


def _column_values(obj: Any, o: Any) -> tuple[Step, Any]:
    """A Series, Index or extension array: its values, viewed or read."""
    np_dtype = numpy_dtype_of(obj, _label(obj), "s" if obj.ndim == 1 else "x")
    if isinstance(obj.dtype, np.dtype):
        values = guarded(obj, "to_numpy()", lambda: np.asarray(obj))
        return adapted(f"view {type(obj).__name__} values (no copy)", values)
    values = guarded(obj, "to_numpy()", lambda: obj.to_numpy(dtype=np_dtype))
    why = f"a {obj.dtype} column is not one NumPy array (values and mask, or sparse): it is read"
    return adapted(f"read {obj.dtype} values as {np_dtype} ({SIZE})", values, why)


def _frame(df: Any, o: Any) -> tuple[Step, Any]:
    """A DataFrame: one 2-D array of its columns' values (a view of a single-dtype frame)."""
    dtypes = []
    for i, (label, dtype) in enumerate(df.dtypes.items()):
        if isinstance(dtype, np.dtype) and dtype.kind in "biufc":
            dtypes.append(dtype)  # a plain NumPy column: nothing to check
            continue
        what = f"column {label!r} of {describe(df)}"
        dtypes.append(numpy_dtype_of(df.iloc[:, i], what, f"df[{label!r}]", "df"))
    common = np.result_type(*dtypes) if dtypes else np.dtype(np.float64)
    values = guarded(df, "to_numpy()", lambda: df.to_numpy(dtype=common))
    shared = bool(dtypes) and np.may_share_memory(values, df.iloc[:, 0].to_numpy())
    if shared or values.size == 0:
        return adapted("view DataFrame values (no copy)", values)
    why = "DataFrame cannot share its memory: its columns are stored apart (dtypes or blocks)"
    return adapted(f"gather the columns into one {common} array ({SIZE})", values, why)
