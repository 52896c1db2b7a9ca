"""Write a DCP checkpoint from 2 processes over gloo, each holding its shard of DTensors (CPU).

Run as ``python dcp_writer.py RENDEZVOUS_FILE OUT_DIR [big]``; ``full()`` (``big()``) gives the
full tensors the checkpoint must hold, so a test can compare without tensorbridge.
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


BIG_MIB = 192


def big() -> dict[str, torch.Tensor]:
    """One 192 MiB float32 tensor (two 96 MiB chunks once sharded) and a small one."""
    return {
        "big": torch.arange(BIG_MIB * (1 << 20) // 4, dtype=torch.float32).reshape(-1, 1024),
        "small": torch.arange(6, dtype=torch.int64),
    }


def _rank(rank: int, store: str, out: str, which: str) -> None:
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    warnings.simplefilter("ignore")
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    mesh = init_device_mesh("cpu", (WORLD,))
    state: dict[str, object] = {
        name: distribute_tensor(t, mesh, [Replicate()] if name == "steps" else [Shard(0)])
        for name, t in (big() if which == "big" else full()).items()
    }
    state["epoch"] = 7
    dcp.save(state, checkpoint_id=out)
    dist.destroy_process_group()


if __name__ == "__main__":
    import torch.multiprocessing as mp

    which = sys.argv[3] if len(sys.argv) > 3 else "full"
    mp.start_processes(_rank, args=(*sys.argv[1:3], which), nprocs=WORLD, start_method="fork")
