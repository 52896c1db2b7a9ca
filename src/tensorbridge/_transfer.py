"""Batched transfers between the host and accelerators, executed: a container in one operation.

The conversion core hands every accelerator ↔ host copy of one call to this module at once.

Device → host (``to_host``), per CUDA device, on that device's current stream:

1. small leaves (≤ ``SMALL_ITEM_BYTES``) are packed into one device buffer (one ``torch.cat`` per
   run of same-dtype leaves, one ``copy_`` per strided or conjugate/negative-bit leaf), so that
   the transfer is a single copy; larger leaves are copied one by one;
2. every copy lands in pinned host memory from PyTorch's caching host allocator
   (``torch.empty(..., pin_memory=True)``: no ``cudaHostAlloc`` once the cache is warm);
3. one event is recorded after the last copy and waited on once;
4. the results are views of the pinned buffers (``split`` + ``view(dtype)`` + ``view(shape)``).

Host → device (``to_device``): the same packing into one pinned staging buffer, one copy to
the device, views on the device. Large pageable leaves are streamed through pinned chunks of
``STAGING_CHUNK_BYTES`` so that filling chunk *k + 1* overlaps the transfer of chunk *k*. With
``non_blocking=True`` nothing waits: a ``copy_(..., non_blocking=True)`` from a tensor of the
caching host allocator records an event on its block (``record_event`` in
``aten/src/ATen/native/cuda/Copy.cu``), and the allocator hands the block out again only after
that event, so a staging buffer is never recycled early even though this module drops it.
The caller's host tensors are read only before the function returns.

Route of a packed buffer: leaves in decreasing item size, so each offset is a multiple of the
leaf's item size with no padding (item sizes are powers of two); within one item size, runs of
the same dtype, dense (contiguous, no conjugate/negative bit) leaves first.

Other accelerators (MPS, XPU, ...) take the plain per-leaf path (``.cpu()``, ``.to(device)``).

How a batch travels is decided in ``_transfer_plan`` (``route``, the same function ``explain``
reports from); this module only executes it.


>>> import torch
>>> [t.shape for t in to_host([torch.zeros(2, 3), torch.ones(())])]
[torch.Size([2, 3]), torch.Size([])]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import _transfer_plan as tp
from ._transfer_plan import Item, Pack, Route, Slot

__all__ = ["pack_into", "to_device", "to_host", "unpack"]


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
    >>> p = tp.route([tp.item_of(i, t) for i, t in enumerate(ts)], "cpu").packs[0]
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


def _device_bytes(nbytes: int, device: torch.device | str) -> torch.Tensor:
    """Uninitialised bytes on ``device`` (every device buffer of a batch comes from here)."""
    return torch.empty(nbytes, dtype=torch.uint8, device=device)


def _like(t: torch.Tensor, device: torch.device | str, *, pin_memory: bool = False) -> torch.Tensor:
    """An uninitialised contiguous tensor of ``t``'s dtype and shape on ``device``.

    Allocated as bytes and viewed, so that no dtype warns on allocation (complex32 does).
    """
    nbytes = t.numel() * t.element_size()
    raw = _pinned(nbytes) if pin_memory else _device_bytes(nbytes, device)
    return raw.view(t.dtype).view(t.shape)


def _cuda_to_host(
    tensors: Sequence[torch.Tensor], lay: Route, out: list[torch.Tensor | None]
) -> torch.cuda.Event:
    """Issue every copy of one device's leaves on its current stream; return the final event."""
    device = torch.device(lay.device)
    stream = torch.cuda.current_stream(device)
    for pack in lay.packs:
        staged = _device_bytes(pack.nbytes, device)
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
    leaves = [tp.item_of(i, t) for i, t in enumerate(tensors)]
    _, layouts = tp.plan_items_to_host(leaves)
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
    for start in range(0, source.numel(), tp.STAGING_CHUNK_BYTES):
        stop = min(start + tp.STAGING_CHUNK_BYTES, source.numel())
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
    label = tp.label(device)
    target = torch.device(label)
    lookup = label.startswith("cuda")
    leaves = [tp.item_of(i, t, pinned_lookup=lookup) for i, t in enumerate(tensors)]
    _, lay = tp.plan_items_to_device(leaves, label, non_blocking)
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
    leaves: Sequence[Item],
    lay: Route,
    device: torch.device,
    non_blocking: bool,
    out: list[torch.Tensor | None],
) -> None:
    for pack in lay.packs:
        stage = _pinned(pack.nbytes)
        pack_into(stage, pack, tensors)
        buf = _device_bytes(pack.nbytes, device)
        buf.copy_(stage, non_blocking=True)  # records the staging buffer's use (see top)
        for slot, view in zip(pack.slots, unpack(buf, pack, tensors), strict=True):
            out[slot.pos] = view
    by_index = {lf.pos: lf for lf in leaves}
    for kind, ids in tp.direct_kinds(lay, by_index, non_blocking).items():
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
