"""What every format module shares: entries, errors, the atomic writer, dotted-key trees.

A *reader* lists a file's tensors (``entries``) before reading any data and loads one tensor at a
time (``load``), so a conversion holds one tensor in memory, not the whole file. A *writer* takes
the list of entries it will write (a ``Layout``) and then the arrays one by one.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import mmap
import os
import re
import shutil
import socket
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import _tree
from .._dtypes import by_numpy

__all__ = [
    "BadFileError",
    "Entry",
    "FileUsageError",
    "Layout",
    "Progress",
    "Reader",
    "UnsafeFileError",
    "atomic_dir",
    "atomic_path",
    "cast",
    "check_safe_names",
    "chunks",
    "decode_containers",
    "encode_containers",
    "flatten",
    "flatten_tree",
    "json_value",
    "narrow",
    "reclaim_stale",
    "temp_prefix",
    "unflatten",
    "unique_keys",
    "unsafe_name",
    "write_bytes",
]

CONTAINERS_KEY = "tensorbridge.containers"
"""Metadata key of the recorded containers (``encode_containers``), beside the key paths."""
_KINDS = ("dict", "tuple")

Progress = Callable[[int], None]
"""Called with the number of bytes just processed."""

Key = str | int
Containers = dict[tuple[Key, ...], str]
"""Key path → ``"dict"`` or ``"tuple"``: the containers whose kind their keys do not tell."""
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
    aliases: dict[str, str] = field(default_factory=dict)  # alias name → the entry it shares
    others: dict[str, Any] = field(default_factory=dict)  # non-tensor values kept (.pt, DCP)
    containers: Containers = field(default_factory=dict)  # dicts and tuples among ``paths``


class Reader:
    """Base of the format readers; use as a context manager."""

    path: Path
    entries: list[Entry]
    paths: dict[str, tuple[Key, ...]] | None = None
    single: bool = False
    metadata: dict[str, str]
    aliases: dict[str, str] = {}  # noqa: RUF012 (never mutated; readers assign their own)
    others: dict[str, Any] = {}  # noqa: RUF012
    containers: Containers = {}  # noqa: RUF012

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

    The walk is the core's (``_tree.flatten`` with ``is_leaf``): mappings, lists and tuples are
    nested, everything else (and whatever ``is_leaf`` accepts) is a leaf.

    The paths are ``None`` when the tree was already flat (a ``model.state_dict()``), so writing it
    back gives the same flat dict.

    >>> flat, paths = flatten({"enc": {"w": 1, "b": [2]}}, is_leaf=lambda x: isinstance(x, int))
    >>> flat, paths
    ({'enc.w': 1, 'enc.b.0': 2}, {'enc.w': ('enc', 'w'), 'enc.b.0': ('enc', 'b', 0)})
    """
    flat, paths, _ = flatten_tree(tree, is_leaf=is_leaf)
    return flat, paths


def flatten_tree(
    tree: Any, *, is_leaf: Callable[[Any], bool]
) -> tuple[dict[str, Any], dict[str, tuple[Key, ...]] | None, Containers]:
    """``flatten``, and the containers its paths alone would not rebuild as they were: each
    tuple, and each mapping with an integer key (without a record, keys 0..n-1 become a list).

    >>> _, paths, kinds = flatten_tree(
    ...     {"state": {0: 1, 1: 2}, "pair": (3, 4), "xs": [5]}, is_leaf=lambda x: isinstance(x, int)
    ... )
    >>> kinds
    {('state',): 'dict', ('pair',): 'tuple'}
    """
    flat: dict[str, Any] = {}
    paths: dict[str, tuple[Key, ...]] = {}
    tree_flat = _tree.flatten(tree, is_leaf=is_leaf)  # the one container walk of the core
    for i, leaf in enumerate(tree_flat.leaves):
        path = _keys(tree_flat.key_path(i))
        name = ".".join(str(k) for k in path)
        if name in flat:
            raise BadFileError(f"two values flatten to the same name {name!r}; rename one of them")
        flat[name] = leaf
        paths[name] = path
    nested = any(len(p) != 1 or not isinstance(p[0], str) for p in paths.values())
    if not nested:
        return flat, None, {}
    nodes = {_keys(p): cls for p, cls in tree_flat.containers().items()}
    int_keyed = {p[:-1] for p in (*paths.values(), *nodes) if p and isinstance(p[-1], int)}
    kinds: Containers = {}
    for path, cls in nodes.items():
        if issubclass(cls, tuple):
            kinds[path] = "tuple"
        elif issubclass(cls, Mapping) and path in int_keyed:
            kinds[path] = "dict"
    return flat, paths, kinds


def _keys(key_path: tuple[Any, ...]) -> tuple[Key, ...]:
    """A key path as the files store it: integers as they are, every other key as text."""
    return tuple(k if isinstance(k, int) else str(k) for k in key_path)


def unflatten(
    flat: Mapping[str, Any],
    paths: Mapping[str, tuple[Key, ...]] | None = None,
    containers: Mapping[tuple[Key, ...], str] | None = None,
) -> Any:
    """Rebuild the nested tree ``flatten`` took apart, in the order ``paths`` lists the names.

    A node recorded in ``containers`` (``flatten_tree``) as a ``"dict"`` stays a dict, one
    recorded as a ``"tuple"`` with keys 0..n-1 is a tuple; any other node with keys 0..n-1 is a
    list (what files written without the record get).

    >>> unflatten({"a.w": 1, "b.0": 2}, {"a.w": ("a", "w"), "b.0": ("b", 0)})
    {'a': {'w': 1}, 'b': [2]}
    >>> unflatten({"s.0": 1, "p.0": 2}, {"s.0": ("s", 0), "p.0": ("p", 0)}, {("s",): "dict",
    ...     ("p",): "tuple"})
    {'s': {0: 1}, 'p': (2,)}
    >>> unflatten({"layer.0.weight": 1})
    {'layer.0.weight': 1}
    """
    if paths is None:
        return dict(flat)
    root: dict[Key, Any] = {}
    names = [n for n in paths if n in flat] + [n for n in flat if n not in paths]
    for name in names:
        value = flat[name]
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
    kinds = containers or {}

    def build(node: dict[Key, Any], at: tuple[Key, ...]) -> Any:
        out = {k: build(v, (*at, k)) if type(v) is dict else v for k, v in node.items()}
        kind = kinds.get(at)
        if kind == "dict" or not all(isinstance(k, int) for k in out):
            return out
        keys = sorted(out)
        if not out or keys != list(range(len(out))):
            return out
        items = [out[k] for k in keys]
        return tuple(items) if kind == "tuple" else items

    return build(root, ())


def narrow(
    paths: dict[str, tuple[Key, ...]] | None, containers: Containers, names: set[str]
) -> tuple[dict[str, tuple[Key, ...]] | None, Containers]:
    """``paths`` and ``containers`` for ``names`` only (values left out leave no trace).

    >>> narrow({"a.0": ("a", 0), "b.0": ("b", 0)}, {("a",): "tuple", ("b",): "dict"}, {"a.0"})
    ({'a.0': ('a', 0)}, {('a',): 'tuple'})
    """
    if paths is None:
        return None, {}
    kept = {name: path for name, path in paths.items() if name in names}
    inner = {path[:depth] for path in kept.values() for depth in range(len(path))}
    return kept, {path: kind for path, kind in containers.items() if path in inner}


def json_value(raw: Any) -> Any:
    """A metadata value: JSON text parsed (``None`` where it is not JSON), anything else as is.

    >>> json_value('{"a": 1}'), json_value({"a": 1}), json_value("{")
    ({'a': 1}, {'a': 1}, None)
    """
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def encode_containers(containers: Containers) -> dict[str, list[list[Key]]]:
    """``containers`` as JSON-ready metadata: ``{"dict": [key paths], "tuple": [key paths]}``.

    >>> encode_containers({("opt", "state"): "dict", (): "tuple"})
    {'dict': [['opt', 'state']], 'tuple': [[]]}
    """
    out: dict[str, list[list[Key]]] = {}
    for path, kind in containers.items():
        out.setdefault(kind, []).append(list(path))
    return out


def decode_containers(raw: Any, what: str) -> Containers:
    """Check and read recorded containers (``encode_containers``' form, or its JSON text);
    ``None`` (a file written without the record) gives ``{}``."""
    if raw is None:
        return {}
    found = json_value(raw)
    out: Containers = {}
    ok = isinstance(found, dict)
    for kind, paths in found.items() if ok else ():
        ok = (
            kind in _KINDS
            and isinstance(paths, list)
            and all(isinstance(p, list) and all(isinstance(k, Key) for k in p) for p in paths)
        )
        if not ok:
            break
        out.update(dict.fromkeys(map(tuple, paths), kind))
    if ok:
        return out
    raise BadFileError(f"{what} has corrupt {CONTAINERS_KEY!r} metadata")


# --------------------------------------------------------------------------------------------
# writing


def cast(array: np.ndarray, dtype: np.dtype[Any] | None) -> np.ndarray:
    """``array`` in ``dtype`` (native byte order), cast as PyTorch casts (``Tensor.to``), so a
    file conversion gives the bits ``model.to(dtype)`` gives, NaN payloads included."""
    if dtype is None or (array.dtype == dtype and array.dtype.isnative):
        return array
    from .. import to_numpy, to_torch

    return to_numpy(to_torch(array, dtype=dtype))


def chunks(
    array: np.ndarray, dtype: np.dtype[Any] | None = None, step: int | None = None
) -> Iterator[np.ndarray]:
    """``array``'s values in C order as flat arrays of about ``CHUNK_BYTES`` (or of ``step``
    values), cast to ``dtype``.

    Casting chunk by chunk keeps a cast's extra memory at one chunk, not one more tensor; the
    pages of a read-only file map are handed back once their chunk has been used (``release``),
    so reading a mapped tensor holds one chunk of it, not all of it.
    """
    array = np.ascontiguousarray(array)
    flat = array.reshape(-1)
    out = dtype if dtype is not None else array.dtype
    step = step or max(1, CHUNK_BYTES // max(out.itemsize, array.dtype.itemsize))
    for start in range(0, flat.size, step):
        part = flat[start : start + step]
        yield np.ascontiguousarray(cast(part, dtype))
        release(part)


def _file_map(array: Any) -> mmap.mmap | None:
    """The read-only file map ``array``'s memory lies in, or ``None``."""
    node = array
    while node is not None:
        if isinstance(node, np.memmap) and node.mode == "r":
            found = getattr(node, "_mmap", None)
            return found if isinstance(found, mmap.mmap) else None
        node = getattr(node, "base", None)
    return None


def release(array: np.ndarray) -> None:
    """Hand back the pages of a read-only file map that a used C-contiguous ``array`` lies in.

    The kernel drops them from this process (they stay in the file and the page cache), so they
    no longer count in its memory; reading them again maps them again. Nothing happens for
    memory that is not a read-only file map (``np.memmap`` with ``mode="r"``).
    """
    advice = getattr(mmap, "MADV_DONTNEED", None)
    mapped = _file_map(array)
    if advice is None or mapped is None or not array.flags.c_contiguous or array.nbytes == 0:
        return
    begin = array.ctypes.data - np.frombuffer(mapped, np.uint8).ctypes.data
    end = min(len(mapped), begin + array.nbytes)
    begin -= begin % mmap.PAGESIZE
    if 0 <= begin < end:
        mapped.madvise(advice, begin, end - begin)


def each(entries: list[Entry], arrays: Iterable[np.ndarray]) -> Iterator[tuple[Entry, np.ndarray]]:
    """``zip(entries, arrays, strict=True)`` that lets each array go before the next is read.

    ``zip`` keeps its last tuple until the next item is in, so two tensors would be held at once;
    here the caller's ``del array`` after writing it frees it.
    """
    source = iter(arrays)
    for entry in entries:
        array = next(source, None)
        if array is None:
            raise BadFileError(f"no values for tensor {entry.name!r}")
        yield entry, array
        del array
    if next(source, None) is not None:
        raise BadFileError("more arrays than tensors to write")


def write_bytes(
    f: Any, array: np.ndarray, progress: Progress | None = None, dtype: np.dtype[Any] | None = None
) -> None:
    """Write ``array``'s values (cast to ``dtype``) as C-order bytes, ``CHUNK_BYTES`` at a time."""
    for chunk in chunks(array, dtype):
        raw = chunk.view(np.uint8)
        f.write(raw.data)
        if progress is not None:
            progress(raw.size)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Temporary names carry the writing process's host and pid, so a later run can tell a temporary
# left by a killed process (SIGKILL runs no cleanup) from one still being written, and remove it.
# An "aside" temporary holds, as ``old``, a directory being replaced without an atomic swap.
TEMP_MARK = ".tbtmp."
ASIDE = "aside."
_HOST = f"{zlib.crc32(socket.gethostname().encode()):08x}"
_TEMP_RE = re.compile(r"\.tbtmp\.([0-9a-f]{8})\.(\d+)\.(aside\.)?[a-z0-9_]+$")


def temp_prefix(dst: Path) -> str:
    """The start of a temporary name beside ``dst`` that ``reclaim_stale`` can recognise."""
    return f".{dst.name}{TEMP_MARK}{_HOST}.{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _exists(path: Path) -> bool:
    return os.path.lexists(path)


def _remove(path: Path) -> None:
    """Remove a file, link or directory tree; what cannot be removed is left."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def reclaim_stale(directory: Path) -> list[Path]:
    """Remove the temporaries that killed tensorbridge runs on this host left in ``directory``.

    A temporary is stale when the process named in it no longer runs; one being written by a live
    process (or by another host) is left alone. A stale aside temporary whose directory is missing
    (the run was killed between moving the old directory aside and moving the new one in) holds
    the only copy of that directory: it is moved back into place, not removed. Returns what was
    removed.
    """
    removed: list[Path] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        found = _TEMP_RE.search(name)
        if not name.startswith(".") or found is None or found.group(1) != _HOST:
            continue
        pid = int(found.group(2))
        if pid == os.getpid() or _alive(pid):
            continue
        path = directory / name
        if found.group(3) and _exists(path / _FILES) and not _exists(path / _DONE):
            _restore_files(directory, path)
        elif found.group(3):
            old, dst = path / "old", directory / name[1 : found.start()]
            if _exists(old) and not _exists(dst):
                try:
                    _rename_noreplace(old, dst)
                except FileExistsError:  # another run published dst meanwhile: old is obsolete
                    pass
                except OSError:
                    continue  # keep the only copy rather than lose it
        with contextlib.suppress(OSError):
            _remove(path)
            if not _exists(path):
                removed.append(path)
    return removed


# Files replaced inside an existing directory (shards beside a model's config): an aside temporary
# lists the names being written (``names``), those that existed (``olds``), and keeps the old files
# in ``files/`` until ``done`` marks the whole set as in place.
_FILES, _NAMES, _OLDS, _DONE = "files", "names", "olds", "done"


def replace_files(source: Path, directory: Path, names: list[str]) -> None:
    """Move the files ``names`` (in order) from ``source`` into ``directory``, all or none.

    Files of those names already in ``directory`` are moved aside first and put back if this
    fails, is interrupted, or is killed (the next ``reclaim_stale`` of ``directory`` restores them
    and removes the new ones), so ``directory`` holds the old set or the new one, not a mix.
    """
    aside = Path(tempfile.mkdtemp(prefix=temp_prefix(directory / names[-1]) + ASIDE, dir=directory))
    olds = [n for n in names if _exists(directory / n)]
    _write_synced(aside / _NAMES, "\n".join(names))
    _write_synced(aside / _OLDS, "\n".join(olds))
    (aside / _FILES).mkdir()
    try:
        for name in olds:
            os.rename(directory / name, aside / _FILES / name)
        for name in names:
            os.rename(source / name, directory / name)
        _write_synced(aside / _DONE, "")
    except BaseException:
        _restore_files(directory, aside)
        raise
    _remove(aside)


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _restore_files(directory: Path, aside: Path) -> None:
    """Undo an unfinished ``replace_files``: the old files back, the new ones removed."""
    try:
        names = (aside / _NAMES).read_text("utf-8").split("\n")
        olds = set((aside / _OLDS).read_text("utf-8").split("\n"))
    except OSError:
        return  # killed before the lists were written: nothing was moved yet
    for name in names:
        kept = aside / _FILES / name
        if name in olds:
            if _exists(kept):
                os.replace(kept, directory / name)
        else:
            _remove(directory / name)


# renameat2(2) (Linux 3.15, glibc 2.28): swap two names, or rename without replacing, atomically.
_AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
# What renameat2 answers where the system or the file system lacks it (EPERM: a seccomp filter
# that predates it; a real permission problem fails again in the plain rename that follows).
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM}


@functools.cache
def _libc_renameat2() -> Any:
    """libc's ``renameat2``, or ``None`` where there is none (not Linux, an older libc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        func = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """Rename ``src`` to ``dst`` with ``renameat2``'s ``flags``; ``False`` (nothing done) where
    this system or the file system does not offer it. Other failures raise ``OSError``."""
    func = _libc_renameat2()
    if func is None:
        return False
    if func(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def _rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``, raising ``FileExistsError`` if ``dst`` exists.

    Atomic with ``renameat2`` or, for a file, a hard link; elsewhere a check comes first.
    """
    if _renameat2(src, dst, RENAME_NOREPLACE):
        return
    if not src.is_dir():
        try:
            os.link(src, dst)
        except FileExistsError:
            raise
        except OSError:  # file systems without hard links
            pass
        else:
            os.unlink(src)
            return
    if _exists(dst):
        raise FileExistsError(errno.EEXIST, "File exists", str(dst))
    os.rename(src, dst)


def _publish(tmp: Path, dst: Path, *, force: bool) -> None:
    """Rename the finished file ``tmp`` to ``dst`` (replacing it only with ``force``)."""
    if force:
        os.replace(tmp, dst)
        return
    try:
        _rename_noreplace(tmp, dst)  # no window in which an existing dst could be clobbered
    except FileExistsError:
        raise FileUsageError(f"{dst} already exists; pass --force to replace it") from None


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(dst: Path, *, force: bool) -> Iterator[Path]:
    """A temporary path beside ``dst`` that becomes ``dst`` only when the block succeeds.

    On any exception (including ``KeyboardInterrupt``) the temporary file is removed and ``dst``
    is untouched. Without ``force``, an existing ``dst`` is never replaced, even one that appears
    while the block runs. A temporary left by a killed run is removed by the next run that writes
    into the same directory (``reclaim_stale``).
    """
    reclaim_stale(dst.parent)
    fd, name = tempfile.mkstemp(prefix=temp_prefix(dst), dir=dst.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        _publish(tmp, dst, force=force)
        _fsync_dir(dst.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _swap_in(tmp: Path, dst: Path) -> None:
    """Put the finished directory ``tmp`` in the place of the existing ``dst``.

    With ``renameat2(RENAME_EXCHANGE)`` the two names swap in one step and ``tmp`` then holds the
    old tree. Elsewhere ``dst`` moves into an aside temporary first: a run killed between the two
    renames leaves ``dst`` missing, and the next run's ``reclaim_stale`` moves the old one back.
    """
    if _renameat2(tmp, dst, RENAME_EXCHANGE):
        return
    aside = Path(tempfile.mkdtemp(prefix=temp_prefix(dst) + ASIDE, dir=dst.parent))
    old = aside / "old"
    try:
        os.rename(dst, old)
        os.rename(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            if _exists(old) and not _exists(dst):
                os.rename(old, dst)
        raise
    finally:
        if not _exists(old) or _exists(dst):  # else old is the only copy: the next run restores it
            _remove(aside)


@contextlib.contextmanager
def atomic_dir(dst: Path, *, force: bool) -> Iterator[Path]:
    """A temporary directory beside ``dst`` that becomes ``dst`` only when the block succeeds.

    The directory appears complete or not at all: on any exception the temporary directory is
    removed and ``dst`` is untouched. With ``force`` an existing ``dst`` is swapped for the new
    one (atomically on Linux) and then removed; without it an existing ``dst`` is an error, even
    one that appears while the block runs.
    """
    reclaim_stale(dst.parent)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(dst), dir=dst.parent))
    try:
        yield tmp
        for child in tmp.rglob("*"):
            if child.is_file():
                with open(child, "rb") as f:
                    os.fsync(f.fileno())
        _fsync_dir(tmp)
        os.chmod(tmp, 0o777 & ~_umask())
        try:
            _rename_noreplace(tmp, dst)
        except FileExistsError:
            if not force:
                raise FileUsageError(f"{dst} already exists; pass --force to replace it") from None
            _swap_in(tmp, dst)
        _fsync_dir(dst.parent)
    finally:
        _remove(tmp)  # the unpublished new tree, or the old one swapped out


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's pairs as a dict, refusing a key named twice (``json.loads`` keeps the last).

    >>> unique_keys([("a", 1), ("b", 2)])
    {'a': 1, 'b': 2}
    """
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadFileError(f"it names {key!r} twice")
        out[key] = value
    return out


_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_name(name: str) -> str | None:
    """Why ``name`` is unsafe as an archive member or a file name, or ``None`` when it is safe.

    >>> unsafe_name("encoder.layer.0.weight") is None
    True
    >>> unsafe_name("../evil")
    "it climbs out of its directory ('..')"
    """
    if not name:
        return "it is empty"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "it holds a control character (NUL, newline, ...)"
    if name.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(name):
        return "it is an absolute path"
    parts = re.split(r"[/\\]", name)
    if ".." in parts:
        return "it climbs out of its directory ('..')"
    if "" in parts or "." in parts:
        return "it has an empty or '.' path component"
    return None


def check_safe_names(names: Iterable[str], where: str) -> None:
    """Refuse the first name unsafe as a member or file name in ``where``, naming it."""
    for name in names:
        why = unsafe_name(name)
        if why is not None:
            raise BadFileError(
                f"tensor name {name!r} is unsafe as a member or file name in {where} ({why}); "
                "rename it, or write a .safetensors or .pt file"
            )
