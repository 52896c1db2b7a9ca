"""Checkpoints tensorbridge writes, loaded by the loader people use: ``from_pretrained``."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tensorbridge.cli import main

transformers = pytest.importorskip("transformers")

IDS = torch.arange(12).reshape(1, 12)


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    """transformers' own progress bars and warnings (about the tiny config) stay out of the way."""
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=16, bos_token_id=0,
        eos_token_id=0,
    )  # fmt: skip
    return transformers.GPT2LMHeadModel(config).eval()


def _logits(folder: Path, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    model = transformers.GPT2LMHeadModel.from_pretrained(str(folder), dtype=dtype).eval()
    with torch.no_grad():
        return model(IDS).logits


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GPT-2 (tied embeddings) saved by ``save_pretrained`` as 4 safetensors shards."""
    folder = tmp_path_factory.mktemp("hf") / "model"
    transformers.utils.logging.disable_progress_bar()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _model().save_pretrained(str(folder), max_shard_size="40KB")
    assert len(list(folder.glob("model-*.safetensors"))) >= 2
    return folder


def test_bin_shards_load_with_from_pretrained(saved: Path, tmp_path: Path) -> None:
    """safetensors shards → ``pytorch_model.bin`` shards: the model loads and computes the same
    logits, bit for bit."""
    out = tmp_path / "bin"
    src, dst = saved / "model.safetensors.index.json", out / "pytorch_model.bin.index.json"
    assert main(["convert", str(src), str(dst), "--max-shard-size", "40KB", "--verify", "-q"]) == 0
    assert len(list(out.glob("pytorch_model-*.bin"))) >= 2
    shutil.copy(saved / "config.json", out / "config.json")
    assert torch.equal(_logits(out), _logits(saved))


def test_bfloat16_shards_load_as_the_model_cast(saved: Path, tmp_path: Path) -> None:
    """``--float-dtype bfloat16`` shards load as ``from_pretrained(dtype=bfloat16)`` of the
    original, with the same logits."""
    out = tmp_path / "bf16"
    argv = ["convert", str(saved), str(out), "--max-shard-size", "40KB"]
    assert main([*argv, "--float-dtype", "bfloat16", "--verify", "-q"]) == 0
    shutil.copy(saved / "config.json", out / "config.json")
    assert torch.equal(_logits(out, torch.bfloat16), _logits(saved, torch.bfloat16))


def test_a_dcp_checkpoint_becomes_a_model_from_pretrained_loads(
    saved: Path, tmp_path: Path
) -> None:
    """A DCP checkpoint of the model's state dict → safetensors shards beside its config: the
    model loads with the trained values."""
    import torch.distributed.checkpoint as dcp

    model = transformers.GPT2LMHeadModel.from_pretrained(str(saved)).eval()
    ckpt, out = tmp_path / "ckpt", tmp_path / "from_dcp"
    dcp.save(model.state_dict(), checkpoint_id=str(ckpt), no_dist=True)
    assert main(["convert", str(ckpt), str(out), "--max-shard-size", "40KB", "-q"]) == 0
    shutil.copy(saved / "config.json", out / "config.json")
    assert torch.equal(_logits(out), _logits(saved))
