"""Tensors in files: ``.npy``, ``.npz``, PyTorch (``.pt``/``.pth``/``.bin``) and ``.safetensors``.

The format is chosen by the file's extension; every format has a module with the same verbs (a
reader class and ``write``) and a docstring that says what it reads, writes and refuses. Nothing
here ever runs a pickle. Writes are atomic: a temporary file beside the destination, renamed into
place only when complete (and verified, when asked).

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
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .._dtypes import by_numpy, numpy_dtype
from .._errors import ConversionError
from . import image as image_files
from . import npy, npz, safetensors, torchfile
from ._common import (
    BadFileError,
    Entry,
    FileUsageError,
    Layout,
    Reader,
    UnsafeFileError,
    atomic_path,
    dtype_tag,
    entry_for,
    flatten,
    unflatten,
)

__all__ = [
    "FORMATS",
    "BadFileError",
    "ConvertReport",
    "Entry",
    "FileInfo",
    "FileUsageError",
    "UnsafeFileError",
    "convert",
    "flatten",
    "inspect",
    "open_reader",
    "read",
    "unflatten",
    "write",
]

FORMATS: dict[str, ModuleType] = {
    ".npy": npy,
    ".npz": npz,
    ".pt": torchfile,
    ".pth": torchfile,
    ".bin": torchfile,
    ".safetensors": safetensors,
}
"""Extension → format module."""

_LABEL = {npy: "npy", npz: "npz", torchfile: "pytorch", safetensors: "safetensors"}

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(bytes_done, bytes_total)`` while a conversion runs."""


def format_of(path: str | os.PathLike[str]) -> ModuleType:
    """The format module for ``path``'s extension; ``FileUsageError`` for an unknown one."""
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        known = ", ".join(FORMATS)
        raise FileUsageError(
            f"{path}: unknown extension {suffix or '(none)'!r}; use one of {known}"
        ) from None


def _sniff(path: Path) -> str | None:
    """What the file's first bytes say it is (for hints after a failure)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            size = f.seek(0, 2)
        if head.startswith(b"\x93NUMPY"):
            return ".npy"
        if head.startswith(b"PK"):
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
            if names and all(n.endswith(".npy") for n in names):
                return ".npz"
            if any(n.endswith("data.pkl") for n in names):
                return ".pt"
            return None
        if head[:1] == b"\x80":
            return ".pt"
        if len(head) >= 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] + 8 <= size:
            return ".safetensors"
    except Exception:
        return None
    return None


def _open(path: Path, fmt: ModuleType, name: str | None) -> Reader:
    if fmt is npy:
        return npy.NpyReader(path, name)
    if fmt is npz:
        return npz.NpzReader(path)
    if fmt is torchfile:
        return torchfile.TorchReader(path, name)
    return safetensors.SafetensorsReader(path)


def open_reader(
    path: str | os.PathLike[str], fmt: ModuleType | None = None, *, name: str | None = None
) -> Reader:
    """Open ``path`` for reading (format from its extension unless ``fmt`` is given).

    Raises ``BadFileError`` (one line, naming the file) for anything unreadable, ``UnsafeFileError``
    for a file only a pickle could load, ``FileUsageError`` for an unknown extension.
    """
    path = Path(path)
    fmt = fmt or format_of(path)
    try:
        if path.is_dir():
            raise BadFileError(f"{path} is a directory, not a file")
        size = path.stat().st_size
    except FileNotFoundError:
        raise BadFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise BadFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise BadFileError(f"{path} is empty (0 bytes)")
    try:
        return _open(path, fmt, name)
    except UnsafeFileError:
        raise
    except BadFileError as exc:
        actual = _sniff(path)
        if actual is not None and FORMATS[actual] is not fmt:
            raise BadFileError(f"{exc} (it looks like a {actual} file: rename it)") from None
        raise
    except OSError as exc:
        raise BadFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except MemoryError:
        raise BadFileError(
            f"{path} is corrupt: it claims more memory than this machine has"
        ) from None
    except ConversionError as exc:
        raise BadFileError(f"{path}: {exc}") from None


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
        }


def inspect(path: str | os.PathLike[str]) -> FileInfo:
    """Names, dtypes, shapes and byte sizes of the tensors in ``path``.

    >>> info = inspect("model.safetensors")  # doctest: +SKIP
    >>> info.entries[0]                      # doctest: +SKIP
    Entry(name='w', tag='bfloat16', shape=(2, 3), nbytes=12, dtype=dtype(bfloat16))
    """
    if image_files.is_image(path):  # image files: tensorbridge.files.image
        return image_files.info(path)
    path = Path(path)
    fmt = format_of(path)
    with open_reader(path, fmt) as reader:
        others = {k: type(v).__name__ for k, v in getattr(reader, "others", {}).items()}
        return FileInfo(
            str(path),
            _LABEL[fmt],
            path.stat().st_size,
            list(reader.entries),
            others,
            dict(reader.metadata),
        )


# --------------------------------------------------------------------------------------------
# read / write


def read(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every tensor in ``path`` as a NumPy array, by dotted name (memory maps where possible)."""
    with open_reader(path) as reader:
        return {e.name: reader.load(e.name) for e in reader.entries}


def write(path: str | os.PathLike[str], tensors: Any, *, force: bool = False) -> None:
    """Write a tensor/array, or a (nested) mapping of them, to ``path`` atomically.

    Conjugate and negative views are written as their logical values; a nested mapping keeps its
    nesting in ``.pt`` and ``.safetensors`` and flattens to dotted names in ``.npz``.
    """
    import torch

    from .. import to_numpy

    path = Path(path)
    fmt = format_of(path)
    flat, paths = flatten(
        tensors, is_leaf=lambda x: isinstance(x, (torch.Tensor, np.ndarray, np.generic))
    )
    single = "" in flat
    if single:
        flat, paths = {path.stem: flat[""]}, None
    arrays = {}
    for name, value in flat.items():
        if not isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
            raise BadFileError(f"{name!r} is a {type(value).__name__}, not a tensor or array")
        array = to_numpy(value)
        arrays[name] = (
            array if array.dtype.isnative else array.astype(array.dtype.newbyteorder("="))
        )
    layout = Layout([entry_for(n, a) for n, a in arrays.items()], paths, single)
    _check_layout(layout, fmt, path, str(path))
    if path.exists() and not force:
        raise FileUsageError(f"{path} already exists; pass force=True (--force) to replace it")
    with atomic_path(path, force=force) as tmp:
        fmt.write(tmp, layout, iter(arrays.values()))


# --------------------------------------------------------------------------------------------
# convert


@dataclass
class ConvertReport:
    """What ``convert`` did."""

    src: str
    dst: str
    tensors: int
    bytes: int
    verified: bool
    skipped: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _holders(tag: str) -> str:
    exts = sorted(
        {ext for ext, mod in FORMATS.items() if tag in mod.DTYPES}, key=list(FORMATS).index
    )
    return ", ".join(exts) if exts else "none of the formats"


def _check_layout(layout: Layout, fmt: ModuleType, dst: Path, src: str) -> None:
    if fmt.MAX_TENSORS is not None and len(layout.entries) > fmt.MAX_TENSORS:
        raise BadFileError(
            f"{dst}: a {fmt.NAME} file holds one array and {src} has "
            f"{len(layout.entries)} tensors; "
            "write a .npz, .safetensors or .pt file instead"
        )
    for entry in layout.entries:
        if entry.tag not in fmt.DTYPES:
            raise BadFileError(
                f"tensor {entry.name!r} is {entry.tag}, which a {fmt.NAME} file cannot hold; "
                f"formats that can: {_holders(entry.tag)} (or cast it with --dtype/--float-dtype)"
            )


def _target(
    entry: Entry, dtype: np.dtype[Any] | None, float_dtype: np.dtype[Any] | None, src: Path
) -> Entry:
    """The entry as it will be written, after the requested casts, in native byte order."""
    target = entry.dtype
    if dtype is not None:
        target = dtype
    elif float_dtype is not None and entry.kind == "f":
        target = float_dtype
    if target is None:
        raise BadFileError(
            f"{src}[{entry.name!r}] is {entry.tag}, which has no NumPy form; cast it with --dtype"
        )
    target = target if target.isnative else target.newbyteorder("=")
    row = by_numpy(target)
    if row is None:
        raise BadFileError(
            f"{src}[{entry.name!r}] is {entry.tag}, which no tensor file can hold; "
            "cast it with --dtype"
        )
    if entry.kind == "c" and row.kind != "c":
        raise BadFileError(
            f"{src}[{entry.name!r}] is {entry.tag}; casting it to {row.tag} would drop "
            "the imaginary part "
            "(cast to a complex dtype, or save the real part explicitly)"
        )
    return Entry(entry.name, row.tag, entry.shape, math.prod(entry.shape) * target.itemsize, target)


def _cast(array: np.ndarray, target: np.dtype[Any]) -> np.ndarray:
    if array.dtype == target and array.dtype.isnative:
        return array
    from .. import to_numpy

    return to_numpy(array, dtype=target)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays have the same dtype, shape and bytes (NaN payloads and -0.0 included)."""
    if a.shape != b.shape or a.dtype.newbyteorder("=") != b.dtype.newbyteorder("="):
        return False
    a = (
        np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<"), copy=False))
        .reshape(-1)
        .view(np.uint8)
    )
    b = (
        np.ascontiguousarray(b.astype(b.dtype.newbyteorder("<"), copy=False))
        .reshape(-1)
        .view(np.uint8)
    )
    step = 1 << 24
    return all(np.array_equal(a[i : i + step], b[i : i + step]) for i in range(0, a.size, step))


def _resolve_dtype(spec: Any, what: str) -> np.dtype[Any] | None:
    if spec is None:
        return None
    try:
        return numpy_dtype(spec)
    except ConversionError as exc:
        raise FileUsageError(f"{what}: {exc}") from None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    dtype: Any = None,
    float_dtype: Any = None,
    verify: bool = False,
    force: bool = False,
    skip_non_tensors: bool = False,
    progress: ProgressCallback | None = None,
    value_range: Any = None,
    clip: bool = False,
) -> ConvertReport:
    """Copy every tensor of ``src`` into ``dst`` (formats from the extensions), atomically.

    ``dtype`` casts every tensor, ``float_dtype`` only the real floating-point ones. ``verify``
    re-reads the written file and compares it bit for bit with the source before it replaces
    ``dst``. One tensor is in memory at a time, except when writing a PyTorch file (``torch.save``
    needs them all). ``dst`` is never touched unless the new file is complete (and verified);
    an existing ``dst`` is replaced only with ``force``; ``src`` is never overwritten.
    ``value_range`` and ``clip`` map float tensors into an image file (see ``files.image``).
    """
    if image_files.is_image(src) or image_files.is_image(dst):  # image files: files.image
        return image_files.convert(
            src,
            dst,
            dtype=dtype,
            float_dtype=float_dtype,
            verify=verify,
            force=force,
            value_range=value_range,
            clip=clip,
        )
    src, dst = Path(src), Path(dst)
    fmt_in, fmt_out = format_of(src), format_of(dst)
    cast_all = _resolve_dtype(dtype, "dtype")
    cast_float = _resolve_dtype(float_dtype, "float_dtype")
    if _same_file(src, dst):
        raise FileUsageError(
            f"refusing to write {dst} over its own source; choose another destination"
        )
    if dst.is_dir():
        raise FileUsageError(f"{dst} is a directory; give a file name")
    if dst.exists() and not force:
        raise FileUsageError(f"{dst} already exists; pass --force to replace it")
    if not dst.parent.is_dir():
        raise BadFileError(f"cannot write {dst}: no directory {dst.parent}")
    with open_reader(src, fmt_in) as reader:
        skipped = sorted(getattr(reader, "others", {}))
        if skipped and not skip_non_tensors:
            listed = ", ".join(f"{k} ({type(reader.others[k]).__name__})" for k in skipped[:5])  # type: ignore[attr-defined]
            more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
            raise BadFileError(
                f"{src} holds values that are not tensors: {listed}{more}; "
                "tensor files hold only tensors "
                "(pass --skip-non-tensors to leave them out)"
            )
        if not reader.entries:
            raise BadFileError(f"{src} holds no tensors; nothing to convert")
        entries = [_target(e, cast_all, cast_float, src) for e in reader.entries]
        metadata = dict(reader.metadata) if fmt_out is safetensors else {}
        layout = Layout(
            entries, reader.paths, reader.single or (len(entries) == 1 and fmt_out is npy), metadata
        )
        _check_layout(layout, fmt_out, dst, str(src))

        total = sum(e.nbytes for e in entries) * (2 if verify else 1)
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)

        def arrays() -> Iterator[np.ndarray]:
            for entry in entries:
                yield _load(reader, entry)

        with atomic_path(dst, force=force) as tmp:
            try:
                fmt_out.write(tmp, layout, arrays(), advance)
            except OSError as exc:
                raise BadFileError(f"cannot write {dst}: {exc.strerror or exc}") from None
            if verify:
                _verify(reader, layout, tmp, fmt_out, dst, advance)
    return ConvertReport(
        str(src), str(dst), len(entries), sum(e.nbytes for e in entries), verify, skipped
    )


def _load(reader: Reader, entry: Entry) -> np.ndarray:
    assert entry.dtype is not None
    try:
        return _cast(reader.load(entry.name), entry.dtype)
    except ConversionError as exc:
        raise BadFileError(f"{reader.path}[{entry.name!r}]: {exc}") from None
    except (OSError, ValueError) as exc:
        raise BadFileError(f"{reader.path}[{entry.name!r}] cannot be read: {exc}") from None


def _verify(
    reader: Reader,
    layout: Layout,
    tmp: Path,
    fmt: ModuleType,
    dst: Path,
    advance: Callable[[int], None],
) -> None:
    single_name = layout.entries[0].name if len(layout.entries) == 1 else None
    with open_reader(tmp, fmt, name=single_name) as check:
        written = {e.name: e for e in check.entries}
        if sorted(written) != sorted(e.name for e in layout.entries):
            raise BadFileError(
                f"verify failed: {dst} would hold tensors {sorted(written)}, "
                f"expected {[e.name for e in layout.entries]}"
            )
        for entry in layout.entries:
            if not same_bits(_load(reader, entry), check.load(entry.name)):
                raise BadFileError(
                    f"verify failed: tensor {entry.name!r} in {dst} differs from the source; "
                    f"{dst} was left untouched"
                )
            advance(entry.nbytes)


__all__ += ["ProgressCallback", "dtype_tag", "format_of", "same_bits"]
