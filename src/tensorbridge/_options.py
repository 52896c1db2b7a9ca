"""The keyword arguments of one call, resolved once and shared by every leaf of a container.

Each resolved ``Options`` carries the plan cache of its conversions: the decisions made for one
set of options are looked up there, keyed by what they depend on (see ``_planner``).
"""

from __future__ import annotations

import functools
import weakref
from typing import Any

import torch

from ._dtypes import numpy_dtype, torch_dtype
from ._errors import ConversionError
from ._plan import _on_trace_change


class Options:
    """Resolved options of ``to_numpy`` or ``to_torch`` (``target``): dtypes as NumPy or PyTorch
    dtypes, the device as ``torch.device``; and the plan caches for these options."""

    __slots__ = (
        "__weakref__",
        "array_flag_plans",
        "array_plans",
        "copy",
        "device",
        "dtype",
        "float_dtype",
        "non_blocking",
        "pin_memory",
        "plans",
        "requires_grad",
        "target",
        "tensor_plans",
    )

    def __init__(
        self,
        target: str,
        dtype: Any = None,
        float_dtype: Any = None,
        copy: bool | None = None,
        device: torch.device | None = None,
        requires_grad: bool | None = None,
        pin_memory: bool = False,
        non_blocking: bool = False,
    ) -> None:
        self.dtype = dtype
        self.float_dtype = float_dtype
        self.copy = copy
        self.device = device
        self.requires_grad = requires_grad
        self.pin_memory = pin_memory
        self.non_blocking = non_blocking
        self.target = target
        # plans by full key, and the per-dtype tables of the two commonest input types
        self.plans: dict[Any, Any] = {}
        self.tensor_plans: dict[Any, Any] = {}
        self.array_plans: dict[Any, Any] = {}
        self.array_flag_plans: dict[int, dict[Any, Any]] = {}
        _ALL.add(self)

    def clear(self) -> None:
        """Forget every cached plan (they are rebuilt on first use)."""
        self.plans.clear()
        self.tensor_plans.clear()
        self.array_plans.clear()
        self.array_flag_plans.clear()

    def target_dtype(self, kind: str) -> Any:
        """The dtype a leaf of dtype kind ``kind`` ("b", "i", "u", "f", "c", ...) is cast to."""
        if kind == "f" and self.float_dtype is not None:
            return self.float_dtype
        return self.dtype


def _check_copy(copy: Any) -> bool | None:
    if copy is None or copy is True or copy is False:
        return copy
    raise TypeError(f"copy must be None, True or False, not {copy!r}")


_ALL: weakref.WeakSet[Options] = weakref.WeakSet()


def _clear_all() -> None:
    for o in list(_ALL):
        o.clear()


_on_trace_change.append(_clear_all)

NUMPY_DEFAULT = Options("numpy")
TORCH_DEFAULT = Options("torch")


def _cached(resolve: Any, *args: Any) -> Options:
    """``resolve(*args)`` through its cache; arguments that cannot be hashed skip the cache."""
    try:
        return resolve(*args)
    except TypeError as e:
        if "unhashable" not in str(e):
            raise
        return resolve.__wrapped__(*args)


def numpy_options(dtype: Any = None, float_dtype: Any = None, copy: Any = None) -> Options:
    """Options for ``to_numpy``, resolved once per distinct set of arguments."""
    if dtype is None and float_dtype is None and copy is None:
        return NUMPY_DEFAULT
    return _cached(_numpy_options, dtype, float_dtype, copy)


@functools.lru_cache(maxsize=256)
def _numpy_options(dtype: Any, float_dtype: Any, copy: Any) -> Options:
    """Options for ``to_numpy``: dtypes resolved to NumPy dtypes (ml_dtypes types included)."""
    fdt = None if float_dtype is None else numpy_dtype(float_dtype)
    if fdt is not None and fdt.kind not in "fV":
        raise TypeError(f"float_dtype must be a real floating-point dtype, not {fdt}")
    return Options(
        "numpy",
        dtype=None if dtype is None else numpy_dtype(dtype),
        float_dtype=fdt,
        copy=_check_copy(copy),
    )


def _available(device_type: str) -> bool:
    if device_type == "cpu":
        return True
    module = getattr(torch, device_type, None)  # torch.cuda, torch.mps, torch.xpu, ...
    is_available = getattr(module, "is_available", None)
    return bool(is_available()) if callable(is_available) else True  # unknown: let it try


def _accelerator_available() -> bool:
    accelerator = getattr(torch, "accelerator", None)  # PyTorch 2.6 on
    if accelerator is not None:
        return bool(accelerator.is_available())
    return bool(torch.cuda.is_available())


def _device(device: Any) -> torch.device | None:
    resolved = _parse_device(device)
    if resolved is not None and not _available(resolved.type):
        raise ConversionError(
            f"device={device!r}: no {resolved.type} device is available here "
            f"(torch.{resolved.type}.is_available() is False); pass device='cpu', or leave "
            f"device=None to keep tensors where they are"
        )
    return resolved


def _parse_device(device: Any) -> torch.device | None:
    if device is None or isinstance(device, torch.device):
        return device
    if isinstance(device, int) and not isinstance(device, bool):
        return torch.device("cuda", device)
    if isinstance(device, str):
        try:
            return torch.device(device)
        except (RuntimeError, ValueError):
            raise ConversionError(
                f"device={device!r} is not a device name PyTorch knows; pass 'cpu', 'cuda', "
                f"'cuda:1', 'mps' or a torch.device ('cuda' is the name for a GPU)"
            ) from None
    raise TypeError(
        f"device must be a string such as 'cpu', 'cuda', 'cuda:1' or 'mps', a torch.device or an "
        f"int, not {device!r}"
    )


def torch_options(
    dtype: Any,
    float_dtype: Any,
    copy: Any,
    device: Any,
    requires_grad: bool | None,
    pin_memory: bool,
    non_blocking: bool,
) -> Options:
    """Options for ``to_torch``, resolved once per distinct set of arguments."""
    args = (dtype, float_dtype, copy, device, requires_grad, pin_memory, non_blocking)
    return _cached(_torch_options, *args)


@functools.lru_cache(maxsize=256)
def _torch_options(
    dtype: Any,
    float_dtype: Any,
    copy: Any,
    device: Any,
    requires_grad: bool | None,
    pin_memory: bool,
    non_blocking: bool,
) -> Options:
    """Options for ``to_torch``: dtypes as PyTorch dtypes, the device as ``torch.device``."""
    if (
        dtype is None
        and float_dtype is None
        and copy is None
        and device is None
        and requires_grad is None
        and not pin_memory
        and not non_blocking
    ):
        return TORCH_DEFAULT
    if pin_memory and not _accelerator_available():
        raise ConversionError(
            "pin_memory=True: pinned (page-locked) memory needs an accelerator, and none is "
            "available here; leave pin_memory=False"
        )
    fdt = None if float_dtype is None else torch_dtype(float_dtype)
    if fdt is not None and not fdt.is_floating_point:
        raise TypeError(f"float_dtype must be a real floating-point dtype, not {fdt}")
    return Options(
        "torch",
        dtype=None if dtype is None else torch_dtype(dtype),
        float_dtype=fdt,
        copy=_check_copy(copy),
        device=_device(device),
        requires_grad=requires_grad,
        pin_memory=bool(pin_memory),
        non_blocking=bool(non_blocking),
    )
