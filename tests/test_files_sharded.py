"""Sharded checkpoints: Hugging Face index files and directories, in and out, checked on read."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

from filehelpers import bits, make_tensor
from tensorbridge import files
from tensorbridge.cli import main


def _state(n: int = 6, numel: int = 250) -> dict[str, torch.Tensor]:
    """``n`` float32 tensors of ``numel`` elements (1000 bytes each), random bits."""
    return {f"layer.{i}.weight": make_tensor("float32", i, (numel,)) for i in range(n)}


def _hf_checkpoint(folder: Path, state: dict[str, torch.Tensor], per_shard: int = 2) -> Path:
    """Shards and an index written the way Hugging Face writes them (safetensors' own writer)."""
    folder.mkdir()
    names = list(state)
    groups = [names[i : i + per_shard] for i in range(0, len(names), per_shard)]
    weight_map = {}
    for k, group in enumerate(groups, 1):
        shard = f"model-{k:05d}-of-{len(groups):05d}.safetensors"
        save_file({n: state[n] for n in group}, str(folder / shard), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(group, shard))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    path = folder / "model.safetensors.index.json"
    path.write_text(json.dumps(index))
    return path


def _read_sharded(index: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a sharded checkpoint, read as loaders do: the weight_map, then safe_open."""
    data = json.loads(index.read_text())
    out = {}
    for name, shard in data["weight_map"].items():
        with safe_open(str(index.parent / shard), "pt") as f:
            out[name] = f.get_tensor(name)
    return out


@pytest.mark.parametrize(
    ("size", "per_shard"),
    [("2000", 2), ("2KB", 2), ("3KB", 3), ("1KiB", 1), ("16Kb", 2)],
    ids=["bytes", "KB", "3KB", "KiB", "kilobits"],
)
def test_max_shard_size_splits_as_hugging_face_reads_sizes(
    tmp_path: Path, size: str, per_shard: int
) -> None:
    """--max-shard-size N: KB = 1000 bytes, KiB = 1024, Kb = 1000 bits; each shard fits."""
    state = _state()  # six tensors of 1000 bytes
    src, dst = tmp_path / "m.pt", tmp_path / "out"
    torch.save(state, src)
    assert main(["convert", str(src), str(dst), "--max-shard-size", size, "--verify", "-q"]) == 0
    n = -(-len(state) // per_shard)
    expected = [f"model-{k:05d}-of-{n:05d}.safetensors" for k in range(1, n + 1)]
    assert sorted(os.listdir(dst)) == [*expected, "model.safetensors.index.json"]
    index = json.loads((dst / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == 6000
    assert set(index["weight_map"].values()) == set(expected)
    assert list(index["weight_map"].values()).count(expected[0]) == per_shard
    found = _read_sharded(dst / "model.safetensors.index.json")
    assert {k: bits(v) for k, v in found.items()} == {k: bits(v) for k, v in state.items()}


def test_a_tensor_bigger_than_the_shard_size_gets_a_shard_of_its_own(tmp_path: Path) -> None:
    """A tensor over --max-shard-size is not split: it is alone in its shard."""
    state = {"small": torch.ones(10), "big": torch.ones(1000), "tail": torch.ones(10)}
    src, dst = tmp_path / "m.safetensors", tmp_path / "out"
    save_file(state, str(src))
    assert main(["convert", str(src), str(dst), "--max-shard-size", "1000", "-q"]) == 0
    index = json.loads((dst / "model.safetensors.index.json").read_text())
    shards = index["weight_map"]
    assert shards["big"] not in (shards["small"], shards["tail"])


def test_bin_index_destination_writes_pytorch_shards(tmp_path: Path) -> None:
    """DST pytorch_model.bin.index.json writes pytorch_model-0000k-of-0000N.bin shards."""
    state = _state(4)
    src, dst = tmp_path / "m.pt", tmp_path / "out" / "pytorch_model.bin.index.json"
    torch.save(state, src)
    assert main(["convert", str(src), str(dst), "--max-shard-size", "2KB", "-q"]) == 0
    index = json.loads(dst.read_text())
    assert sorted(set(index["weight_map"].values())) == [
        "pytorch_model-00001-of-00002.bin",
        "pytorch_model-00002-of-00002.bin",
    ]
    for name, shard in index["weight_map"].items():
        loaded = torch.load(dst.parent / shard, weights_only=True)
        assert bits(loaded[name]) == bits(state[name])


def test_hugging_face_shards_read_through_index_or_directory(tmp_path: Path) -> None:
    """An index file and its directory both read as one checkpoint, into one file."""
    state = _state()
    index = _hf_checkpoint(tmp_path / "hf", state)
    for src in (index, index.parent):
        dst = tmp_path / f"{src.name}.safetensors"
        assert main(["convert", str(src), str(dst), "--verify", "-q"]) == 0
        with safe_open(str(dst), "pt") as f:
            names = list(f.keys())
            assert {k: bits(f.get_tensor(k)) for k in names} == {
                k: bits(v) for k, v in state.items()
            }


def _break(index: Path, how: str) -> str:
    """Damage a good checkpoint in one way; return a word the error line must hold."""
    data = json.loads(index.read_text())
    folder = index.parent
    if how == "missing shard":
        (folder / "model-00002-of-00003.safetensors").unlink()
        return "model-00002-of-00003.safetensors"
    if how == "unindexed tensor":
        del data["weight_map"]["layer.3.weight"]
        index.write_text(json.dumps(data))
        return "does not list"
    if how == "stray shard":
        save_file({"stray": torch.ones(2)}, str(folder / "model-00004-of-00003.safetensors"))
        data["weight_map"]["layer.0.bias"] = "model-00004-of-00003.safetensors"
        index.write_text(json.dumps(data))
        return "'stray'"
    if how == "wrong shard":
        data["weight_map"]["layer.0.weight"] = "model-00002-of-00003.safetensors"
        index.write_text(json.dumps(data))
        return "layer.0.weight"
    if how == "twice in the index":
        text = index.read_text().replace(
            '"weight_map": {',
            '"weight_map": {"layer.1.weight": "model-00001-of-00003.safetensors", ',
        )
        index.write_text(text)
        return "twice"
    if how == "in two shards":
        shard = folder / "model-00002-of-00003.safetensors"
        with safe_open(str(shard), "pt") as f:
            names = list(f.keys())
            both = {k: f.get_tensor(k) for k in names}
        both["layer.0.weight"] = torch.ones(2)
        save_file(both, str(shard))
        return "exactly one shard"
    if how == "shard outside":
        data["weight_map"]["layer.0.weight"] = "../model-00001-of-00003.safetensors"
        index.write_text(json.dumps(data))
        return "unsafe"
    raise AssertionError(how)


BREAKS = [
    "missing shard",
    "unindexed tensor",
    "stray shard",
    "wrong shard",
    "twice in the index",
    "in two shards",
    "shard outside",
]


@pytest.mark.parametrize("how", BREAKS)
@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_index_checks_fail_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str, command: str
) -> None:
    """Every index that disagrees with its shards is one error line, exit 1, nothing written."""
    index = _hf_checkpoint(tmp_path / "hf", _state())
    word = _break(index, how)
    dst = tmp_path / "out.safetensors"
    argv = ["inspect", str(index)] if command == "inspect" else ["convert", str(index), str(dst)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("tensorbridge: error: ") and err.count("\n") == 1, err
    assert word in err, err
    assert not dst.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


def test_inspect_directory_json_reports_shards_totals_and_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """inspect DIR --json: every tensor, every shard with its size, the index check and total."""
    state = _state()
    index = _hf_checkpoint(tmp_path / "hf", state)
    assert main(["inspect", str(index.parent), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "sharded safetensors"
    assert info["total_tensors"] == 6 and info["total_bytes"] == 6000
    assert info["index_total_size"] == 6000 and info["index_check"].startswith("ok")
    assert [s["file"] for s in info["shards"]] == sorted(
        set(json.loads(index.read_text())["weight_map"].values())
    )
    assert sum(s["file_bytes"] for s in info["shards"]) == sum(
        p.stat().st_size for p in index.parent.glob("*.safetensors")
    )
    assert main(["inspect", str(index.parent)]) == 0
    out = capsys.readouterr().out
    assert "index check: ok" in out and "model-00003-of-00003.safetensors" in out


def test_destination_directory_appears_complete_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while writing the second shard leaves no DST directory and no temporary."""
    src, dst = tmp_path / "m.pt", tmp_path / "out"
    torch.save(_state(), src)
    real = files.safetensors.write
    calls = []

    def failing(path: Path, *args: object) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(files.safetensors, "write", failing)
    assert main(["convert", str(src), str(dst), "--max-shard-size", "2KB"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_existing_checkpoint_in_destination_needs_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Shards into a folder that already holds a checkpoint need --force; other files stay."""
    src, dst = tmp_path / "m.pt", tmp_path / "model"
    torch.save(_state(), src)
    dst.mkdir()
    (dst / "config.json").write_text("{}")
    assert main(["convert", str(src), str(dst), "--max-shard-size", "2KB", "-q"]) == 0
    assert main(["convert", str(src), str(dst), "--max-shard-size", "3KB"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["convert", str(src), str(dst), "--max-shard-size", "3KB", "--force", "-q"]) == 0
    assert sorted(os.listdir(dst)) == [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    ]


@pytest.mark.parametrize("size", ["5 GB ", "lots", "0", "-1GB", "5XB"])
def test_bad_shard_sizes_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], size: str
) -> None:
    """A size Hugging Face would not read is a usage error naming the accepted spellings."""
    src = tmp_path / "m.pt"
    torch.save(_state(1), src)
    code = main(["convert", str(src), str(tmp_path / "out"), f"--max-shard-size={size}"])
    if size == "5 GB ":
        assert code == 0  # surrounding spaces are tolerated, as int() tolerates them
        return
    assert code == 2
    assert "5GB" in capsys.readouterr().err


def test_max_shard_size_needs_a_sharded_destination(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--max-shard-size with DST a single file is refused; the suggested DST works."""
    src = tmp_path / "m.pt"
    torch.save(_state(2), src)
    assert (
        main(["convert", str(src), str(tmp_path / "m.safetensors"), "--max-shard-size", "1KB"]) == 2
    )
    assert "out/model.safetensors.index.json" in capsys.readouterr().err
    dst = tmp_path / "out" / "model.safetensors.index.json"
    assert main(["convert", str(src), str(dst), "--max-shard-size", "1KB", "-q"]) == 0
    assert len(_read_sharded(dst)) == 2


def test_shards_back_to_shards_with_a_cast(tmp_path: Path) -> None:
    """Sharded → sharded with --dtype bfloat16: every tensor cast, checked with safe_open."""
    state = _state()
    index = _hf_checkpoint(tmp_path / "hf", state)
    dst = tmp_path / "bf16"
    argv = ["convert", str(index), str(dst), "--dtype", "bfloat16", "--max-shard-size", "1KB"]
    assert main([*argv, "--verify", "-q"]) == 0
    found = _read_sharded(dst / "model.safetensors.index.json")
    assert {k: bits(v) for k, v in found.items()} == {
        k: bits(v.to(torch.bfloat16)) for k, v in state.items()
    }


def test_sharded_conversion_as_a_subprocess(tmp_path: Path) -> None:
    """`python -m tensorbridge convert DIR out/ --max-shard-size 2KB` writes a loadable index."""
    state = _state()
    index = _hf_checkpoint(tmp_path / "hf", state)
    dst = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "tensorbridge", "convert", str(index.parent), str(dst),
         "--max-shard-size", "2KB", "--verify"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "verified" in proc.stdout
    found = _read_sharded(dst / "model.safetensors.index.json")
    assert {k: bits(v) for k, v in found.items()} == {k: bits(v) for k, v in state.items()}


def test_progress_covers_the_whole_multi_file_conversion(tmp_path: Path) -> None:
    """The progress callback runs across every shard, never backwards, and ends at its total."""
    state = _state()
    src, dst = tmp_path / "m.pt", tmp_path / "out"
    torch.save(state, src)
    calls: list[tuple[int, int]] = []
    files.convert(
        src, dst, max_shard_size="2KB", verify=True, progress=lambda d, t: calls.append((d, t))
    )
    totals = {t for _, t in calls}
    assert totals == {2 * 6000}  # writing and verifying every byte of all three shards
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == 2 * 6000 and len(done) >= 6


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_cli_shows_one_progress_bar_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal, convert drives one rich progress bar from 0 to the total over all shards."""
    from tensorbridge import cli

    src, dst = tmp_path / "m.pt", tmp_path / "out"
    torch.save(_state(), src)
    bars: list[cli._ProgressBar] = []
    real_init = cli._ProgressBar.__init__

    def recording_init(self: cli._ProgressBar, label: str) -> None:
        real_init(self, label)
        bars.append(self)

    monkeypatch.setattr(cli._ProgressBar, "__init__", recording_init)
    monkeypatch.setattr(cli, "PROGRESS_MIN_BYTES", 0)
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert main(["convert", str(src), str(dst), "--max-shard-size", "2KB", "-q"]) == 0
    assert bars == []  # -q: no bar
    assert main(["convert", str(src), str(tmp_path / "out2"), "--max-shard-size", "2KB"]) == 0
    (bar,) = bars
    (task,) = bar.bar.tasks
    assert task.total == 6000 and task.completed == 6000


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.lists(st.binary(min_size=0, max_size=64), min_size=1, max_size=5),
    dtype=st.sampled_from(["float32", "bfloat16", "float16", "int8", "float64"]),
    limit=st.integers(min_value=1, max_value=200),
)
def test_pt_to_shards_to_pt_is_bit_exact(
    tmp_path_factory: pytest.TempPathFactory, data: list[bytes], dtype: str, limit: int
) -> None:
    """Any bits (NaN payloads, -0.0) survive .pt → shards of any size → .pt exactly."""
    root = tmp_path_factory.mktemp("prop")
    torch_dtype = getattr(torch, dtype)
    size = torch.empty(0, dtype=torch_dtype).element_size()
    state = {}
    for i, raw in enumerate(data):
        raw = raw[: len(raw) - len(raw) % size]
        state[f"t.{i}"] = torch.tensor(list(raw), dtype=torch.uint8).view(torch_dtype)
    torch.save(state, root / "a.pt")
    argv = ["convert", str(root / "a.pt"), str(root / "out"), "--max-shard-size", str(limit)]
    assert main([*argv, "--verify", "-q"]) == 0
    assert main(["convert", str(root / "out"), str(root / "b.pt"), "--verify", "-q"]) == 0
    back = torch.load(root / "b.pt", weights_only=True)
    assert {k: bits(v) for k, v in back.items()} == {k: bits(v) for k, v in state.items()}


def test_inspect_and_a_failed_index_check_as_a_subprocess(tmp_path: Path) -> None:
    """`python -m tensorbridge inspect DIR --json` exits 0; with a stray shard, 1 in one line."""
    index = _hf_checkpoint(tmp_path / "hf", _state())
    command = [sys.executable, "-m", "tensorbridge", "inspect", str(index.parent), "--json"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["index_check"].startswith("ok")
    _break(index, "stray shard")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "'stray'" in proc.stderr


def test_bin_shard_with_tied_weights_keeps_them_tied(tmp_path: Path) -> None:
    """A .bin shard whose tied names share storage (both indexed) gives one tensor and an alias."""
    folder = tmp_path / "hf"
    folder.mkdir()
    emb = torch.arange(12.0).reshape(3, 4)
    torch.save(
        {"wte.weight": emb, "lm_head.weight": emb}, folder / "pytorch_model-00001-of-00002.bin"
    )
    torch.save({"ln.bias": torch.ones(4)}, folder / "pytorch_model-00002-of-00002.bin")
    weight_map = {
        "wte.weight": "pytorch_model-00001-of-00002.bin",
        "lm_head.weight": "pytorch_model-00001-of-00002.bin",
        "ln.bias": "pytorch_model-00002-of-00002.bin",
    }
    index = folder / "pytorch_model.bin.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": 64}, "weight_map": weight_map}))
    dst = tmp_path / "out"
    assert main(["convert", str(index), str(dst), "--verify", "-q"]) == 0
    written = json.loads((dst / "model.safetensors.index.json").read_text())
    assert sorted(written["weight_map"]) == ["ln.bias", "wte.weight"]
    assert written["metadata"]["tensorbridge.aliases"] == {"lm_head.weight": "wte.weight"}
    back = tmp_path / "back.pt"
    assert main(["convert", str(dst), str(back), "-q"]) == 0
    out = torch.load(back, weights_only=True)
    assert out["lm_head.weight"].data_ptr() == out["wte.weight"].data_ptr()
    assert torch.equal(out["lm_head.weight"], emb)


def test_a_trailing_slash_makes_dst_a_directory(tmp_path: Path) -> None:
    """DST `model.v2/` is a directory of shards even though its name has a dot."""
    src = tmp_path / "m.pt"
    torch.save(_state(2), src)
    assert main(["convert", str(src), str(tmp_path / "model.v2") + "/", "-q"]) == 0
    assert len(_read_sharded(tmp_path / "model.v2" / "model.safetensors.index.json")) == 2


def test_directory_without_index_reads_only_an_unambiguous_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No index: one complete shard set reads; a stray file beside it is refused, not merged."""
    state = _state()
    index = _hf_checkpoint(tmp_path / "hf", state)
    index.unlink()
    dst = tmp_path / "all.safetensors"
    assert main(["convert", str(index.parent), str(dst), "-q"]) == 0
    with safe_open(str(dst), "pt") as f:
        assert sorted(f.keys()) == sorted(state)
    save_file({"lora.A": torch.ones(2)}, str(index.parent / "adapter_model.safetensors"))
    assert main(["convert", str(index.parent), str(tmp_path / "b.safetensors")]) == 1
    err = capsys.readouterr().err
    assert "adapter_model.safetensors" in err and "no index" in err and err.count("\n") == 1
    single = index.parent / "adapter_model.safetensors"  # the fix: name the file
    assert main(["convert", str(single), str(tmp_path / "lora.safetensors"), "-q"]) == 0
    (index.parent / "model-00002-of-00003.safetensors").unlink()
    single.unlink()
    assert main(["inspect", str(index.parent)]) == 1  # an incomplete set is not read either
    assert "not one complete set" in capsys.readouterr().err


@pytest.mark.parametrize("existing", [False, True], ids=["new-folder", "existing-folder"])
def test_interrupt_between_shards_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    """Ctrl-C after the first shard exits 130 and leaves no shard, no index, no temporary."""
    src, dst = tmp_path / "m.pt", tmp_path / "out"
    torch.save(_state(), src)
    if existing:
        dst.mkdir()
        (dst / "config.json").write_text("{}")
    real = files.safetensors.write
    calls = []

    def interrupted(path: Path, *args: object) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(files.safetensors, "write", interrupted)
    assert main(["convert", str(src), str(dst), "--max-shard-size", "2KB"]) == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == (["m.pt", "out"] if existing else ["m.pt"])
    if existing:
        assert sorted(p.name for p in dst.iterdir()) == ["config.json"]


@settings(max_examples=15, deadline=None)
@given(
    specs=st.lists(
        st.tuples(
            st.sampled_from(["float32", "bfloat16", "float16", "float64", "int64", "bool",
                             "float8_e4m3fn", "complex64", "uint8"]),
            st.lists(st.integers(0, 5), min_size=0, max_size=3),
            st.integers(0, 2**16),
        ),
        min_size=1, max_size=6,
    ),
    tie=st.booleans(),
)  # fmt: skip
def test_bin_shards_written_a_tensor_at_a_time_load_bit_exact(
    tmp_path_factory: pytest.TempPathFactory, specs: list[Any], tie: bool
) -> None:
    """``.bin`` shards (each tensor's record filled when its turn comes) load with ``torch.load``
    bit for bit, random bits (NaN payloads, -0.0) in every dtype, 0-d and empty tensors included;
    every shard is a sound zip (CRCs checked by ``zipfile``) and a memory map loads it too."""
    import zipfile

    tmp = tmp_path_factory.mktemp("binprop")
    state = {
        f"t{i}": make_tensor(tag, seed, tuple(shape)) for i, (tag, shape, seed) in enumerate(specs)
    }
    if tie:
        state["tied"] = state["t0"]
    src, dst = tmp / "src.pt", tmp / "out" / "pytorch_model.bin.index.json"
    torch.save(state, src)
    assert main(["convert", str(src), str(dst), "--max-shard-size", "200B", "-q"]) == 0
    index = json.loads(dst.read_text())
    loaded: dict[str, torch.Tensor] = {}
    for shard in sorted(set(index["weight_map"].values())):
        path = dst.parent / shard
        with zipfile.ZipFile(path) as zf:
            assert zf.testzip() is None
        part = torch.load(path, weights_only=True, mmap=True)
        loaded.update(part)
    aliases = index["metadata"].get("tensorbridge.aliases", {})
    assert aliases == ({"tied": "t0"} if tie else {})  # tied weights are stored once
    assert loaded.keys() == state.keys() - aliases.keys()
    for name, t in state.items():
        assert bits(loaded[aliases.get(name, name)]) == bits(t), name
