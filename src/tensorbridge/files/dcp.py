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
Writes: ``dcp.save`` of the whole tree (tensors and non-tensor values) in this one process
(``no_dist=True``), into a temporary directory renamed into place when complete.
"""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._dtypes import by_torch
from ._common import BadFileError, Entry, Reader, UnsafeFileError, unsafe_name

__all__ = ["ALLOWED", "DcpReader", "is_dcp", "read_metadata", "save"]

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
        def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
            fqn = read_item.dest_index.fqn
            self.original_state_dict[fqn] = _load_value(value, f"{what}[{fqn!r}]")

    return Reader_, Planner


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
        values = []
        for fqn, md in self.meta.state_dict_metadata.items():
            if isinstance(md, BytesStorageMetadata):
                values.append(fqn)
                continue
            row = by_torch(md.properties.dtype)
            tag = row.tag if row is not None else str(md.properties.dtype).removeprefix("torch.")
            shape = tuple(int(n) for n in md.size)
            size = int(np.prod(shape)) * torch.empty(0, dtype=md.properties.dtype).element_size()
            self._tensors[fqn] = md
            self.entries.append(Entry(fqn, tag, shape, size, row.numpy if row else None))
        self.others = self._load({fqn: None for fqn in values}) if values else {}
        paths = self.meta.planner_data
        if isinstance(paths, dict) and all(isinstance(p, tuple) for p in paths.values()):
            nested = any(len(p) != 1 for p in paths.values())
            self.paths = {k: tuple(p) for k, p in paths.items()} if nested else None

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
        from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _load_state_dict(
                    state_dict,
                    storage_reader=self._reader,
                    planner=self._planner(flatten_state_dict=False),
                    no_dist=True,
                )
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
        return state_dict

    def load(self, name: str) -> np.ndarray:
        from .. import to_numpy

        md = self._tensors[name]
        tensor = torch.empty(tuple(md.size), dtype=md.properties.dtype)
        return to_numpy(self._load({name: tensor})[name])

    def describe(self) -> list[dict[str, Any]]:
        """One row per data file: its name, chunks, bytes on disk."""
        files: dict[str, int] = {}
        for info in (self.meta.storage_data or {}).values():
            files[info.relative_path] = files.get(info.relative_path, 0) + 1
        return [
            {"file": name, "chunks": n, "file_bytes": (self.path / name).stat().st_size}
            for name, n in sorted(files.items())
        ]


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


def save(directory: Path, tree: Any) -> None:
    """``dcp.save`` ``tree`` (a dict) into the existing, empty ``directory`` in this process.

    A failure inside DCP is re-raised as the exception that caused it (or ``BadFileError``).
    """
    import torch.distributed.checkpoint as dist_cp

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            writer = dist_cp.FileSystemWriter(str(directory))
            dist_cp.save(tree, storage_writer=writer, no_dist=True)
    except (Exception, _checkpoint_exception()) as exc:
        cause = root_cause(exc)
        if isinstance(cause, (OSError, KeyboardInterrupt)):
            raise cause from None
        raise BadFileError(f"PyTorch's DCP writer failed ({describe(cause)})") from None
