"""Nested checkpoints keep their container types through flat-named files: dicts with integer
keys stay dicts, tuples stay tuples, lists stay lists (safetensors, sharded directories)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

import tensorbridge.files as tf
from filehelpers import bits
from tensorbridge.cli import main


def _load(path: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(path, weights_only=True)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))


def _checkpoint(path: Path) -> dict[str, Any]:
    """Save a model and its Adam state after one step, with an epoch; return what was saved."""
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.ones(2, 4)).sum().backward()
    opt.step()
    ckpt = {"model": model.state_dict(), "optim": opt.state_dict(), "epoch": 3}
    torch.save(ckpt, path)
    return ckpt


def _same(a: Any, b: Any, where: str = "obj") -> None:
    """Assert ``b`` has ``a``'s container types (a mapping comes back a plain dict), keys (in
    order) and tensor bits."""
    expected = dict if isinstance(a, dict) else type(a)
    assert type(b) is expected, f"{where}: {type(b).__name__}, expected {expected.__name__}"
    if isinstance(a, torch.Tensor):
        assert bits(a) == bits(b), f"{where}: tensor bits differ"
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(b)}, expected {list(a)}"
        for key in a:
            _same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: {len(b)} items, expected {len(a)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {b!r}, expected {a!r}"


def _resume(ckpt: dict[str, Any], loaded: dict[str, Any]) -> None:
    """Load the round-tripped state into a fresh model and Adam, and take one more step."""
    model = _model()
    model.load_state_dict(loaded["model"])
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    # param_groups are not tensors: safetensors cannot hold them (--skip-non-tensors left
    # them out), so they come from the optimizer built with the same settings
    opt.load_state_dict({"state": loaded["optim"]["state"], **_groups(opt)})
    assert list(opt.state_dict()["state"]) == list(ckpt["optim"]["state"])
    for i, state in ckpt["optim"]["state"].items():
        for name, value in state.items():
            assert bits(opt.state_dict()["state"][i][name]) == bits(value)
    model(torch.ones(2, 4)).sum().backward()
    opt.step()
    assert opt.state_dict()["state"][0]["step"].item() == 2.0


def _groups(opt: torch.optim.Optimizer) -> dict[str, Any]:
    return {"param_groups": opt.state_dict()["param_groups"]}


def _tensors_only(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint without what --skip-non-tensors leaves out (epoch, param_groups)."""
    return {"model": ckpt["model"], "optim": {"state": ckpt["optim"]["state"]}}


def _record(out: Path) -> Any:
    """The container record of a written file or shard index, read without tensorbridge."""
    if out.suffix == ".safetensors":
        with safe_open(str(out), "pt") as f:
            assert "optim.state.0.exp_avg" in list(f.keys())
            return json.loads(f.metadata()["tensorbridge.containers"])
    index = out if out.suffix == ".json" else out / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    assert len(set(data["weight_map"].values())) >= 2  # really sharded
    return data["metadata"]["tensorbridge.containers"]


@pytest.mark.parametrize("mid", ["ckpt.safetensors", "shards", "bin/pytorch_model.bin.index.json"])
def test_optimizer_state_round_trips(tmp_path: Path, mid: str) -> None:
    """.pt → .safetensors or shards (≥ 2) → .pt gives back the optimizer's integer-keyed state
    and every bit; Adam resumes from it."""
    src, out, dst = tmp_path / "ckpt.pt", tmp_path / mid, tmp_path / "back.pt"
    ckpt = _checkpoint(src)
    shards = [] if out.suffix == ".safetensors" else ["--max-shard-size", "64B"]
    assert main(["convert", str(src), str(out), "--skip-non-tensors", *shards, "--verify"]) == 0
    assert _record(out) == {"dict": [["optim", "state"]]}
    assert main(["convert", str(out), str(dst), "--verify", "-q"]) == 0
    loaded = _load(dst)
    _same(_tensors_only(ckpt), loaded)
    _resume(ckpt, loaded)


def test_python_write_keeps_the_containers(tmp_path: Path) -> None:
    """``tensorbridge.files.write`` records them too: its .safetensors converts back exactly."""
    tree = {"state": {0: np.arange(3.0), 1: np.ones(2, np.float32)}, "pair": (np.zeros(1),)}
    tf.write(tmp_path / "a.safetensors", tree)
    assert main(["convert", str(tmp_path / "a.safetensors"), str(tmp_path / "b.pt"), "-q"]) == 0
    expected = {
        "state": {0: torch.from_numpy(tree["state"][0]), 1: torch.from_numpy(tree["state"][1])},
        "pair": (torch.from_numpy(tree["pair"][0]),),
    }
    _same(expected, _load(tmp_path / "b.pt"))


def test_round_trip_as_a_subprocess(tmp_path: Path) -> None:
    """`python -m tensorbridge convert` there and back keeps tuples and integer keys."""
    src, mid, dst = tmp_path / "a.pt", tmp_path / "a.safetensors", tmp_path / "b.pt"
    tree = {"pair": (torch.ones(2), torch.zeros(1)), "state": {0: torch.arange(3)}}
    torch.save(tree, src)
    for a, b in ((src, mid), (mid, dst)):
        proc = subprocess.run(
            [sys.executable, "-m", "tensorbridge", "convert", str(a), str(b), "--verify"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    _same(tree, _load(dst))


def test_sparse_and_negative_integer_keys_and_a_tuple_root(tmp_path: Path) -> None:
    """Integer keys not 0..n-1 stay integers, a tuple at the top stays a tuple."""
    tree = ({3: torch.ones(1), 7: torch.zeros(2), -1: torch.ones(3)}, [torch.ones(1)])
    torch.save(tree, tmp_path / "a.pt")
    assert main(["convert", str(tmp_path / "a.pt"), str(tmp_path / "b.safetensors"), "-q"]) == 0
    assert main(["convert", str(tmp_path / "b.safetensors"), str(tmp_path / "c.pt"), "-q"]) == 0
    _same(tree, _load(tmp_path / "c.pt"))


def test_string_keyed_trees_record_no_containers(tmp_path: Path) -> None:
    """Dicts with string keys and lists need no record: the metadata holds only the key paths."""
    tree = {"enc": {"layers": [torch.ones(1), torch.ones(2)]}, "head": torch.zeros(1)}
    torch.save(tree, tmp_path / "a.pt")
    assert main(["convert", str(tmp_path / "a.pt"), str(tmp_path / "b.safetensors"), "-q"]) == 0
    with safe_open(str(tmp_path / "b.safetensors"), "pt") as f:
        assert "tensorbridge.paths" in f.metadata()
        assert "tensorbridge.containers" not in f.metadata()
    assert main(["convert", str(tmp_path / "b.safetensors"), str(tmp_path / "c.pt"), "-q"]) == 0
    _same(tree, _load(tmp_path / "c.pt"))


def test_files_without_the_record_read_as_before(tmp_path: Path) -> None:
    """A file with key paths but no container record (older versions) gives lists for 0..n-1."""
    paths = {"state.0": ["state", 0], "state.1": ["state", 1], "odd.3": ["odd", 3]}
    tensors = {name: torch.full((2,), float(i)) for i, name in enumerate(paths)}
    save_file(tensors, str(tmp_path / "old.safetensors"), {"tensorbridge.paths": json.dumps(paths)})
    assert main(["convert", str(tmp_path / "old.safetensors"), str(tmp_path / "a.pt"), "-q"]) == 0
    back = _load(tmp_path / "a.pt")
    assert isinstance(back["state"], list) and list(back["odd"]) == [3]
    assert bits(back["state"][1]) == bits(tensors["state.1"])


def test_corrupt_record_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A container record that is not the documented shape is refused in one line, exit 1."""
    meta = {"tensorbridge.paths": json.dumps({"s.0": ["s", 0]}), "tensorbridge.containers": "[1]"}
    save_file({"s.0": torch.ones(1)}, str(tmp_path / "bad.safetensors"), meta)
    assert main(["convert", str(tmp_path / "bad.safetensors"), str(tmp_path / "a.pt")]) == 1
    err = capsys.readouterr().err
    assert "corrupt 'tensorbridge.containers' metadata" in err and err.count("\n") == 1
    assert not (tmp_path / "a.pt").exists()


def test_inspect_reads_such_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`inspect` (text and --json) lists the tensors of a file and of shards with the record, in
    the source's order (the index's weight_map is sorted by name)."""
    src = tmp_path / "ckpt.pt"
    ckpt = _checkpoint(src)
    names = [f"model.{k}" for k in ckpt["model"]] + [
        f"optim.state.{i}.{k}" for i, state in ckpt["optim"]["state"].items() for k in state
    ]
    one, many = tmp_path / "c.safetensors", tmp_path / "shards"
    assert main(["convert", str(src), str(one), "--skip-non-tensors", "-q"]) == 0
    args = ["--skip-non-tensors", "--max-shard-size", "64B", "-q"]
    assert main(["convert", str(src), str(many), *args]) == 0
    capsys.readouterr()
    for path in (one, many):
        assert main(["inspect", str(path)]) == 0
        assert "optim.state.1.exp_avg_sq" in capsys.readouterr().out
        assert main(["inspect", str(path), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert [t["name"] for t in info["tensors"]] == names  # the source's order, shards too
        assert "tensorbridge.containers" not in info["metadata"]


def test_shards_list_tensors_in_the_source_order(tmp_path: Path) -> None:
    """Shards are read in the source's order, not the sorted weight_map's: `inspect` lists them
    so and the .pt written from them keeps the key order."""
    tree = {
        "m": {"z": torch.ones(25), "a": torch.zeros(25)},
        "s": {1: torch.ones(1), 0: torch.ones(2)},
    }
    torch.save(tree, tmp_path / "a.pt")
    args = ["--max-shard-size", "100B", "-q"]
    assert main(["convert", str(tmp_path / "a.pt"), str(tmp_path / "shards"), *args]) == 0
    weight_map = json.loads((tmp_path / "shards/model.safetensors.index.json").read_text())
    assert list(weight_map["weight_map"]) == ["m.a", "m.z", "s.0", "s.1"]  # sorted by name
    assert [e.name for e in tf.inspect(tmp_path / "shards").entries] == ["m.z", "m.a", "s.1", "s.0"]
    assert main(["convert", str(tmp_path / "shards"), str(tmp_path / "b.pt"), "-q"]) == 0
    _same(tree, _load(tmp_path / "b.pt"))


# ------------------------------------------------------------------------------ properties

_DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.uint8]


@st.composite
def _tensors(draw: Any) -> torch.Tensor:
    """A small tensor whose bits are random: NaN payloads, -0.0 and infinities all appear."""
    dtype = draw(st.sampled_from(_DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 3), max_size=2)))
    n = 1
    for side in shape:
        n *= side
    size = torch.empty(0, dtype=dtype).element_size()
    raw = draw(st.binary(min_size=n * size, max_size=n * size))
    return torch.tensor(list(raw), dtype=torch.uint8).view(dtype).reshape(shape)


_keys = st.one_of(st.text("ab_01", min_size=1, max_size=3), st.integers(-2, 6))


def _nodes(children: Any) -> Any:
    """Non-empty dicts (string keys, digit strings too, and integer keys), lists and tuples of
    ``children``; no dict holds both ``1`` and ``"1"`` (they would share a dotted name)."""
    return st.one_of(
        st.dictionaries(_keys, children, min_size=1, max_size=4).filter(
            lambda d: len({str(k) for k in d}) == len(d)
        ),
        st.lists(children, min_size=1, max_size=3),
        st.lists(children, min_size=1, max_size=3).map(tuple),
    )


_trees = _nodes(st.recursive(_tensors(), _nodes, max_leaves=8))


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=_trees)
def test_container_types_and_bits_survive_safetensors_and_shards(tree: Any) -> None:
    """Random nested trees come back from .safetensors and from shards with the same types, keys
    and bits (NaN payloads and -0.0 included)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        torch.save(tree, root / "a.pt")
        assert main(["convert", str(root / "a.pt"), str(root / "b.safetensors"), "-q"]) == 0
        assert main(["convert", str(root / "b.safetensors"), str(root / "c.pt"), "-q"]) == 0
        _same(tree, _load(root / "c.pt"))
        args = ["--max-shard-size", "16B", "-q"]
        assert main(["convert", str(root / "a.pt"), str(root / "shards"), *args]) == 0
        assert main(["convert", str(root / "shards"), str(root / "d.pt"), "-q"]) == 0
        _same(tree, _load(root / "d.pt"))


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    tree=st.dictionaries(
        _keys, st.recursive(_tensors(), _nodes, max_leaves=8), min_size=1, max_size=4
    ).filter(lambda d: len({str(k) for k in d}) == len(d))
)
def test_dict_keys_and_bits_survive_a_dcp_round_trip(tree: Any) -> None:
    """Random state dicts (integer and digit-string keys side by side, lists, tuples) → DCP →
    .pt come back with the same keys, container types and bits."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        torch.save(tree, root / "a.pt")
        argv = ["convert", str(root / "a.pt"), str(root / "ckpt"), "--format", "dcp", "--verify"]
        assert main([*argv, "-q"]) == 0
        assert main(["convert", str(root / "ckpt"), str(root / "c.pt"), "--verify", "-q"]) == 0
        _same(tree, _load(root / "c.pt"))
