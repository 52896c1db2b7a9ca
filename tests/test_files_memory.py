"""Streaming: a conversion that does not write one .pt holds about one tensor, not the model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

MIB = 1 << 20
TENSORS, TENSOR_MIB = 6, 32  # a 192 MiB checkpoint of 32 MiB tensors

# Peak RSS of the conversion alone: the child's peak after imports is the baseline. VmHWM, since
# getrusage's ru_maxrss keeps the parent's (pytest's) peak across fork and exec.
_MEASURE = """
import sys
import numpy, torch, tensorbridge.files
import torch.distributed.checkpoint  # its modules (about 45 MiB) are not data
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
    [
        ["model.safetensors", "--float-dtype", "bfloat16"],
        ["shards", "--max-shard-size", "64MB"],
        ["model.npz", "--verify"],
    ],
    ids=["pt-to-safetensors-cast", "pt-to-shards", "pt-to-npz-verified"],
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


BIG_MIB = 128  # the largest tensor of the DCP checkpoint


@pytest.fixture(scope="module")
def dcp_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DCP checkpoint (``dcp.save`` in one process): a 128 MiB tensor, two of 32 MiB, a value."""
    import warnings

    import torch.distributed.checkpoint as dcp

    path = tmp_path_factory.mktemp("memdcp") / "ckpt"
    state = {
        "embed": torch.full((BIG_MIB * MIB // 4,), 1.5),
        "layer": {
            "w": torch.full((TENSOR_MIB * MIB // 4,), 2.5),
            "b": torch.ones(TENSOR_MIB * MIB // 8, dtype=torch.float64),
        },
        "epoch": 3,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(state, checkpoint_id=str(path), no_dist=True)
    return path


def test_reading_dcp_holds_each_tensor_once(dcp_checkpoint: Path, tmp_path: Path) -> None:
    """DCP → safetensors grows by about the largest tensor, not twice it (decoded, then copied)."""
    grown = _grown(dcp_checkpoint, tmp_path / "m.safetensors", ["--skip-non-tensors"])
    assert grown < BIG_MIB * MIB + 48 * MIB, f"grew {grown / MIB:.0f} MiB"


@pytest.mark.parametrize(
    "args",
    [
        ["ckpt", "--format", "dcp"],
        ["shards/pytorch_model.bin.index.json", "--max-shard-size", "200MB"],
        ["shards/model.safetensors.index.json", "--max-shard-size", "200MB", "--verify"],
    ],
    ids=["pt-to-dcp", "pt-to-bin-shards", "pt-to-safetensors-shards-verified"],
)
def test_writing_holds_a_tensor_not_the_tree_or_a_shard(
    checkpoint: Path, tmp_path: Path, args: list[str]
) -> None:
    """DCP and ``.bin`` shard destinations (one shard here holds all 192 MiB) grow by about one
    32 MiB tensor: each tensor is read when it is written."""
    dst, *options = args
    grown = _grown(checkpoint, tmp_path / dst, options)
    assert grown < TENSOR_MIB * MIB + 64 * MIB, f"grew {grown / MIB:.0f} MiB"


def test_the_measure_sees_a_whole_checkpoint_in_memory(checkpoint: Path, tmp_path: Path) -> None:
    """Control: casting into one .pt (torch.save takes every cast tensor at once) grows by the
    whole cast checkpoint, so the measure does see memory a conversion holds."""
    grown = _grown(checkpoint, tmp_path / "copy.pt", ["--dtype", "float64"])
    assert grown > TENSORS * TENSOR_MIB * MIB * 2 * 0.9, f"grew {grown / MIB:.0f} MiB"


def _rss_file() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssFile:"))


def test_reading_a_mapped_array_hands_its_pages_back(tmp_path: Path) -> None:
    """Chunked reading of a read-only map keeps a chunk or two resident; plain reading keeps all."""
    from tensorbridge.files._common import chunks

    path = tmp_path / "x.bin"
    path.write_bytes(np.random.default_rng(0).bytes(64 * MIB))
    mapped = np.memmap(path, np.uint8, mode="r")
    before = _rss_file()
    seen = sum(int(c[::4096].sum()) for c in chunks(mapped))
    after_chunks = _rss_file()
    plain = int(np.asarray(mapped)[::4096].sum())
    after_plain = _rss_file()
    assert seen == plain
    assert after_chunks - before < 40 * MIB
    assert after_plain - after_chunks > 48 * MIB  # control: the same pages, kept


def test_a_tensor_saved_in_chunks_by_two_ranks_holds_about_one_chunk(tmp_path: Path) -> None:
    """A 192 MiB tensor saved by 2 ranks as two 96 MiB chunks converts to safetensors growing by
    about one chunk (it is assembled in a temporary file), and its values are exact."""
    from safetensors import safe_open

    from dcp_writer import BIG_MIB, big

    here = Path(__file__).resolve().parent
    ckpt = tmp_path / "ckpt"
    proc = subprocess.run(
        [sys.executable, str(here / "dcp_writer.py"), str(tmp_path / "rdv"), str(ckpt), "big"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    dst = tmp_path / "big.safetensors"
    grown = _grown(ckpt, dst, ["--skip-non-tensors"])
    assert grown < BIG_MIB // 2 * MIB + 64 * MIB, f"grew {grown / MIB:.0f} MiB"
    with safe_open(str(dst), "pt") as f:
        for name, t in big().items():
            assert torch.equal(f.get_tensor(name).view(torch.uint8), t.view(torch.uint8)), name
