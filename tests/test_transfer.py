"""The transfer engine: planning and packing on the CPU, batched transfers where CUDA is present."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tensorbridge import _batches, _to_numpy, _to_torch
from tensorbridge import _transfer as tr
from tensorbridge import _transfer_plan as tp
from tensorbridge._dtypes import TABLE
from tensorbridge._options import NUMPY_DEFAULT, Options
from tensorbridge._planner import decide

DTYPES = [row.torch for row in TABLE]
DTYPE_IDS = [f"torch-{row.tag}" for row in TABLE]
COMPLEX = [torch.complex64, torch.complex128]

_no_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
needs_two_gpus = pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 CUDA devices"
)


def random_tensor(dtype: torch.dtype, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Random bytes viewed as ``dtype`` (valid 0/1 bytes for bool)."""
    gen = torch.Generator().manual_seed(seed)
    itemsize = dtype.itemsize
    n = int(np.prod(shape, dtype=np.int64)) * itemsize
    raw = torch.randint(0, 256, (n,), dtype=torch.uint8, generator=gen)
    if dtype == torch.bool:
        raw = raw % 2
    return raw.view(dtype).view(shape)


def bits(t: torch.Tensor) -> bytes:
    """The logical bytes of ``t`` (expected values from plain torch)."""
    t = t.resolve_conj().resolve_neg()
    same_size = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64, 16: torch.float64}
    t = t.reshape(-1).view(same_size[16]) if t.dtype.itemsize == 16 else t
    t = t.view(same_size[t.dtype.itemsize])  # no complex32 allocation: that one warns
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def leaf(index: int, nbytes: int, *, itemsize: int = 4, device: str = "cuda:0", **kw) -> tp.Item:
    """A float-like leaf description of ``nbytes`` bytes."""
    dtype = {1: torch.uint8, 2: torch.float16, 4: torch.float32, 8: torch.float64}[itemsize]
    dense = kw.pop("dense", True)
    return tp.Item(index, device, dtype, (nbytes // itemsize,), itemsize, nbytes, dense, **kw)


def round_trip_cpu(tensors: list[torch.Tensor]) -> dict[int, torch.Tensor]:
    """Pack ``tensors`` into CPU buffers with their layout and unpack them again, by index."""
    lay = tp.route([tp.item_of(i, t) for i, t in enumerate(tensors)], "cpu")
    out = {}
    for pack in lay.packs:
        buf = torch.empty(pack.nbytes, dtype=torch.uint8)
        tr.pack_into(buf, pack, tensors)
        for slot, view in zip(pack.slots, tr.unpack(buf, pack, tensors), strict=True):
            out[slot.pos] = view
    return out


# ----------------------------------------------------------------------------- layout


leaf_specs = st.lists(
    st.tuples(st.sampled_from([1, 2, 4, 8]), st.integers(0, 300), st.booleans()),
    min_size=0,
    max_size=40,
)


@given(leaf_specs)
@settings(max_examples=200, deadline=None)
def test_packed_slots_tile_the_buffer_and_are_aligned(specs):
    """Slots of a pack are back to back, fill it exactly, and sit at multiples of their itemsize."""
    leaves = [leaf(i, n * size, itemsize=size, dense=d) for i, (size, n, d) in enumerate(specs)]
    lay = tp.route(leaves, "cuda:0")
    sizes = {lf.pos: lf.itemsize for lf in leaves}
    for pack in lay.packs:
        offset = 0
        for slot in pack.slots:
            assert slot.offset == offset
            assert slot.offset % sizes[slot.pos] == 0
            offset += slot.nbytes
        assert offset == pack.nbytes


@given(leaf_specs)
@settings(max_examples=200, deadline=None)
def test_layout_places_every_leaf_exactly_once(specs):
    """Each leaf is in exactly one of: a pack, the direct list, the empty list."""
    leaves = [leaf(i, n * size, itemsize=size, dense=d) for i, (size, n, d) in enumerate(specs)]
    lay = tp.route(leaves, "cuda:0")
    placed = [s.pos for p in lay.packs for s in p.slots] + list(lay.direct) + list(lay.empty)
    assert sorted(placed) == list(range(len(leaves)))


@given(leaf_specs)
@settings(max_examples=200, deadline=None)
def test_runs_and_strided_slots_partition_each_pack(specs):
    """A pack's dense runs and strided slots hold each of its slots once, with matching bytes."""
    leaves = [leaf(i, n * size, itemsize=size, dense=d) for i, (size, n, d) in enumerate(specs)]
    for pack in tp.route(leaves, "cuda:0").packs:
        by_index = {s.pos: s for s in pack.slots}
        in_runs = [i for run in pack.runs for i in run.indices]
        assert sorted(in_runs + [s.pos for s in pack.strided]) == sorted(by_index)
        for run in pack.runs:
            first = by_index[run.indices[0]]
            assert run.offset == first.offset
            assert run.nbytes == sum(by_index[i].nbytes for i in run.indices)
            assert all(leaves[i].dense for i in run.indices)


def test_leaves_over_the_threshold_go_direct():
    """Leaves larger than the small-leaf threshold are copied one by one, smaller ones packed."""
    leaves = [leaf(0, 64), leaf(1, tp.SMALL_ITEM_BYTES), leaf(2, tp.SMALL_ITEM_BYTES + 4)]
    lay = tp.route(leaves, "cuda:0")
    assert lay.direct == (2,)
    assert [s.pos for s in lay.packs[0].slots] == [0, 1]


def test_zero_byte_leaves_are_only_allocated():
    """Leaves without elements are neither packed nor copied."""
    lay = tp.route([leaf(0, 0), leaf(1, 8), leaf(2, 8)], "cuda:0")
    assert lay.empty == (0,)
    assert [s.pos for s in lay.packs[0].slots] == [1, 2]


def test_a_pack_of_one_leaf_goes_direct():
    """A lone small leaf is copied directly, since packing it would add a pass for nothing."""
    lay = tp.route([leaf(0, 8), leaf(1, 2 * tp.SMALL_ITEM_BYTES)], "cuda:0")
    assert lay.packs == ()
    assert lay.direct == (0, 1)


def test_packs_respect_the_size_limit():
    """Small leaves beyond one pack's limit spill into further packs, none over the limit."""
    leaves = [leaf(i, 1000) for i in range(100)]
    lay = tp.route(leaves, "cuda:0", pack_limit=10_000)
    assert len(lay.packs) == 10
    assert all(p.nbytes <= 10_000 for p in lay.packs)


def test_larger_items_come_first_in_a_pack():
    """Slots are ordered by decreasing item size, inputs in order within one size."""
    leaves = [leaf(0, 3, itemsize=1), leaf(1, 8, itemsize=8), leaf(2, 4, itemsize=4), leaf(3, 8)]
    slots = tp.route(leaves, "cuda:0").packs[0].slots
    assert [s.pos for s in slots] == [1, 2, 3, 0]


@pytest.mark.parametrize(
    ("dtype", "carrier"),
    [
        (torch.float8_e4m3fn, torch.uint8),
        (torch.complex32, torch.int32),
        (torch.uint16, torch.int16),
        (torch.bfloat16, torch.bfloat16),
        (torch.bool, torch.bool),
    ],
    ids=str,
)
def test_runs_pack_exotic_dtypes_through_a_same_size_integer(dtype, carrier):
    """Dtypes without a universally supported cat are packed as an integer of their size."""
    t = torch.zeros(8, dtype=torch.uint8).view(dtype)
    leaves = [tp.item_of(i, t) for i in range(2)]
    (run,) = tp.route(leaves, "cpu").packs[0].runs
    assert run.dtype == carrier


# ----------------------------------------------------------------------------- pack / unpack


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_pack_round_trip_is_bit_exact_for_every_dtype(dtype):
    """Leaves of any dtype (0-d, strided, offset views) come back bit for bit."""
    base = random_tensor(dtype, (6, 10), seed=1)
    tensors = [
        random_tensor(dtype, (), seed=2),
        random_tensor(dtype, (3, 5), seed=3),
        base.t(),
        base[1:4, ::3],
        base[2],
    ]
    out = round_trip_cpu(tensors)
    for i, t in enumerate(tensors):
        assert out[i].dtype == t.dtype and out[i].shape == t.shape
        assert bits(out[i]) == bits(t)


@pytest.mark.parametrize("dtype", COMPLEX, ids=str)
def test_pack_resolves_conjugate_and_negative_bits(dtype):
    """Conjugate-bit and negative-bit views are packed with their logical values."""
    z = random_tensor(torch.float64, (4, 6), seed=4).to(dtype)
    conj = z.conj()
    neg_imag = z.conj().imag
    tensors = [conj, neg_imag, conj.t(), torch._neg_view(z[0])]
    assert conj.is_conj() and neg_imag.is_neg()
    out = round_trip_cpu(tensors)
    for i, t in enumerate(tensors):
        assert not out[i].is_conj() and not out[i].is_neg()
        assert bits(out[i]) == bits(t)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(range(len(DTYPES))),
            st.lists(st.integers(1, 5), min_size=0, max_size=3),
            st.booleans(),
        ),
        min_size=2,
        max_size=25,
    )
)
@settings(max_examples=60, deadline=None)
def test_mixed_batches_round_trip(specs):
    """A batch mixing dtypes, shapes and strides packs into one buffer and unpacks bit-exactly."""
    tensors = []
    for k, (d, shape, transpose) in enumerate(specs):
        t = random_tensor(DTYPES[d], tuple(shape), seed=k)
        tensors.append(t.mT if transpose and t.dim() >= 2 else t)
    out = round_trip_cpu(tensors)
    assert sorted(out) == list(range(len(tensors)))
    for i, t in enumerate(tensors):
        assert out[i].dtype == t.dtype and out[i].shape == t.shape
        assert bits(out[i]) == bits(t)


def test_unflatten_paths_agree():
    """PyTorch's C++ unflatten and the public split + view give identical views."""
    shapes = [torch.empty(2, 3), torch.empty(()), torch.empty(5)]
    flat = torch.arange(12.0)
    native = tr._unflatten_native(flat, shapes)
    public = tr._unflatten_public(flat, shapes)
    for a, b in zip(native, public, strict=True):
        assert a.shape == b.shape and torch.equal(a, b)


# ----------------------------------------------------------------------------- plans


def test_plan_of_many_small_leaves_is_one_pack_one_copy_one_sync():
    """1,000 small CUDA leaves move as one packed buffer, one copy and one synchronisation."""
    leaves = [leaf(i, 4096) for i in range(1000)]
    plan, _ = tp.plan_items_to_host(leaves)
    assert (plan.copies, plan.syncs, plan.bytes_copied) == (2, 1, 2 * 4096 * 1000)
    assert plan.steps == (
        "pack 1,000 leaves (3.9 MiB) into one cuda:0 buffer",
        "copy cuda:0 → pinned host (3.9 MiB, 1 copy)",
        "synchronise cuda:0 once (one event for the whole batch)",
    )
    assert plan.leaf_copies == (2,) * 1000


def test_plan_to_host_synchronises_once_per_device():
    """Leaves on two CUDA devices cost one wait each; MPS leaves one wait per leaf."""
    leaves = [
        leaf(0, 64, device="cuda:0"),
        leaf(1, 64, device="cuda:1"),
        leaf(2, 64, device="cuda:0"),
        leaf(3, 64, device="cuda:1"),
        leaf(4, 64, device="mps:0"),
        leaf(5, 64, device="mps:0"),
    ]
    plan, layouts = tp.plan_items_to_host(leaves)
    assert [lay.device for lay in layouts] == ["cuda:0", "cuda:1"]
    assert plan.syncs == 2 + 2
    assert plan.copies == 2 + 2 + 2
    assert plan.leaf_copies == (2, 2, 2, 2, 1, 1)


def test_plan_to_host_counts_direct_and_strided_leaves():
    """Large dense leaves cost one copy each; large strided ones a contiguous pass first."""
    big = 4 * tp.SMALL_ITEM_BYTES
    leaves = [leaf(0, big), leaf(1, big, dense=False), leaf(2, 0)]
    plan, _ = tp.plan_items_to_host(leaves)
    assert plan.copies == 3 and plan.syncs == 1
    assert plan.bytes_copied == 3 * big
    assert plan.leaf_copies == (1, 2, 0)
    assert "allocate 1 leaf with no elements" in plan.steps


def test_plan_to_device_blocking_and_non_blocking():
    """Host → CUDA waits once when blocking and never when non-blocking."""
    leaves = [leaf(i, 256, device="cpu") for i in range(10)]
    blocking, _ = tp.plan_items_to_device(leaves, "cuda:0", non_blocking=False)
    asynchronous, _ = tp.plan_items_to_device(leaves, "cuda:0", non_blocking=True)
    assert (blocking.copies, blocking.syncs) == (2, 1)
    assert (asynchronous.copies, asynchronous.syncs) == (2, 0)
    assert "no synchronisation" in asynchronous.steps[-1]


def test_plan_to_device_streams_large_leaves_in_chunks():
    """A large pageable leaf is staged in pinned chunks: one fill and one copy per chunk."""
    nbytes = 2 * tp.STAGING_CHUNK_BYTES + 8
    plan, _ = tp.plan_items_to_device([leaf(0, nbytes, device="cpu")], "cuda:0", non_blocking=True)
    assert plan.copies == 6
    assert plan.bytes_copied == 2 * nbytes
    assert plan.leaf_copies == (2,)


def test_plan_to_device_copies_pinned_leaves_directly_only_when_blocking():
    """A caller's pinned leaf is read by the copy itself only if the call waits for it."""
    nbytes = 2 * tp.SMALL_ITEM_BYTES
    pinned = [leaf(0, nbytes, device="cpu", pinned=True)]
    blocking, _ = tp.plan_items_to_device(pinned, "cuda:0", non_blocking=False)
    asynchronous, _ = tp.plan_items_to_device(pinned, "cuda:0", non_blocking=True)
    assert blocking.leaf_copies == (1,)
    assert asynchronous.leaf_copies == (2,)


def test_plan_to_device_other_sources_and_targets():
    """Leaves already there cost nothing; other devices and non-CUDA targets go leaf by leaf."""
    leaves = [leaf(0, 64, device="cuda:0"), leaf(1, 64, device="cuda:1"), leaf(2, 64, device="cpu")]
    plan, _ = tp.plan_items_to_device(leaves, "cuda:0", non_blocking=False)
    assert plan.leaf_copies == (0, 1, 2)  # staged, then copied
    mps, lay_mps = tp.plan_items_to_device([leaf(0, 64, device="cpu")], "mps:0", non_blocking=False)
    assert lay_mps is None and (mps.copies, mps.syncs) == (1, 1)


def test_plan_to_host_of_tensors_matches_leaf_plan():
    """plan_to_host on real tensors describes them as plan_leaves_to_host does."""
    tensors = [torch.zeros(3), torch.zeros(4, 4).t(), torch.zeros(0)]
    plan = tp.plan_to_host(tensors)
    expected, _ = tp.plan_items_to_host([tp.item_of(i, t) for i, t in enumerate(tensors)])
    assert plan == expected
    assert (plan.copies, plan.syncs, plan.leaf_copies) == (1, 0, (0, 1, 0))


def test_plan_to_device_without_cuda_still_plans():
    """Planning a CUDA target needs no GPU (explain works on any machine)."""
    plan = tp.plan_to_device([torch.zeros(8), torch.ones(8)], "cuda:0", non_blocking=False)
    assert plan.copies == 2 and plan.syncs == 1
    assert str(plan).startswith("2 copies, 128 B, 1 synchronisation\n")


# ----------------------------------------------------------------------------- CPU execution


def test_to_host_of_cpu_tensors_returns_logical_contiguous_detached_values():
    """Host leaves come back contiguous, bit-resolved and detached, with the same values."""
    z = random_tensor(torch.float64, (3, 4), seed=5).to(torch.complex128)
    g = torch.ones(3, requires_grad=True)
    tensors = [z.conj(), z.t(), g, torch._neg_view(z)]
    out = tr.to_host(tensors)
    for t, o in zip(tensors, out, strict=True):
        assert o.is_contiguous() and not o.is_conj() and not o.is_neg() and not o.requires_grad
        assert bits(o) == bits(t.detach())


def test_to_device_cpu_is_a_no_op():
    """Moving host leaves to the CPU returns them detached and uncopied."""
    a = torch.arange(4.0, requires_grad=True)
    (out,) = tr.to_device([a], "cpu")
    assert out.data_ptr() == a.data_ptr() and not out.requires_grad


# ------------------------------------------------- the CUDA orchestration, simulated on the CPU


class FakeEvent:
    """Stands in for ``torch.cuda.Event`` where copies on the CPU are already complete."""

    recorded = 0
    waited = 0

    def record(self, stream: object = None) -> None:
        FakeEvent.recorded += 1

    def synchronize(self) -> None:
        FakeEvent.waited += 1


@pytest.fixture
def simulated_cuda(monkeypatch):
    """Run the CUDA code paths with the CPU as the device: plain host memory, counted events."""
    pinned: list[int] = []

    def fake_pinned(nbytes: int) -> torch.Tensor:
        pinned.append(nbytes)
        return torch.empty(nbytes, dtype=torch.uint8)

    monkeypatch.setattr(tr, "_pinned", fake_pinned)
    monkeypatch.setattr(tr, "_device_bytes", lambda n, device: torch.empty(n, dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: None)
    monkeypatch.setattr(tp, "SMALL_ITEM_BYTES", 256)
    monkeypatch.setattr(tp, "STAGING_CHUNK_BYTES", 1000)
    FakeEvent.recorded = FakeEvent.waited = 0
    return pinned


def simulated_batch(seed: int) -> list[torch.Tensor]:
    """Small, large, 0-d, empty, strided and bit-carrying leaves of many dtypes."""
    batch = []
    for k, dtype in enumerate(DTYPES):
        base = random_tensor(dtype, (40, 30), seed=seed + k)
        batch += [base, base.t(), base[:2, :3], random_tensor(dtype, ()), base[:0]]
    z = random_tensor(torch.float64, (40, 30), seed=seed).to(torch.complex128)
    return [*batch, z.conj(), z[:2].conj(), torch._neg_view(z.imag), z.conj().imag]


def test_simulated_device_to_host_is_bit_exact(simulated_cuda):
    """The device → host orchestration (packs, direct leaves, empties) is bit-exact."""
    tensors = simulated_batch(seed=7)
    leaves = [tp.item_of(i, t) for i, t in enumerate(tensors)]
    lay = tp.route(leaves, "cpu")
    assert lay.packs and lay.direct and lay.empty
    out: list[torch.Tensor | None] = [None] * len(tensors)
    event = tr._cuda_to_host(tensors, lay, out)
    event.synchronize()
    assert FakeEvent.recorded == 1
    assert len(simulated_cuda) == len(lay.packs) + len(lay.direct)  # one pinned block each
    for t, o in zip(tensors, out, strict=True):
        assert o is not None and o.dtype == t.dtype and o.shape == t.shape
        assert o.is_contiguous() and not o.is_conj() and not o.is_neg()
        assert bits(o) == bits(t)


@pytest.mark.parametrize("non_blocking", [False, True])
def test_simulated_host_to_device_is_bit_exact(simulated_cuda, non_blocking):
    """The host → device orchestration (packs, chunked, whole, pinned leaves) is bit-exact."""
    tensors = simulated_batch(seed=11)
    leaves = [tp.item_of(i, t) for i, t in enumerate(tensors)]
    leaves[0] = leaves[0]._replace(pinned=True)  # a caller's pinned leaf
    plan, lay = tp.plan_items_to_device(leaves, "cuda:0", non_blocking=non_blocking)
    assert lay is not None
    kinds = tp.direct_kinds(lay, {lf.pos: lf for lf in leaves}, non_blocking)
    assert kinds["chunked"] and kinds["whole"]
    assert bool(kinds["pinned"]) is not non_blocking
    out: list[torch.Tensor | None] = [None] * len(tensors)
    tr._cuda_from_host(tensors, leaves, lay, torch.device("cpu"), non_blocking, out)
    assert FakeEvent.waited == plan.syncs == (0 if non_blocking else 1)
    for t, o in zip(tensors, out, strict=True):
        assert o is not None and o.dtype == t.dtype and o.shape == t.shape
        assert bits(o) == bits(t)
    chunked = sum(-(-leaves[i].nbytes // tp.STAGING_CHUNK_BYTES) for i in kinds["chunked"])
    assert len(simulated_cuda) == len(lay.packs) + chunked + len(kinds["whole"])


def test_simulated_host_to_device_never_reads_sources_after_return(simulated_cuda):
    """Results keep their values when every source byte is overwritten right after return."""
    tensors = simulated_batch(seed=3)
    expected = [bits(t) for t in tensors]
    leaves = [tp.item_of(i, t) for i, t in enumerate(tensors)]
    _, lay = tp.plan_items_to_device(leaves, "cuda:0", non_blocking=True)
    assert lay is not None
    out: list[torch.Tensor | None] = [None] * len(tensors)
    tr._cuda_from_host(tensors, leaves, lay, torch.device("cpu"), True, out)
    for t in tensors:
        t.untyped_storage().fill_(0xFF)
    assert [bits(o) for o in out if o is not None] == expected


# ----------------------------------------------------------------------------- CUDA


def all_dtype_batch(seed: int = 0) -> list[torch.Tensor]:
    """One small, one 0-d, one empty, one strided and one large leaf per dtype."""
    batch = []
    for k, dtype in enumerate(DTYPES):
        big = random_tensor(dtype, (tp.SMALL_ITEM_BYTES // dtype.itemsize + 8,), seed=seed + 5 * k)
        batch += [
            random_tensor(dtype, (7, 3), seed=seed + 5 * k + 1),
            random_tensor(dtype, (), seed=seed + 5 * k + 2),
            random_tensor(dtype, (3, 0)),
            random_tensor(dtype, (5, 6), seed=seed + 5 * k + 3).t(),
            big,
        ]
    return batch


def cuda_test(fn):
    """Mark ``fn`` as needing CUDA: marker ``cuda``, skipped (never passed) without one."""
    return pytest.mark.cuda(_no_cuda(fn))


@cuda_test
@pytest.mark.parametrize("non_blocking", [False, True])
def test_cuda_round_trip_is_bit_exact(non_blocking):
    """Host → CUDA → host returns every dtype, shape and stride bit for bit."""
    batch = all_dtype_batch()
    on_device = tr.to_device(batch, "cuda", non_blocking=non_blocking)
    assert all(t.device.type == "cuda" for t in on_device)
    back = tr.to_host(on_device)
    for t, d, h in zip(batch, on_device, back, strict=True):
        assert d.dtype == h.dtype == t.dtype and d.shape == h.shape == t.shape
        assert h.device.type == "cpu" and h.is_contiguous()
        assert bits(h) == bits(t)


@cuda_test
def test_cuda_to_host_of_many_small_leaves_lands_in_pinned_memory():
    """1,000 small CUDA leaves come back correct, in pinned memory, after one planned wait."""
    tensors = [torch.full((4, 4), float(i), device="cuda") for i in range(1000)]
    assert tp.plan_to_host(tensors).syncs == 1
    out = tr.to_host(tensors)
    assert all(o.is_pinned() for o in out)
    for i, o in enumerate(out):
        assert torch.equal(o, torch.full((4, 4), float(i)))


@cuda_test
def test_cuda_to_host_resolves_bits_and_detaches():
    """Conjugate, negative-bit, strided and grad-requiring CUDA leaves arrive as logical values."""
    z = torch.randn(64, 32, dtype=torch.complex64, device="cuda")
    w = torch.randn(3, device="cuda", requires_grad=True)
    big = torch.randn(1024, 1024, device="cuda")
    tensors = [z.conj(), z.conj().imag, z.t(), w, big.t(), torch._neg_view(big)]
    out = tr.to_host(tensors)
    for t, o in zip(tensors, out, strict=True):
        assert not o.requires_grad and not o.is_conj() and not o.is_neg()
        assert bits(o) == bits(t.detach().cpu())


@cuda_test
def test_cuda_to_host_never_returns_data_that_can_still_change():
    """Host results are complete on return: later device writes do not reach them."""
    torch.cuda.synchronize()
    src = [torch.arange(1000.0, device="cuda") for _ in range(20)]
    src.append(torch.arange(float(2 * tp.SMALL_ITEM_BYTES), device="cuda"))
    torch.cuda._sleep(50_000_000)  # keep the stream busy so an unsynchronised copy would lag
    out = tr.to_host(src)
    for t in src:
        t.fill_(-1.0)
    expected = [np.arange(t.numel(), dtype=np.float32) for t in src]
    for o, e in zip(out, expected, strict=True):
        np.testing.assert_array_equal(o.numpy(), e)


@cuda_test
def test_cuda_non_blocking_staging_outlives_the_call():
    """After a non-blocking return, changing sources or churning pinned memory changes nothing."""
    arrays = [np.full(300, i, dtype=np.float32) for i in range(200)]
    arrays.append(np.arange(3 * tp.STAGING_CHUNK_BYTES // 4, dtype=np.float32))  # chunk-staged
    arrays.append(np.arange(tp.SMALL_ITEM_BYTES, dtype=np.float32).reshape(-1, 4).T)  # whole
    expected = [a.copy() for a in arrays]
    torch.cuda._sleep(200_000_000)  # the copies queue behind this, still pending on return
    out = tr.to_device([torch.from_numpy(a) for a in arrays], "cuda", non_blocking=True)
    for a in arrays:
        a[...] = -7
    churn = [torch.empty(1 << 20, dtype=torch.uint8, pin_memory=True).fill_(255) for _ in range(64)]
    del churn
    torch.cuda.synchronize()
    for o, e in zip(out, expected, strict=True):
        np.testing.assert_array_equal(o.cpu().numpy(), e)


@cuda_test
def test_cuda_current_stream_is_respected():
    """Copies run on the caller's current stream, after work queued there, in both directions."""
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        src = [torch.zeros(256, device="cuda") for _ in range(50)]
        src.append(torch.zeros(2 * tp.SMALL_ITEM_BYTES, device="cuda"))
        torch.cuda._sleep(50_000_000)
        for t in src:
            t.add_(3.0)  # queued on the side stream behind the sleep
        out = tr.to_host(src)
        assert all(bool((o == 3.0).all()) for o in out)
        host = [torch.full((256,), 5.0) for _ in range(50)]
        moved = tr.to_device(host, "cuda", non_blocking=True)
        sums = [m.sum() for m in moved]  # same stream: ordered after the copy
    side.synchronize()
    assert all(float(s) == 5.0 * 256 for s in sums)


@cuda_test
def test_cuda_threads_convert_concurrently():
    """Eight threads moving their own batches both ways all get their own values back."""
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for rep in range(5):
                host = [torch.full((17, 3), float(k * 100 + rep + i)) for i in range(100)]
                back = tr.to_host(tr.to_device(host, "cuda", non_blocking=bool(rep % 2)))
                for h, b in zip(host, back, strict=True):
                    assert torch.equal(h, b)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


@cuda_test
@needs_two_gpus
def test_cuda_mixed_devices_in_one_batch():
    """Leaves on cuda:0 and cuda:1 come back in order, and cuda:1 is reachable as a target."""
    a = [torch.full((8,), float(i), device="cuda:0") for i in range(10)]
    b = [torch.full((8,), float(-i), device="cuda:1") for i in range(10)]
    mixed = [x for pair in zip(a, b, strict=True) for x in pair]
    plan = tp.plan_to_host(mixed)
    assert plan.syncs == 2
    out = tr.to_host(mixed)
    for t, o in zip(mixed, out, strict=True):
        assert torch.equal(t.cpu(), o)
    moved = tr.to_device(out, "cuda:1")
    assert all(m.device == torch.device("cuda:1") for m in moved)
    assert all(torch.equal(m.cpu(), o) for m, o in zip(moved, out, strict=True))


# ------------------------------------- the batch glue of a container conversion, simulated


def _on_simulated_cuda(monkeypatch):
    """Describe every CPU tensor as living on cuda:0 (the simulated device)."""
    real = tp.item_of

    def item_of(index, t, *, pinned_lookup=False):
        item = real(index, t, pinned_lookup=pinned_lookup)
        return item._replace(device="cuda:0") if t.device.type == "cpu" else item

    monkeypatch.setattr(tp, "item_of", item_of)


def test_simulated_container_to_numpy_batches_device_leaves(simulated_cuda, monkeypatch):
    """Device leaves of a container travel in one batch with one wait, as explain plans it."""
    _on_simulated_cuda(monkeypatch)
    tensors = [random_tensor(torch.float32, (3, 5), seed=k) for k in range(6)] + [
        random_tensor(torch.float64, (40, 30), seed=9)
    ]
    pending = []
    for i, t in enumerate(tensors):
        key = _to_numpy.plain_tensor_key(t.dtype, False)._replace(device=torch.device("cuda:0"))
        plan = decide(_to_numpy.plan_from_tensor, key, NUMPY_DEFAULT, ())
        assert plan.batch_at == 0
        pending.append(_batches.start(i, plan, t))
    ((batch, members),) = _batches.plan_groups(pending, NUMPY_DEFAULT)
    out: list = [None] * len(tensors)
    _batches.run_groups(pending, NUMPY_DEFAULT, out)
    assert FakeEvent.waited == batch.syncs == 1
    assert len(members) == len(tensors)
    for t, o in zip(tensors, out, strict=True):
        assert isinstance(o, np.ndarray) and o.dtype == t.numpy().dtype
        assert o.tobytes() == t.numpy().tobytes()


def test_simulated_container_to_device_batches_host_leaves(simulated_cuda):
    """Host leaves bound for a device travel in one batch with one wait, as explain plans it."""
    o = Options("torch", device=torch.device("cuda:0"))
    arrays = [np.arange(k * 7, dtype=np.int32) for k in range(1, 6)] + [np.ones((40, 30))]
    pending = []
    for i, a in enumerate(arrays):
        key = _to_torch.ArrayKey(np.ndarray, a.dtype, True, True, False)
        plan = decide(_to_torch.plan_from_array, key, o, ())
        assert plan.steps[plan.batch_at].batch == "to_device"
        pending.append(_batches.start(i, plan, a))
    ((batch, _),) = _batches.plan_groups(pending, o)
    out: list = [None] * len(arrays)
    _batches.run_groups(pending, o, out)
    assert FakeEvent.waited == batch.syncs == 1
    for a, t in zip(arrays, out, strict=True):
        assert isinstance(t, torch.Tensor) and t.numpy().tobytes() == a.tobytes()
