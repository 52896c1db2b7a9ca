"""``torch.distributed.checkpoint`` (DCP) directories: what ``dcp.save`` writes from any number
of ranks.

Layout (PyTorch's): ``.metadata``, a pickle of DCP's ``Metadata`` (every tensor's dtype, global
shape and the chunks each rank wrote, and where each chunk lies), and ``__<rank>_<n>.distcp``
data files.

Reads: with PyTorch's own reader (``FileSystemReader`` and a load planner, through
``torch.distributed.checkpoint``'s single-process load), one tensor at a time, the shards of every
rank assembled into the full tensor. Two things in DCP's default reading run a pickle, and both
are replaced here: ``.metadata`` is unpickled by an ``Unpickler`` that only builds DCP's own
metadata classes (``ALLOWED``; anything else is refused naming the class, before it runs), and
non-tensor values (an epoch number) load with ``torch.load(weights_only=True)``. Every data file
the metadata names must be a plain file name inside the directory.
Each chunk PyTorch's reader decodes is kept as it is (``_Capture``) rather than copied into a
tensor allocated beforehand, and the chunks are read one at a time, so a tensor costs its size
plus one chunk (a tensor saved as one chunk: its size).
Writes: ``dcp.save``'s steps in this one process, with DCP's ``DefaultSavePlanner`` and
``FileSystemWriter``; the tree holds ``meta`` placeholders, each tensor is read from the source
when DCP writes it, and the plan is written in batches (a data file each), into a temporary
directory renamed into place when complete.
"""

from __future__ import annotations

import dataclasses
import io
import mmap
import pickle
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._dtypes import by_torch
from ._common import (
    CHUNK_BYTES,
    BadFileError,
    Entry,
    Key,
    Reader,
    UnsafeFileError,
    entry_for,
    flatten_tree,
    json_value,
    unsafe_name,
)
from .torchfile import map_tensors

__all__ = ["ALLOWED", "INT_KEYS", "DcpReader", "int_keys", "is_dcp", "read_metadata", "save"]

METADATA = ".metadata"

_DCP_META = "torch.distributed.checkpoint.metadata"
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        *(
            (_DCP_META, name)
            for name in (
                "Metadata",
                "MetadataIndex",
                "StorageMeta",
                "TensorProperties",
                "TensorStorageMetadata",
                "BytesStorageMetadata",
                "ChunkStorageMetadata",
                "_MEM_FORMAT_ENCODING",
            )
        ),
        ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
        # where PyTorch 2.0-2.1 kept DCP's tensor properties
        ("torch.distributed._shard.sharded_tensor.metadata", "TensorProperties"),
        ("torch.distributed._shard.sharded_tensor.metadata", "MEM_FORMAT_ENCODING"),
        ("torch.serialization", "_get_layout"),
        ("torch", "Size"),
        ("collections", "OrderedDict"),
        ("pathlib", "PosixPath"),
        ("pathlib", "PurePosixPath"),
        ("pathlib", "WindowsPath"),
        ("pathlib", "PureWindowsPath"),
    }
)
"""The classes a DCP ``.metadata`` may name (besides ``torch`` dtypes): DCP's own, nothing else."""


def is_dcp(directory: Path) -> bool:
    """Whether ``directory`` holds a DCP checkpoint (its ``.metadata`` file)."""
    return (directory / METADATA).is_file()


class _MetadataUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, what: str) -> None:
        super().__init__(file)
        self.what = what

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise UnsafeFileError(
            f"refused: {self.what} names {module}.{name}, which is not one of DCP's metadata "
            "classes; a .metadata that needs it could run arbitrary code, and tensorbridge "
            "never unpickles such a file"
        )


def read_metadata(path: Path) -> Any:
    """DCP's ``Metadata`` from ``path``, unpickled for DCP's own classes only."""
    from torch.distributed.checkpoint.metadata import Metadata

    try:
        with open(path, "rb") as f:
            meta = _MetadataUnpickler(f, str(path)).load()
    except UnsafeFileError:
        raise
    except FileNotFoundError:
        raise BadFileError(f"{path}: no such file") from None
    except Exception as exc:
        raise BadFileError(
            f"{path} is not a readable DCP metadata file ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(meta, Metadata):
        raise BadFileError(f"{path} holds a {type(meta).__name__}, not DCP metadata")
    return meta


def _load_value(value: io.BytesIO, what: str) -> Any:
    try:
        return torch.load(value, map_location="cpu", weights_only=True)
    except Exception:
        raise UnsafeFileError(
            f"refused: {what} is a pickle that needs more than plain values to load; "
            "tensorbridge loads DCP values with weights_only=True and never runs such code"
        ) from None


def _reader_classes(meta: Any, what: str) -> tuple[Any, Any]:
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner

    class Reader_(FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            return meta

    class Planner(DefaultLoadPlanner):
        """Takes each chunk PyTorch's reader decodes as it is (``_Capture``), and places it."""

        def __init__(self, place: Any) -> None:
            super().__init__(flatten_state_dict=False, flatten_sharded_tensors=False)
            self.place = place
            self.capture = _Capture()

        def set_up_planner(self, state_dict: Any, metadata: Any = None, *args: Any) -> None:
            # DefaultLoadPlanner's own, without allocating the meta targets on a device
            self.original_state_dict = self.state_dict = state_dict
            self.metadata = metadata
            self.is_coordinator = True

        def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
            fqn = read_item.dest_index.fqn
            self.original_state_dict[fqn] = _load_value(value, f"{what}[{fqn!r}]")

        def commit_tensor(self, read_item: Any, tensor: Any) -> None:
            self.place(read_item, self.capture.taken.pop())

    return Reader_, Planner


class _Capture(torch.overrides.TorchFunctionMode):
    """Keeps the chunk PyTorch's reader copies into a ``meta`` target instead of the copy.

    The reader decodes a chunk, then copies it into the tensor the planner resolves. Resolving to
    a ``meta`` tensor and keeping the decoded chunk saves that copy and its memory: a tensor
    written as one chunk is loaded once, not twice.
    """

    def __init__(self) -> None:
        super().__init__()
        self.taken: list[torch.Tensor] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.Tensor.copy_ and args[0].device.type == "meta":
            self.taken.append(args[1])
            return args[0]
        return func(*args, **(kwargs or {}))


class DcpReader(Reader):
    """Reads a DCP checkpoint directory one tensor at a time, every rank's chunks assembled."""

    def __init__(self, path: Path) -> None:
        from torch.distributed.checkpoint.metadata import BytesStorageMetadata

        self.path = path
        self.metadata = {}
        self.meta = read_metadata(path / METADATA)
        self._check_files()
        reader_cls, self._planner = _reader_classes(self.meta, str(path))
        self._reader = reader_cls(str(path))
        self.entries = []
        self._tensors: dict[str, Any] = {}
        self._values: dict[str, np.ndarray] = {}  # tensors found inside pickled values
        values = []
        for fqn, md in self.meta.state_dict_metadata.items():
            if isinstance(md, BytesStorageMetadata):
                values.append(fqn)
                continue
            row = by_torch(md.properties.dtype)
            tag = row.tag if row is not None else str(md.properties.dtype).removeprefix("torch.")
            shape = tuple(int(n) for n in md.size)
            self._check_chunks(fqn, shape, md.chunks)
            size = int(np.prod(shape)) * torch.empty(0, dtype=md.properties.dtype).element_size()
            self._tensors[fqn] = md
            self.entries.append(Entry(fqn, tag, shape, size, row.numpy if row else None))
        self.others = self._load({fqn: None for fqn in values}) if values else {}
        ints = self._int_keys(self.others.pop(INT_KEYS, None))
        paths = self.meta.planner_data
        if isinstance(paths, dict) and all(isinstance(p, tuple) for p in paths.values()):
            paths = {k: _typed(tuple(p), ints) for k, p in paths.items() if k != INT_KEYS}
            self.containers = {_typed(p[:-1], ints): "dict" for p in ints}
            self._unpack_values(paths)
            nested = any(len(p) != 1 or not isinstance(p[0], str) for p in paths.values())
            self.paths = paths if nested else None

    def _unpack_values(self, paths: dict[str, tuple[Key, ...]]) -> None:
        """Tensors inside a value DCP pickled whole (a tuple of tensors) become entries of their
        own, the value's structure kept in ``paths`` (in place of the value's, in its order) and
        ``containers``."""
        from .. import to_numpy

        unpacked: dict[str, dict[str, tuple[Key, ...]]] = {}
        for name in [n for n, v in self.others.items() if isinstance(v, (list, tuple, dict))]:
            flat, inner, kinds = flatten_tree(
                self.others[name], is_leaf=lambda x: isinstance(x, torch.Tensor)
            )
            if not any(isinstance(v, torch.Tensor) for v in flat.values()):
                continue
            base = paths.get(name, (name,))
            del self.others[name]
            unpacked[name] = {}
            for key, value in flat.items():
                full = f"{name}.{key}" if key else name
                unpacked[name][full] = (*base, *(inner[key] if inner else (key,)))
                if isinstance(value, torch.Tensor):
                    self._values[full] = to_numpy(value)
                    self.entries.append(entry_for(full, self._values[full]))
                else:
                    self.others[full] = value
            self.containers.update({(*base, *p): kind for p, kind in kinds.items()})
        if unpacked:
            ordered = {}
            for name, path in paths.items():
                ordered.update(unpacked.get(name, {name: path}))
            paths.clear()
            paths.update(ordered)

    def _int_keys(self, raw: Any) -> set[tuple[Key, ...]]:
        found = json_value(raw) if raw is not None else []
        ok = isinstance(found, list) and all(
            isinstance(p, list) and p and all(isinstance(k, (str, int)) for k in p) for p in found
        )
        if not ok:
            raise BadFileError(f"{self.path} has a corrupt {INT_KEYS!r} value")
        return {tuple(p) for p in found}

    def _check_chunks(self, fqn: str, shape: tuple[int, ...], chunks: Any) -> None:
        """Every element of the tensor is in exactly one rank's chunk: no gap is left unread."""
        covered = 0
        for chunk in chunks:
            offsets, sizes = tuple(chunk.offsets), tuple(chunk.sizes)
            inside = len(offsets) == len(sizes) == len(shape) and all(
                o >= 0 and n >= 0 and o + n <= dim
                for o, n, dim in zip(offsets, sizes, shape, strict=True)
            )
            if not inside:
                raise BadFileError(
                    f"{self.path}: tensor {fqn!r} of shape {list(shape)} has a chunk at "
                    f"{list(offsets)} of size {list(sizes)} outside it; the metadata is corrupt"
                )
            covered += int(np.prod(sizes))
        if covered != int(np.prod(shape)):
            raise BadFileError(
                f"{self.path}: the chunks of tensor {fqn!r} hold {covered} of its "
                f"{int(np.prod(shape))} elements; the checkpoint is incomplete or corrupt "
                "(a rank's data missing)"
            )

    def _check_files(self) -> None:
        for info in (self.meta.storage_data or {}).values():
            name = str(getattr(info, "relative_path", ""))
            why = unsafe_name(name)
            if why is not None or "/" in name or "\\" in name:
                raise UnsafeFileError(
                    f"refused: {self.path}/{METADATA} points at data file {name!r}, which is "
                    f"not a file inside the checkpoint ({why or 'another directory'})"
                )
            if not (self.path / name).is_file():
                raise BadFileError(
                    f"{self.path} is incomplete: its metadata names data file {name}, "
                    "which does not exist"
                )

    def _load(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        """Fill ``state_dict`` (``meta`` tensors and ``None`` for values) from the checkpoint."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return self._read(state_dict)
        except UnsafeFileError:
            raise
        except (Exception, _checkpoint_exception()) as exc:
            cause = root_cause(exc)
            if isinstance(cause, (UnsafeFileError, KeyboardInterrupt)):
                raise cause from None
            names = ", ".join(repr(k) for k in list(state_dict)[:3])
            raise BadFileError(
                f"{self.path}: PyTorch's DCP reader failed on {names} ({describe(cause)})"
            ) from None

    def _read(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        """DCP's single-process load (``_load_state_dict``'s steps), one read item at a time.

        Reading item by item frees each decoded chunk before the next is decoded. A tensor
        written as one chunk is that chunk; one written in chunks is assembled (``_Assembly``).
        """
        out = dict(state_dict)

        def place(item: Any, chunk: torch.Tensor) -> None:
            fqn = item.dest_index.fqn
            shape = tuple(state_dict[fqn].shape)
            if tuple(chunk.shape) == shape:
                out[fqn] = chunk
                return
            if out[fqn] is state_dict[fqn]:
                out[fqn] = _Assembly(shape, state_dict[fqn].dtype)
            view = out[fqn].tensor
            for dim, (start, length) in enumerate(
                zip(item.dest_offsets, item.lengths, strict=True)
            ):
                view = view.narrow(dim, start, length)
            out[fqn].put(view, chunk)

        planner = self._planner(place)
        reader = self._reader
        planner.set_up_planner(state_dict, self.meta, True)
        reader.set_up_storage_reader(self.meta, True)
        plan = reader.prepare_local_plan(planner.create_local_plan())
        plans = reader.prepare_global_plan(planner.create_global_plan([plan]))
        plan = planner.finish_plan(plans[0])
        where = reader.storage_data
        items = sorted(
            plan.items,
            key=lambda i: (where[i.storage_index].relative_path, where[i.storage_index].offset),
        )
        with planner.capture:
            for item in items:
                reader.read_data(dataclasses.replace(plan, items=[item]), planner).wait()
        for fqn, value in out.items():
            if isinstance(value, torch.Tensor) and value.is_meta:  # no chunk to read: no values
                if value.numel():
                    raise BadFileError(f"{self.path}: tensor {fqn!r} has no data in the checkpoint")
                out[fqn] = torch.empty(value.shape, dtype=value.dtype)
        # load_bytes stored the non-tensor values in state_dict itself (the planner's dict)
        return {fqn: state_dict[fqn] if value is None else value for fqn, value in out.items()}

    def load(self, name: str) -> np.ndarray:
        from .. import to_numpy

        if name in self._values:
            return self._values[name]
        md = self._tensors[name]
        target = torch.empty(tuple(md.size), dtype=md.properties.dtype, device="meta")
        value = self._load({name: target})[name]
        return value.array() if isinstance(value, _Assembly) else to_numpy(value)

    def describe(self) -> list[dict[str, Any]]:
        """One row per data file: its name, chunks, bytes on disk."""
        files: dict[str, int] = {}
        for info in (self.meta.storage_data or {}).values():
            files[info.relative_path] = files.get(info.relative_path, 0) + 1
        return [
            {"file": name, "chunks": n, "file_bytes": (self.path / name).stat().st_size}
            for name, n in sorted(files.items())
        ]


INT_KEYS = "tensorbridge.int_keys"
"""The value in which a DCP checkpoint tensorbridge writes lists its integer dict keys."""


def int_keys(
    paths: dict[str, tuple[Key, ...]] | None, containers: dict[tuple[Key, ...], str]
) -> list[list[Key]]:
    """Where ``paths`` (``flatten_tree``'s) hold an integer dict key: the path down to each such
    key, as DCP writes it.

    DCP's flattening turns every dict key into a string (``{0: t}`` is saved under ``"0"``) and
    keeps list indices as integers. ``DcpReader`` turns exactly these keys back into integers
    (``_typed``), so ``.pt`` → DCP → ``.pt`` gives an optimizer's ``state`` back as ``{0: ...}``,
    which ``load_state_dict`` matches to its parameters.

    >>> int_keys({"s.0.w": ("s", 0, "w"), "s.01": ("s", "01"), "l.0": ("l", 0)}, {("s",): "dict"})
    [['s', '0']]
    """
    found: dict[tuple[Key, ...], None] = {}
    for path in (paths or {}).values():
        form: list[Key] = []
        for depth, key in enumerate(path):
            in_int_dict = containers.get(path[:depth]) == "dict"
            form.append(str(key) if in_int_dict else key)
            if in_int_dict and isinstance(key, int):
                found[tuple(form)] = None
    return [list(p) for p in found]


def _typed(path: tuple[Key, ...], ints: set[tuple[Key, ...]]) -> tuple[Key, ...]:
    """A DCP key path with the integer dict keys ``ints`` lists turned back into integers."""
    return tuple(
        int(key) if isinstance(key, str) and path[: depth + 1] in ints else key
        for depth, key in enumerate(path)
    )


SPILL_BYTES = 64 << 20
"""A tensor saved in chunks and larger than this is assembled in a temporary file, not memory."""


class _Assembly:
    """A tensor put together from its chunks.

    Up to ``SPILL_BYTES`` it is plain memory. Larger, it lives in an unlinked temporary file (in
    the system's temporary directory, gone with the process even if killed) mapped into memory:
    each part of a chunk is handed back to the file once it is copied in, and the result is
    a read-only map whose pages the writer hands back as it goes. Assembling then holds one
    decoded chunk and ``CHUNK_BYTES``, not the tensor and a chunk.
    """

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype) -> None:
        self.shape = shape
        self.nbytes = int(np.prod(shape)) * dtype.itemsize
        row = by_torch(dtype)
        self.numpy = row.numpy if row is not None else None
        self.file: Any = None
        if self.nbytes <= SPILL_BYTES or self.numpy is None or not hasattr(mmap, "MADV_DONTNEED"):
            self.tensor = torch.empty(shape, dtype=dtype)
            return
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the values)
        self.file.truncate(self.nbytes)
        self.map = mmap.mmap(self.file.fileno(), self.nbytes)
        self.tensor = torch.frombuffer(self.map, dtype=torch.uint8).view(dtype).reshape(shape)

    def put(self, view: torch.Tensor, chunk: torch.Tensor) -> None:
        """Copy ``chunk`` into ``view`` (of ``tensor``), about ``CHUNK_BYTES`` at a time, each
        part's pages handed back to the file before the next is copied."""
        if self.file is None or chunk.dim() == 0 or chunk.shape[0] == 0:
            view.copy_(chunk)
            return
        step = max(1, CHUNK_BYTES // max(1, chunk[0].nbytes))
        for start in range(0, chunk.shape[0], step):
            view[start : start + step].copy_(chunk[start : start + step])
            # a shared file map: the pages stay in the file (the page cache), only unmapped
            self.map.madvise(mmap.MADV_DONTNEED)

    def array(self) -> np.ndarray:
        """The assembled values."""
        from .. import to_numpy

        if self.file is None or self.numpy is None:
            return to_numpy(self.tensor)
        del self.tensor
        raw = np.memmap(self.file, dtype=np.uint8, mode="r", shape=(self.nbytes,))
        return raw.view(self.numpy).reshape(self.shape)


def _checkpoint_exception() -> type[BaseException]:
    from torch.distributed.checkpoint.api import CheckpointException

    return CheckpointException


def root_cause(exc: BaseException) -> BaseException:
    """The exception a rank raised inside DCP's ``CheckpointException`` (a ``BaseException``)."""
    failures = getattr(exc, "failures", None)
    if isinstance(exc, _checkpoint_exception()) and isinstance(failures, dict) and failures:
        first = next(iter(failures.values()))
        exc = first[0] if isinstance(first, tuple) else first
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def describe(exc: BaseException) -> str:
    """``"TypeError: first line of the message"``."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


BATCH_BYTES = 64 << 20
"""The data written by one ``write_data`` call: one data file of about this size, or one tensor."""


def save(
    directory: Path,
    tree: Any,
    load: Callable[[torch.Tensor], torch.Tensor],
    flush: Callable[[], None] = lambda: None,
) -> None:
    """Write ``tree`` (a dict) as a DCP checkpoint into the existing, empty ``directory``.

    ``tree`` holds ``meta`` tensors where the tensors go; ``load(placeholder)`` gives each one's
    values when DCP writes it, and ``flush()`` is called after each data file, when every tensor
    loaded so far is written. DCP's own steps (``dcp.save``'s, in one process) with PyTorch's
    ``DefaultSavePlanner`` and ``FileSystemWriter``; the plan's items are written in batches of
    about ``BATCH_BYTES``, so memory holds one tensor (or one batch of small ones), not the tree.
    A failure inside DCP is re-raised as the exception that caused it (or ``BadFileError``).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _save(directory, tree, load, flush)
    except (Exception, _checkpoint_exception()) as exc:
        cause = root_cause(exc)
        if isinstance(cause, (OSError, KeyboardInterrupt, BadFileError)):
            raise cause from None
        raise BadFileError(f"PyTorch's DCP writer failed ({describe(cause)})") from None


def _save(directory: Path, tree: Any, load: Any, flush: Callable[[], None]) -> None:
    from torch.distributed.checkpoint import FileSystemWriter
    from torch.distributed.checkpoint.default_planner import DefaultSavePlanner
    from torch.distributed.checkpoint.filesystem import _StoragePrefix
    from torch.distributed.checkpoint.planner import WriteItemType

    class Planner(DefaultSavePlanner):
        def resolve_data(self, write_item: Any) -> Any:
            value = self.lookup_object(write_item.index)
            if write_item.type != WriteItemType.BYTE_IO:
                return load(value)
            # a value DCP pickles whole (a tuple of tensors): its placeholders loaded first
            return self.transform_object(write_item, map_tensors(value, lambda _, t: load(t)))

    planner, writer = Planner(), FileSystemWriter(str(directory), thread_count=1)
    planner.set_up_planner(tree, storage_meta=writer.storage_meta(), is_coordinator=True)
    writer.set_up_storage_writer(True)
    local = writer.prepare_local_plan(planner.create_local_plan())
    plans, metadata = planner.create_global_plan([local])
    plan = planner.finish_plan(writer.prepare_global_plan(plans)[0])
    batches: list[list[Any]] = [[]]
    size = 0
    for item in plan.items:
        data = item.tensor_data
        nbytes = data.size.numel() * data.properties.dtype.itemsize if data is not None else 0
        if batches[-1] and size + nbytes > BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += nbytes
    results = []
    for k, batch in enumerate(batches):
        part = dataclasses.replace(plan, items=batch, storage_data=_StoragePrefix(f"__{k}_"))
        results += writer.write_data(part, planner).value()
        flush()
    writer.finish(metadata=metadata, results=[results])
