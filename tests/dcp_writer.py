"""Write a DCP checkpoint from 2 processes over gloo, each holding its shard of DTensors (CPU).

Run as ``python dcp_writer.py RENDEZVOUS_FILE OUT_DIR``; ``full()`` gives the full tensors the
checkpoint must hold, so a test can compare without tensorbridge.
"""

from __future__ import annotations

import sys
import warnings

import torch

WORLD = 2


def full() -> dict[str, torch.Tensor]:
    """The full (unsharded) tensors, the same in every process."""
    gen = torch.Generator().manual_seed(0)
    return {
        "model.w": torch.randn(6, 4, generator=gen),
        "model.b": torch.randn(5, generator=gen).to(torch.bfloat16),
        "steps": torch.arange(6, dtype=torch.int64),
    }


def _rank(rank: int, store: str, out: str) -> None:
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    warnings.simplefilter("ignore")
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    mesh = init_device_mesh("cpu", (WORLD,))
    state: dict[str, object] = {
        name: distribute_tensor(t, mesh, [Replicate()] if name == "steps" else [Shard(0)])
        for name, t in full().items()
    }
    state["epoch"] = 7
    dcp.save(state, checkpoint_id=out)
    dist.destroy_process_group()


if __name__ == "__main__":
    import torch.multiprocessing as mp

    mp.start_processes(_rank, args=(sys.argv[1], sys.argv[2]), nprocs=WORLD, start_method="fork")
