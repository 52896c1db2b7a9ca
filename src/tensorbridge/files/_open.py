"""Which reader opens a path: a file by its extension, an index file, a directory (shards or a
DCP checkpoint); and, when a file fails to open, what it looks like instead."""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path
from types import ModuleType

from .._errors import ConversionError
from . import dcp, npy, npz, safetensors, sharded, torchfile
from ._common import BadFileError, FileUsageError, Reader, UnsafeFileError

__all__ = ["FORMATS", "LABEL", "format_of", "open_reader", "sniff"]

FORMATS: dict[str, ModuleType] = {
    ".npy": npy,
    ".npz": npz,
    ".pt": torchfile,
    ".pth": torchfile,
    ".bin": torchfile,
    ".ckpt": torchfile,
    ".safetensors": safetensors,
}
"""Extension → format module (``.ckpt``, as Lightning writes it, is PyTorch's format)."""

LABEL = {npy: "npy", npz: "npz", torchfile: "pytorch", safetensors: "safetensors"}


def format_of(path: str | os.PathLike[str]) -> ModuleType:
    """The format module for ``path``'s extension; ``FileUsageError`` for an unknown one."""
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        known = ", ".join(FORMATS)
        raise FileUsageError(
            f"{path}: unknown extension {suffix or '(none)'!r}; use one of {known}, "
            "a directory, or a *.safetensors.index.json / *.bin.index.json index"
        ) from None


def _text_hint(head: bytes) -> str | None:
    """What a file that starts with ``head`` looks like when it is text, or ``None``."""
    text = head.decode("utf-8", errors="replace")
    if (
        not text
        or text[:-1].count("\ufffd")
        or any(ord(c) < 32 and c not in "\t\r\n" for c in text)
    ):
        return None
    if text.startswith("version https://git-lfs"):
        return "a Git LFS pointer, not the file itself (run `git lfs pull`)"
    stripped = text.lstrip()
    if stripped.lower().startswith(("<!doctype html", "<html")):
        return "an HTML page (a download that returned a web page?)"
    if stripped.startswith(("{", "[")):
        return "a JSON text file"
    first = stripped.splitlines()[0][:40] if stripped else ""
    return f"a text file (it starts with {first!r})"


def sniff(path: Path) -> str | None:
    """What the file's first bytes say it is: an extension, or a phrase for text files."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
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
        return _text_hint(head)
    except Exception:
        return None


def _open(path: Path, fmt: ModuleType, name: str | None) -> Reader:
    if fmt is npy:
        return npy.NpyReader(path, name)
    if fmt is npz:
        return npz.NpzReader(path)
    if fmt is torchfile:
        return torchfile.TorchReader(path, name)
    return safetensors.SafetensorsReader(path)


def _open_checkpoint(path: Path) -> Reader:
    """A directory (DCP or shards) or an index file."""
    if path.is_dir():
        if dcp.is_dcp(path):
            return dcp.DcpReader(path)
        index, shards = sharded.find_shards(path)
    else:
        index, shards = path, []
    return sharded.ShardedReader(path, index, shards, lambda p, fmt: open_reader(p, fmt))


def open_reader(
    path: str | os.PathLike[str], fmt: ModuleType | None = None, *, name: str | None = None
) -> Reader:
    """Open ``path`` for reading: a tensor file (format from its extension unless ``fmt`` is
    given), a Hugging Face index file, or a directory (shards, or a DCP checkpoint).

    Raises ``BadFileError`` (one line, naming the file) for anything unreadable, ``UnsafeFileError``
    for a file only a pickle could load, ``FileUsageError`` for an unknown extension.
    """
    path = Path(path)
    if fmt is None and not path.suffix and not path.exists():
        raise BadFileError(f"{path}: no such file or directory")
    checkpoint = fmt is None and (path.is_dir() or sharded.is_index(path))
    fmt = None if checkpoint else (fmt or format_of(path))
    try:
        if checkpoint:
            return _open_checkpoint(path)
        size = path.stat().st_size
    except FileNotFoundError:
        raise BadFileError(f"{path}: no such file") from None
    except (BadFileError, FileUsageError):
        raise
    except OSError as exc:
        raise BadFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ConversionError as exc:
        raise BadFileError(f"{path}: {exc}") from None
    assert fmt is not None
    if size == 0:
        raise BadFileError(f"{path} is empty (0 bytes)")
    try:
        return _open(path, fmt, name)
    except UnsafeFileError as exc:
        actual = sniff(path)
        if actual is not None and not actual.startswith(".") and "it calls" not in str(exc):
            raise BadFileError(f"{path} is not a {fmt.NAME} file: it is {actual}") from None
        raise
    except BadFileError as exc:
        actual = sniff(path)
        if actual is not None and actual.startswith(".") and FORMATS[actual] is not fmt:
            raise BadFileError(f"{exc} (it looks like a {actual} file: rename it)") from None
        if actual is not None and not actual.startswith("."):
            raise BadFileError(f"{path} is not a {fmt.NAME} file: it is {actual}") from None
        raise
    except OSError as exc:
        raise BadFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except MemoryError:
        raise BadFileError(
            f"{path} is corrupt: it claims more memory than this machine has"
        ) from None
    except ConversionError as exc:
        raise BadFileError(f"{path}: {exc}") from None
