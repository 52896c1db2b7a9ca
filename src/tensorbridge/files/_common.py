"""What every format module shares: entries, errors, the atomic writer, dotted-key trees.

A *reader* lists a file's tensors (``entries``) before reading any data and loads one tensor at a
time (``load``), so a conversion holds one tensor in memory, not the whole file. A *writer* takes
the list of entries it will write (a ``Layout``) and then the arrays one by one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._dtypes import by_numpy

__all__ = [
    "BadFileError",
    "Entry",
    "FileUsageError",
    "Layout",
    "Progress",
    "Reader",
    "UnsafeFileError",
    "atomic_path",
    "flatten",
    "unflatten",
    "write_bytes",
]

Progress = Callable[[int], None]
"""Called with the number of bytes just processed."""

Key = str | int
CHUNK_BYTES = 16 << 20  # bytes written per ``write`` call when streaming one tensor


class BadFileError(ValueError):
    """A file that cannot be read or written as asked: corrupt, truncated, wrong format, a dtype
    the format cannot hold. The command line exits with status 1."""


class UnsafeFileError(BadFileError):
    """A file that only arbitrary code (a pickle) could load; tensorbridge refuses it unread."""


class FileUsageError(ValueError):
    """The request itself is wrong: unknown extension, DST is SRC, DST exists without ``force``.
    The command line exits with status 2."""


@dataclass(frozen=True)
class Entry:
    """One tensor in a file, known without reading its data.

    ``dtype`` is the NumPy form (an ``ml_dtypes`` type for bfloat16/float8) or ``None`` where there
    is none; ``tag`` is the name shown to people (``"bfloat16"``, ``"float32"``, ``">f4"``).
    """

    name: str
    tag: str
    shape: tuple[int, ...]
    nbytes: int
    dtype: np.dtype[Any] | None = None

    @property
    def kind(self) -> str:
        """``"f"`` real float, ``"c"`` complex, ``"i"``/``"u"`` ints, ``"b"`` bool, or ``"?"``."""
        if self.dtype is None:
            return "?"
        row = by_numpy(self.dtype.newbyteorder("="))
        return row.kind if row is not None else self.dtype.kind

    def as_json(self) -> dict[str, Any]:
        """``{"name", "dtype", "shape", "nbytes", "big_endian"}``, JSON-ready."""
        big = self.dtype is not None and self.dtype.byteorder == ">"
        return {
            "name": self.name,
            "dtype": self.tag.removesuffix(" (big-endian)"),
            "big_endian": big,
            "shape": list(self.shape),
            "nbytes": self.nbytes,
        }


@dataclass
class Layout:
    """What a writer writes: the entries in order, the nesting to rebuild, metadata to keep."""

    entries: list[Entry]
    paths: dict[str, tuple[Key, ...]] | None = None  # set when the source was a nested tree
    single: bool = False  # the source held one unnamed tensor (a .npy, a bare tensor in a .pt)
    metadata: dict[str, str] = field(default_factory=dict)


class Reader:
    """Base of the format readers; use as a context manager."""

    path: Path
    entries: list[Entry]
    paths: dict[str, tuple[Key, ...]] | None = None
    single: bool = False
    metadata: dict[str, str]

    def load(self, name: str) -> np.ndarray:
        """One tensor's values as a NumPy array (often a read-only memory map of the file)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file."""

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dtype_tag(dtype: np.dtype[Any]) -> str:
    """The name people know a dtype by: ``"bfloat16"``, ``"float32 (big-endian)"``, ``"<U5"``."""
    row = by_numpy(dtype if dtype.isnative else dtype.newbyteorder("="))
    if row is None:
        return str(dtype)
    return row.tag if dtype.isnative else f"{row.tag} (big-endian)"


def entry_for(name: str, array: np.ndarray) -> Entry:
    """The entry describing ``array`` under ``name``."""
    shape = tuple(int(n) for n in array.shape)
    return Entry(name, dtype_tag(array.dtype), shape, int(array.nbytes), array.dtype)


# --------------------------------------------------------------------------------------------
# nested trees <-> dotted names


def flatten(
    tree: Any, *, is_leaf: Callable[[Any], bool]
) -> tuple[dict[str, Any], dict[str, tuple[Key, ...]] | None]:
    """Flatten nested mappings and lists into ``{"a.b.0": leaf}`` and the path of each name.

    The paths are ``None`` when the tree was already flat (a ``model.state_dict()``), so writing it
    back gives the same flat dict.

    >>> flat, paths = flatten({"enc": {"w": 1, "b": [2]}}, is_leaf=lambda x: isinstance(x, int))
    >>> flat, paths
    ({'enc.w': 1, 'enc.b.0': 2}, {'enc.w': ('enc', 'w'), 'enc.b.0': ('enc', 'b', 0)})
    """
    flat: dict[str, Any] = {}
    paths: dict[str, tuple[Key, ...]] = {}

    def walk(node: Any, path: tuple[Key, ...]) -> None:
        if is_leaf(node) or not isinstance(node, (Mapping, list, tuple)):
            name = ".".join(str(k) for k in path)
            if name in flat:
                raise BadFileError(
                    f"two values flatten to the same name {name!r}; rename one of them"
                )
            flat[name] = node
            paths[name] = path
            return
        items = node.items() if isinstance(node, Mapping) else enumerate(node)
        for key, child in items:
            walk(child, (*path, key if isinstance(key, int) else str(key)))

    if isinstance(tree, (Mapping, list, tuple)) and not is_leaf(tree):
        walk(tree, ())
    else:
        flat[""] = tree
        paths[""] = ()
    nested = any(len(p) != 1 or not isinstance(p[0], str) for p in paths.values())
    return flat, (paths if nested else None)


def unflatten(flat: Mapping[str, Any], paths: Mapping[str, tuple[Key, ...]] | None = None) -> Any:
    """Rebuild the nested tree ``flatten`` took apart; integer keys 0..n-1 become lists.

    >>> unflatten({"a.w": 1, "b.0": 2}, {"a.w": ("a", "w"), "b.0": ("b", 0)})
    {'a': {'w': 1}, 'b': [2]}
    >>> unflatten({"layer.0.weight": 1})
    {'layer.0.weight': 1}
    """
    if paths is None:
        return dict(flat)
    root: dict[Key, Any] = {}
    for name, value in flat.items():
        path = paths.get(name, (name,))
        if not path:
            return value
        node = root
        for key in path[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise BadFileError(
                    f"name {name!r} nests inside a tensor; the file's key paths conflict"
                )
            node = child
        node[path[-1]] = value

    def listify(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        out = {k: listify(v) for k, v in node.items()}
        if out and all(isinstance(k, int) for k in out) and sorted(out) == list(range(len(out))):
            return [out[i] for i in range(len(out))]
        return out

    return listify(root)


# --------------------------------------------------------------------------------------------
# writing


def write_bytes(f: Any, array: np.ndarray, progress: Progress | None = None) -> None:
    """Write ``array``'s values as C-order bytes, ``CHUNK_BYTES`` at a time (no full copy)."""
    array = np.ascontiguousarray(array)
    flat = array.reshape(-1)
    if flat.size == 0:
        return
    step = max(1, CHUNK_BYTES // array.dtype.itemsize)
    for start in range(0, flat.size, step):
        chunk = flat[start : start + step].view(np.uint8)
        f.write(chunk.data)
        if progress is not None:
            progress(chunk.size)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(dst: Path, *, force: bool) -> Iterator[Path]:
    """A temporary path beside ``dst`` that becomes ``dst`` only when the block succeeds.

    On any exception (including ``KeyboardInterrupt``) the temporary file is removed and ``dst``
    is untouched. Without ``force``, an existing ``dst`` is never replaced, even one that appears
    while the block runs.
    """
    fd, name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tbtmp", dir=dst.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        if force:
            os.replace(tmp, dst)
        else:
            try:
                os.link(tmp, dst)  # fails if dst exists: no window in which it could be clobbered
            except FileExistsError:
                raise FileUsageError(f"{dst} already exists; pass --force to replace it") from None
            except OSError:  # file systems without hard links
                if dst.exists():
                    raise FileUsageError(
                        f"{dst} already exists; pass --force to replace it"
                    ) from None
                os.replace(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def check_names(names: Iterable[str]) -> None:
    """Refuse names a tensor file cannot key on."""
    for name in names:
        if not isinstance(name, str):
            raise BadFileError(f"tensor name {name!r} is not a string")
