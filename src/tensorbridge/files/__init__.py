"""Tensors in files: ``.npy``, ``.npz``, PyTorch (``.pt``/``.pth``/``.bin``/``.ckpt``),
``.safetensors``, sharded checkpoints (Hugging Face index files and directories) and
``torch.distributed.checkpoint`` directories.

The format is chosen by the file's extension (``_open``); every format has a module with the same
verbs (a reader class and ``write``) and a docstring that says what it reads, writes and refuses.
Nothing here ever runs a pickle. Writes are atomic: a temporary file or directory beside the
destination, renamed into place only when complete (and verified, when asked); a temporary left
by a killed run is removed by the next run.

>>> import numpy as np, tensorbridge.files as tf
>>> tf.write("w.safetensors", {"enc": {"w": np.ones((2, 2), np.float32)}})  # doctest: +SKIP
>>> tf.convert("w.safetensors", "w.pt", verify=True).tensors                # doctest: +SKIP
1
>>> [e.name for e in tf.inspect("w.pt").entries]                           # doctest: +SKIP
['enc.w']
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import dcp, sharded
from . import image as image_files
from ._common import (
    BadFileError,
    Entry,
    FileUsageError,
    Layout,
    UnsafeFileError,
    atomic_path,
    dtype_tag,
    entry_for,
    flatten,
    flatten_tree,
    unflatten,
)
from ._convert import ConvertReport, ProgressCallback, check_layout, convert, same_bits
from ._open import FORMATS, LABEL, format_of, open_reader

__all__ = [
    "FORMATS",
    "BadFileError",
    "ConvertReport",
    "Entry",
    "FileInfo",
    "FileUsageError",
    "ProgressCallback",
    "UnsafeFileError",
    "convert",
    "dtype_tag",
    "flatten",
    "format_of",
    "inspect",
    "open_reader",
    "read",
    "same_bits",
    "unflatten",
    "write",
]


# --------------------------------------------------------------------------------------------
# inspect


@dataclass
class FileInfo:
    """What ``inspect`` finds in a file, without reading tensor data where the format allows."""

    path: str
    format: str
    file_bytes: int
    entries: list[Entry]
    others: dict[str, str] = field(default_factory=dict)  # non-tensor values: name → type
    metadata: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # tied weights: alias → stored name
    shards: list[dict[str, Any]] = field(default_factory=list)  # sharded and DCP checkpoints
    index: str | None = None  # the index file read
    index_check: str | None = None  # what the index check found (it passed: it raises otherwise)
    index_total_size: int | None = None  # metadata.total_size as the index states it

    @property
    def total_bytes(self) -> int:
        return sum(e.nbytes for e in self.entries)

    @property
    def total_elements(self) -> int:
        return sum(math.prod(e.shape) for e in self.entries)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``tensorbridge inspect --json`` prints)."""
        return {
            "path": self.path,
            "format": self.format,
            "file_bytes": self.file_bytes,
            "tensors": [e.as_json() for e in self.entries],
            "total_tensors": len(self.entries),
            "total_elements": self.total_elements,
            "total_bytes": self.total_bytes,
            "non_tensors": self.others,
            "metadata": self.metadata,
            "aliases": self.aliases,
            "shards": self.shards,
            "index": self.index,
            "index_check": self.index_check,
            "index_total_size": self.index_total_size,
        }


def inspect(path: str | os.PathLike[str]) -> FileInfo:
    """Names, dtypes, shapes and byte sizes of the tensors in ``path`` (a file, an index file, or
    a directory of shards or a DCP checkpoint), with the shards and the index check.

    >>> info = inspect("model.safetensors")  # doctest: +SKIP
    >>> info.entries[0]                      # doctest: +SKIP
    Entry(name='w', tag='bfloat16', shape=(2, 3), nbytes=12, dtype=dtype(bfloat16))
    """
    if image_files.is_image(path):  # image files: tensorbridge.files.image
        return image_files.info(path)
    path = Path(path)
    with open_reader(path) as reader:
        info = FileInfo(
            str(path),
            "",
            0,
            list(reader.entries),
            {k: type(v).__name__ for k, v in reader.others.items()},
            dict(reader.metadata),
            dict(reader.aliases),
        )
        if isinstance(reader, sharded.ShardedReader):
            info.format = "sharded " + LABEL[_shard_format(reader)]
            info.shards = reader.describe()
            info.file_bytes = sum(row["file_bytes"] for row in info.shards)
            info.index = str(reader.index) if reader.index is not None else None
            info.index_check = (
                f"ok: {len(info.shards)} shard(s), every tensor in the index is in exactly one "
                "shard, no shard holds an unlisted tensor"
                if reader.index is not None
                else f"no index: {len(info.shards)} file(s) read as shards, no tensor in two"
            )
            total = reader.index_metadata.get("total_size")
            info.index_total_size = total if isinstance(total, int) else None
        elif isinstance(reader, dcp.DcpReader):
            info.format = "dcp"
            info.shards = reader.describe()
            info.file_bytes = sum(row["file_bytes"] for row in info.shards)
            info.file_bytes += (path / dcp.METADATA).stat().st_size
        else:
            info.format = LABEL[format_of(path)]
            info.file_bytes = path.stat().st_size
        return info


def _shard_format(reader: sharded.ShardedReader) -> Any:
    return format_of(next(iter(reader.shards.values())).path)


# --------------------------------------------------------------------------------------------
# read / write


def read(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every tensor in ``path`` as a NumPy array, by dotted name (memory maps where possible);
    tied names (aliases) give the same array as the name they share."""
    with open_reader(path) as reader:
        arrays = {e.name: reader.load(e.name) for e in reader.entries}
        arrays.update({alias: arrays[name] for alias, name in reader.aliases.items()})
        return arrays


def write(path: str | os.PathLike[str], tensors: Any, *, force: bool = False) -> None:
    """Write a tensor/array, or a (nested) mapping of them, to ``path`` atomically.

    Conjugate and negative views are written as their logical values; a nested mapping keeps its
    nesting in ``.pt`` and ``.safetensors`` and flattens to dotted names in ``.npz``.
    """
    import torch

    from .. import to_numpy

    path = Path(path)
    fmt = format_of(path)
    flat, paths, containers = flatten_tree(
        tensors, is_leaf=lambda x: isinstance(x, (torch.Tensor, np.ndarray, np.generic))
    )
    single = "" in flat
    if single:
        flat, paths, containers = {path.stem: flat[""]}, None, {}
    arrays = {}
    for name, value in flat.items():
        if not isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
            raise BadFileError(f"{name!r} is a {type(value).__name__}, not a tensor or array")
        array = to_numpy(value)
        arrays[name] = (
            array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))
        )
    entries = [entry_for(n, a) for n, a in arrays.items()]
    layout = Layout(entries, paths, single, containers=containers)
    check_layout(layout, fmt, path, str(path))
    if path.exists() and not force:
        raise FileUsageError(f"{path} already exists; pass force=True (--force) to replace it")
    with atomic_path(path, force=force) as tmp:
        fmt.write(tmp, layout, iter(arrays.values()))
