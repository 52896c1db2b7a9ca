"""PyTorch's format (``.pt``, ``.pth``, ``.bin``, ``.ckpt``): what ``torch.save`` writes.

Reads: with ``torch.load(weights_only=True, map_location="cpu")`` only, memory-mapped where the
file is in the zip format (PyTorch ≥ 1.6), fully loaded for the legacy format. Each tensor's
bytes are then mapped on their own while it is converted, so memory stays near one tensor.
A bare tensor or a (nested) dict/list of tensors; nested keys flatten to dotted names
(``{"enc": {"w": t}}`` → ``enc.w``). Conjugate and negative views are read as their logical values.
Writes: with ``torch.save``'s own pickler and zip writer, one tensor at a time (each tensor's
record is filled when its turn comes: the records ``torch.save`` writes, CRCs included); a dict of
tensors (flat, as ``model.state_dict()`` gives, or nested again when the source recorded a
nesting), or a bare tensor when the source held one unnamed tensor (a ``.npy``). Holds every dtype
PyTorch has, bfloat16, float8 and complex32 included.
Refuses: any file whose pickle needs more than tensors and plain containers (``weights_only=True``
refuses to call arbitrary globals; nothing in the file is ever executed), nested (jagged) tensors.
Non-tensor values (an ``epoch`` number, a string) are listed in ``others``; a PyTorch file
keeps them, other formats refuse them unless asked to skip them. ``.pt`` → ``.pt`` keeps the
loaded object as it is (``write_tree``): dict key types, tuples, values, and which tensors share
storage (tied weights), casting shared storage once.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._dtypes import TABLE, by_torch, torch_dtype
from ._common import (
    BadFileError,
    Entry,
    Layout,
    Progress,
    Reader,
    UnsafeFileError,
    cast,
    each,
    flatten_tree,
    release,
    unflatten,
)

__all__ = ["DTYPES", "TorchReader", "load", "map_tensors", "same_tree", "write", "write_tree"]

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
    """Reads a PyTorch file; non-tensor leaves land in ``others`` (name → value).

    ``obj`` is the whole loaded object (``.pt`` → ``.pt`` keeps it as it is). Names that share
    one tensor (tied weights) are listed once in ``entries``; the other names are ``aliases``.
    """

    def __init__(self, path: Path, name: str | None = None) -> None:
        self.path = path
        self.metadata = {}
        self.obj = load(path)
        flat, self.paths, self.containers = flatten_tree(
            self.obj, is_leaf=lambda x: isinstance(x, torch.Tensor)
        )
        self.single = "" in flat and isinstance(flat[""], torch.Tensor)
        if self.single:
            flat = {name if name is not None else path.stem: flat[""]}
            self.paths = None
        self._tensors: dict[str, torch.Tensor] = {}
        self.others = {}
        self.aliases = {}
        self.entries = []
        seen: dict[tuple[Any, ...], str] = {}
        for key, value in flat.items():
            if not isinstance(value, torch.Tensor):
                self.others[key] = value
                continue
            self._tensors[key] = value
            same = _identity(value)
            if same is not None and same in seen:
                self.aliases[key] = seen[same]
                continue
            if same is not None:
                seen[same] = key
            self.entries.append(_entry(path, key, value))
        self._file = _FileMap.of(path, self._tensors.values())

    def load(self, name: str) -> np.ndarray:
        tensor = self._tensors[name]
        if self._file is not None:
            array = self._file.array(tensor)
            if array is not None:
                return array
        from .. import to_numpy

        return to_numpy(tensor)

    def close(self) -> None:
        self._tensors.clear()


def _identity(t: torch.Tensor) -> tuple[Any, ...] | None:
    """What makes two tensors one tensor (tied weights): storage, offset, shape, strides, dtype."""
    if t.layout != torch.strided or t.is_nested or t.is_quantized or t.is_conj() or t.is_neg():
        return None
    storage = t.untyped_storage().data_ptr()
    return (storage, t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)


class _FileMap:
    """Where each tensor's bytes lie in a zip-format PyTorch file, to map them one at a time.

    ``torch.load(mmap=True)`` maps the whole file once, so every page a conversion reads would
    stay resident until the end. Mapping each tensor's own bytes (and dropping that map after
    use) keeps memory near one tensor. The offsets are checked against the file's records
    first; on any doubt ``load`` uses the tensors ``torch.load`` returned.
    """

    def __init__(self, path: Path, base: int, size: int) -> None:
        self.path, self.base, self.size = path, base, size

    @classmethod
    def of(cls, path: Path, tensors: Any) -> _FileMap | None:
        storages = [t.untyped_storage() for t in tensors if _identity(t) is not None]
        storages = [s for s in storages if s.nbytes()]
        if not storages:
            return None
        try:
            records: Any = torch._C.PyTorchFileReader(str(path))
            names = records.get_all_records()
            offsets = {records.get_record_offset(n) for n in names if n.startswith("data/")}
            if "byteorder" in names:  # bytes of the other order are swapped by torch.load only
                order = bytes(records.get_record("byteorder")).decode()
                if order != sys.byteorder:
                    return None
        except Exception:  # the legacy format, or anything unexpected: no per-tensor maps
            return None
        if not offsets:
            return None
        size = path.stat().st_size
        base = _mapping_base(path, storages[0].data_ptr())
        if base is None:
            return None
        for s in storages:
            at = s.data_ptr() - base
            if at not in offsets or at + s.nbytes() > size:
                return None
        return cls(path, base, size)

    def array(self, t: torch.Tensor) -> np.ndarray | None:
        """``t``'s values as a read-only map of the file, or ``None`` where that cannot be."""
        row = by_torch(t.dtype)
        if _identity(t) is None or row is None or row.numpy is None or t.numel() == 0:
            return None
        if min(t.stride(), default=0) < 0:
            return None
        itemsize = t.element_size()
        first = int(t.untyped_storage().data_ptr() - self.base + t.storage_offset() * itemsize)
        span = int(1 + sum((n - 1) * st for n, st in zip(t.shape, t.stride(), strict=True)))
        span *= itemsize
        if first < 0 or first + span > self.size:
            return None
        raw = np.memmap(self.path, np.uint8, mode="r", offset=first, shape=(span,))
        # strided over bytes with a trailing axis of one item, then viewed as the dtype: NumPy's
        # as_strided cannot build ml_dtypes arrays directly
        strides = (*(st * itemsize for st in t.stride()), 1)
        items = np.lib.stride_tricks.as_strided(raw, (*t.shape, itemsize), strides, writeable=False)
        return items.view(row.numpy)[..., 0]


def _mapping_base(path: Path, address: int) -> int | None:
    """The address where byte 0 of ``path`` would lie in the mapping that holds ``address``, read
    from ``/proc/self/maps`` (Linux); ``None`` elsewhere or when no mapping of ``path`` holds it."""
    try:
        target = os.stat(path)
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                start, end = (int(x, 16) for x in fields[0].split("-"))
                if not start <= address < end or len(fields) < 6:
                    continue
                major, minor = (int(x, 16) for x in fields[3].split(":"))
                if int(fields[4]) != target.st_ino or os.makedev(major, minor) != target.st_dev:
                    return None
                return start - int(fields[2], 16)
    except (OSError, ValueError):
        return None
    return None


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


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """``array`` as a tensor, sharing its memory where PyTorch can."""
    from .. import CopyRequiredError, to_torch

    try:
        return to_torch(array, copy=False)
    except CopyRequiredError:
        return to_torch(array)


def write(path: Path, layout: Layout, arrays: Any, progress: Progress | None = None) -> None:
    """``torch.save`` the arrays of ``layout`` (cast to their entries' dtypes): a bare tensor, a
    flat dict or the nested tree, with its aliases sharing their tensors and its non-tensor values.

    Written one tensor at a time (``_Records``) when ``torch.save`` stores the tensors in the
    order of the entries, as it does for every tree ``flatten`` took apart; otherwise (a dict
    whose integer keys are out of order) the object is built whole first.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode  # heavy; only when writing

    with FakeTensorMode():
        fakes = {
            e.name: torch.empty(e.shape, dtype=None if e.dtype is None else torch_dtype(e.dtype))
            for e in layout.entries
        }
    obj = _layout_object(layout, fakes)
    if _pickle_order(obj, fakes) == list(fakes):
        _stream(path, obj, layout, arrays, progress)
        return
    tensors: dict[str, Any] = {}
    for entry, array in zip(layout.entries, arrays, strict=True):
        tensors[entry.name] = as_tensor(cast(array, entry.dtype))
        if progress is not None:
            progress(entry.nbytes)
    save(_layout_object(layout, tensors), path)


def _pickle_order(obj: Any, tensors: dict[str, torch.Tensor]) -> list[str]:
    """The names of ``tensors`` in the order pickling ``obj`` first meets them: the order in
    which ``torch.save`` numbers their storages."""
    names = {id(t): name for name, t in tensors.items()}
    order: dict[str, None] = {}

    class Order(pickle.Pickler):
        def persistent_id(self, value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                order.setdefault(names.get(id(value), ""), None)
                return 0
            return None

    Order(io.BytesIO(), protocol=torch.serialization.DEFAULT_PROTOCOL).dump(obj)
    return list(order)


def _layout_object(layout: Layout, tensors: dict[str, Any]) -> Any:
    tensors = dict(tensors)
    for alias, target in layout.aliases.items():
        tensors[alias] = tensors[target]
    tensors.update(layout.others)
    if layout.single and len(tensors) == 1:
        return next(iter(tensors.values()))
    return unflatten(tensors, layout.paths, layout.containers)


class _Records:
    """PyTorch's zip writer, with each tensor's record written from its array when it comes up.

    ``torch.save``'s own ``_save`` pickles the object (placeholders: ``FakeTensor`` s, which hold
    no memory) and then asks for each storage's record in turn; under ``skip_data`` it asks for an
    empty record (``write_record_metadata``), and here that record is written with the tensor's
    values instead, read and cast only then: the records ``torch.save`` writes, CRCs included.
    ``write`` checked that the storages are numbered in the order of the entries.
    """

    def __init__(self, writer: Any, layout: Layout, arrays: Any, progress: Progress | None) -> None:
        self.writer = writer
        self.source = each(layout.entries, arrays)
        self.progress = progress

    def write_record(self, name: str, data: Any, size: int) -> None:
        self.writer.write_record(name, data, size)

    def write_record_metadata(self, name: str, size: int) -> None:
        tls = torch.serialization._serialization_tls
        skipping, tls.skip_data = tls.skip_data, False  # the source may torch.load (DCP does)
        try:
            entry, array = next(self.source)
        finally:
            tls.skip_data = skipping
        raw = np.ascontiguousarray(cast(array, entry.dtype)).reshape(-1).view(np.uint8)
        if raw.nbytes != size:
            raise BadFileError(f"tensor {entry.name!r} has {raw.nbytes} bytes, not {size}")
        # the bytes as a storage of their own (a tensor's storage may begin before its data)
        self.writer.write_record(name, torch.from_numpy(raw).untyped_storage(), size)
        release(array)
        del array, raw  # freed before the next tensor is read
        if self.progress is not None:
            self.progress(entry.nbytes)


def _stream(path: Path, obj: Any, layout: Layout, arrays: Any, progress: Progress | None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.serialization._open_zipfile_writer(str(path)) as writer:
            records = _Records(writer, layout, arrays, progress)
            with torch.serialization.skip_data(materialize_fake_tensors=True):
                torch.serialization._save(
                    obj, records, pickle, torch.serialization.DEFAULT_PROTOCOL, False
                )
            if next(records.source, None) is not None:
                raise BadFileError(f"{path}: fewer records than tensors were written")


def save(obj: Any, path: Path) -> None:
    """``torch.save`` with PyTorch's own warnings kept from the caller."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(obj, path)


# --------------------------------------------------------------------------------------------
# .pt → .pt: the loaded object, kept as it is


def map_tensors(obj: Any, fn: Any) -> Any:
    """``obj`` with every tensor ``t`` (at dotted name ``n``) replaced by ``fn(n, t)``.

    Dicts (and their subclasses, key types included), lists and tuples keep their types; other
    values are kept as they are. A tensor reached twice is mapped once.
    """
    memo: dict[int, Any] = {}

    def walk(node: Any, name: str) -> Any:
        if isinstance(node, torch.Tensor):
            if id(node) not in memo:
                memo[id(node)] = fn(name, node)
            return memo[id(node)]
        join = (lambda k: f"{name}.{k}") if name else str
        if isinstance(node, dict):
            out = type(node)()
            for key, value in node.items():
                out[key] = walk(value, join(key))
            return out
        if isinstance(node, (list, tuple)):
            items = [walk(value, join(i)) for i, value in enumerate(node)]
            return type(node)(items) if type(node) in (list, tuple) else items
        return node

    return walk(obj, "")


def cast_tree(obj: Any, target: Any) -> Any:
    """``obj`` with each tensor cast to ``target(name, tensor)`` (a torch dtype, or ``None`` to
    keep it), tensors that shared storage still sharing it: a storage is cast once and the views
    are rebuilt on the cast copy."""
    plans: dict[int, list[tuple[str, torch.Tensor, Any]]] = {}

    def collect(name: str, t: torch.Tensor) -> torch.Tensor:
        if t.layout == torch.strided and not t.is_nested:
            plans.setdefault(t.untyped_storage().data_ptr(), []).append((name, t, target(name, t)))
        return t

    map_tensors(obj, collect)
    done: dict[int, torch.Tensor] = {}
    for group in plans.values():
        dtypes = {t.dtype for _, t, _ in group}
        targets = {dt for _, _, dt in group}
        if targets == {None}:
            continue
        storage = group[0][1].untyped_storage()
        itemsize = group[0][1].element_size()
        shared = (
            len(dtypes) == 1
            and len(targets) == 1
            and storage.nbytes() % itemsize == 0
            and not any(t.is_conj() or t.is_neg() for _, t, _ in group)
        )
        if shared:
            (dtype,), (new,) = dtypes, targets
            n = storage.nbytes() // itemsize
            whole = torch.empty(0, dtype=dtype).set_(storage, 0, (n,), (1,))
            cast_whole = whole.to(new)
            for _, t, _ in group:
                done[id(t)] = cast_whole.as_strided(t.shape, t.stride(), t.storage_offset())
        else:
            for _, t, dt in group:
                done[id(t)] = t if dt is None else t.to(dt)
    return map_tensors(obj, lambda name, t: done.get(id(t), t))


def write_tree(path: Path, obj: Any) -> None:
    """``torch.save`` a loaded (and possibly cast) object as it is."""
    save(obj, path)


def same_tree(a: Any, b: Any) -> str | None:
    """Where ``b`` differs from ``a`` (types, keys, values, tensor bits, storage sharing), or
    ``None`` when they are the same."""
    groups: dict[str, list[tuple[int, int]]] = {}

    def walk(x: Any, y: Any, name: str) -> str | None:
        where = name or "the top level"
        if type(x) is not type(y):
            return f"{where} is a {type(y).__name__}, expected a {type(x).__name__}"
        join = (lambda k: f"{name}.{k}") if name else str
        if isinstance(x, torch.Tensor):
            groups.setdefault("", []).append((_ptr(x), _ptr(y)))
            return None if _same_tensor(x, y) else f"tensor {where} differs"
        if isinstance(x, dict):
            if list(x) != list(y):
                return f"{where} has keys {list(y)[:5]}, expected {list(x)[:5]}"
            for key in x:
                found = walk(x[key], y[key], join(key))
                if found:
                    return found
            return None
        if isinstance(x, (list, tuple)):
            if len(x) != len(y):
                return f"{where} has {len(y)} items, expected {len(x)}"
            for i, (u, v) in enumerate(zip(x, y, strict=True)):
                found = walk(u, v, join(i))
                if found:
                    return found
            return None
        if x != y and not (x != x and y != y):  # NaN equals NaN here
            return f"{where} is {y!r}, expected {x!r}"
        return None

    found = walk(a, b, "")
    if found:
        return found
    pairs = groups.get("", [])
    forward: dict[int, int] = {}
    backward: dict[int, int] = {}
    for p, q in pairs:
        if forward.setdefault(p, q) != q or backward.setdefault(q, p) != p:
            return "tensors that shared storage no longer do (or new sharing appeared)"
    return None


def _ptr(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr() if t.layout == torch.strided and t.numel() else id(t)


def _same_tensor(x: torch.Tensor, y: torch.Tensor) -> bool:
    if x.dtype != y.dtype or x.shape != y.shape or x.layout != y.layout:
        return False
    if x.layout != torch.strided:
        return bool(torch.equal(x.to_dense(), y.to_dense()))
    x = x.resolve_conj().resolve_neg().contiguous().reshape(-1)
    y = y.resolve_conj().resolve_neg().contiguous().reshape(-1)
    return bool(torch.equal(x.view(torch.uint8), y.view(torch.uint8)))
