"""``.safetensors``: a JSON header and raw little-endian tensor bytes, nothing executable.

Layout: 8 bytes, the header length N (unsigned little-endian); N bytes of UTF-8 JSON
``{"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
"__metadata__": {"key": "value"}}`` (padded with spaces); then the data, each tensor's bytes at
``[begin, end)`` counted from the end of the header, back to back, C order.

Reads: with this module's own parser (no third-party code sees the bytes); every offset, size and
dtype is checked before any data is touched; each tensor is a memory map of its own bytes.
Writes: the same layout the ``safetensors`` library reads, streamed one tensor at a time, with
``{"format": "pt"}`` in the metadata (what ``transformers`` expects). A nested tree's key paths are
kept in the metadata under ``tensorbridge.paths`` so writing a ``.pt`` again rebuilds the nesting,
with ``tensorbridge.containers`` naming the dicts with integer keys and the tuples among them.
Tied weights (names that share one tensor) are stored once; the other names are recorded under
``tensorbridge.aliases`` (``{"alias": "stored name"}``) and come back sharing that tensor.
Values are written as their logical values: conjugate and negative views are resolved first
(``safetensors.torch.save_file`` writes the raw storage and silently loses both bits).
Refuses: headers over ``MAX_HEADER_BYTES`` (the ``safetensors`` library's own limit), duplicate
names, overlapping or out-of-range offsets, sizes that do not match shape × dtype.
Cannot hold: complex128, complex32 (no tag in the format).
"""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .._dtypes import numpy_dtype
from ._common import (
    CONTAINERS_KEY,
    BadFileError,
    Entry,
    Layout,
    Progress,
    Reader,
    decode_containers,
    each,
    encode_containers,
    json_value,
    unique_keys,
    write_bytes,
)

__all__ = ["DTYPES", "MAX_HEADER_BYTES", "SafetensorsReader", "write"]

NAME = ".safetensors"
MAX_TENSORS = None
MAX_HEADER_BYTES = 100_000_000
"""Longest JSON header read (the ``safetensors`` library's limit); raise it here to read longer."""

PATHS_KEY = "tensorbridge.paths"
ALIASES_KEY = "tensorbridge.aliases"

_ALL_TAGS = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "I16": "int16",
    "U16": "uint16",
    "F16": "float16",
    "BF16": "bfloat16",
    "I32": "int32",
    "U32": "uint32",
    "F32": "float32",
    "F64": "float64",
    "I64": "int64",
    "U64": "uint64",
    "F8_E5M2": "float8_e5m2",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz",
    "F8_E8M0": "float8_e8m0fnu",
    "C64": "complex64",
}


def _resolvable(tag: str) -> bool:
    try:
        numpy_dtype(tag)
    except Exception:
        return False
    return True


TO_TAG = {ours: theirs for theirs, ours in _ALL_TAGS.items() if _resolvable(ours)}
FROM_TAG = {theirs: ours for ours, theirs in TO_TAG.items()}
DTYPES = frozenset(TO_TAG)
"""The dtype tags a ``.safetensors`` file holds (those this PyTorch/ml_dtypes install knows)."""


class SafetensorsReader(Reader):
    """Reads a ``.safetensors`` file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as f:
            head = f.read(8)
            size = f.seek(0, 2)
            if len(head) < 8:
                raise BadFileError(
                    f"{path} is truncated: {len(head)} bytes, a .safetensors file starts with 8"
                )
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES:
                raise BadFileError(
                    f"{path} claims a {n}-byte header, over the limit of {MAX_HEADER_BYTES} "
                    "(tensorbridge.files.safetensors.MAX_HEADER_BYTES); refused as unsafe"
                )
            if 8 + n > size:
                raise BadFileError(
                    f"{path} is truncated: its header claims {n} bytes, the file has {size - 8}"
                )
            f.seek(8)
            raw = f.read(n)
        try:
            header = json.loads(raw.decode("utf-8"), object_pairs_hook=unique_keys)
        except BadFileError as exc:
            raise BadFileError(f"{path} has a corrupt header: {exc}") from None
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise BadFileError(
                f"{path} is not a .safetensors file (its header is not JSON: {type(exc).__name__})"
            ) from None
        if not isinstance(header, dict):
            raise BadFileError(f"{path} has a corrupt header (not a JSON object)")
        meta = header.pop("__metadata__", None) or {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise BadFileError(f"{path} has corrupt __metadata__ (must map strings to strings)")
        self.offset = 8 + n
        self.entries = self._entries(header, size - self.offset)
        self.paths = self._paths(meta.pop(PATHS_KEY, None))
        self.containers = decode_containers(meta.pop(CONTAINERS_KEY, None), str(path))
        self.aliases = read_aliases(meta.pop(ALIASES_KEY, None), self.entries, str(path))
        self.metadata = meta

    def _entries(self, header: dict[str, Any], data_size: int) -> list[Entry]:
        found = []
        for name, info in header.items():
            what = f"{self.path}[{name!r}]"
            if not isinstance(info, dict) or {"dtype", "shape", "data_offsets"} - info.keys():
                raise BadFileError(
                    f"{what} has a corrupt header entry (needs dtype, shape, data_offsets)"
                )
            tag, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
            if not isinstance(tag, str):
                raise BadFileError(f"{what} has a corrupt dtype {tag!r}")
            if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
                raise BadFileError(f"{what} has a corrupt shape {shape!r}")
            if not (
                isinstance(offsets, list)
                and len(offsets) == 2
                and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1]
            ):
                raise BadFileError(f"{what} has corrupt data offsets {offsets!r}")
            if offsets[1] > data_size:
                raise BadFileError(
                    f"{self.path} is truncated: tensor {name!r} needs data bytes up to "
                    f"{offsets[1]}, the file holds {data_size}"
                )
            ours = FROM_TAG.get(tag)
            dtype = numpy_dtype(ours) if ours is not None else None
            nbytes = offsets[1] - offsets[0]
            if dtype is not None and math.prod(shape) * dtype.itemsize != nbytes:
                raise BadFileError(
                    f"{what}: shape {shape} of {tag} needs "
                    f"{math.prod(shape) * dtype.itemsize} bytes, the offsets give {nbytes}"
                )
            found.append(
                (offsets[0], offsets[1], Entry(name, ours or tag, tuple(shape), nbytes, dtype))
            )
        found.sort(key=lambda item: (item[0], item[1]))
        end = 0
        for begin, stop, entry in found:
            if begin != end:
                raise BadFileError(
                    f"{self.path}[{entry.name!r}] starts at data byte {begin}, expected {end} "
                    "(tensors must be back to back, without gaps or overlaps)"
                )
            end = stop
        if end != data_size:
            raise BadFileError(
                f"{self.path} is corrupt: the header covers {end} data bytes, "
                f"the file holds {data_size}"
            )
        self._begin = {entry.name: begin for begin, _, entry in found}
        return [entry for _, _, entry in found]

    def _paths(self, text: str | None) -> dict[str, tuple[str | int, ...]] | None:
        if text is None:
            return None
        try:
            paths = json.loads(text)
            if not isinstance(paths, dict):
                raise ValueError
            out = {}
            for name, path in paths.items():
                if not isinstance(path, list) or not all(isinstance(k, (str, int)) for k in path):
                    raise ValueError
                out[name] = tuple(path)
        except (ValueError, RecursionError):
            raise BadFileError(f"{self.path} has corrupt {PATHS_KEY!r} metadata") from None
        return out

    def load(self, name: str) -> np.ndarray:
        entry = next(e for e in self.entries if e.name == name)
        if entry.dtype is None:
            raise BadFileError(
                f"{self.path}[{name!r}] has dtype {entry.tag}, which tensorbridge cannot convert"
            )
        if entry.nbytes == 0:
            return np.zeros(entry.shape, entry.dtype)
        raw = np.memmap(
            self.path,
            dtype=np.uint8,
            mode="r",
            offset=self.offset + self._begin[name],
            shape=(entry.nbytes,),
        )
        return raw.view(entry.dtype.newbyteorder("<")).reshape(entry.shape)


def read_aliases(raw: Any, entries: list[Entry], what: str) -> dict[str, str]:
    """Check and return recorded aliases (JSON text or a mapping): alias → a stored name."""
    if raw is None:
        return {}
    aliases = json_value(raw)
    if not isinstance(aliases, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()
    ):
        raise BadFileError(f"{what} has corrupt {ALIASES_KEY!r} metadata")
    stored = {e.name for e in entries}
    for alias, target in aliases.items():
        if target not in stored:
            raise BadFileError(
                f"{what} records {alias!r} as an alias of {target!r}, which it does not hold"
            )
        if alias in stored:
            raise BadFileError(f"{what} holds {alias!r} and also records it as an alias")
    return dict(aliases)


def _little(dtype: np.dtype[Any]) -> np.dtype[Any]:
    return dtype if sys.byteorder == "little" else dtype.newbyteorder("<")


def header_bytes(layout: Layout) -> bytes:
    """The length prefix and JSON header for ``layout``, padded to a multiple of 8 bytes."""
    header: dict[str, Any] = {}
    meta = {"format": "pt", **layout.metadata}
    if layout.paths is not None:
        meta[PATHS_KEY] = json.dumps({name: list(path) for name, path in layout.paths.items()})
        if layout.containers:
            meta[CONTAINERS_KEY] = json.dumps(encode_containers(layout.containers))
    if layout.aliases:
        meta[ALIASES_KEY] = json.dumps(layout.aliases)
    header["__metadata__"] = meta
    offset = 0
    for entry in layout.entries:
        header[entry.name] = {
            "dtype": TO_TAG[entry.tag],
            "shape": list(entry.shape),
            "data_offsets": [offset, offset + entry.nbytes],
        }
        offset += entry.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(len(text) + 8) % 8)
    return struct.pack("<Q", len(text)) + text


def write(path: Path, layout: Layout, arrays: Any, progress: Progress | None = None) -> None:
    """Write ``layout``'s arrays, each cast to its entry's dtype, to ``path``."""
    with open(path, "wb") as f:
        f.write(header_bytes(layout))
        for entry, array in each(layout.entries, arrays):
            assert entry.dtype is not None
            if array.size * entry.dtype.itemsize != entry.nbytes:
                raise BadFileError(
                    f"tensor {entry.name!r} has {array.size * entry.dtype.itemsize} bytes, "
                    f"the header promised {entry.nbytes}"
                )
            write_bytes(f, array, progress, _little(entry.dtype))
            del array  # freed before the next tensor is read, not after
