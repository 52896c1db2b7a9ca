"""Sharded checkpoints as Hugging Face writes them: shard files beside an index file.

Layout: ``model.safetensors.index.json`` (or ``pytorch_model.bin.index.json``) holds
``{"metadata": {"total_size": N}, "weight_map": {"tensor name": "shard file name"}}``; the shards
(``model-00001-of-00003.safetensors``) lie in the same directory, each a complete file of its
format. tensorbridge adds ``tensorbridge.paths`` (a nested tree's key paths, with
``tensorbridge.containers``: its dicts with integer keys and its tuples) and
``tensorbridge.aliases`` (tied weights, stored once) to the index's ``metadata`` when needed;
loaders that do not know them ignore them.

Reads: an index file, or a directory (its one ``*.index.json``; without one, its ``.safetensors``
files, else its ``.bin``/``.pt`` files, as shards). The index is checked before any tensor is
read: every listed shard exists and is a plain file name beside the index, every indexed tensor
is in its shard exactly once, no shard holds a tensor the index does not list. Each check that
fails is one line naming the tensor and the shards.
Writes: shards of at most ``max_shard_size`` bytes (a tensor bigger than that gets a shard of its
own, as Hugging Face does), filled in the source's order, then the index; see ``write``.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from . import safetensors, torchfile
from ._common import (
    CONTAINERS_KEY,
    BadFileError,
    Entry,
    FileUsageError,
    Layout,
    Progress,
    Reader,
    decode_containers,
    encode_containers,
    unique_keys,
    unsafe_name,
)

__all__ = [
    "DEFAULT_MAX_SHARD_SIZE",
    "ShardTarget",
    "ShardedReader",
    "find_shards",
    "is_index",
    "parse_size",
    "plan_shards",
    "shard_target",
    "write",
]

DEFAULT_MAX_SHARD_SIZE = 5 * 10**9
"""Shard size when none is given: Hugging Face's default (``"5GB"``)."""

INDEX_SUFFIXES: dict[str, ModuleType] = {
    ".safetensors.index.json": safetensors,
    ".bin.index.json": torchfile,
}
_SHARD_EXT = {safetensors: ".safetensors", torchfile: ".bin"}
_UNITS = {
    "TIB": 2**40, "GIB": 2**30, "MIB": 2**20, "KIB": 2**10,
    "TB": 10**12, "GB": 10**9, "MB": 10**6, "KB": 10**3, "B": 1,
}  # fmt: skip


def parse_size(text: str | int) -> int:
    """Bytes in a size as Hugging Face reads it: ``GB`` is 10^9, ``GiB`` 2^30, a trailing
    lower-case ``b`` means bits, a plain number is bytes.

    >>> parse_size("5GB"), parse_size("1GiB"), parse_size("8Mb"), parse_size(100)
    (5000000000, 1073741824, 1000000, 100)
    """
    if isinstance(text, int):
        value = text
    else:
        spec = text.strip()
        upper = spec.upper()
        value = -1
        for unit, factor in _UNITS.items():
            if upper.endswith(unit) and re.fullmatch(r"\d+", spec[: -len(unit)].strip()):
                value = int(spec[: -len(unit)]) * factor
                if spec.endswith("b") and not unit.endswith("IB") and unit != "B":
                    value //= 8
                break
        else:
            if re.fullmatch(r"\d+", spec):
                value = int(spec)
    if value <= 0:
        raise FileUsageError(
            f"--max-shard-size {text!r} is not a size; write it as Hugging Face does, "
            "e.g. 5GB (10^9 bytes), 500MB, 2GiB (2^30 bytes), or a number of bytes"
        )
    return value


def is_index(path: Path) -> bool:
    """Whether ``path`` names a Hugging Face index file (``*.safetensors.index.json``, ...)."""
    return any(path.name.endswith(s) for s in INDEX_SUFFIXES)


def _index_format(path: Path) -> ModuleType:
    for suffix, fmt in INDEX_SUFFIXES.items():
        if path.name.endswith(suffix):
            return fmt
    raise FileUsageError(
        f"{path}: an index file is named *.safetensors.index.json or *.bin.index.json"
    )


_SHARD_NAME = re.compile(r"(.+)-(\d{5})-of-(\d{5})\.(safetensors|bin|pt|pth)")


def _complete_set(files: list[Path]) -> bool:
    """Whether ``files`` are exactly shards 1..N of one ``PREFIX-0000k-of-0000N.ext`` set."""
    found = [_SHARD_NAME.fullmatch(p.name) for p in files]
    if not all(found):
        return False
    kinds = {(m.group(1), m.group(3), m.group(4)) for m in found if m}
    numbers = sorted(int(m.group(2)) for m in found if m)
    return len(kinds) == 1 and numbers == list(range(1, int(next(iter(kinds))[1]) + 1))


def find_shards(directory: Path) -> tuple[Path | None, list[Path]]:
    """The index file (or ``None``) and the shard files of a checkpoint directory.

    Without an index, a directory is read only when what it holds is unambiguous: one tensor file
    of a kind (``model.safetensors``), or one complete set of shards (``model-00001-of-00002``,
    ``model-00002-of-00002``); a stray file beside them is refused, never merged in.
    """
    indexes = sorted(p for p in directory.iterdir() if is_index(p))
    if len(indexes) > 1:
        names = ", ".join(p.name for p in indexes)
        raise BadFileError(
            f"{directory} holds {len(indexes)} index files ({names}); give the one to read"
        )
    if indexes:
        return indexes[0], []
    for exts in ((".safetensors",), (".bin", ".pt", ".pth")):
        shards = sorted(p for p in directory.iterdir() if p.suffix in exts and p.is_file())
        if len(shards) == 1 or (shards and _complete_set(shards)):
            return None, shards
        if shards:
            names = ", ".join(p.name for p in shards[:4]) + (", ..." if len(shards) > 4 else "")
            raise BadFileError(
                f"{directory} holds {len(shards)} {exts[0]} files ({names}) and no index, and "
                "they are not one complete set of shards; give the file to read, or its "
                "*.index.json"
            )
    raise BadFileError(
        f"{directory} holds no checkpoint: no *.index.json, no .safetensors or .bin files, "
        "no DCP .metadata"
    )


def _read_index(index: Path) -> tuple[dict[str, str], dict[str, Any]]:
    try:
        data = json.loads(index.read_text("utf-8"), object_pairs_hook=unique_keys)
    except BadFileError as exc:
        raise BadFileError(f"{index}: {exc}; a tensor must be indexed exactly once") from None
    except FileNotFoundError:
        raise BadFileError(f"{index}: no such file") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadFileError(f"{index} is not an index file (not JSON: {exc})") from None
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise BadFileError(f"{index} has no valid weight_map (tensor name → shard file name)")
    meta = data.get("metadata") or {}
    if not isinstance(meta, dict):
        raise BadFileError(f"{index} has corrupt metadata (not a JSON object)")
    return weight_map, meta


class ShardedReader(Reader):
    """Reads the shards of a checkpoint through their formats' readers, after the index checks.

    ``open_shard(path, fmt)`` opens one shard (``tensorbridge.files.open_reader``).
    """

    def __init__(
        self,
        path: Path,
        index: Path | None,
        shard_files: list[Path],
        open_shard: Callable[[Path, ModuleType], Reader],
    ) -> None:
        self.path = path
        self.index = index
        self.metadata = {}
        self.index_metadata: dict[str, Any] = {}
        self.shards: dict[str, Reader] = {}
        weight_map: dict[str, str] | None = None
        if index is not None:
            fmt = _index_format(index)
            weight_map, self.index_metadata = _read_index(index)
            folder = index.parent
            names = list(dict.fromkeys(weight_map.values()))
        else:
            fmt = torchfile if shard_files[0].suffix != ".safetensors" else safetensors
            folder = shard_files[0].parent
            names = [p.name for p in shard_files]
        what = index if index is not None else path
        try:
            for name in names:
                why = unsafe_name(name)
                if why is not None or "/" in name or "\\" in name:
                    raise BadFileError(
                        f"{what} lists shard {name!r}, which is not a file name beside the "
                        f"index ({why or 'it names another directory'}); refused as unsafe"
                    )
                shard = folder / name
                if not shard.is_file():
                    count = sum(v == name for v in (weight_map or {}).values())
                    raise BadFileError(
                        f"{what} lists shard {name} for {count} tensor(s), which does not exist"
                    )
                self.shards[name] = open_shard(shard, fmt)
            self.where = self._check(weight_map, str(what))
        except BaseException:
            self.close()
            raise
        self.entries = [e for r in self.shards.values() for e in r.entries]
        self.others = {k: v for r in self.shards.values() for k, v in r.others.items()}
        self.aliases = {k: v for r in self.shards.values() for k, v in r.aliases.items()}
        self.aliases.update(
            safetensors.read_aliases(
                self.index_metadata.get(safetensors.ALIASES_KEY), self.entries, str(what)
            )
        )
        paths = self.index_metadata.get(safetensors.PATHS_KEY)
        if isinstance(paths, dict):
            self.paths = {k: tuple(v) for k, v in paths.items() if isinstance(v, list)}
        self.containers = decode_containers(self.index_metadata.get(CONTAINERS_KEY), str(what))
        if self.paths:  # the source's order (the weight_map is sorted by name)
            order = {name: i for i, name in enumerate(self.paths)}
            self.entries.sort(key=lambda e: order.get(e.name, len(order)))

    def _check(self, weight_map: dict[str, str] | None, what: str) -> dict[str, str]:
        """Tensor name → shard, after the index checks."""
        where: dict[str, str] = {}
        for shard, reader in self.shards.items():
            names = [e.name for e in reader.entries] + list(reader.aliases) + list(reader.others)
            for name in names:
                listed = shard if weight_map is None else weight_map.get(name)
                if name in where:
                    raise BadFileError(
                        f"{what}: tensor {name!r} is in shard {where[name]} and again in "
                        f"{shard}; each tensor must be in exactly one shard"
                    )
                if listed is None:
                    raise BadFileError(
                        f"{what}: shard {shard} holds tensor {name!r}, which the index does not "
                        "list (a stray shard, or an index that is out of date)"
                    )
                if listed != shard:
                    raise BadFileError(
                        f"{what}: tensor {name!r} is in shard {shard}, but the index puts it "
                        f"in {listed}"
                    )
                where[name] = shard
        for name, shard in (weight_map or {}).items():
            if name not in where:
                raise BadFileError(
                    f"{what}: the index puts tensor {name!r} in shard {shard}, "
                    "which does not hold it"
                )
        return where

    def load(self, name: str) -> np.ndarray:
        return self.shards[self.where[name]].load(name)

    def describe(self) -> list[dict[str, Any]]:
        """One row per shard: file, tensors, bytes of tensor data, bytes on disk."""
        rows = []
        for name, reader in self.shards.items():
            rows.append(
                {
                    "file": name,
                    "tensors": len(reader.entries),
                    "bytes": sum(e.nbytes for e in reader.entries),
                    "file_bytes": reader.path.stat().st_size,
                }
            )
        return rows

    def close(self) -> None:
        for reader in self.shards.values():
            reader.close()


# --------------------------------------------------------------------------------------------
# writing


@dataclass(frozen=True)
class ShardTarget:
    """Where a sharded checkpoint is written: the folder, the index's name, the shard format."""

    folder: Path
    index_name: str
    fmt: ModuleType

    @property
    def prefix(self) -> str:
        return self.index_name.removesuffix(".index.json").rsplit(".", 1)[0]

    def shard_names(self, n: int) -> list[str]:
        """``model-00001-of-00003.safetensors`` ... as Hugging Face names them."""
        ext = _SHARD_EXT[self.fmt]
        return [f"{self.prefix}-{k:05d}-of-{n:05d}{ext}" for k in range(1, n + 1)]

    def is_shard_name(self, name: str) -> bool:
        ext = re.escape(_SHARD_EXT[self.fmt])
        return re.fullmatch(rf"{re.escape(self.prefix)}-\d{{5}}-of-\d{{5}}{ext}", name) is not None


def shard_target(dst: Path) -> ShardTarget:
    """Where DST puts its shards: an index file's folder, or DST itself as the folder (with
    ``model.safetensors.index.json``)."""
    if is_index(dst):
        return ShardTarget(dst.parent, dst.name, _index_format(dst))
    return ShardTarget(dst, "model.safetensors.index.json", safetensors)


def plan_shards(entries: list[Entry], max_bytes: int) -> list[list[Entry]]:
    """Entries split in order into shards of at most ``max_bytes`` (a bigger tensor alone).

    >>> e = [Entry(n, "uint8", (s,), s) for n, s in [("a", 4), ("b", 4), ("c", 9), ("d", 1)]]
    >>> [[x.name for x in shard] for shard in plan_shards(e, 8)]
    [['a', 'b'], ['c'], ['d']]
    """
    shards: list[list[Entry]] = []
    size = 0
    for entry in entries:
        if not shards or (size + entry.nbytes > max_bytes and shards[-1]):
            shards.append([])
            size = 0
        shards[-1].append(entry)
        size += entry.nbytes
    return shards


def write(
    folder: Path,
    target: ShardTarget,
    layout: Layout,
    arrays: Any,
    max_bytes: int,
    progress: Progress | None = None,
) -> list[str]:
    """Write ``layout``'s arrays as shards and the index into ``folder``; the files written."""
    groups = plan_shards(layout.entries, max_bytes)
    names = target.shard_names(len(groups))
    source = iter(arrays)
    weight_map: dict[str, str] = {}
    for name, group in zip(names, groups, strict=True):
        target.fmt.write(
            folder / name, Layout(group), itertools.islice(source, len(group)), progress
        )
        weight_map.update(dict.fromkeys((e.name for e in group), name))
    metadata: dict[str, Any] = {"total_size": sum(e.nbytes for e in layout.entries)}
    if layout.paths is not None:
        metadata[safetensors.PATHS_KEY] = {k: list(p) for k, p in layout.paths.items()}
        if layout.containers:
            metadata[CONTAINERS_KEY] = encode_containers(layout.containers)
    if layout.aliases:
        metadata[safetensors.ALIASES_KEY] = dict(layout.aliases)
    index = {"metadata": metadata, "weight_map": dict(sorted(weight_map.items()))}
    (folder / target.index_name).write_text(json.dumps(index, indent=2) + "\n", "utf-8")
    return [*names, target.index_name]
