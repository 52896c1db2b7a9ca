"""``convert``: every tensor of a source (file, shards or DCP checkpoint) into a destination.

Three ways, chosen by the source and destination:

- ``.pt`` → one PyTorch file: the loaded object is kept as it is (non-tensor values, key types,
  tuples, shared storage) and its tensors cast; ``torch.save`` needs it all in memory.
- any source → ``--format dcp``: the tree (tensors and non-tensor values) to DCP's writer, each
  tensor read when DCP writes it, so memory stays near the largest tensor.
- everything else streams: a reader lists the entries, then the tensors are read, cast chunk by
  chunk and written one at a time, so memory stays near the largest tensor (``.pt`` and ``.bin``
  files too: ``torchfile.write`` fills ``torch.save``'s records one tensor at a time).

The destination appears complete or not at all: a temporary file or directory beside it, renamed
into place when written (and verified, with ``verify``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from .._dtypes import by_numpy, by_torch, numpy_dtype, torch_dtype
from .._errors import ConversionError
from . import dcp, npy, safetensors, sharded, torchfile
from . import image as image_files
from ._common import (
    CHUNK_BYTES,
    BadFileError,
    Entry,
    FileUsageError,
    Layout,
    Reader,
    atomic_dir,
    atomic_path,
    cast,
    check_safe_names,
    chunks,
    narrow,
    reclaim_stale,
    release,
    replace_files,
    temp_prefix,
    unflatten,
)
from ._open import FORMATS, format_of, open_reader

__all__ = ["ConvertReport", "ProgressCallback", "check_layout", "convert", "same_bits"]

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(bytes_done, bytes_total)`` while a conversion runs."""


@dataclass
class ConvertReport:
    """What ``convert`` did."""

    src: str
    dst: str
    tensors: int
    bytes: int
    verified: bool
    skipped: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # what a sharded or DCP destination holds
    kept: list[str] = field(default_factory=list)  # non-tensor values written

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class _Dst:
    """What the destination is: one file, shards beside an index, or a DCP directory."""

    path: Path
    kind: str  # "file", "shards", "dcp"
    fmt: ModuleType | None = None
    shards: sharded.ShardTarget | None = None

    @property
    def folder(self) -> Path:
        return self.shards.folder if self.shards is not None else self.path

    @property
    def holds_others(self) -> bool:
        return self.kind == "dcp" or self.fmt is torchfile

    @property
    def holds_aliases(self) -> bool:
        return self.kind == "shards" or self.fmt in (torchfile, safetensors)


def _destination(dst: Path, fmt: str | None, as_folder: bool = False) -> _Dst:
    if fmt is not None:
        if fmt != "dcp":
            raise FileUsageError(f"--format {fmt!r} is not known; the one format option is dcp")
        return _Dst(dst, "dcp")
    if sharded.is_index(dst):
        return _Dst(dst, "shards", shards=sharded.shard_target(dst))
    if dst.suffix.lower() in FORMATS and not dst.is_dir() and not as_folder:
        return _Dst(dst, "file", format_of(dst))
    if dst.is_dir() or as_folder or not dst.suffix:
        return _Dst(dst, "shards", shards=sharded.shard_target(dst))
    format_of(dst)  # raises: unknown extension
    raise AssertionError("unreachable")


def _holders(tag: str) -> str:
    exts = sorted(
        {ext for ext, mod in FORMATS.items() if tag in mod.DTYPES}, key=list(FORMATS).index
    )
    return ", ".join(exts) if exts else "none of the formats"


def check_layout(layout: Layout, fmt: ModuleType, dst: Path, src: str) -> None:
    """Refuse what ``fmt`` cannot hold: too many tensors, a dtype, an unsafe member name."""
    if fmt.MAX_TENSORS is not None and len(layout.entries) > fmt.MAX_TENSORS:
        raise BadFileError(
            f"{dst}: a {fmt.NAME} file holds one array and {src} has "
            f"{len(layout.entries)} tensors; "
            "write a .npz, .safetensors or .pt file instead"
        )
    if getattr(fmt, "MEMBER_NAMES", False):
        check_safe_names((e.name for e in layout.entries), f"{dst}")
    for entry in layout.entries:
        if entry.tag not in fmt.DTYPES:
            raise BadFileError(
                f"tensor {entry.name!r} is {entry.tag}, which a {fmt.NAME} file cannot hold; "
                f"formats that can: {_holders(entry.tag)} (or cast it with --dtype/--float-dtype)"
            )


def is_step_counter(name: str, shape: tuple[int, ...]) -> bool:
    """An optimizer's step counter (a 0-d tensor named ``step``): ``--float-dtype`` leaves it,
    since a bfloat16 counter stops counting at 256."""
    return shape == () and name.rsplit(".", 1)[-1] == "step"


def _target(
    entry: Entry, dtype: np.dtype[Any] | None, float_dtype: np.dtype[Any] | None, src: Path
) -> Entry:
    """The entry as it will be written, after the requested casts, in native byte order."""
    target = entry.dtype
    if dtype is not None:
        target = dtype
    elif (
        float_dtype is not None
        and entry.kind == "f"
        and not is_step_counter(entry.name, entry.shape)
    ):
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


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays have the same dtype, shape and bytes (NaN payloads and -0.0 included)."""
    if a.shape != b.shape or a.dtype.newbyteorder("=") != b.dtype.newbyteorder("="):
        return False
    return all(np.array_equal(x.view(np.uint8), y.view(np.uint8)) for x, y in _pairs(a, b))


def _pairs(a: np.ndarray, b: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    little = a.dtype.newbyteorder("<") if a.dtype.byteorder != "|" else a.dtype
    yield from zip(chunks(a, little), chunks(b, little), strict=True)


def _resolve_dtype(spec: Any, what: str) -> np.dtype[Any] | None:
    if spec is None:
        return None
    try:
        resolved = numpy_dtype(spec)
    except ConversionError as exc:
        raise FileUsageError(f"{what}: {exc}") from None
    row = by_numpy(resolved.newbyteorder("=") if not resolved.isnative else resolved)
    if what == "float_dtype" and (row is None or row.kind != "f"):
        raise FileUsageError(
            f"--float-dtype {spec} is not a floating-point dtype; --float-dtype casts floating "
            "tensors to another floating dtype (float16, bfloat16, float32, float64); "
            f"to cast every tensor to {spec}, use --dtype {spec}"
        )
    return resolved


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _source_folder(src: Path) -> Path:
    return src if src.is_dir() else src.parent


def _check_destination(src: Path, out: _Dst, force: bool) -> None:
    dst = out.path
    if _same_file(src, dst):
        raise FileUsageError(
            f"refusing to write {dst} over its own source; choose another destination"
        )
    if out.kind == "file":
        if dst.is_dir():
            raise FileUsageError(f"{dst} is a directory; give a file name")
        if dst.exists() and not force:
            raise FileUsageError(f"{dst} already exists; pass --force to replace it")
        if not dst.parent.is_dir():
            raise BadFileError(f"cannot write {dst}: no directory {dst.parent}")
        return
    folder = out.folder
    if (src.is_dir() or sharded.is_index(src)) and _same_file(_source_folder(src), folder):
        raise FileUsageError(
            f"refusing to write shards into {folder}, the source's own directory; "
            "choose another destination"
        )
    if not folder.parent.is_dir():
        raise BadFileError(f"cannot write {dst}: no directory {folder.parent}")
    if out.kind == "dcp":
        if folder.exists() and not force:
            raise FileUsageError(f"{folder} already exists; pass --force to replace it")
        if folder.exists() and (
            not folder.is_dir() or (any(folder.iterdir()) and not dcp.is_dcp(folder))
        ):
            raise FileUsageError(
                f"{folder} exists and is not a DCP checkpoint; --force replaces only a DCP "
                "checkpoint or an empty directory: choose another destination"
            )
        return
    assert out.shards is not None
    if folder.exists() and not folder.is_dir():
        raise FileUsageError(f"{folder} is a file; give a directory or an index file name")
    if folder.is_dir() and not force:
        taken = [
            p.name
            for p in folder.iterdir()
            if p.name == out.shards.index_name or out.shards.is_shard_name(p.name)
        ]
        if taken:
            raise FileUsageError(
                f"{folder} already holds {', '.join(sorted(taken)[:3])}; "
                "pass --force to replace that checkpoint"
            )


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
    max_shard_size: str | int | None = None,
    format: str | None = None,
    value_range: Any = None,
    clip: bool = False,
) -> ConvertReport:
    """Copy every tensor of ``src`` into ``dst``, atomically.

    ``src`` is a tensor file, a Hugging Face index file, or a directory (shards, or a
    ``torch.distributed.checkpoint``); ``dst`` is a tensor file (format from its extension), an
    index file or a directory (shards of at most ``max_shard_size``, ``"5GB"`` unless given), or
    with ``format="dcp"`` a DCP directory; an image file on either side goes through
    ``files.image`` (``value_range`` and ``clip`` map float tensors to pixels). ``dtype`` casts
    every tensor, ``float_dtype`` only the real floating-point ones (not an optimizer's 0-d
    ``step``). ``verify`` re-reads the output and compares it bit for bit before it replaces
    ``dst``; an existing ``dst`` is replaced only with ``force``; ``src`` is never overwritten.

    >>> convert("ckpt.pt", "ckpt_bf16.pt", float_dtype="bfloat16")   # doctest: +SKIP
    >>> convert("model.pt", "out/", max_shard_size="2GB", verify=True)  # doctest: +SKIP
    """
    cast_all = _resolve_dtype(dtype, "dtype")
    cast_float = _resolve_dtype(float_dtype, "float_dtype")  # floating only, images too
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
    as_folder = os.fspath(dst).endswith(("/", os.sep))  # Path() drops a trailing slash
    src, dst = Path(src), Path(dst)
    out = _destination(dst, format, as_folder)
    if max_shard_size is not None and out.kind != "shards":
        raise FileUsageError(
            f"--max-shard-size writes shards, and {dst} is not a sharded destination; give a "
            "directory (out/) or an index file (out/model.safetensors.index.json)"
        )
    max_bytes = (
        sharded.parse_size(max_shard_size)
        if max_shard_size is not None
        else sharded.DEFAULT_MAX_SHARD_SIZE
    )
    _check_destination(src, out, force)
    with open_reader(src) as reader:
        job = _Job(reader, src, out, cast_all, cast_float, verify, force, progress)
        if out.fmt is torchfile and isinstance(reader, torchfile.TorchReader):
            return job.tree_to_pt()
        if out.kind == "dcp":
            return job.to_dcp()
        return job.stream(skip_non_tensors, max_bytes)


@dataclass
class _Job:
    reader: Reader
    src: Path
    out: _Dst
    cast_all: np.dtype[Any] | None
    cast_float: np.dtype[Any] | None
    verify: bool
    force: bool
    progress: ProgressCallback | None
    done: int = 0
    total: int = 0

    def advance(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)

    def report(self, entries: list[Entry], **more: Any) -> ConvertReport:
        return ConvertReport(
            str(self.src),
            str(self.out.path),
            len(entries),
            sum(e.nbytes for e in entries),
            self.verify,
            **more,
        )

    def _entries(self) -> list[Entry]:
        if not self.reader.entries:
            raise BadFileError(f"{self.src} holds no tensors; nothing to convert")
        return [_target(e, self.cast_all, self.cast_float, self.src) for e in self.reader.entries]

    # ---------------------------------------------------------------- .pt → .pt, as it is

    def _torch_target(self, name: str, t: torch.Tensor) -> torch.dtype | None:
        """The dtype ``t`` is cast to (the same rules as ``_target``), or ``None`` to keep it."""
        if self.cast_all is None and (self.cast_float is None or not t.is_floating_point()):
            return None
        row = by_torch(t.dtype)
        tag = row.tag if row is not None else str(t.dtype).removeprefix("torch.")
        shape = tuple(int(n) for n in t.shape)
        numpy = row.numpy if row is not None else None
        new = _target(Entry(name, tag, shape, 0, numpy), self.cast_all, self.cast_float, self.src)
        assert new.dtype is not None
        wanted = torch_dtype(new.dtype)
        return None if wanted == t.dtype else wanted

    def tree_to_pt(self) -> ConvertReport:
        assert isinstance(self.reader, torchfile.TorchReader)
        entries = self._entries()
        tree = torchfile.cast_tree(self.reader.obj, self._torch_target)
        self.total = sum(e.nbytes for e in entries)
        with atomic_path(self.out.path, force=self.force) as tmp:
            try:
                torchfile.write_tree(tmp, tree)
            except OSError as exc:
                raise BadFileError(f"cannot write {self.out.path}: {exc.strerror or exc}") from None
            self.advance(self.total)
            if self.verify:
                written = torchfile.load(tmp)
                differs = torchfile.same_tree(tree, written)
                if differs:
                    raise BadFileError(
                        f"verify failed: in {self.out.path}, {differs}; "
                        f"{self.out.path} was left untouched"
                    )
        return self.report(entries, kept=sorted(self.reader.others))

    # ---------------------------------------------------------------- any source → DCP

    def _skeleton(self, entries: list[Entry]) -> tuple[Any, Any, Any]:
        """The source's tree with a ``meta`` tensor for each entry, and the ``load`` and ``flush``
        that ``dcp.save`` calls: each tensor is read (and cast) only when it is written."""
        reader = self.reader
        placed: dict[int, Entry] = {}
        held: list[np.ndarray] = []

        def placeholder(entry: Entry) -> torch.Tensor:
            assert entry.dtype is not None
            p = torch.empty(entry.shape, dtype=torch_dtype(entry.dtype), device="meta")
            placed[id(p)] = entry
            return p

        def load(p: torch.Tensor) -> torch.Tensor:
            entry = placed.get(id(p))
            if entry is None:  # a value of the tree that is no entry: written as it is
                return p
            held.append(cast(_load(reader, entry.name), entry.dtype))
            self.advance(entry.nbytes)
            return torchfile.as_tensor(held[-1])

        def flush() -> None:
            for array in held:
                release(array)
            held.clear()

        if isinstance(reader, torchfile.TorchReader):
            by_name = {e.name: e for e in entries}
            tree = torchfile.map_tensors(
                reader.obj, lambda name, t: placeholder(by_name[name]) if name in by_name else t
            )
        else:
            flat: dict[str, Any] = {e.name: placeholder(e) for e in entries}
            for alias, target in reader.aliases.items():
                flat[alias] = flat[target]
            flat.update(reader.others)
            tree = unflatten(flat, reader.paths, reader.containers)
        ints = dcp.int_keys(reader.paths, reader.containers)
        if not isinstance(tree, dict):
            tree = {self.src.stem: tree}
            ints = [[self.src.stem, *p] for p in ints]
        if ints:  # a value dcp.load reads only when asked for it; DcpReader does
            tree[dcp.INT_KEYS] = json.dumps(ints)
        return tree, load, flush

    def to_dcp(self) -> ConvertReport:
        entries = self._entries()
        self.total = sum(e.nbytes for e in entries)
        tree, load, flush = self._skeleton(entries)
        with atomic_dir(self.out.path, force=self.force) as tmp:
            try:
                dcp.save(tmp, tree, load, flush)
            except OSError as exc:
                raise BadFileError(f"cannot write {self.out.path}: {exc.strerror or exc}") from None
            if self.verify:
                self._verify_dcp(tmp, entries)
            files = sorted(p.name for p in tmp.iterdir())
        return self.report(entries, files=files, kept=sorted(self.reader.others))

    def _verify_dcp(self, written: Path, entries: list[Entry]) -> None:
        check = dcp.DcpReader(written)
        names = {e.name for e in check.entries}
        expected = {e.name for e in entries} | set(self.reader.aliases)
        if not expected <= names:
            missing = sorted(expected - names)[:3]
            raise BadFileError(f"verify failed: {self.out.path} would miss tensors {missing}")
        for entry in entries:
            assert entry.dtype is not None
            source = _load(self.reader, entry.name)
            if not _same_cast(source, check.load(entry.name), entry.dtype):
                raise BadFileError(
                    f"verify failed: tensor {entry.name!r} in {self.out.path} differs from the "
                    f"source; {self.out.path} was left untouched"
                )

    # ---------------------------------------------------------------- streaming

    def stream(self, skip_non_tensors: bool, max_bytes: int) -> ConvertReport:
        reader, out = self.reader, self.out
        skipped: list[str] = []
        if reader.others and not out.holds_others:
            skipped = sorted(reader.others)
            if not skip_non_tensors:
                listed = ", ".join(f"{k} ({type(reader.others[k]).__name__})" for k in skipped[:5])
                more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
                where = "shards hold" if out.kind == "shards" else f"a {out.fmt.NAME} file holds"  # type: ignore[union-attr]
                raise BadFileError(
                    f"{self.src} holds values that are not tensors: {listed}{more}; "
                    f"{where} only tensors (pass --skip-non-tensors to leave them out, "
                    "or write a .pt file, which keeps them)"
                )
        entries = self._entries()
        sources = {e.name: e.name for e in entries}
        aliases = dict(reader.aliases)
        if aliases and not out.holds_aliases:  # written as copies of the tensor they share
            by_name = {e.name: e for e in entries}
            for alias, target in aliases.items():
                entries.append(Entry(alias, *_rest(by_name[target])))
                sources[alias] = target
            aliases = {}
        fmt = out.fmt if out.kind == "file" else (out.shards.fmt if out.shards else None)
        assert fmt is not None
        single = reader.single or (len(entries) == 1 and fmt is npy)
        metadata = dict(reader.metadata) if fmt is safetensors and out.kind == "file" else {}
        others = dict(reader.others) if out.holds_others else {}
        paths, containers = reader.paths, reader.containers
        if skipped:  # what is left out leaves no key paths behind
            paths, containers = narrow(paths, containers, set(sources) | set(aliases))
        layout = Layout(entries, paths, single, metadata, aliases, others, containers=containers)
        if out.kind == "shards":
            check_safe_names([e.name for e in entries] + list(aliases), f"the shards of {out.path}")
            layout.single = False
        check_layout(layout, fmt, out.path, str(self.src))
        self.total = sum(e.nbytes for e in entries) * (2 if self.verify else 1)

        def arrays() -> Iterator[np.ndarray]:
            for entry in entries:
                yield _load(reader, sources[entry.name])

        if out.kind == "file":
            with atomic_path(out.path, force=self.force) as tmp:
                try:
                    fmt.write(tmp, layout, arrays(), self.advance)
                except OSError as exc:
                    raise BadFileError(f"cannot write {out.path}: {exc.strerror or exc}") from None
                if self.verify:
                    self._verify_file(layout, sources, tmp, fmt)
            return self.report(entries, skipped=skipped, kept=sorted(others))
        files = self._write_shards(layout, arrays(), sources, max_bytes)
        return self.report(entries, skipped=skipped, files=files)

    def _write_shards(
        self, layout: Layout, arrays: Iterator[np.ndarray], sources: dict[str, str], max_bytes: int
    ) -> list[str]:
        target = self.out.shards
        assert target is not None
        with _shard_folder(target, self.force) as tmp:
            try:
                files = sharded.write(tmp, target, layout, arrays, max_bytes, self.advance)
            except OSError as exc:
                raise BadFileError(f"cannot write {self.out.path}: {exc.strerror or exc}") from None
            if self.verify:
                index = tmp / target.index_name
                with sharded.ShardedReader(
                    tmp, index, [], lambda p, fmt: open_reader(p, fmt)
                ) as check:
                    self._compare(layout, sources, check)
        return files

    def _verify_file(
        self, layout: Layout, sources: dict[str, str], tmp: Path, fmt: ModuleType
    ) -> None:
        single_name = layout.entries[0].name if len(layout.entries) == 1 else None
        with open_reader(tmp, fmt, name=single_name) as check:
            self._compare(layout, sources, check)

    def _compare(self, layout: Layout, sources: dict[str, str], check: Reader) -> None:
        dst = self.out.path
        written = {e.name for e in check.entries}
        if written != {e.name for e in layout.entries}:
            raise BadFileError(
                f"verify failed: {dst} would hold tensors {sorted(written)[:5]}, "
                f"expected {[e.name for e in layout.entries][:5]}"
            )
        if dict(check.aliases) != dict(layout.aliases):
            raise BadFileError(f"verify failed: {dst} would record other aliases")
        for entry in layout.entries:
            assert entry.dtype is not None
            source = _load(self.reader, sources[entry.name])
            if not _same_cast(source, check.load(entry.name), entry.dtype):
                raise BadFileError(
                    f"verify failed: tensor {entry.name!r} in {dst} differs from the source; "
                    f"{dst} was left untouched"
                )
            self.advance(entry.nbytes)


def _rest(entry: Entry) -> tuple[Any, ...]:
    return (entry.tag, entry.shape, entry.nbytes, entry.dtype)


def _same_cast(source: np.ndarray, written: np.ndarray, dtype: np.dtype[Any]) -> bool:
    """Whether ``written`` holds ``source`` cast to ``dtype``, compared chunk by chunk."""
    if written.shape != source.shape or written.dtype.newbyteorder("=") != dtype:
        return False
    step = max(1, CHUNK_BYTES // max(source.dtype.itemsize, dtype.itemsize))  # the same cuts
    pairs = zip(chunks(source, dtype, step), chunks(written, dtype, step), strict=True)
    return all(np.array_equal(x.view(np.uint8), y.view(np.uint8)) for x, y in pairs)


def _load(reader: Reader, name: str) -> np.ndarray:
    try:
        return reader.load(name)
    except ConversionError as exc:
        raise BadFileError(f"{reader.path}[{name!r}]: {exc}") from None
    except (OSError, ValueError) as exc:
        if isinstance(exc, BadFileError):
            raise
        raise BadFileError(f"{reader.path}[{name!r}] cannot be read: {exc}") from None


@contextlib.contextmanager
def _shard_folder(target: sharded.ShardTarget, force: bool) -> Iterator[Path]:
    """A temporary folder for the shards and index, published complete or not at all.

    A new folder is renamed into place whole. Into an existing folder (beside a model's config)
    the shards move first and the index last, so a loader never sees an index whose shards are
    missing; files they replace are kept aside until all are in, and put back on failure or by
    the next run after a kill (``replace_files``). With ``force``, shards of an earlier
    checkpoint with the same prefix that the new index does not name are removed afterwards.
    """
    folder = target.folder
    if not folder.exists():
        with atomic_dir(folder, force=force) as tmp:
            yield tmp
        return
    reclaim_stale(folder)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(folder / target.index_name), dir=folder))
    try:
        yield tmp
        names = sorted(p.name for p in tmp.iterdir() if p.name != target.index_name)
        for name in [*names, target.index_name]:
            with open(tmp / name, "rb") as f:
                os.fsync(f.fileno())
        replace_files(tmp, folder, [*names, target.index_name])
        if force:
            for old in folder.iterdir():
                if target.is_shard_name(old.name) and old.name not in names:
                    old.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
