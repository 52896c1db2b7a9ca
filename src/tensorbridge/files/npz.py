"""NumPy ``.npz``: a zip archive of ``.npy`` members, one per named array (``name.npy``).

Reads: archives written by ``np.savez`` and ``np.savez_compressed`` (stored or deflated members),
every member's header checked before any data is read; one member is decompressed at a time.
Writes: an uncompressed zip (ZIP64, so members may exceed 4 GiB), members in the source's order.
Refuses to write names unsafe as archive members (``../evil``, absolute paths, NUL).
Refuses to read: members that are not ``.npy`` arrays, object arrays (a pickle; never loaded),
headers over ``npy.MAX_HEADER_BYTES``, members shorter than their header says, bad zip checksums.
Cannot hold: bfloat16, float8, complex32 (as ``.npy``).
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.lib.format as npformat

from ._common import (
    BadFileError,
    Entry,
    Layout,
    Progress,
    Reader,
    UnsafeFileError,
    dtype_tag,
    each,
)
from .npy import DTYPES, MAX_HEADER_BYTES, data_bytes, read_header, write_array

__all__ = ["DTYPES", "NpzReader", "write"]

NAME = ".npz"
MAX_TENSORS = None
MEMBER_NAMES = True  # tensor names become archive members: unsafe ones are refused

# What zipfile raises on a damaged archive (IndexError and friends from a mangled directory
# entry, e.g. an empty member name); each becomes one clean "not a readable archive" line.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
    IndexError,
    KeyError,
    UnicodeDecodeError,
    struct.error,
)


class NpzReader(Reader):
    """Reads a ``.npz`` archive."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.metadata = {}
        self.entries = []
        self._members: dict[str, zipfile.ZipInfo] = {}
        try:
            self._zip = zipfile.ZipFile(path)
        except _ZIP_ERRORS as exc:
            raise BadFileError(f"{path} is not a readable .npz (zip) archive: {exc}") from None
        try:
            for info in self._zip.infolist():
                if info.is_dir():
                    continue
                if not info.filename.endswith(".npy"):
                    raise BadFileError(f"{path}: member {info.filename!r} is not a .npy array")
                key = info.filename[: -len(".npy")]
                what = f"{path}[{key!r}]"
                with self._zip.open(info) as f:
                    shape, _, dtype = read_header(f, what)
                    header_end = f.tell()
                nbytes = data_bytes(shape, dtype)
                if info.file_size - header_end < nbytes:
                    raise BadFileError(
                        f"{what} is truncated: its header promises {nbytes} bytes of data, "
                        "the member has "
                        f"{info.file_size - header_end}"
                    )
                if key in self._members:
                    raise BadFileError(f"{path} holds two members named {info.filename!r}")
                self._members[key] = info
                self.entries.append(Entry(key, dtype_tag(dtype), shape, nbytes, dtype))
        except (BadFileError, UnsafeFileError):
            self._zip.close()
            raise
        except _ZIP_ERRORS as exc:
            self._zip.close()
            raise BadFileError(f"{path} is a corrupt .npz archive: {exc}") from None

    def load(self, name: str) -> np.ndarray:
        what = f"{self.path}[{name!r}]"
        try:
            with self._zip.open(self._members[name]) as f:
                array = npformat.read_array(f, allow_pickle=False, max_header_size=MAX_HEADER_BYTES)
        except ValueError as exc:
            raise BadFileError(f"{what} is corrupt: {str(exc).splitlines()[0]}") from None
        except (*_ZIP_ERRORS, MemoryError) as exc:
            raise BadFileError(f"{what} is corrupt: {exc}") from None
        return array

    def close(self) -> None:
        self._zip.close()


def write(path: Path, layout: Layout, arrays: Any, progress: Progress | None = None) -> None:
    """Write each array of ``layout`` as member ``name.npy`` of an uncompressed zip at ``path``."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for entry, array in each(layout.entries, arrays):
            with zf.open(entry.name + ".npy", "w", force_zip64=True) as f:
                write_array(f, array, progress, entry.dtype)
            del array  # freed before the next tensor is read, not after
