"""PyTorch's format (``.pt``, ``.pth``, ``.bin``): what ``torch.save`` writes.

Reads: with ``torch.load(weights_only=True, map_location="cpu")`` only, memory-mapped where the
file is in the zip format (PyTorch ≥ 1.6), fully loaded for the legacy format. A bare tensor or a
(nested) dict/list of tensors; nested keys flatten to dotted names (``{"enc": {"w": t}}`` →
``enc.w``). Conjugate and negative views are read as their logical values.
Writes: with ``torch.save``; a dict of tensors (flat, as ``model.state_dict()`` gives, or nested
again when the source recorded a nesting), or a bare tensor when the source held one unnamed tensor
(a ``.npy``). Holds every dtype PyTorch has, bfloat16, float8 and complex32 included.
Refuses: any file whose pickle needs more than tensors and plain containers (``weights_only=True``
refuses to call arbitrary globals; nothing in the file is ever executed), nested (jagged) tensors.
Non-tensor values (an ``epoch`` number, a string) are listed in ``others``; a conversion refuses
them unless asked to skip them.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._dtypes import TABLE, by_torch
from ._common import (
    BadFileError,
    Entry,
    Layout,
    Progress,
    Reader,
    UnsafeFileError,
    flatten,
    unflatten,
)

__all__ = ["DTYPES", "TorchReader", "load", "write"]

NAME = ".pt"
MAX_TENSORS = None
DTYPES = frozenset(row.tag for row in TABLE)
"""The dtype tags a PyTorch file holds: all of them."""


def _unsafe_detail(message: str) -> str:
    found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", message)
    if found:
        return f"it calls {found.group(1)}"
    found = re.search(r"Unsupported operand (\S+)", message)
    if found:
        return f"it uses pickle opcode {found.group(1)}, which weights_only=True does not allow"
    return "it needs more than tensors and plain containers"


def load(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True`` on the CPU, every failure a ``BadFileError``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            message = str(exc)
            if "Weights only load failed" in message and (
                "Unsupported global" in message
                or "Unsupported operand" in message
                or "GLOBAL" in message
            ):
                raise UnsafeFileError(
                    f"refused: {path} is a pickle that needs more than tensors to load "
                    f"({_unsafe_detail(message)}): arbitrary code, or a corrupt file; tensorbridge "
                    "loads PyTorch files with weights_only=True and never runs such code"
                ) from None
            raise BadFileError(
                f"{path} is not a valid PyTorch file: {_first_line(message)}"
            ) from None
        except EOFError:
            raise BadFileError(f"{path} is truncated or corrupt (the pickle ends early)") from None
        except MemoryError:
            raise BadFileError(
                f"{path} is corrupt: it claims more memory than this machine has"
            ) from None
        except Exception as exc:
            raise BadFileError(
                f"{path} is not a valid PyTorch file: {_first_line(str(exc)) or type(exc).__name__}"
            ) from None


def _first_line(message: str) -> str:
    for line in message.splitlines():
        line = line.strip()
        if line and not line.startswith("Weights only load failed"):
            if line.startswith("PytorchStreamReader") and ". " in line:
                line = line[: line.index(". ") + 1]
            return line[:200]
    return ""


class TorchReader(Reader):
    """Reads a PyTorch file; non-tensor leaves land in ``others`` (name → value)."""

    def __init__(self, path: Path, name: str | None = None) -> None:
        self.path = path
        self.metadata = {}
        obj = load(path)
        flat, self.paths = flatten(obj, is_leaf=lambda x: isinstance(x, torch.Tensor))
        self.single = "" in flat and isinstance(flat[""], torch.Tensor)
        if self.single:
            flat = {name if name is not None else path.stem: flat[""]}
            self.paths = None
        self._tensors: dict[str, torch.Tensor] = {}
        self.others: dict[str, Any] = {}
        self.entries = []
        for key, value in flat.items():
            if isinstance(value, torch.Tensor):
                self._tensors[key] = value
                self.entries.append(_entry(path, key, value))
            else:
                self.others[key] = value
        if self.paths is not None:
            self.paths = {k: p for k, p in self.paths.items() if k in self._tensors}

    def load(self, name: str) -> np.ndarray:
        from .. import to_numpy

        return to_numpy(self._tensors[name])

    def close(self) -> None:
        self._tensors.clear()


def _entry(path: Path, name: str, t: torch.Tensor) -> Entry:
    if t.is_nested:
        raise BadFileError(
            f"{path}[{name!r}] is a nested (jagged) tensor, which has no fixed shape to store"
        )
    row = by_torch(t.dtype)
    tag = row.tag if row is not None else str(t.dtype).removeprefix("torch.")
    shape = tuple(int(n) for n in t.shape)
    return Entry(
        name, tag, shape, t.numel() * t.element_size(), row.numpy if row is not None else None
    )


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    from .. import CopyRequiredError, to_torch

    try:
        return to_torch(array, copy=False)
    except CopyRequiredError:
        return to_torch(array)


def write(path: Path, layout: Layout, arrays: Any, progress: Progress | None = None) -> None:
    """``torch.save`` the arrays of ``layout`` (a bare tensor, a flat dict or the nested tree)."""
    tensors = {}
    for entry, array in zip(layout.entries, arrays, strict=True):
        tensors[entry.name] = _as_tensor(array)
        if progress is not None:
            progress(entry.nbytes)
    obj = (
        next(iter(tensors.values()))
        if layout.single and len(tensors) == 1
        else unflatten(tensors, layout.paths)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(obj, path)
