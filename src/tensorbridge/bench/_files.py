"""File cases: model checkpoints converted by ``tensorbridge.files.convert`` against the code
people write for the same job, each run in its own child process so its peak RSS is its own.

- ``.bin`` shards → safetensors shards, against the loop ``torch.load`` each shard, then
  ``safetensors.torch.save_file``;
- a DCP checkpoint → safetensors shards, against PyTorch's ``dcp_to_torch_save`` then
  ``save_file`` of the loaded (memory-mapped) result;
- ``.bin`` shards → a DCP checkpoint, against ``torch.load`` of every shard into one state dict,
  then ``dcp.save``.

The checkpoint (2 GiB of 64 MiB tensors; 32 MiB under ``--quick``) is made by the case in a
temporary directory and deleted when it ends. Two cases share each measurement: the time ratio
(tensorbridge ÷ idiom, rounds interleaved, the order alternating), and tensorbridge's peak memory
against its bound, the largest tensor + 256 MiB. Both sides' peaks are in the JSON ``extra``.

>>> [c.group for c in cases(Config(quick=True))]
['files', 'files', 'files', 'files', 'files', 'files']
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from ._case import Case, Config, Target
from ._harness import Comparison

__all__ = ["cases"]

MIB = 1 << 20
BOUND_SLACK = 256 * MIB  # the bound is the largest tensor + 256 MiB

# One conversion in a fresh interpreter: prints its seconds and its peak RSS growth in bytes.
# Peak RSS is VmHWM, which exec resets; getrusage's ru_maxrss keeps the parent's peak across exec.
_CHILD = """
import json, os, sys, time, warnings
import torch, safetensors.torch, tensorbridge.files
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
warnings.simplefilter("ignore")
def hwm():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
def shards(index):
    folder = os.path.dirname(index)
    with open(index) as f:
        meta = json.load(f)
    for shard in sorted(set(meta["weight_map"].values())):
        yield shard, torch.load(os.path.join(folder, shard), map_location="cpu", weights_only=True)
scenario, side, src, out, shard_size = sys.argv[1:6]
base = hwm()
start = time.perf_counter()
if side == "tensorbridge":
    if scenario == "bin-to-dcp":
        tensorbridge.files.convert(src, out, format="dcp")
    else:
        tensorbridge.files.convert(src, out, max_shard_size=shard_size)
elif scenario == "bin-to-st":  # the hand-written loop
    os.mkdir(out)
    weight_map = {}
    for shard, state in shards(src):
        name = shard.replace("pytorch_model", "model").replace(".bin", ".safetensors")
        safetensors.torch.save_file(state, os.path.join(out, name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(state, name))
        del state
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
elif scenario == "dcp-to-st":  # PyTorch's converter, then safetensors
    os.mkdir(out)
    dcp_to_torch_save(src, os.path.join(out, "full.pt"))
    state = torch.load(os.path.join(out, "full.pt"), mmap=True, weights_only=True)
    safetensors.torch.save_file(state, os.path.join(out, "model.safetensors"))
else:  # bin-to-dcp: every shard into one state dict, then dcp.save
    state = {}
    for _, part in shards(src):
        state.update(part)
    dcp.save(state, checkpoint_id=out, no_dist=True)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak": hwm() - base}))
"""


def _make_checkpoint(folder: Path, shards: int, tensors: int, tensor_bytes: int) -> Path:
    """``pytorch_model-0000k-of-0000N.bin`` shards and their index, one shard in memory at once."""
    weight_map = {}
    gen = torch.Generator().manual_seed(0)
    for k in range(1, shards + 1):
        name = f"pytorch_model-{k:05d}-of-{shards:05d}.bin"
        state = {
            f"layers.{k}.{i}.weight": torch.empty(tensor_bytes // 4).uniform_(generator=gen)
            for i in range(tensors)
        }
        torch.save(state, folder / name)
        weight_map.update(dict.fromkeys(state, name))
        del state
    index = folder / "pytorch_model.bin.index.json"
    total = shards * tensors * tensor_bytes
    index.write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return index


def _make_dcp(index: Path, out: Path) -> Path:
    """The ``.bin`` checkpoint at ``index`` saved with ``dcp.save`` (in a child process)."""
    code = (
        "import sys, torch, warnings, torch.distributed.checkpoint as dcp\n"
        "from tensorbridge.files import convert\n"
        "warnings.simplefilter('ignore')\n"
        "state = {}\n"
        "for p in sorted(__import__('pathlib').Path(sys.argv[1]).parent.glob('*.bin')):\n"
        "    state.update(torch.load(p, weights_only=True))\n"
        "dcp.save(state, checkpoint_id=sys.argv[2], no_dist=True)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(index), str(out)], check=True)
    return out


def _run(scenario: str, side: str, src: Path, out: Path, shard_size: str) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, scenario, side, str(src), str(out), shard_size],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} failed: {proc.stderr.strip().splitlines()[-1:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


class _Shared:
    """Runs the rounds of one scenario once for both its cases of a configuration."""

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self.done: dict[Config, Comparison] = {}

    def measure(self, cfg: Config) -> Comparison:
        if cfg in self.done:
            return self.done[cfg]
        shards, tensors, tensor_bytes = (4, 2, 4 * MIB) if cfg.quick else (4, 8, 64 * MIB)
        rounds = 1 if cfg.quick else 3
        shard_size = f"{tensors * tensor_bytes // MIB}MiB"
        root = Path(tempfile.mkdtemp(prefix="tensorbridge-bench-files-"))
        try:
            src = _make_checkpoint(root, shards, tensors, tensor_bytes)
            if self.scenario == "dcp-to-st":
                src = _make_dcp(src, root / "dcp")
            ours: list[dict[str, float]] = []
            loop: list[dict[str, float]] = []
            for r in range(rounds):
                order = [("tensorbridge", ours), ("loop", loop)]
                for side, into in order if r % 2 == 0 else order[::-1]:
                    out = root / f"out-{side}"
                    into.append(_run(self.scenario, side, src, out, shard_size))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        total = shards * tensors * tensor_bytes
        ratios = tuple(a["seconds"] / b["seconds"] for a, b in zip(ours, loop, strict=True))
        self.done[cfg] = Comparison(
            ratios=ratios,
            a_s=statistics.median(a["seconds"] for a in ours),
            b_s=statistics.median(b["seconds"] for b in loop),
            n_a=1,
            n_b=1,
            extra={
                "checkpoint_GiB": total / (1 << 30),
                "largest_tensor_MiB": tensor_bytes / MIB,
                "ours_peak_MiB": max(a["peak"] for a in ours) / MIB,
                "idiom_peak_MiB": max(b["peak"] for b in loop) / MIB,
                "input_GB_per_s": total / 1e9 / statistics.median(a["seconds"] for a in ours),
            },
        )
        return self.done[cfg]


def _memory(shared: _Shared) -> Callable[[Config], Comparison]:
    def measure(cfg: Config) -> Comparison:
        c = shared.measure(cfg)
        bound = c.extra["largest_tensor_MiB"] + BOUND_SLACK / MIB
        return Comparison(
            ratios=(c.extra["ours_peak_MiB"] / bound,),
            a_s=0.0,
            b_s=0.0,
            n_a=1,
            n_b=0,
            extra={
                **c.extra,
                "input_MiB": c.extra["largest_tensor_MiB"],
                "output_MiB": BOUND_SLACK / MIB,
                "extra_peak_MiB": c.extra["ours_peak_MiB"],
            },
        )

    return measure


SCENARIOS = {
    "bin-to-st": (
        ".bin shards → safetensors shards",
        "files.convert(index.bin.json, out/)",
        "torch.load(shard); save_file(...) per shard",
    ),
    "dcp-to-st": (
        "DCP → safetensors shards",
        "files.convert(dcp_dir, out/)",
        "dcp_to_torch_save(dcp_dir, pt); save_file(torch.load(pt, mmap=True))",
    ),
    "bin-to-dcp": (
        ".bin shards → DCP",
        "files.convert(index.bin.json, out/, format='dcp')",
        "torch.load every shard; dcp.save(state)",
    ),
}


def cases(cfg: Config | None = None) -> list[Case]:
    """Each scenario's time against its idiom, and its peak memory against its bound."""
    cfg = cfg or Config()
    size = "32 MiB" if cfg.quick else "2 GiB"
    out: list[Case] = []
    for scenario, (what, ours, idiom) in SCENARIOS.items():
        shared = _Shared(scenario)
        out += [
            Case("files", f"{what}, {size}", ours, idiom, Target("<=", 1.2), shared.measure),
            Case("files", f"peak: {what}, {size}", ours, "largest tensor + 256 MiB",
                 Target("<=", 1.0), _memory(shared), ratio="memory"),
        ]  # fmt: skip
    return out
