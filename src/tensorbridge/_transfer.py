"""Batched transfers between the host and accelerators: a whole container in one operation.

The conversion core hands every accelerator ↔ host copy of one call to this module at once.

Device → host (``to_host``), per CUDA device, on that device's current stream:

1. small leaves (≤ ``SMALL_LEAF_BYTES``) are packed into one device buffer (one ``torch.cat`` per
   run of same-dtype leaves, one ``copy_`` per strided or conjugate/negative-bit leaf), so that
   the transfer is a single copy; larger leaves are copied one by one;
2. every copy lands in pinned host memory from PyTorch's caching host allocator
   (``torch.empty(..., pin_memory=True)``: no ``cudaHostAlloc`` once the cache is warm);
3. one event is recorded after the last copy and waited on once;
4. the results are views of the pinned buffers (``split`` + ``view(dtype)`` + ``view(shape)``).

Host → device (``to_device``): the same packing into one pinned staging buffer, one copy to
the device, views on the device. Large pageable leaves are streamed through pinned chunks of
``CHUNK_BYTES`` so that filling chunk *k + 1* overlaps the transfer of chunk *k*. With
``non_blocking=True`` nothing waits: a ``copy_(..., non_blocking=True)`` from a tensor of the
caching host allocator records an event on its block (``record_event`` in
``aten/src/ATen/native/cuda/Copy.cu``), and the allocator hands the block out again only after
that event, so a staging buffer is never recycled early even though this module drops it.
The caller's host tensors are read only before the function returns.

Layout of a packed buffer: leaves in decreasing item size, so each offset is a multiple of the
leaf's item size with no padding (item sizes are powers of two); within one item size, runs of
the same dtype, dense (contiguous, no conjugate/negative bit) leaves first.

Other accelerators (MPS, XPU, ...) take the plain per-leaf path (``.cpu()``, ``.to(device)``).

``plan_to_host`` / ``plan_to_device`` call the same pure ``layout`` function as the transfers,
so what ``explain`` reports is what runs.

The thresholds below are estimates (a copy costs ~10 µs of launch and bookkeeping, PCIe moves
~25-50 GB/s, so copies under ~1 MiB are dominated by their fixed cost); ``benchmarks/
bench_transfer.py`` measures them on a GPU machine (``sweep_threshold``).

>>> import torch
>>> [t.shape for t in to_host([torch.zeros(2, 3), torch.ones(())])]
[torch.Size([2, 3]), torch.Size([])]
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from ._plan import format_bytes

__all__ = [
    "CHUNK_BYTES",
    "PACK_BYTES",
    "SMALL_LEAF_BYTES",
    "BatchPlan",
    "Layout",
    "Leaf",
    "Pack",
    "Run",
    "Slot",
    "layout",
    "leaf_of",
    "pack_into",
    "plan_leaves_to_device",
    "plan_leaves_to_host",
    "plan_to_device",
    "plan_to_host",
    "to_device",
    "to_host",
    "unpack",
]

SMALL_LEAF_BYTES = 1 << 20  # leaves up to this size are packed with others into one buffer
PACK_BYTES = 64 << 20  # one packed buffer holds at most this much (bounds the extra memory)
CHUNK_BYTES = 16 << 20  # large pageable leaves are staged through pinned chunks of this size

# Dtypes whose ``torch.cat`` every supported PyTorch version implements on every device; other
# dtypes (float8, complex32, uint16/32/64, ...) are packed through an integer of the same size.
_CAT_SAFE = frozenset(
    {
        torch.bool,
        torch.uint8,
        torch.int8,
        torch.int16,
        torch.int32,
        torch.int64,
        torch.float16,
        torch.bfloat16,
        torch.float32,
        torch.float64,
        torch.complex64,
        torch.complex128,
    }
)
_CARRIER = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64, 16: torch.complex128}


def _unflatten_native(flat: torch.Tensor, shapes: list[torch.Tensor]) -> list[torch.Tensor]:
    try:  # the shape templates may live on another device than ``flat``; only sizes are read
        return list(torch._C._nn.unflatten_dense_tensors(flat, shapes))
    except RuntimeError:
        return _unflatten_public(flat, shapes)


def _unflatten_public(flat: torch.Tensor, shapes: list[torch.Tensor]) -> list[torch.Tensor]:
    parts = torch.split(flat, [t.numel() for t in shapes])
    return [p.view(t.shape) for p, t in zip(parts, shapes, strict=True)]


# The C++ loop (the one DDP uses) is ~2x faster than split + view for a thousand leaves. It
# turns zero-element tensors into shape (0,), so empty leaves never reach it (see ``layout``).
_unflatten = (
    _unflatten_native
    if hasattr(getattr(torch._C, "_nn", None), "unflatten_dense_tensors")
    else _unflatten_public
)


# ----------------------------------------------------------------------------- pure planning


class Leaf(NamedTuple):
    """What the planner needs to know about one tensor.

    >>> leaf_of(0, torch.zeros(2, 3)).nbytes
    24
    """

    pos: int  # place in the batch
    device: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    itemsize: int
    nbytes: int
    dense: bool  # contiguous, no conjugate or negative bit: its bytes can be read flat
    pinned: bool = False  # host memory from a pinned allocation (only looked up for large leaves)


def leaf_of(index: int, t: torch.Tensor, *, pinned_lookup: bool = False) -> Leaf:
    """Describe tensor ``t`` (the ``index``-th of a batch) for ``layout``.

    ``pinned_lookup`` asks whether a large host leaf is pinned (only host → CUDA uses it).

    >>> leaf_of(3, torch.zeros(4, 4).t()).dense
    False
    """
    itemsize = t.element_size()
    nbytes = t.numel() * itemsize
    dense = t.is_contiguous() and not t.is_conj() and not t.is_neg()
    # Only large leaves may go direct; asking small ones would cost ~1 µs each for nothing.
    big = nbytes > SMALL_LEAF_BYTES
    pinned = pinned_lookup and big and t.device.type == "cpu" and t.is_pinned()
    device = str(t.device)  # a tensor's device always has its index (cuda:0, not cuda)
    return Leaf(index, device, t.dtype, tuple(t.shape), itemsize, nbytes, dense, pinned)


class Slot(NamedTuple):
    """Where one leaf lives inside a packed buffer, in bytes."""

    pos: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class Run:
    """Consecutive dense slots of one ``cat`` dtype, filled (and split) by one call."""

    dtype: torch.dtype  # the leaves' dtype, or the same-size integer they are packed as
    offset: int
    nbytes: int
    indices: tuple[int, ...]


@dataclass(frozen=True)
class Pack:
    """One packed buffer: its leaves (in buffer order), its dense runs, its size."""

    slots: tuple[Slot, ...]
    runs: tuple[Run, ...]
    strided: tuple[Slot, ...]  # slots filled by one ``copy_`` each (strided or bit-carrying)
    nbytes: int


@dataclass(frozen=True)
class Layout:
    """How the leaves bound for (or coming from) one device travel."""

    device: str
    packs: tuple[Pack, ...]
    direct: tuple[int, ...]  # leaf indices copied one by one
    empty: tuple[int, ...]  # zero-byte leaves: allocated, never copied


def _cat_dtype(leaf: Leaf) -> torch.dtype:
    if leaf.dtype in _CAT_SAFE:
        return leaf.dtype
    return _CARRIER.get(leaf.itemsize, torch.uint8)


_RANK = {dtype: rank for rank, dtype in enumerate([*_CARRIER.values(), *_CAT_SAFE])}


def _order(leaf: Leaf) -> tuple[int, int, bool, int]:
    """Buffer order: larger items first, then by cat dtype, dense before strided, input order."""
    return (-leaf.itemsize, _RANK[_cat_dtype(leaf)], not leaf.dense, leaf.pos)


def _pack(order: Sequence[Leaf]) -> Pack:
    """The pack of ``order``, leaves already in buffer order (see ``_order``)."""
    offsets = list(itertools.accumulate((lf.nbytes for lf in order), initial=0))
    slots = tuple(Slot(lf.pos, at, lf.nbytes) for lf, at in zip(order, offsets))  # noqa: B905
    runs: list[Run] = []
    strided: list[Slot] = []
    k = 0
    for (dense, dtype), group in itertools.groupby(order, lambda lf: (lf.dense, _cat_dtype(lf))):
        n = len(list(group))
        if dense:
            ids = tuple(lf.pos for lf in order[k : k + n])
            runs.append(Run(dtype, offsets[k], offsets[k + n] - offsets[k], ids))
        else:
            strided.extend(slots[k : k + n])
        k += n
    return Pack(slots, tuple(runs), tuple(strided), offsets[-1])


def layout(
    leaves: Sequence[Leaf],
    device: str,
    *,
    small: int | None = None,
    pack_limit: int | None = None,
) -> Layout:
    """Decide how ``leaves`` (all bound for or coming from ``device``) travel.

    Zero-byte leaves are only allocated. Leaves of at most ``small`` bytes go into packed
    buffers of at most ``pack_limit`` bytes (a pack of one leaf is no gain: that leaf goes
    direct); all others are copied one by one.

    >>> f32 = [Leaf(i, "cuda:0", torch.float32, (10,), 4, 40, True) for i in range(3)]
    >>> lay = layout(f32, "cuda:0")
    >>> [s.offset for s in lay.packs[0].slots], lay.direct
    ([0, 40, 80], ())
    """
    small = SMALL_LEAF_BYTES if small is None else small  # read at call time: benchmarks tune it
    pack_limit = PACK_BYTES if pack_limit is None else pack_limit
    empty = tuple(lf.pos for lf in leaves if lf.nbytes == 0)
    direct = [lf for lf in leaves if lf.nbytes > small]
    smalls = sorted((lf for lf in leaves if 0 < lf.nbytes <= small), key=_order)
    packs: list[Pack] = []
    start = total = 0
    for k, leaf in enumerate(smalls):
        if k > start and total + leaf.nbytes > pack_limit:
            packs.append(_pack(smalls[start:k]))
            start, total = k, 0
        total += leaf.nbytes
    if smalls:
        packs.append(_pack(smalls[start:]))
    singles = [p for p in packs if len(p.slots) == 1]
    direct_ids = sorted([lf.pos for lf in direct] + [p.slots[0].pos for p in singles])
    kept = tuple(p for p in packs if len(p.slots) > 1)
    return Layout(device, kept, tuple(direct_ids), empty)


def _label(device: torch.device | str | int) -> str:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()}"
    return str(device)


def _groups(leaves: Sequence[Leaf]) -> dict[str, list[Leaf]]:
    groups: dict[str, list[Leaf]] = {}
    for leaf in leaves:
        groups.setdefault(leaf.device, []).append(leaf)
    return groups


def _size(n: int) -> str:
    return format_bytes(n)


_PLURAL = {"leaf": "leaves", "copy": "copies"}


def _n(count: int, word: str) -> str:
    """``_n(1, "copy") == "1 copy"``, ``_n(1000, "leaf") == "1,000 leaves"``."""
    if word == "sync":
        word = "synchronisation"
        return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"
    return f"{count:,} {word}" if count == 1 else f"{count:,} {_PLURAL[word]}"


def _leaves_word(n: int) -> str:
    return _n(n, "leaf")


# ----------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class BatchPlan:
    """What one batched transfer does: its steps and what they cost.

    ``copies`` counts copy operations (a packed buffer fill, a transfer, a staging fill, each
    1); ``leaf_copies[i]`` the passes over leaf ``i``'s bytes (the per-leaf ``copies`` of the
    conversion's plan); ``syncs`` the host waits the batch performs.

    >>> plan_to_host([]).copies
    0
    """

    copies: int
    bytes_copied: int
    syncs: int
    steps: tuple[str, ...]
    leaf_copies: tuple[int, ...] = ()

    def __str__(self) -> str:
        head = f"{_n(self.copies, 'copy')}, {_size(self.bytes_copied)}, {_n(self.syncs, 'sync')}"
        return "\n".join([head, *(f"  {s}" for s in self.steps)])


class _Tally:
    def __init__(self, n: int) -> None:
        self.copies = 0
        self.bytes = 0
        self.syncs = 0
        self.steps: list[str] = []
        self.leaf = [0] * n

    def copy(self, text: str, nbytes: int, indices: Sequence[int], ops: int = 1) -> None:
        self.steps.append(text)
        self.copies += ops
        self.bytes += nbytes
        for i in indices:
            self.leaf[i] += 1

    def plan(self) -> BatchPlan:
        return BatchPlan(self.copies, self.bytes, self.syncs, tuple(self.steps), tuple(self.leaf))


def plan_leaves_to_host(leaves: Sequence[Leaf]) -> tuple[BatchPlan, list[Layout]]:
    """The plan of moving ``leaves`` to the host, and the layout of each CUDA device's copies.

    >>> leaves = [Leaf(i, "cuda:0", torch.float32, (8,), 4, 32, True) for i in range(1000)]
    >>> plan, _ = plan_leaves_to_host(leaves)
    >>> plan.copies, plan.syncs, plan.steps[0]
    (2, 1, 'pack 1,000 leaves (31.2 KiB) into one cuda:0 buffer')
    """
    tally = _Tally(len(leaves))
    layouts = []
    for device, group in _groups(leaves).items():
        if device == "cpu":
            strided = [lf for lf in group if not lf.dense]
            if strided:
                n = sum(lf.nbytes for lf in strided)
                tally.copy(
                    f"make {_leaves_word(len(strided))} contiguous on the host ({_size(n)})",
                    n,
                    [lf.pos for lf in strided],
                    len(strided),
                )
            continue
        if not device.startswith("cuda"):
            n = sum(lf.nbytes for lf in group)
            tally.copy(
                f"copy {device} → cpu one leaf at a time ({_leaves_word(len(group))}, {_size(n)}, "
                f"{_n(len(group), 'sync')})",
                n,
                [lf.pos for lf in group],
                len(group),
            )
            tally.syncs += len(group)
            continue
        lay = layout(group, device)
        layouts.append(lay)
        by_index = {lf.pos: lf for lf in group}
        for pack in lay.packs:
            ids = [s.pos for s in pack.slots]
            size = _size(pack.nbytes)
            tally.copy(
                f"pack {_leaves_word(len(ids))} ({size}) into one {device} buffer", pack.nbytes, ids
            )
            tally.copy(f"copy {device} → pinned host ({size}, 1 copy)", pack.nbytes, ids)
        strided = [by_index[i] for i in lay.direct if not by_index[i].dense]
        if strided:
            n = sum(lf.nbytes for lf in strided)
            tally.copy(
                f"make {_leaves_word(len(strided))} contiguous on {device} ({_size(n)})",
                n,
                [lf.pos for lf in strided],
                len(strided),
            )
        if lay.direct:
            n = sum(by_index[i].nbytes for i in lay.direct)
            k = len(lay.direct)
            tally.copy(
                f"copy {device} → pinned host directly ({_leaves_word(k)}, {_size(n)}, "
                f"{_n(k, 'copy')})",
                n,
                lay.direct,
                k,
            )
        if lay.empty:
            tally.steps.append(f"allocate {_leaves_word(len(lay.empty))} with no elements")
        if lay.packs or lay.direct:
            tally.steps.append(f"synchronise {device} once (one event for the whole batch)")
            tally.syncs += 1
    return tally.plan(), layouts


def plan_leaves_to_device(
    leaves: Sequence[Leaf], device: str, non_blocking: bool
) -> tuple[BatchPlan, Layout | None]:
    """The plan of moving ``leaves`` to ``device``, and the layout of the host → CUDA copies.

    >>> leaves = [Leaf(i, "cpu", torch.int64, (4,), 8, 32, True) for i in range(10)]
    >>> plan, _ = plan_leaves_to_device(leaves, "cuda:0", non_blocking=True)
    >>> plan.copies, plan.syncs
    (2, 0)
    """
    tally = _Tally(len(leaves))
    here = [lf for lf in leaves if lf.device == device]
    if here:
        tally.steps.append(f"{_leaves_word(len(here))} already on {device} (no copy)")
    others = [lf for lf in leaves if lf.device not in ("cpu", device)]
    for source, group in _groups(others).items():
        n = sum(lf.nbytes for lf in group)
        tally.copy(
            f"copy {source} → {device} one leaf at a time ({_leaves_word(len(group))}, {_size(n)})",
            n,
            [lf.pos for lf in group],
            len(group),
        )
    host = [lf for lf in leaves if lf.device == "cpu" != device]
    if not host:
        return tally.plan(), None
    if not device.startswith("cuda"):
        n = sum(lf.nbytes for lf in host)
        tally.copy(
            f"copy cpu → {device} one leaf at a time ({_leaves_word(len(host))}, {_size(n)}, "
            f"{_n(len(host), 'sync')})",
            n,
            [lf.pos for lf in host],
            len(host),
        )
        tally.syncs += len(host)
        return tally.plan(), None
    lay = layout(host, device)
    by_index = {lf.pos: lf for lf in host}
    for pack in lay.packs:
        ids = [s.pos for s in pack.slots]
        size = _size(pack.nbytes)
        tally.copy(
            f"pack {_leaves_word(len(ids))} ({size}) into one pinned host buffer", pack.nbytes, ids
        )
        tally.copy(f"copy pinned host → {device} ({size}, 1 copy)", pack.nbytes, ids)
    for kind, ids in _direct_kinds(lay, by_index, non_blocking).items():
        if not ids:
            continue
        n = sum(by_index[i].nbytes for i in ids)
        k = len(ids)
        if kind == "pinned":
            tally.copy(
                f"copy {_leaves_word(k)} already in pinned memory → {device} directly "
                f"({_size(n)}, {_n(k, 'copy')})",
                n,
                ids,
                k,
            )
            continue
        chunks = sum(-(-by_index[i].nbytes // CHUNK_BYTES) for i in ids) if kind == "chunked" else k
        how = f"in {chunks} chunks of ≤ {_size(CHUNK_BYTES)}" if kind == "chunked" else "whole"
        tally.copy(
            f"stage {_leaves_word(k)} through pinned host memory {how} ({_size(n)})",
            n,
            ids,
            chunks,
        )
        tally.copy(
            f"copy pinned host → {device} ({_size(n)}, {_n(chunks, 'copy')})", n, ids, chunks
        )
    if lay.empty:
        tally.steps.append(f"allocate {_leaves_word(len(lay.empty))} with no elements")
    if non_blocking:
        tally.steps.append(
            "return before the copy completes (staging buffers stay reserved by the caching "
            "host allocator until it does; no synchronisation)"
        )
    elif lay.packs or lay.direct:
        tally.steps.append(f"synchronise {device} once (one event for the whole batch)")
        tally.syncs += 1
    return tally.plan(), lay


def _direct_kinds(
    lay: Layout, by_index: dict[int, Leaf], non_blocking: bool
) -> dict[str, list[int]]:
    kinds: dict[str, list[int]] = {"pinned": [], "chunked": [], "whole": []}
    for i in lay.direct:
        leaf = by_index[i]
        if leaf.dense and leaf.pinned and not non_blocking:
            kinds["pinned"].append(i)  # the caller's pinned memory, read before we return
        elif leaf.dense:
            kinds["chunked"].append(i)
        else:
            kinds["whole"].append(i)
    return kinds


def plan_to_host(tensors: Sequence[torch.Tensor]) -> BatchPlan:
    """What ``to_host(tensors)`` will do, without moving data.

    >>> plan_to_host([torch.zeros(3)]).syncs
    0
    """
    return plan_leaves_to_host([leaf_of(i, t) for i, t in enumerate(tensors)])[0]


def plan_to_device(
    tensors: Sequence[torch.Tensor],
    device: torch.device | str | int,
    *,
    non_blocking: bool = False,
    pin_memory: bool = False,
) -> BatchPlan:
    """What ``to_device(tensors, device, ...)`` will do, without moving data.

    >>> plan_to_device([torch.zeros(3)], "cpu").copies
    0
    """
    label = _label(device)
    lookup = label.startswith("cuda")
    leaves = [leaf_of(i, t, pinned_lookup=lookup) for i, t in enumerate(tensors)]
    return plan_leaves_to_device(leaves, label, non_blocking)[0]


# ----------------------------------------------------------------------------- pack / unpack


def _flat(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    flat = t.reshape(-1)  # a view: the leaf is dense
    return flat if flat.dtype == dtype else flat.view(dtype)


def _slot(buf: torch.Tensor, slot: Slot, t: torch.Tensor) -> torch.Tensor:
    return buf[slot.offset : slot.offset + slot.nbytes].view(t.dtype).view(t.shape)


def pack_into(buf: torch.Tensor, pack: Pack, tensors: Sequence[torch.Tensor]) -> None:
    """Write the leaves of ``pack`` into the uint8 buffer ``buf`` (same device as the leaves).

    One ``torch.cat`` per dense run, one ``copy_`` per strided or bit-carrying leaf: each byte
    is written once, and logical values are written (conjugate and negative bits resolved).

    >>> ts = [torch.arange(3.0), torch.tensor([True, False])]
    >>> p = layout([leaf_of(i, t) for i, t in enumerate(ts)], "cpu").packs[0]
    >>> buf = torch.empty(p.nbytes, dtype=torch.uint8)
    >>> pack_into(buf, p, ts)
    >>> [t.tolist() for t in unpack(buf, p, ts)]
    [[0.0, 1.0, 2.0], [True, False]]
    """
    with torch.no_grad():
        for run in pack.runs:
            out = buf[run.offset : run.offset + run.nbytes].view(run.dtype)
            torch.cat([_flat(tensors[i], run.dtype) for i in run.indices], out=out)
        for slot in pack.strided:
            _slot(buf, slot, tensors[slot.pos]).copy_(tensors[slot.pos])


def unpack(buf: torch.Tensor, pack: Pack, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Views into ``buf`` of the leaves of ``pack``, shaped and typed like ``like[index]``.

    Returned in the pack's slot order (``[s.pos for s in pack.slots]``); see ``pack_into``.
    """
    out: dict[int, torch.Tensor] = {}
    for run in pack.runs:
        flat = buf[run.offset : run.offset + run.nbytes].view(run.dtype)
        shapes = [like[i] for i in run.indices]
        for i, part in zip(run.indices, _unflatten(flat, shapes), strict=True):
            out[i] = part if part.dtype == like[i].dtype else part.view(like[i].dtype)
    for slot in pack.strided:
        out[slot.pos] = _slot(buf, slot, like[slot.pos])
    return [out[s.pos] for s in pack.slots]


# ----------------------------------------------------------------------------- execution


def _logical(t: torch.Tensor) -> torch.Tensor:
    """``t`` detached, contiguous, with its conjugate and negative bits resolved."""
    t = t.detach()
    if t.is_conj() or t.is_neg() or not t.is_contiguous():
        out = _like(t, t.device)
        out.copy_(t)
        return out
    return t


def _bytes(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1).view(torch.uint8)


def _pinned(nbytes: int) -> torch.Tensor:
    """Host bytes from the caching host allocator (every pinned allocation goes through here)."""
    return torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)


def _like(t: torch.Tensor, device: torch.device | str, *, pin_memory: bool = False) -> torch.Tensor:
    """An uninitialised contiguous tensor of ``t``'s dtype and shape on ``device``.

    Allocated as bytes and viewed, so that no dtype warns on allocation (complex32 does).
    """
    nbytes = t.numel() * t.element_size()
    raw = _pinned(nbytes) if pin_memory else torch.empty(nbytes, dtype=torch.uint8, device=device)
    return raw.view(t.dtype).view(t.shape)


def _cuda_to_host(
    tensors: Sequence[torch.Tensor], lay: Layout, out: list[torch.Tensor | None]
) -> torch.cuda.Event:
    """Issue every copy of one device's leaves on its current stream; return the final event."""
    device = torch.device(lay.device)
    stream = torch.cuda.current_stream(device)
    for pack in lay.packs:
        staged = torch.empty(pack.nbytes, dtype=torch.uint8, device=device)
        pack_into(staged, pack, tensors)
        host = _pinned(pack.nbytes)
        host.copy_(staged, non_blocking=True)
        for slot, view in zip(pack.slots, unpack(host, pack, tensors), strict=True):
            out[slot.pos] = view
    for i in lay.direct:
        src = _logical(tensors[i])
        host = _pinned(src.numel() * src.element_size())
        host.copy_(_bytes(src), non_blocking=True)
        out[i] = host.view(src.dtype).view(src.shape)
    for i in lay.empty:
        out[i] = _like(tensors[i], "cpu")
    event = torch.cuda.Event()
    event.record(stream)
    return event


def to_host(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Copy ``tensors`` (any mix of devices) to the CPU as one batched operation.

    Results come in the same order, with the same dtypes and shapes, logical values (conjugate
    and negative bits resolved), contiguous and detached, and complete on return: one event
    wait per CUDA device for the whole batch. Results of packed leaves are views of one pinned
    buffer, which stays alive while any of them does. Leaves already on the CPU are returned
    as they are when contiguous and without bits (not copied).

    >>> to_host([torch.arange(3).flip(0)])[0].tolist()
    [2, 1, 0]
    """
    leaves = [leaf_of(i, t) for i, t in enumerate(tensors)]
    _, layouts = plan_leaves_to_host(leaves)
    out: list[torch.Tensor | None] = [None] * len(tensors)
    events = []
    with torch.no_grad():
        for lay in layouts:
            events.append(_cuda_to_host(tensors, lay, out))
        for i, t in enumerate(tensors):
            if out[i] is None:
                out[i] = _logical(t.cpu() if t.device.type != "cpu" else t)
        for event in events:  # every device's copies are in flight before the first wait
            event.synchronize()
    return out  # type: ignore[return-value]


def _stage_direct(src: torch.Tensor, kind: str, dst: torch.Tensor) -> None:
    """Issue the host → device copies of one large leaf into the contiguous ``dst``."""
    if kind == "pinned":
        dst.copy_(src, non_blocking=True)
        return
    if kind == "whole":
        stage = _like(src, "cpu", pin_memory=True)
        stage.copy_(src)
        dst.copy_(stage, non_blocking=True)
        return
    source, target = _bytes(src.detach()), _bytes(dst)
    for start in range(0, source.numel(), CHUNK_BYTES):
        stop = min(start + CHUNK_BYTES, source.numel())
        stage = _pinned(stop - start)
        stage.copy_(source[start:stop])
        # Dropping ``stage`` is safe: the caching host allocator reuses its block only after
        # the event this non-blocking copy records on it.
        target[start:stop].copy_(stage, non_blocking=True)


def to_device(
    tensors: Sequence[torch.Tensor],
    device: torch.device | str | int,
    *,
    non_blocking: bool = False,
    pin_memory: bool = False,
) -> list[torch.Tensor]:
    """Copy ``tensors`` to ``device`` as one batched operation, in the same order.

    For CUDA the host leaves are staged through pinned memory of the caching host allocator
    (so ``pin_memory`` needs no further work there), small ones packed into one buffer and
    copied at once, then viewed on the device. ``non_blocking=False`` waits once at the end;
    ``non_blocking=True`` returns while the copies run on the current stream, having read
    every caller's tensor already. Results of packed leaves are views of one device buffer.
    Leaves already on ``device`` are returned as they are; other devices copy leaf by leaf.

    >>> to_device([torch.ones(2)], "cpu")[0].tolist()
    [1.0, 1.0]
    """
    del pin_memory  # CUDA targets always stage through pinned memory; others cannot use it
    label = _label(device)
    target = torch.device(label)
    lookup = label.startswith("cuda")
    leaves = [leaf_of(i, t, pinned_lookup=lookup) for i, t in enumerate(tensors)]
    _, lay = plan_leaves_to_device(leaves, label, non_blocking)
    out: list[torch.Tensor | None] = [None] * len(tensors)
    with torch.no_grad():
        if lay is not None:
            _cuda_from_host(tensors, leaves, lay, target, non_blocking, out)
        for i, t in enumerate(tensors):
            if out[i] is None:
                out[i] = t.detach() if leaves[i].device == label else t.detach().to(target)
    return out  # type: ignore[return-value]


def _cuda_from_host(
    tensors: Sequence[torch.Tensor],
    leaves: Sequence[Leaf],
    lay: Layout,
    device: torch.device,
    non_blocking: bool,
    out: list[torch.Tensor | None],
) -> None:
    for pack in lay.packs:
        stage = _pinned(pack.nbytes)
        pack_into(stage, pack, tensors)
        buf = torch.empty(pack.nbytes, dtype=torch.uint8, device=device)
        buf.copy_(stage, non_blocking=True)  # records the staging buffer's use (see top)
        for slot, view in zip(pack.slots, unpack(buf, pack, tensors), strict=True):
            out[slot.pos] = view
    by_index = {lf.pos: lf for lf in leaves}
    for kind, ids in _direct_kinds(lay, by_index, non_blocking).items():
        for i in ids:
            dst = _like(tensors[i], device)
            _stage_direct(tensors[i], kind, dst)
            out[i] = dst
    for i in lay.empty:
        out[i] = _like(tensors[i], device)
    if not non_blocking and (lay.packs or lay.direct):
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(device))
        event.synchronize()
