"""Streaming: a conversion that does not write one .pt holds about one tensor, not the model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

MIB = 1 << 20
TENSORS, TENSOR_MIB = 6, 32  # a 192 MiB checkpoint of 32 MiB tensors

# Peak RSS of the conversion alone: the child's peak after imports is the baseline. VmHWM, since
# getrusage's ru_maxrss keeps the parent's (pytest's) peak across fork and exec.
_MEASURE = """
import sys
import numpy, torch, tensorbridge.files
from tensorbridge.cli import main
def hwm():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
base = hwm()
code = main(sys.argv[1:])
print(code, hwm() - base)
"""
pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="peak RSS is read from /proc (Linux)"
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .pt checkpoint of six 32 MiB float32 tensors."""
    path = tmp_path_factory.mktemp("mem") / "model.pt"
    n = TENSOR_MIB * MIB // 4
    torch.save({f"layer.{i}.weight": torch.full((n,), float(i)) for i in range(TENSORS)}, path)
    return path


def _grown(checkpoint: Path, dst: Path, options: list[str]) -> int:
    """Bytes the peak RSS of a child process grew by while converting ``checkpoint``."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, "convert", str(checkpoint), str(dst), *options, "-q"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    code, grown = (int(x) for x in proc.stdout.split())
    assert code == 0
    return grown


@pytest.mark.parametrize(
    "args",
    [["model.safetensors", "--float-dtype", "bfloat16"], ["shards", "--max-shard-size", "64MB"]],
    ids=["pt-to-safetensors-cast", "pt-to-shards"],
)
def test_conversion_memory_stays_near_one_tensor(
    checkpoint: Path, tmp_path: Path, args: list[str]
) -> None:
    """Peak RSS growth stays far below the checkpoint's size (one tensor plus a margin)."""
    dst, *options = args
    grown = _grown(checkpoint, tmp_path / dst, options)
    total = TENSORS * TENSOR_MIB * MIB
    assert grown < TENSOR_MIB * MIB + 64 * MIB, f"grew {grown / MIB:.0f} MiB"
    assert grown < total / 2


def test_the_measure_sees_a_whole_checkpoint_in_memory(checkpoint: Path, tmp_path: Path) -> None:
    """Control: casting into one .pt (torch.save takes every cast tensor at once) grows by the
    whole cast checkpoint, so the measure does see memory a conversion holds."""
    grown = _grown(checkpoint, tmp_path / "copy.pt", ["--dtype", "float64"])
    assert grown > TENSORS * TENSOR_MIB * MIB * 2 * 0.9, f"grew {grown / MIB:.0f} MiB"
