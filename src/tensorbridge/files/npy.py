"""NumPy ``.npy``: one array per file.

Layout (NumPy's own): the magic ``b"\\x93NUMPY"``, a version byte pair, a header length (2 bytes
in version 1.0, 4 in 2.0), a Python-literal header ``{'descr': '<f4', 'fortran_order': False,
'shape': (2, 3)}`` padded to 64 bytes, then the raw values.

Reads: every numeric and bool dtype, either byte order, C or Fortran order, memory-mapped (one
tensor's pages at a time). The tensor's name is the file's stem (``weights.npy`` → ``weights``).
Writes: native byte order, C order, header version 1.0 (2.0 when the header is long).
Refuses, without loading anything: object arrays (only a pickle can load them; this module never
unpickles), headers over ``MAX_HEADER_BYTES``, files shorter than their header says.
Cannot hold: bfloat16, float8, complex32 (NumPy has no native form; ``np.save`` would write them as
anonymous ``|V2`` bytes). Use ``.safetensors`` or ``.pt`` for those.
"""

from __future__ import annotations

import io
import math
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.lib.format as npformat

from .._dtypes import TABLE
from ._common import (
    BadFileError,
    Entry,
    Layout,
    Progress,
    Reader,
    UnsafeFileError,
    dtype_tag,
    write_bytes,
)

__all__ = ["DTYPES", "MAX_HEADER_BYTES", "NpyReader", "read_header", "write", "write_array"]

NAME = ".npy"
MAX_TENSORS = 1
DTYPES = frozenset(row.tag for row in TABLE if row.native)
"""The dtype tags a ``.npy`` holds: NumPy's native ones."""

MAX_HEADER_BYTES = 10_000
"""Longest header read (NumPy's own limit for untrusted files); raise it to read longer ones."""


def read_header(f: IO[bytes], what: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """Parse an ``.npy`` header from ``f`` (left at the first data byte).

    Returns the shape, whether the data is in Fortran order, and the dtype.
    """
    try:
        version = npformat.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(
                f, max_header_size=MAX_HEADER_BYTES
            )
        elif version == (2, 0):
            shape, fortran, dtype = npformat.read_array_header_2_0(
                f, max_header_size=MAX_HEADER_BYTES
            )
        else:
            raise BadFileError(
                f"{what} is .npy format version {version[0]}.{version[1]}, "
                "which tensorbridge does not read"
            )
    except BadFileError:
        raise
    except ValueError as exc:
        msg = str(exc)
        if "Header info length" in msg:
            raise BadFileError(
                f"{what} has a header over {MAX_HEADER_BYTES} bytes, refused as unsafe "
                f"(the limit is tensorbridge.files.npy.MAX_HEADER_BYTES)"
            ) from None
        if "magic string" in msg:
            raise BadFileError(f"{what} is not a .npy array (no NumPy magic bytes)") from None
        if "EOF" in msg:
            raise BadFileError(f"{what} is truncated inside its header") from None
        raise BadFileError(f"{what} has a corrupt .npy header ({msg.splitlines()[0]})") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:  # an .npz member's bytes
        raise BadFileError(f"{what} is corrupt ({exc})") from None
    except Exception as exc:  # numpy's header parser raises SyntaxError, TokenError, TypeError, ...
        raise BadFileError(f"{what} has a corrupt .npy header ({type(exc).__name__})") from None
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise BadFileError(f"{what} has a corrupt .npy header (shape {shape!r})")
    if dtype.hasobject:
        raise UnsafeFileError(
            f"refused: {what} holds Python objects (dtype object), which only a pickle can load; "
            "tensorbridge never unpickles (allow_pickle=False)"
        )
    return tuple(shape), bool(fortran), dtype


def data_bytes(shape: tuple[int, ...], dtype: np.dtype[Any]) -> int:
    """Bytes of data an array of ``shape`` and ``dtype`` takes."""
    return math.prod(shape) * dtype.itemsize


class NpyReader(Reader):
    """Reads one ``.npy`` file; its one entry is named ``name`` (default: the file's stem)."""

    single = True

    def __init__(self, path: Path, name: str | None = None) -> None:
        self.path = path
        self.metadata = {}
        with open(path, "rb") as f:
            self.shape, self.fortran, self.dtype = read_header(f, str(path))
            self.offset = f.tell()
            size = f.seek(0, io.SEEK_END)
        nbytes = data_bytes(self.shape, self.dtype)
        if size - self.offset < nbytes:
            raise BadFileError(
                f"{path} is truncated: its header promises {nbytes} bytes of data, the file has "
                f"{size - self.offset}"
            )
        self.entries = [
            Entry(
                name if name is not None else path.stem,
                dtype_tag(self.dtype),
                self.shape,
                nbytes,
                self.dtype,
            )
        ]

    def load(self, name: str) -> np.ndarray:
        return map_array(self.path, self.offset, self.shape, self.fortran, self.dtype)


def map_array(
    path: Path, offset: int, shape: tuple[int, ...], fortran: bool, dtype: np.dtype[Any]
) -> np.ndarray:
    """A read-only memory map of the array stored at ``offset`` in ``path``."""
    nbytes = data_bytes(shape, dtype)
    if nbytes == 0:
        try:
            return np.zeros(shape, dtype)
        except (ValueError, MemoryError) as exc:
            raise BadFileError(
                f"{path}: cannot make an empty array of shape {shape} ({exc})"
            ) from None
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=(nbytes,))
    flat = raw.view(dtype)
    return flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)


def header_bytes(array: np.ndarray, dtype: np.dtype[Any] | None = None) -> bytes:
    """The ``.npy`` header for ``array`` (cast to ``dtype``) in C order (version 1.0 if it fits)."""
    info = {
        "descr": npformat.dtype_to_descr(dtype if dtype is not None else array.dtype),
        "fortran_order": False,
        "shape": array.shape,
    }
    buf = io.BytesIO()
    try:
        npformat.write_array_header_1_0(buf, info)
    except ValueError:
        buf = io.BytesIO()
        npformat.write_array_header_2_0(buf, info)
    return buf.getvalue()


def write_array(
    f: IO[bytes],
    array: np.ndarray,
    progress: Progress | None = None,
    dtype: np.dtype[Any] | None = None,
) -> None:
    """Write ``array`` (cast to ``dtype``) to an open binary file as a complete ``.npy``."""
    f.write(header_bytes(array, dtype))
    write_bytes(f, array, progress, dtype)


def write(path: Path, layout: Layout, arrays: Any, progress: Progress | None = None) -> None:
    """Write the one array of ``layout`` to ``path``, cast to its entry's dtype."""
    with open(path, "wb") as f:
        for entry, array in zip(layout.entries, arrays, strict=True):
            write_array(f, array, progress, entry.dtype)
