"""Batched transfers between the host and accelerators, planned: pure decisions, no data moves.

Given a description of each tensor of a batch (``Item``: device, dtype, shape, size, whether its
bytes can be read flat), ``route`` decides how the batch travels: small items packed into one
buffer per run of item sizes (leaves in decreasing item size, so each offset is a multiple of
its item size with no padding; within one item size, runs of the same dtype, dense items
first), large ones copied one by one (host → device: through pinned chunks of
``STAGING_CHUNK_BYTES``), empty ones only allocated. ``plan_items_to_host`` /
``plan_items_to_device`` turn that into the steps and costs ``explain`` reports;
``_transfer`` executes the same routes.

The thresholds are estimates (a copy costs ~10 µs of launch and bookkeeping, PCIe moves
~25-50 GB/s, so copies under ~1 MiB are dominated by their fixed cost); ``benchmarks/
bench_transfer.py`` measures them on a GPU machine (``sweep_threshold``).

>>> items = [Item(i, "cuda:0", torch.float32, (8,), 4, 32, True) for i in range(1000)]
>>> plan_items_to_host(items)[0].copies
2
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from ._plan import format_bytes

__all__ = [
    "PACK_BYTES",
    "SMALL_ITEM_BYTES",
    "STAGING_CHUNK_BYTES",
    "BatchPlan",
    "Item",
    "Pack",
    "Route",
    "Run",
    "Slot",
    "direct_kinds",
    "item_of",
    "label",
    "plan_items_to_device",
    "plan_items_to_host",
    "plan_to_device",
    "plan_to_host",
    "route",
]

SMALL_ITEM_BYTES = 1 << 20  # leaves up to this size are packed with others into one buffer
PACK_BYTES = 64 << 20  # one packed buffer holds at most this much (bounds the extra memory)
STAGING_CHUNK_BYTES = (
    16 << 20
)  # large pageable leaves are staged through pinned chunks of this size

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

# ----------------------------------------------------------------------------- pure planning


class Item(NamedTuple):
    """What the planner needs to know about one tensor.

    >>> item_of(0, torch.zeros(2, 3)).nbytes
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


def item_of(index: int, t: torch.Tensor, *, pinned_lookup: bool = False) -> Item:
    """Describe tensor ``t`` (the ``index``-th of a batch) for ``layout``.

    ``pinned_lookup`` asks whether a large host leaf is pinned (only host → CUDA uses it).

    >>> item_of(3, torch.zeros(4, 4).t()).dense
    False
    """
    itemsize = t.element_size()
    nbytes = t.numel() * itemsize
    dense = t.is_contiguous() and not t.is_conj() and not t.is_neg()
    # Only large leaves may go direct; asking small ones would cost ~1 µs each for nothing.
    big = nbytes > SMALL_ITEM_BYTES
    pinned = pinned_lookup and big and t.device.type == "cpu" and t.is_pinned()
    device = str(t.device)  # a tensor's device always has its index (cuda:0, not cuda)
    return Item(index, device, t.dtype, tuple(t.shape), itemsize, nbytes, dense, pinned)


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
class Route:
    """How the leaves bound for (or coming from) one device travel."""

    device: str
    packs: tuple[Pack, ...]
    direct: tuple[int, ...]  # leaf indices copied one by one
    empty: tuple[int, ...]  # zero-byte leaves: allocated, never copied


def _cat_dtype(leaf: Item) -> torch.dtype:
    if leaf.dtype in _CAT_SAFE:
        return leaf.dtype
    return _CARRIER.get(leaf.itemsize, torch.uint8)


_RANK = {dtype: rank for rank, dtype in enumerate([*_CARRIER.values(), *_CAT_SAFE])}


def _order(leaf: Item) -> tuple[int, int, bool, int]:
    """Buffer order: larger items first, then by cat dtype, dense before strided, input order."""
    return (-leaf.itemsize, _RANK[_cat_dtype(leaf)], not leaf.dense, leaf.pos)


def _pack(order: Sequence[Item]) -> Pack:
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


def route(
    leaves: Sequence[Item],
    device: str,
    *,
    small: int | None = None,
    pack_limit: int | None = None,
) -> Route:
    """Decide how ``leaves`` (all bound for or coming from ``device``) travel.

    Zero-byte leaves are only allocated. Leaves of at most ``small`` bytes go into packed
    buffers of at most ``pack_limit`` bytes (a pack of one leaf is no gain: that leaf goes
    direct); all others are copied one by one.

    >>> f32 = [Item(i, "cuda:0", torch.float32, (10,), 4, 40, True) for i in range(3)]
    >>> lay = route(f32, "cuda:0")
    >>> [s.offset for s in lay.packs[0].slots], lay.direct
    ([0, 40, 80], ())
    """
    small = SMALL_ITEM_BYTES if small is None else small  # read at call time: benchmarks tune it
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
    return Route(device, kept, tuple(direct_ids), empty)


def label(device: torch.device | str | int) -> str:
    """The device's full name (``cuda`` → ``cuda:0``, the current device)."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()}"
    return str(device)


def _groups(leaves: Sequence[Item]) -> dict[str, list[Item]]:
    groups: dict[str, list[Item]] = {}
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


def plan_items_to_host(leaves: Sequence[Item]) -> tuple[BatchPlan, list[Route]]:
    """The plan of moving ``leaves`` to the host, and the layout of each CUDA device's copies.

    >>> leaves = [Item(i, "cuda:0", torch.float32, (8,), 4, 32, True) for i in range(1000)]
    >>> plan, _ = plan_items_to_host(leaves)
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
        lay = route(group, device)
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


def plan_items_to_device(
    leaves: Sequence[Item], device: str, non_blocking: bool
) -> tuple[BatchPlan, Route | None]:
    """The plan of moving ``leaves`` to ``device``, and the layout of the host → CUDA copies.

    >>> leaves = [Item(i, "cpu", torch.int64, (4,), 8, 32, True) for i in range(10)]
    >>> plan, _ = plan_items_to_device(leaves, "cuda:0", non_blocking=True)
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
    lay = route(host, device)
    by_index = {lf.pos: lf for lf in host}
    for pack in lay.packs:
        ids = [s.pos for s in pack.slots]
        size = _size(pack.nbytes)
        tally.copy(
            f"pack {_leaves_word(len(ids))} ({size}) into one pinned host buffer", pack.nbytes, ids
        )
        tally.copy(f"copy pinned host → {device} ({size}, 1 copy)", pack.nbytes, ids)
    for kind, ids in direct_kinds(lay, by_index, non_blocking).items():
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
        chunk = STAGING_CHUNK_BYTES
        chunks = sum(-(-by_index[i].nbytes // chunk) for i in ids) if kind == "chunked" else k
        how = f"in {chunks} chunks of ≤ {_size(chunk)}" if kind == "chunked" else "whole"
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


def direct_kinds(lay: Route, by_index: dict[int, Item], non_blocking: bool) -> dict[str, list[int]]:
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
    return plan_items_to_host([item_of(i, t) for i, t in enumerate(tensors)])[0]


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
    target = label(device)
    lookup = target.startswith("cuda")
    items = [item_of(i, t, pinned_lookup=lookup) for i, t in enumerate(tensors)]
    return plan_items_to_device(items, target, non_blocking)[0]
