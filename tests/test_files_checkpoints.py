"""Training checkpoints and tied weights: `.ckpt`, `.pt` → `.pt` as it is, safetensors aliases."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from filehelpers import bits
from tensorbridge.cli import main


def _model() -> torch.nn.Module:
    """A small model with tied input and output embeddings."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 10))
    model[1].weight = model[0].weight
    return model


def _training_checkpoint(path: Path) -> dict[str, object]:
    """Save a model + Adam state after two steps, an epoch, a tuple and a string; return it."""
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(2):
        model(torch.tensor([1, 2])).sum().backward()
        opt.step()
    ckpt = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": 3,
        "lrs": (0.1, 0.01),
        "note": "warmup done",
        "counts": {1: 5, 2: 7},
    }
    torch.save(ckpt, path)
    return ckpt


def _load(path: Path) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, weights_only=True)


def test_training_checkpoint_casts_to_bfloat16_and_loads_into_the_optimizer(
    tmp_path: Path,
) -> None:
    """A model + optimizer checkpoint casts with --float-dtype and loads back into Adam."""
    src, dst = tmp_path / "ckpt.pt", tmp_path / "ckpt_bf16.pt"
    ckpt = _training_checkpoint(src)
    assert main(["convert", str(src), str(dst), "--float-dtype", "bfloat16", "--verify", "-q"]) == 0
    out = _load(dst)
    assert isinstance(out, dict)
    assert out["epoch"] == 3 and out["lrs"] == (0.1, 0.01) and out["note"] == "warmup done"
    assert out["counts"] == {1: 5, 2: 7}
    assert list(out["optimizer"]["state"]) == [0, 1]  # integer keys stay integers
    assert out["optimizer"]["param_groups"] == ckpt["optimizer"]["param_groups"]  # type: ignore[index]
    for name, t in ckpt["model"].items():  # type: ignore[attr-defined]
        assert out["model"][name].dtype == torch.bfloat16
        assert torch.equal(out["model"][name], t.to(torch.bfloat16))
    model = _model().to(torch.bfloat16)
    model.load_state_dict(out["model"])
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    opt.load_state_dict(out["optimizer"])
    model(torch.tensor([3])).sum().backward()
    opt.step()
    assert opt.state_dict()["state"][0]["step"].item() == 3.0


def test_optimizer_step_counter_keeps_its_dtype(tmp_path: Path) -> None:
    """--float-dtype leaves a 0-d `step` counter alone (a bfloat16 counter stops at 256)."""
    src, dst = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save({"state": {0: {"step": torch.tensor(300.0), "exp_avg": torch.ones(2)}}}, src)
    assert main(["convert", str(src), str(dst), "--float-dtype", "bfloat16", "-q"]) == 0
    out = _load(dst)
    assert out["state"][0]["step"].dtype == torch.float32  # type: ignore[index]
    assert out["state"][0]["step"].item() == 300.0  # type: ignore[index]
    assert out["state"][0]["exp_avg"].dtype == torch.bfloat16  # type: ignore[index]
    assert torch.tensor(300.0).to(torch.bfloat16).add(1).item() != 301.0  # why it matters


def test_dtype_casts_every_tensor_keeping_the_structure(tmp_path: Path) -> None:
    """--dtype on .pt → .pt casts integers too, and keeps tuples and non-tensor values."""
    src, dst = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.save({"pair": (torch.arange(3), torch.ones(2)), "epoch": 1}, src)
    assert main(["convert", str(src), str(dst), "--dtype", "float64", "-q"]) == 0
    out = _load(dst)
    assert isinstance(out["pair"], tuple) and out["epoch"] == 1  # type: ignore[index]
    assert torch.equal(out["pair"][0], torch.arange(3, dtype=torch.float64))  # type: ignore[index]


def test_ckpt_is_a_pytorch_file(tmp_path: Path) -> None:
    """A Lightning-style `.ckpt` reads as PyTorch's format, and converts to `.ckpt` again."""
    src = tmp_path / "last.ckpt"
    torch.save({"state_dict": {"w": torch.arange(4.0)}, "epoch": 2, "global_step": 10}, src)
    dst = tmp_path / "w.safetensors"
    assert main(["convert", str(src), str(dst), "--skip-non-tensors", "-q"]) == 0
    with safe_open(str(dst), "pt") as f:
        assert torch.equal(f.get_tensor("state_dict.w"), torch.arange(4.0))
    again = tmp_path / "half.ckpt"
    assert main(["convert", str(src), str(again), "--float-dtype", "float16", "-q"]) == 0
    out = _load(again)
    assert out["epoch"] == 2 and out["state_dict"]["w"].dtype == torch.float16  # type: ignore[index]


def test_non_tensors_refused_by_tensor_only_formats_then_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint's epoch is refused by safetensors, naming it; --skip-non-tensors works."""
    src, dst = tmp_path / "ckpt.pt", tmp_path / "m.safetensors"
    _training_checkpoint(src)
    assert main(["convert", str(src), str(dst)]) == 1
    err = capsys.readouterr().err
    assert "epoch (int)" in err and "--skip-non-tensors" in err and err.count("\n") == 1
    assert not dst.exists()
    assert main(["convert", str(src), str(dst), "--skip-non-tensors", "-q"]) == 0
    with safe_open(str(dst), "pt") as f:
        names = list(f.keys())
    assert "epoch" not in names and "optimizer.state.0.exp_avg" in names


def test_tied_weights_are_stored_once_with_their_alias(tmp_path: Path) -> None:
    """Tied embeddings go to safetensors once, the alias in the metadata; safe_open reads it."""
    src, dst = tmp_path / "sd.pt", tmp_path / "m.safetensors"
    sd = _model().state_dict()
    torch.save(sd, src)
    assert main(["convert", str(src), str(dst), "--verify", "-q"]) == 0
    with safe_open(str(dst), "pt") as f:
        assert sorted(f.keys()) == ["0.weight", "1.bias"]
        assert json.loads(f.metadata()["tensorbridge.aliases"]) == {"1.weight": "0.weight"}
        assert torch.equal(f.get_tensor("0.weight"), sd["0.weight"])


def test_aliases_come_back_as_shared_storage_in_pt(tmp_path: Path) -> None:
    """safetensors with aliases → .pt gives the alias as the same storage, values exact."""
    src, mid, dst = tmp_path / "sd.pt", tmp_path / "m.safetensors", tmp_path / "back.pt"
    sd = _model().state_dict()
    torch.save(sd, src)
    assert main(["convert", str(src), str(mid), "-q"]) == 0
    assert main(["convert", str(mid), str(dst), "--verify", "-q"]) == 0
    out = _load(dst)
    assert out["1.weight"].data_ptr() == out["0.weight"].data_ptr()  # type: ignore[index]
    assert torch.equal(out["1.weight"], sd["1.weight"])  # type: ignore[index]
    model = _model()
    model.load_state_dict(out)  # type: ignore[arg-type]


def test_pt_to_pt_keeps_sharing_even_when_cast(tmp_path: Path) -> None:
    """.pt → .pt keeps tied and overlapping views sharing one storage, cast once."""
    src, dst = tmp_path / "a.pt", tmp_path / "b.pt"
    base = torch.arange(12, dtype=torch.float32)
    torch.save({"w": base, "tied": base, "row": base[4:8], "t": base.view(3, 4).t()}, src)
    assert main(["convert", str(src), str(dst), "--float-dtype", "float16", "-q"]) == 0
    out = _load(dst)
    ptr = out["w"].untyped_storage().data_ptr()  # type: ignore[index]
    for name in ("tied", "row", "t"):
        assert out[name].untyped_storage().data_ptr() == ptr, name  # type: ignore[index]
    assert torch.equal(out["t"], base.view(3, 4).t().half())  # type: ignore[index]
    assert torch.equal(out["row"], base[4:8].half())  # type: ignore[index]


def test_formats_without_aliases_get_a_copy(tmp_path: Path) -> None:
    """.npz cannot share: a tied weight is written under both names, values equal."""
    src, dst = tmp_path / "sd.pt", tmp_path / "m.npz"
    sd = _model().state_dict()
    torch.save(sd, src)
    assert main(["convert", str(src), str(dst), "--verify", "-q"]) == 0
    with np.load(dst, allow_pickle=False) as z:
        assert sorted(z.files) == ["0.weight", "1.bias", "1.weight"]
        assert bits(z["1.weight"]) == bits(sd["1.weight"])


def test_inspect_json_lists_aliases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """inspect --json of a tied state dict names the alias and lists the tensor once."""
    src = tmp_path / "sd.pt"
    torch.save(_model().state_dict(), src)
    assert main(["inspect", str(src), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["aliases"] == {"1.weight": "0.weight"}
    assert [t["name"] for t in info["tensors"]] == ["0.weight", "1.bias"]


def test_training_checkpoint_cast_as_a_subprocess(tmp_path: Path) -> None:
    """`python -m tensorbridge convert ckpt.pt out.pt --float-dtype bfloat16` exits 0."""
    src, dst = tmp_path / "ckpt.pt", tmp_path / "out.pt"
    _training_checkpoint(src)
    proc = subprocess.run(
        [sys.executable, "-m", "tensorbridge", "convert", str(src), str(dst),
         "--float-dtype", "bfloat16", "--verify"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "verified" in proc.stdout and "kept" in proc.stdout
    out = _load(dst)
    assert out["model"]["0.weight"].dtype == torch.bfloat16  # type: ignore[index]


def test_read_gives_tied_names_the_same_array(tmp_path: Path) -> None:
    """tensorbridge.files.read of a tied state dict returns both names, one array."""
    from tensorbridge import files

    src = tmp_path / "sd.pt"
    sd = _model().state_dict()
    torch.save(sd, src)
    arrays = files.read(src)
    assert sorted(arrays) == sorted(sd)
    assert arrays["1.weight"] is arrays["0.weight"]
    assert bits(arrays["1.weight"]) == bits(sd["1.weight"])
