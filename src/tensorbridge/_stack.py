"""Stacking one field of a batch: the samples' leaves at one path (tensors, arrays, NumPy scalars,
Python numbers, or any other input the core converts) → the steps that build its batch tensor.

The leaves are surveyed once (dtype, shape, device; every check, with the sample that fails it
named), then a field is planned as ``Step``s: allocate the batch once (in shared memory inside a
DataLoader worker), optionally pad it, and copy every sample into its slice in one pass that also
fixes byte order, negative strides, misalignment and read-only memory, and casts. ``ragged="list"``
fields are instead each sample converted by ``to_torch``.

>>> import numpy as np
>>> o = Options(dtype=None, float_dtype=None, ragged="error", pad_value=0, shared=False)
>>> field = plan_leaves([np.ones(2), np.zeros(2)[::-1]], "", o, explaining=False)
>>> print(field.steps[0].text)
allocate batch (2, 2) torch.float64 on cpu (32 B)
>>> field.steps[1].copies, field.steps[1].text.endswith("negative strides (sample 1)")
(1, True)
"""

from __future__ import annotations

import collections.abc as cabc
import dataclasses
import functools
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

import numpy as np
import torch

from ._api import explain as explain_one
from ._api import to_numpy, to_torch
from ._dtypes import by_numpy, by_torch, numpy_backed_empty
from ._errors import ConversionError, LossyConversionError, UnsupportedInputError, describe
from ._plan import Plan, Step, format_bytes

__all__ = [
    "NUMBERS",
    "Field",
    "Options",
    "at",
    "count",
    "differs",
    "input_text",
    "kind_error",
    "plan_leaves",
]

NUMBERS = (bool, int, float, complex)
# Python numbers batch as default_collate batches them: bool → bool, int → int64, float → float64
# (and complex → complex128, which default_collate refuses); a field mixing them is promoted.
_PY_DTYPES = {bool: torch.bool, int: torch.int64, float: torch.float64, complex: torch.complex128}
_PY_RANK = {torch.bool: 0, torch.int64: 1, torch.float64: 2, torch.complex128: 3}
_ALIGNED = 0x100  # the NPY_ARRAY_ALIGNED flag bit


class Options(NamedTuple):
    """The keyword arguments of one ``collate`` call, resolved."""

    dtype: torch.dtype | None
    float_dtype: torch.dtype | None
    ragged: str
    pad_value: Any
    shared: bool  # inside a DataLoader worker: allocate batches in shared memory


class Field:
    """One field of the batch: its path, what its samples are, and the steps that build it."""

    __slots__ = ("input", "leaves", "path", "steps")

    def __init__(
        self, path: str, input: Any, steps: list[Step], leaves: dict[str, Plan] | None = None
    ) -> None:
        self.path = path
        self.input = input  # the samples' leaves (described when explained), or a text
        self.steps = steps
        self.leaves = leaves  # per-sample plans, for a field batched as a list of to_torch results


# --- paths and errors ----------------------------------------------------------------------


def at(i: int, suffix: str) -> str:
    """The path of sample ``i``'s value at ``suffix``: ``samples[3]["image"]``."""
    return f"samples[{i}]{suffix}"


def differs(column: Sequence[Any], i: int, suffix: str, what: str, fix: str) -> ConversionError:
    """Sample ``i`` differs from sample 0 in structure: ``what``, and the ``fix``."""
    return ConversionError(
        f"{what}; every sample must have the same structure (samples[0]{suffix} is "
        f"{describe(column[0])}); {fix}",
        path=at(i, suffix),
    )


def kind_error(column: Sequence[Any], i: int, suffix: str) -> ConversionError:
    """Sample ``i`` holds another kind of value than sample 0 (an array beside a dict, None)."""
    x = column[i]
    none = x is None or column[0] is None
    fix = (
        "None is batched only where every sample has None (into a list): return the same kind "
        "of value from every item (an empty array, a default number)"
        if none
        else "return the same kind of value from every item of the dataset"
    )
    return differs(column, i, suffix, f"{describe(x)} differs in kind from samples[0]", fix)


# --- leaves --------------------------------------------------------------------------------


def _tensor_problem(t: torch.Tensor) -> str:
    if t.is_nested:
        return "a nested tensor cannot be stacked; return its components (t.unbind()) instead"
    if t.layout is not torch.strided:
        return f"a {t.layout} tensor cannot be stacked; call .to_dense() on it in the dataset"
    if t.is_quantized:
        return "a quantized tensor cannot be stacked; call .dequantize() on it in the dataset"
    if t.is_meta:
        return "a meta tensor holds no data; build the tensor on a real device"
    return ""


def _leaf_dtype(x: Any, i: int, suffix: str, o: Options) -> tuple[Any, torch.dtype]:
    """The leaf as the batch reads it (a tensor, an ndarray, a number) and its dtype."""
    cls = type(x)
    if cls is np.ndarray or cls is np.memmap:
        dt = x.dtype
        row = by_numpy(dt if dt.isnative else dt.newbyteorder("="))
        if row is not None:
            return x, row.torch
    elif isinstance(x, torch.Tensor):
        problem = _tensor_problem(x)
        if problem:
            raise UnsupportedInputError(f"{describe(x)}: {problem}", path=at(i, suffix))
        return x, x.dtype
    elif isinstance(x, (np.number, np.bool_)):
        row = by_numpy(x.dtype)
        if row is not None:
            return x, row.torch
    elif cls in _PY_DTYPES:
        return x, _PY_DTYPES[cls]
    elif isinstance(x, NUMBERS):
        return x, _PY_DTYPES[next(t for t in (bool, int, float, complex) if isinstance(x, t))]
    return _adapt(x, i, suffix, o)


def _adapt(x: Any, i: int, suffix: str, o: Options) -> tuple[Any, torch.dtype]:
    """Any other leaf through the core's rules (masks, long double, datetimes, producers): its
    array view from ``to_numpy``, or, for dtypes PyTorch lacks, the tensor ``to_torch`` makes."""
    try:
        a = to_numpy(x)
        if isinstance(a, np.ndarray):
            row = by_numpy(a.dtype if a.dtype.isnative else a.dtype.newbyteorder("="))
            if row is not None:
                return a, row.torch
        t = to_torch(x, dtype=o.dtype, float_dtype=o.float_dtype)
    except ConversionError as e:
        raise e.at(at(i, suffix)) from None
    if not isinstance(t, torch.Tensor):
        raise UnsupportedInputError(
            f"{describe(x)} has no single array form; convert it in the dataset",
            path=at(i, suffix),
        )
    return t, t.dtype


def _target(dt: torch.dtype, o: Options) -> torch.dtype:
    if o.float_dtype is not None and dt.is_floating_point:
        return o.float_dtype
    return dt if o.dtype is None else o.dtype


class Survey(NamedTuple):
    """What a field's leaves are: as the batch reads them, their one dtype, shapes and device."""

    values: Sequence[Any]
    sources: tuple[torch.dtype, ...]  # the distinct dtypes, first sample's first
    shapes: list[tuple[int, ...]]
    device: torch.device
    adapted: list[int]  # the samples read through to_numpy or to_torch first
    grad: bool
    kind: str  # "tensors", "arrays" (plain ndarrays), "values" (numbers, NumPy scalars), "mixed"


_STRIDED = torch.strided
_GRAPH = "per sample, on the autograd graph (copy_)"


def _survey(column: Sequence[Any], suffix: str, o: Options) -> Survey:
    """Read a field's leaves once; the common uniform fields take one quick pass."""
    first = column[0]
    cls = type(first)
    n = len(column)
    if cls is np.ndarray:
        dt, shape = first.dtype, first.shape
        row = by_numpy(dt)
        if row is not None and all(
            type(x) is cls and x.shape == shape and (x.dtype is dt or x.dtype == dt) for x in column
        ):
            return Survey(column, (row.torch,), [shape] * n, _CPU, [], False, "arrays")
    elif cls is torch.Tensor:
        dt, device = first.dtype, first.device
        if (
            by_torch(dt) is not None
            and not first.is_nested
            and all(
                type(x) is cls
                and x.dtype is dt
                and x.layout is _STRIDED
                and not x.is_nested
                and not x.requires_grad
                and x.device == device
                for x in column
            )
        ):
            shapes = [tuple(x.shape) for x in column]
            if device.type != "meta":
                return Survey(column, (dt,), shapes, device, [], False, "tensors")
    elif cls in _PY_DTYPES and all(type(x) is cls for x in column):
        return Survey(column, (_PY_DTYPES[cls],), [()] * n, _CPU, [], False, "values")
    return _survey_each(column, suffix, o)


def _survey_each(column: Sequence[Any], suffix: str, o: Options) -> Survey:
    """Read a field's leaves one by one, with every check and the error naming the sample."""
    values: list[Any] = []
    dtypes: list[torch.dtype] = []
    adapted: list[int] = []
    for i, x in enumerate(column):
        if _leaf_kind(x) == "other":
            raise kind_error(column, i, suffix)
        v, dt = _leaf_dtype(x, i, suffix, o)
        if v is not x:
            adapted.append(i)
        values.append(v)
        dtypes.append(dt)
    if all(isinstance(v, NUMBERS) and not isinstance(v, np.generic) for v in values):
        sources: tuple[torch.dtype, ...] = (_promote_numbers(dtypes),)
    else:
        # Leaves of different dtypes batch when the asked dtype casts them to one (the fix).
        target = _target(dtypes[0], o)
        for i, dt in enumerate(dtypes):
            if dt != dtypes[0] and _target(dt, o) != target:
                raise _dtype_error(column, i, suffix, dtypes[0], dt)
        sources = tuple(dict.fromkeys(dtypes))
    grad = any(isinstance(v, torch.Tensor) and v.requires_grad for v in values)
    kinds = {_value_kind(v) for v in values}
    kind = kinds.pop() if len(kinds) == 1 else "mixed"
    shapes = [_shape(v) for v in values]
    return Survey(values, sources, shapes, _device(values, column, suffix), adapted, grad, kind)


def _promote_numbers(dtypes: list[torch.dtype]) -> torch.dtype:
    """The dtype of a field of Python numbers of several kinds, as default_collate gives it:
    ``torch.tensor(batch, dtype=torch.float64)`` when the first is a ``float``, else
    ``torch.tensor(batch)``, which infers PyTorch's default (float or complex) dtype."""
    wanted = max(dtypes, key=_PY_RANK.__getitem__)
    if dtypes[0] in (torch.bool, torch.int64) and wanted.is_floating_point:
        return torch.get_default_dtype()
    if dtypes[0] in (torch.bool, torch.int64) and wanted.is_complex:
        return torch.tensor(0j).dtype  # the complex dtype of the default float dtype
    return wanted


def _value_kind(v: Any) -> str:
    if isinstance(v, torch.Tensor):
        return "tensors"
    if type(v) is np.ndarray or type(v) is np.memmap:
        return "arrays"
    return "mixed" if isinstance(v, np.ndarray) else "values"


class FillArg(NamedTuple):
    """What a fill step reads: the leaves, whether they are cast, their regions when padded."""

    values: Sequence[Any]
    cast: bool
    shapes: list[tuple[int, ...]] | None
    suffix: str


def plan_leaves(column: Sequence[Any], suffix: str, o: Options, explaining: bool) -> Field:
    """A field of tensors, arrays, NumPy scalars or numbers: stacked, padded or listed."""
    n = len(column)
    values, sources, shapes, device, adapted, grad, kind = _survey(column, suffix, o)
    target = _target(sources[0], o)
    cast = any(s != target for s in sources)
    if any(s.is_complex for s in sources) and not target.is_complex:
        raise LossyConversionError(
            f"{describe(column[0])} is complex and dtype={target} is not: the imaginary part "
            f"would be dropped; take .real (or .imag, or abs()) in the dataset, or pass a "
            f"complex dtype",
            path=at(0, suffix),
        )
    path = f"batch{suffix}"
    shape = shapes[0]
    ragged = shapes.count(shape) != n
    if ragged:
        i = next(i for i, s in enumerate(shapes) if s != shape)
        if o.ragged == "list":
            return _plan_list(column, path, o, explaining)
        if o.ragged == "error" or len(shapes[i]) != len(shape):
            raise _shape_error(column, i, suffix, shape, shapes[i], o.ragged)
        shape = tuple(max(s[d] for s in shapes) for d in range(len(shape)))
        _check_pad(o.pad_value, target, path)
    full = (n, *shape)
    nbytes = math.prod(full) * target.itemsize
    sample_bytes = sum(math.prod(s) for s in shapes) * target.itemsize if ragged else nbytes
    if grad and not ragged and kind == "tensors" and not cast:
        step = Step(
            lambda: (
                "stack on the autograd graph (torch.stack, keeps the graph): "
                + _fill_text(values, adapted, sources, target, n)
            ),
            functools.partial(_stack_on_graph, values=list(values)),
            nbytes=nbytes,
            copies=1,
        )
        return Field(path, column, [step])
    shared = o.shared and device.type == "cpu"
    # A cast, an array or a pad beside tensors that require grad: each sample is copied into
    # its slice with copy_ (which autograd records), still one pass; torch.stack(out=) refuses
    # inputs that require grad.
    how = _GRAPH if grad else _method(kind, values, sources, target, ragged)
    if how == "values written into the batch":
        _check_numbers(values, target, suffix)
    fill = _FILLS[how]
    if target is _COMPLEX32 or _COMPLEX32 in sources:
        fill = _quiet_complex32(fill)
    where = " in shared memory (DataLoader worker)" if shared else ""
    steps = [
        Step(
            lambda: f"allocate batch {full} {target} on {device}{where} ({format_bytes(nbytes)})",
            functools.partial(
                _quiet_complex32(_allocate) if target is _COMPLEX32 else _allocate,
                arg=(full, target, device, shared),
            ),
        )
    ]
    if ragged:
        steps.append(
            Step(
                lambda: f"fill with pad_value={o.pad_value!r} ({format_bytes(nbytes)} written)",
                functools.partial(
                    _quiet_complex32(_fill) if target is _COMPLEX32 else _fill,
                    arg=(o.pad_value, path),
                ),
            )
        )
    steps.append(
        Step(
            lambda: (
                f"copy {n} samples into the batch, one copy each "
                f"({format_bytes(sample_bytes)}; {how}): "
                + _fill_text(values, adapted, sources, target, n)
            ),
            functools.partial(fill, arg=FillArg(values, cast, shapes if ragged else None, suffix)),
            nbytes=sample_bytes,
            copies=1,
        )
    )
    if adapted and explaining:
        return Field(path, column, steps, _adapted_plans(column, values, adapted, suffix, o))
    return Field(path, column, steps)


def _leaf_kind(x: Any) -> str:
    """Whether ``x`` is batched as one leaf ("array") or is a value or a container ("other")."""
    if isinstance(x, (torch.Tensor, np.ndarray, np.generic)) and not isinstance(
        x, (np.str_, np.bytes_)
    ):
        return "array"
    if x is None or isinstance(x, (str, bytes, cabc.Mapping, Sequence)):
        return "other"
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return "other"
    return "array"


def _dtype_error(
    column: Sequence[Any], i: int, suffix: str, first: torch.dtype, dt: torch.dtype
) -> ConversionError:
    wanted = torch.promote_types(first, dt)
    arg = "float_dtype" if first.is_floating_point and dt.is_floating_point else "dtype"
    return ConversionError(
        f"{describe(column[i])} has dtype {dt}, but samples[0]{suffix} has {first}: a batch "
        f"holds one dtype; pass {arg}={wanted} to cast every sample"
        + (" (dtype= casts every field of the batch)" if arg == "dtype" else ""),
        path=at(i, suffix),
    )


def _shape_error(
    column: Sequence[Any],
    i: int,
    suffix: str,
    first: tuple[int, ...],
    shape: tuple[int, ...],
    ragged: str,
) -> ConversionError:
    if len(first) != len(shape):
        fix = 'pass ragged="list" for a list of per-sample tensors (padding needs equal ranks)'
    else:
        fix = (
            'pass ragged="pad" (pad every axis to the largest with pad_value) or ragged="list" '
            "(a list of per-sample tensors)"
        )
    return ConversionError(
        f"{describe(column[i])} has shape {shape}, but samples[0]{suffix} has shape {first}: "
        f"samples of different shapes cannot be stacked ({ragged=}); {fix}",
        path=at(i, suffix),
    )


def _device(values: list[Any], column: Sequence[Any], suffix: str) -> torch.device:
    devices = [v.device if isinstance(v, torch.Tensor) else _CPU for v in values]
    first = devices[0]
    for i, d in enumerate(devices):
        if d != first:
            raise ConversionError(
                f"{describe(column[i])} is on {d}, but samples[0]{suffix} is on {first}: one "
                f"batch lives on one device; keep samples on the CPU in the dataset and move the "
                f"batch with tb.to_torch(batch, device=...)",
                path=at(i, suffix),
            )
    return first


_CPU = torch.device("cpu")


def _shape(v: Any) -> tuple[int, ...]:
    shape = getattr(v, "shape", None)
    return () if shape is None else tuple(shape)


def input_text(column: Sequence[Any]) -> str:
    kinds = sorted({describe(x) if hasattr(x, "shape") else type(x).__name__ for x in column})
    return f"{len(column)} × " + (kinds[0] if len(kinds) == 1 else " | ".join(kinds[:3]))


def _plan_list(column: Sequence[Any], path: str, o: Options, explaining: bool) -> Field:
    """``ragged="list"``: each sample converted as ``to_torch`` converts it."""
    kw = {"dtype": o.dtype, "float_dtype": o.float_dtype}
    leaves = (
        {f"{path}[{i}]": explain_one(x, to="torch", **kw) for i, x in enumerate(column)}
        if explaining
        else None
    )
    step = Step(
        f"ragged: a list of {len(column)} per-sample tensors (to_torch of each sample)",
        functools.partial(_to_torch_each, arg=(column, kw)),
    )
    return Field(path, column, [step], leaves)


def _adapted_plans(
    column: Sequence[Any], values: Sequence[Any], adapted: list[int], suffix: str, o: Options
) -> dict[str, Plan]:
    kw = {"dtype": o.dtype, "float_dtype": o.float_dtype}
    return {
        at(i, suffix): explain_one(column[i], to="torch", **kw)
        if isinstance(values[i], torch.Tensor)
        else explain_one(column[i], to="numpy")
        for i in adapted
    }


def _method(
    kind: str,
    values: Sequence[Any],
    sources: tuple[torch.dtype, ...],
    target: torch.dtype,
    padded: bool,
) -> str:
    """How the samples are copied into the batch: one call for the common cases."""
    if padded:
        return "per sample"
    cast = any(s != target for s in sources)
    if kind == "tensors":
        if cast and not all(torch.can_cast(s, target) for s in sources):
            return "per sample"  # torch.stack(out=) refuses casts across kinds; copy_ does them
        return "torch.stack into the batch"
    if kind == "arrays":
        if cast:
            if all(_viewable(v) for v in values) and all(
                torch.can_cast(s, target) for s in sources
            ):
                return "torch.stack of views into the batch"
            return "per sample"
        return (
            "numpy.concatenate into the batch" if values[0].ndim else "numpy.stack into the batch"
        )
    if kind == "values":
        return "values written into the batch"
    return "per sample"


def _viewable(a: np.ndarray) -> bool:
    """Whether PyTorch can read ``a`` in place (native order, aligned, non-negative strides)."""
    if not a.dtype.isnative or not a.flags.aligned or (a.ndim and min(a.strides) < 0):
        return False
    size = a.dtype.itemsize
    if size <= a.dtype.alignment:
        return True  # NumPy's ALIGNED flag is PyTorch's condition
    # complex128 and the like: PyTorch wants the pointer and strides on whole items
    return a.__array_interface__["data"][0] % size == 0 and all(s % size == 0 for s in a.strides)


def _fixes(v: Any) -> list[str]:
    if not isinstance(v, np.ndarray):
        return []
    out = []
    if not v.flags.writeable:
        out.append("read-only")
    if v.ndim and min(v.strides) < 0:
        out.append("negative strides")
    if not v.dtype.isnative:
        out.append(f"byte order {v.dtype.str}")
    if not _viewable(v) and v.dtype.isnative and not (v.ndim and min(v.strides) < 0):
        out.append("misaligned")
    return out


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _indices(ix: list[int], n: int) -> str:
    if len(ix) == n:
        return f"all {n} samples"
    shown = ", ".join(map(str, ix[:8])) + (", ..." if len(ix) > 8 else "")
    return f"sample{'s' if len(ix) > 1 else ''} {shown}"


def _fill_text(
    values: Sequence[Any],
    adapted: list[int],
    sources: tuple[torch.dtype, ...],
    target: torch.dtype,
    n: int,
) -> str:
    """The fixes applied in the copy, sample by sample (formatted only when read)."""
    found: dict[str, list[int]] = {}
    for i, v in enumerate(values):
        for fix in _fixes(v):
            found.setdefault(fix, []).append(i)
    parts = [f"{fix} ({_indices(ix, n)})" for fix, ix in found.items()]
    if adapted:
        parts.append(f"converted first by to_numpy/to_torch ({_indices(adapted, n)})")
    if any(s != target for s in sources):
        parts.append(f"cast {', '.join(map(str, sources))} → {target}")
    return "fixed in the same pass: " + ", ".join(parts) if parts else "no fix needed"


# --- step functions: (value, arg) -> value -------------------------------------------------

_COMPLEX32 = getattr(torch, "complex32", None)
_COMPLEX_PARTS = {
    torch.complex32: torch.float16,
    torch.complex64: torch.float32,
    torch.complex128: torch.float64,
}


def _quiet_complex32(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with PyTorch's "ComplexHalf support is experimental" warning silenced: the batch
    is built correctly, and the warning would leak to a caller who asked for nothing new."""

    def quiet(value: Any, arg: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="ComplexHalf support is experimental")
            return fn(value, arg)

    return quiet


def const(_: Any, value: Any) -> Any:
    return value


def _allocate(_: Any, arg: tuple[tuple[int, ...], torch.dtype, torch.device, bool]) -> torch.Tensor:
    shape, dtype, device, shared = arg
    if device.type != "cpu":
        return torch.empty(shape, dtype=dtype, device=device)
    if shared:
        # As default_collate does in a worker: the batch crosses to the main process as is.
        storage = torch.UntypedStorage._new_shared(math.prod(shape) * dtype.itemsize)
        return torch.empty(0, dtype=dtype).set_(storage, 0, shape, _contiguous_strides(shape))
    return numpy_backed_empty(shape, dtype)


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def _check_pad(pad_value: Any, dtype: torch.dtype, path: str) -> None:
    """Refuse a ``pad_value`` the batch's dtype would wrap, truncate or overflow (floats may
    round, as ``Tensor.fill_`` rounds them)."""
    if isinstance(pad_value, complex) and not dtype.is_complex:
        why = "its imaginary part would be dropped"
    elif dtype.is_floating_point or dtype.is_complex:
        real = _COMPLEX_PARTS.get(dtype, dtype)
        top = torch.finfo(real).max
        value = complex(pad_value)
        parts = [value.real, value.imag] if dtype.is_complex else [value.real]
        back = torch.tensor(parts, dtype=torch.float64).to(real).tolist()
        # Tensor.fill_ refuses a finite value beyond the dtype's largest, or, depending on the
        # batch's size, turns it into inf; float8 types without inf turn inf into NaN.
        if all(
            (math.isnan(b) if math.isnan(v) else v == b if math.isinf(v) else abs(v) <= top)
            for v, b in zip(parts, back, strict=True)
        ):
            return
        why = f"it is outside the dtype's range (±{top})"
    else:
        fits = math.isfinite(pad_value) and pad_value == int(pad_value)
        if fits and dtype is torch.bool:
            fits = pad_value in (0, 1)
        elif fits:
            info = torch.iinfo(dtype)
            fits = info.min <= pad_value <= info.max
        if fits:
            return
        why = "it would wrap or be truncated"
    raise ConversionError(
        f"pad_value={pad_value!r} does not fit the batch's dtype {dtype}: {why}; pass a "
        f"pad_value that {dtype} holds",
        path=path,
    )


def _fill(out: torch.Tensor, arg: tuple[Any, str]) -> torch.Tensor:
    return out.fill_(arg[0])


def _numpy_view(out: torch.Tensor) -> np.ndarray | None:
    row = by_torch(out.dtype)
    if row is None or not out.is_cpu:
        return None
    if row.torch_carrier is None:
        return out.numpy()
    return out.view(row.torch_carrier).numpy().view(row.numpy)


def _torch_view(a: np.ndarray) -> torch.Tensor:
    """A tensor reading ``a`` in place; read-only memory is only ever read here."""
    row = by_numpy(a.dtype)
    assert row is not None
    if not a.flags.writeable:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "The given NumPy array is not writable"
            return _wrap(a, row)
    return _wrap(a, row)


def _wrap(a: np.ndarray, row: Any) -> torch.Tensor:
    if row.numpy_carrier is None:
        return torch.from_numpy(a.view(row.numpy) if a.dtype.num != row.numpy.num else a)
    return torch.from_numpy(a.view(row.numpy_carrier)).view(row.torch)


def _stack_tensors(out: torch.Tensor, arg: FillArg) -> torch.Tensor:
    return torch.stack(cast(list[torch.Tensor], arg.values), out=out)


def _stack_views(out: torch.Tensor, arg: FillArg) -> torch.Tensor:
    return torch.stack([_torch_view(a) for a in arg.values], out=out)


def _concatenate(out: torch.Tensor, arg: FillArg) -> torch.Tensor:
    dst = _numpy_view(out)
    assert dst is not None
    # The batch (N, d0, d1, ...) is, in memory, the samples (d0, d1, ...) concatenated on axis 0.
    flat = dst.reshape((dst.shape[0] * dst.shape[1], *dst.shape[2:]))
    np.concatenate(arg.values, axis=0, out=flat)
    return out


def _np_stack(out: torch.Tensor, arg: FillArg) -> torch.Tensor:
    dst = _numpy_view(out)
    assert dst is not None
    np.stack(arg.values, out=dst)
    return out


def _write_values(out: torch.Tensor, arg: FillArg) -> torch.Tensor:
    dst = _numpy_view(out)
    try:
        if dst is None:  # a dtype NumPy has no form for: PyTorch builds the values
            out.copy_(torch.tensor(arg.values, dtype=out.dtype))
        else:
            with np.errstate(all="ignore"):
                dst[...] = arg.values
    except (OverflowError, ValueError, TypeError, RuntimeError) as e:
        raise _value_error(arg, out.dtype, e) from None
    return out


def _value_error(arg: FillArg, dtype: torch.dtype, e: Exception) -> ConversionError:
    """The error naming the first sample whose value the batch's dtype cannot hold."""
    row = by_torch(dtype)
    for i, v in enumerate(arg.values):
        try:
            with np.errstate(all="ignore"):
                np.empty((), row.numpy if row is not None else np.float64)[...] = v
        except (OverflowError, ValueError, TypeError):
            return _does_not_fit(v, dtype, e, at(i, arg.suffix))
    return _does_not_fit(arg.values, dtype, e, at(0, arg.suffix))


def _does_not_fit(v: Any, dtype: torch.dtype, why: Any, path: str) -> ConversionError:
    fix = "another dtype=" if dtype.is_floating_point else "dtype=torch.float64"
    return ConversionError(
        f"{describe(v)} does not fit dtype {dtype} ({why}); pass a dtype that holds it ({fix}), "
        f"or fix the value in the dataset",
        path=path,
    )


def _check_numbers(values: Sequence[Any], target: torch.dtype, suffix: str) -> None:
    """Python numbers an integer batch cannot hold (too large, NaN, infinite) are refused
    while planning, so ``explain`` raises what ``collate`` raises."""
    if target.is_floating_point or target.is_complex or target is torch.bool:
        return
    info = torch.iinfo(target)
    for i, v in enumerate(values):
        if isinstance(v, np.generic) or not isinstance(v, (int, float)):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            raise _does_not_fit(v, target, "not a finite number", at(i, suffix))
        if not info.min <= v <= info.max:
            raise _does_not_fit(v, target, f"outside {info.min}..{info.max}", at(i, suffix))


def _per_sample(out: torch.Tensor, arg: FillArg) -> torch.Tensor:
    values, cast, shapes, _ = arg
    dst = _numpy_view(out)
    for i, v in enumerate(values):
        region: tuple[Any, ...] = (
            (i, ...) if shapes is None else (i, *(slice(0, s) for s in shapes[i]))
        )
        if isinstance(v, torch.Tensor):
            out[region].copy_(v)
        elif isinstance(v, np.ndarray) and (dst is None or (cast and _viewable(v))):
            out[region].copy_(_torch_view(v))  # PyTorch's casting, as to_torch casts
        elif dst is not None:
            try:
                with np.errstate(all="ignore"):
                    np.copyto(dst[region], v, casting="unsafe")
            except (OverflowError, ValueError, TypeError) as e:
                raise _does_not_fit(v, out.dtype, e, at(i, arg.suffix)) from None
        else:
            out[region].copy_(torch.tensor(v))
    return out


def _stack_on_graph(_: Any, values: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(values)


def _to_torch_each(_: Any, arg: tuple[Sequence[Any], dict[str, Any]]) -> list[torch.Tensor]:
    column, kw = arg
    out = []
    for i, x in enumerate(column):
        try:
            out.append(to_torch(x, **kw))
        except ConversionError as e:
            raise e.at(f"samples[{i}]") from None
    return out


_FILLS: dict[str, Callable[..., torch.Tensor]] = {
    "torch.stack into the batch": _stack_tensors,
    "torch.stack of views into the batch": _stack_views,
    "numpy.concatenate into the batch": _concatenate,
    "numpy.stack into the batch": _np_stack,
    "values written into the batch": _write_values,
    "per sample": _per_sample,
    _GRAPH: _per_sample,
}
