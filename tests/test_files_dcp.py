"""torch.distributed.checkpoint directories: PyTorch's reader, and never a pickle that runs."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from safetensors import safe_open
from safetensors.torch import save_file

from dcp_writer import full
from filehelpers import bits
from tensorbridge.cli import main

HERE = Path(__file__).resolve().parent


class _Marker:
    """Unpickling this creates a directory: proof that a pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.makedirs, (self.path,))


def _save(state: dict[str, object], out: Path) -> None:
    """``dcp.save`` in this one process."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save(state, checkpoint_id=str(out), no_dist=True)


@pytest.fixture(scope="module")
def two_rank_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DCP checkpoint written by 2 processes over gloo from DTensor-sharded tensors."""
    root = tmp_path_factory.mktemp("dcp2")
    out = root / "ckpt"
    proc = subprocess.run(
        [sys.executable, str(HERE / "dcp_writer.py"), str(root / "rendezvous"), str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def test_two_process_checkpoint_converts_bit_for_bit(
    two_rank_checkpoint: Path, tmp_path: Path
) -> None:
    """Each rank's DTensor shards are assembled into the full tensors, bit for bit."""
    assert sorted(p.name for p in two_rank_checkpoint.iterdir()) == [
        ".metadata", "__0_0.distcp", "__1_0.distcp",
    ]  # fmt: skip
    dst = tmp_path / "full.safetensors"
    argv = ["convert", str(two_rank_checkpoint), str(dst), "--skip-non-tensors", "--verify", "-q"]
    assert main(argv) == 0
    with safe_open(str(dst), "pt") as f:
        found = {k: bits(f.get_tensor(k)) for k in list(f.keys())}
    assert found == {k: bits(v) for k, v in full().items()}


def test_two_process_checkpoint_to_pt_keeps_the_epoch(
    two_rank_checkpoint: Path, tmp_path: Path
) -> None:
    """DCP → .pt keeps non-tensor values (loaded with weights_only) beside the full tensors."""
    dst = tmp_path / "full.pt"
    assert main(["convert", str(two_rank_checkpoint), str(dst), "--verify", "-q"]) == 0
    out = torch.load(dst, weights_only=True)
    assert out["epoch"] == 7
    assert bits(out["model.w"]) == bits(full()["model.w"])  # flat keys stay flat


def test_inspect_dcp_json(two_rank_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """inspect --json of a DCP directory: tensors with global shapes, data files, values."""
    assert main(["inspect", str(two_rank_checkpoint), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "dcp"
    shapes = {t["name"]: t["shape"] for t in info["tensors"]}
    assert shapes == {k: list(v.shape) for k, v in full().items()}
    assert [s["file"] for s in info["shards"]] == ["__0_0.distcp", "__1_0.distcp"]
    assert info["non_tensors"] == {"epoch": "int"}


def test_dcp_as_a_subprocess(two_rank_checkpoint: Path, tmp_path: Path) -> None:
    """`python -m tensorbridge convert DCP_DIR out/ --max-shard-size` writes shards."""
    dst = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "tensorbridge", "convert", str(two_rank_checkpoint), str(dst),
         "--max-shard-size", "100B", "--skip-non-tensors"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    index = json.loads((dst / "model.safetensors.index.json").read_text())
    for name, shard in index["weight_map"].items():
        with safe_open(str(dst / shard), "pt") as f:
            assert bits(f.get_tensor(name)) == bits(full()[name])


def test_format_dcp_writes_what_pytorch_loads(tmp_path: Path) -> None:
    """--format dcp writes a checkpoint that dcp.load reads back exactly, with its values."""
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5)}
    src, dst = tmp_path / "m.pt", tmp_path / "ckpt"
    torch.save({"model": tensors, "epoch": 4}, src)
    assert main(["convert", str(src), str(dst), "--format", "dcp", "--verify", "-q"]) == 0
    target: dict[str, object] = {
        "model": {k: torch.empty_like(v) for k, v in tensors.items()},
        "epoch": 0,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.load(target, checkpoint_id=str(dst), no_dist=True)
    assert target["epoch"] == 4
    for name, t in tensors.items():
        assert bits(target["model"][name]) == bits(t)  # type: ignore[index]


def test_format_dcp_needs_force_to_replace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An existing DCP DST needs --force; a directory that is not a checkpoint is never replaced."""
    src = tmp_path / "m.safetensors"
    save_file({"w": torch.ones(2)}, str(src))
    dst = tmp_path / "ckpt"
    assert main(["convert", str(src), str(dst), "--format", "dcp", "-q"]) == 0
    assert main(["convert", str(src), str(dst), "--format", "dcp"]) == 2
    assert main(["convert", str(src), str(dst), "--format", "dcp", "--force", "-q"]) == 0
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"meow")
    assert main(["convert", str(src), str(other), "--format", "dcp", "--force"]) == 2
    assert "not a DCP checkpoint" in capsys.readouterr().err
    assert (other / "cat.jpg").read_bytes() == b"meow"


def test_malicious_metadata_is_refused_and_never_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A .metadata that would create a marker is refused, naming the class; no marker appears."""
    ckpt, marker = tmp_path / "ckpt", tmp_path / "PWNED"
    _save({"w": torch.ones(2)}, ckpt)
    (ckpt / ".metadata").write_bytes(pickle.dumps(_Marker(marker)))
    for argv in (["inspect", str(ckpt)], ["convert", str(ckpt), str(tmp_path / "o.pt")]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("tensorbridge: error: refused:") and err.count("\n") == 1
        assert "posix.makedirs" in err or "os.makedirs" in err
    assert not marker.exists() and not (tmp_path / "o.pt").exists()


def test_malicious_object_inside_real_metadata_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real DCP Metadata carrying one foreign object is refused as a whole, unrun."""
    ckpt, marker = tmp_path / "ckpt", tmp_path / "PWNED"
    _save({"w": torch.ones(2)}, ckpt)
    with open(ckpt / ".metadata", "rb") as f:
        meta = pickle.load(f)  # the test's own file, written just above
    meta.planner_data = {"w": _Marker(marker)}
    (ckpt / ".metadata").write_bytes(pickle.dumps(meta))
    assert main(["inspect", str(ckpt)]) == 1
    assert "refused" in capsys.readouterr().err
    assert not marker.exists()


def test_malicious_value_is_refused_and_never_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A non-tensor value whose pickle would run code is refused (weights_only), unrun."""
    ckpt, marker = tmp_path / "ckpt", tmp_path / "PWNED"
    _save({"w": torch.ones(2), "evil": _Marker(marker)}, ckpt)
    assert not marker.exists()  # dcp.save pickled it; nothing has unpickled it yet
    assert main(["convert", str(ckpt), str(tmp_path / "o.pt")]) == 1
    err = capsys.readouterr().err
    assert "refused" in err and "weights_only" in err and err.count("\n") == 1
    assert not marker.exists()


def test_data_file_outside_the_checkpoint_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Metadata pointing at ../ for its data is refused before anything is read."""
    ckpt = tmp_path / "ckpt"
    _save({"w": torch.ones(2)}, ckpt)
    with open(ckpt / ".metadata", "rb") as f:
        meta = pickle.load(f)  # the test's own file, written just above
    for info in meta.storage_data.values():
        info.relative_path = "../secret.distcp"
    (ckpt / ".metadata").write_bytes(pickle.dumps(meta))
    assert main(["inspect", str(ckpt)]) == 1
    assert "../secret.distcp" in capsys.readouterr().err


def test_a_missing_rank_chunk_is_refused_not_left_as_garbage(
    two_rank_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Metadata whose chunks no longer cover a tensor is refused instead of read with a gap."""
    import shutil

    ckpt = tmp_path / "ckpt"
    shutil.copytree(two_rank_checkpoint, ckpt)
    with open(ckpt / ".metadata", "rb") as f:
        meta = pickle.load(f)  # the test's own checkpoint
    meta.state_dict_metadata["model.w"].chunks.pop()
    (ckpt / ".metadata").write_bytes(pickle.dumps(meta))
    dst = tmp_path / "out.safetensors"
    assert main(["convert", str(ckpt), str(dst), "--skip-non-tensors"]) == 1
    err = capsys.readouterr().err
    assert "'model.w'" in err and "12 of its 24 elements" in err and err.count("\n") == 1
    assert not dst.exists()


def test_format_dcp_of_a_large_model_spans_data_files_pytorch_loads(tmp_path: Path) -> None:
    """A model larger than one write batch is written as several data files, and PyTorch's own
    dcp.load reads every tensor (a sharded safetensors source, cast to bfloat16, tied weights)."""
    gen = torch.Generator().manual_seed(5)
    tensors = {f"layer.{i}.w": torch.randn(1024, 1024 * 10, generator=gen) for i in range(4)}
    tensors["bias"] = torch.randn(7, generator=gen)
    src, dst = tmp_path / "m.pt", tmp_path / "ckpt"
    torch.save(tensors, src)
    shards = tmp_path / "shards" / "model.safetensors.index.json"
    assert main(["convert", str(src), str(shards), "--max-shard-size", "60MB", "-q"]) == 0
    argv = ["convert", str(shards), str(dst), "--format", "dcp", "--float-dtype", "bfloat16"]
    assert main([*argv, "--verify", "-q"]) == 0
    assert len(list(dst.glob("*.distcp"))) >= 2
    target = {k: torch.empty(v.shape, dtype=torch.bfloat16) for k, v in tensors.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.load(target, checkpoint_id=str(dst), no_dist=True)
    for name, t in tensors.items():
        assert bits(target[name]) == bits(t.to(torch.bfloat16)), name


def test_a_tensor_saved_as_one_chunk_and_a_0d_tensor_read_exactly(tmp_path: Path) -> None:
    """A tensor saved whole (its one chunk kept as PyTorch's reader decodes it) and a 0-d tensor
    read back exactly (tensors saved in chunks by 2 ranks: the tests above and the memory test)."""
    whole = torch.randn(64, 3, generator=torch.Generator().manual_seed(2))
    _save({"whole": whole, "n": torch.tensor(3)}, tmp_path / "ckpt")
    dst = tmp_path / "out.safetensors"
    assert main(["convert", str(tmp_path / "ckpt"), str(dst), "--verify", "-q"]) == 0
    with safe_open(str(dst), "pt") as f:
        assert bits(f.get_tensor("whole")) == bits(whole)
        assert bits(f.get_tensor("n")) == bits(torch.tensor(3))


def _trained() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A small model and its Adam optimizer after one step (its state is set)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(5, 4)).sum().backward()
    opt.step()
    return model, opt


def test_pt_to_dcp_and_back_keeps_the_optimizer_state_keyed_by_parameter(tmp_path: Path) -> None:
    """A .pt training checkpoint (Adam's state keyed 0..n-1) → DCP → .pt: the state comes back
    keyed by integers, so load_state_dict attaches it to the parameters; dcp.load of the user's
    own state dicts reads the DCP checkpoint too."""
    model, opt = _trained()
    src, ckpt, back = tmp_path / "ck.pt", tmp_path / "ckpt", tmp_path / "back.pt"
    torch.save({"model": model.state_dict(), "optim": opt.state_dict(), "epoch": 3}, src)
    assert main(["convert", str(src), str(ckpt), "--format", "dcp", "--verify", "-q"]) == 0
    assert main(["convert", str(ckpt), str(back), "--verify", "-q"]) == 0
    loaded = torch.load(back, weights_only=True)
    assert sorted(loaded["optim"]["state"]) == [0, 1, 2, 3]
    fresh = torch.optim.Adam(model.parameters(), lr=1e-3)
    fresh.load_state_dict(loaded["optim"])
    for p in model.parameters():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert bits(fresh.state[p][key]) == bits(opt.state[p][key])
    fresh.step()
    target = {"model": model.state_dict(), "optim": fresh.state_dict(), "epoch": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.load(target, checkpoint_id=str(ckpt), no_dist=True)
    assert target["epoch"] == 3


def test_a_dcp_training_checkpoint_becomes_a_pt_that_set_state_dict_loads(tmp_path: Path) -> None:
    """A DCP checkpoint of get_state_dict's model and optimizer (keyed by parameter names) →
    .pt: set_state_dict loads it into a fresh model and optimizer, values exact, and a step runs."""
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model, opt = _trained()
    ckpt, out = tmp_path / "ckpt", tmp_path / "ck.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model_sd, optim_sd = get_state_dict(model, opt)
        dcp.save(
            {"model": model_sd, "optim": optim_sd, "epoch": 3},
            checkpoint_id=str(ckpt),
            no_dist=True,
        )
    assert main(["convert", str(ckpt), str(out), "--verify", "-q"]) == 0
    loaded = torch.load(out, weights_only=True)
    assert loaded["epoch"] == 3
    torch.manual_seed(1)
    model2 = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    opt2 = torch.optim.Adam(model2.parameters(), lr=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        set_state_dict(
            model2, opt2, model_state_dict=loaded["model"], optim_state_dict=loaded["optim"]
        )
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert bits(q) == bits(p)
        assert bits(opt2.state[q]["exp_avg"]) == bits(opt.state[p]["exp_avg"])
    model2(torch.randn(5, 4)).sum().backward()
    opt2.step()
