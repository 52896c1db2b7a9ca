"""``collate`` inside real loaders: a DataLoader with two worker processes, and ``to_torch`` as the
``collate_fn`` of a Ray Data pipeline in local mode (SPEC: "`collate` — batches for training
loops"). Expected batches are built with plain NumPy and PyTorch."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

import tensorbridge as tb


class FixableDataset(Dataset):
    """Samples default_collate warns or fails on: a read-only, a flipped and a big-endian array."""

    def __init__(self, n: int) -> None:
        base = np.arange(n * 2 * 3 * 4, dtype=np.float32).reshape(n, 2, 3, 4)
        self.plain = base
        self.read_only = base.copy()
        self.read_only.flags.writeable = False
        self.big = base.astype(">f4")

    def __len__(self) -> int:
        return len(self.plain)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "image": self.read_only[i],
            "flipped": self.plain[i][..., ::-1],
            "depth": self.big[i],
            "label": i,
            "name": f"s{i}",
        }


def collate_and_report(samples: list[Any]) -> tuple[Any, torch.Tensor]:
    """``tb.collate``, plus whether (in the worker) every batched tensor was in shared memory."""
    batch = tb.collate(samples)
    shared = all(v.is_shared() for v in batch.values() if isinstance(v, torch.Tensor))
    return batch, torch.tensor(shared)


# Python 3.12+ warns that fork() in a multi-threaded process (PyTorch's thread pools) may deadlock;
# that is about the test process, not about what is tested.
fork_in_threads = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")


@fork_in_threads
def test_dataloader_with_two_workers():
    """Two workers batch fixable samples exactly, in shared memory, with no warning."""
    ds = FixableDataset(12)
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_and_report)
    batches = list(loader)
    assert len(batches) == 3
    for k, (batch, shared) in enumerate(batches):
        rows = slice(4 * k, 4 * k + 4)
        plain = ds.plain[rows]
        assert bool(shared)
        assert torch.equal(batch["image"], torch.from_numpy(plain.copy()))
        assert torch.equal(batch["flipped"], torch.from_numpy(plain[..., ::-1].copy()))
        assert torch.equal(batch["depth"], torch.from_numpy(plain.copy()))
        assert torch.equal(batch["label"], torch.arange(4 * k, 4 * k + 4))
        assert batch["name"] == [f"s{i}" for i in range(4 * k, 4 * k + 4)]


@fork_in_threads
def test_dataloader_collate_fn_equals_default_collate_on_plain_samples():
    """With workers, ``collate_fn=tb.collate`` gives what default_collate gives on plain data."""
    data = [{"x": np.full((2, 2), i, np.float32), "y": i, "s": str(i)} for i in range(8)]
    ours = list(DataLoader(data, batch_size=4, num_workers=2, collate_fn=tb.collate))
    theirs = list(DataLoader(data, batch_size=4, num_workers=2, collate_fn=default_collate))
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a["x"], b["x"]) and a["x"].dtype == b["x"].dtype
        assert torch.equal(a["y"], b["y"]) and a["s"] == b["s"]


# --- Ray Data ----------------------------------------------------------------------------


# Ray's own deprecation notices about its settings are Ray's business; warnings from tensorbridge
# are recorded inside the collate_fn and asserted to be none.
def ray_test(func):
    """Mark a test as running Ray, whose own deprecation notices are ignored."""
    for category in ("DeprecationWarning", "PendingDeprecationWarning", "FutureWarning"):
        func = pytest.mark.filterwarnings(f"ignore::{category}:ray")(func)
    return func


@pytest.fixture(scope="module")
def ray():
    """Ray in local mode on one CPU, shut down after this module's tests."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def _collate_fn(record: list[dict[str, Any]]) -> Any:
    """``tb.to_torch`` as Ray's collate_fn (a NumpyBatchCollateFn where Ray has that class),
    recording what Ray handed it and any warning."""

    def to_torch(batch: dict[str, np.ndarray]) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = tb.to_torch(batch)
        record.append({"batch": batch, "out": out, "warnings": [str(w.message) for w in caught]})
        return out

    try:
        from ray.data.collate_fn import NumpyBatchCollateFn
    except ImportError:  # Ray before 2.47 takes a plain function
        return to_torch

    class ToTorch(NumpyBatchCollateFn):
        def __call__(self, batch: dict[str, np.ndarray]) -> Any:
            return to_torch(batch)

    return ToTorch()


@ray_test
def test_ray_iter_torch_batches_with_to_torch(ray):
    """``to_torch`` collates Ray's column batches (read-only columns included) exactly, never
    writing through to Ray's memory and never warning."""
    items = [{"x": np.arange(3, dtype=np.float32) + i, "y": i} for i in range(8)]
    ds = ray.data.from_items(items)
    record: list[dict[str, Any]] = []
    batches = list(ds.iter_torch_batches(batch_size=4, collate_fn=_collate_fn(record)))
    xs = torch.cat([b["x"] for b in batches])
    ys = torch.cat([b["y"] for b in batches])
    assert torch.equal(xs, torch.from_numpy(np.stack([it["x"] for it in items])))
    assert torch.equal(ys, torch.arange(8))
    read_only = [
        (r["batch"][k], r["out"][k]) for r in record for k in r["batch"]
        if not r["batch"][k].flags.writeable
    ]  # fmt: skip
    assert read_only, "Ray handed no read-only column: the case this test is for did not occur"
    for column, tensor in read_only:
        assert not tb.shares_memory(column, tensor)  # copied: writes cannot reach Ray's memory
    assert all(r["warnings"] == [] for r in record)


@ray_test
def test_ray_from_numpy_with_read_only_arrays(ray):
    """A read-only NumPy source through Ray Data collates with ``to_torch`` and
    ``float_dtype``, labels untouched."""
    images = np.arange(6 * 2 * 2, dtype=np.float64).reshape(6, 2, 2)
    images.flags.writeable = False
    ds = ray.data.from_numpy(images)
    record: list[dict[str, Any]] = []
    batches = list(ds.iter_torch_batches(batch_size=3, collate_fn=_collate_fn(record)))
    got = torch.cat([b["data"] for b in batches])
    assert torch.equal(got, torch.from_numpy(images.copy()))
    assert all(r["warnings"] == [] for r in record)


@ray_test
@pytest.mark.filterwarnings("ignore:Passing a function to `iter_torch_batches")
def test_ray_accepts_to_torch_itself(ray):
    """``collate_fn=tb.to_torch`` itself works (Ray warns that plain functions are deprecated)."""
    ds = ray.data.from_items([{"x": np.ones(2) * i} for i in range(4)])
    batches = list(ds.iter_torch_batches(batch_size=2, collate_fn=tb.to_torch))
    got = torch.cat([b["x"] for b in batches])
    assert torch.equal(got, torch.from_numpy(np.stack([np.ones(2) * i for i in range(4)])))
