"""The golden files in tests/data (written by NumPy, PyTorch and safetensors themselves) read back
exactly, and inspect describes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from filehelpers import DATA, bits, golden, read_plain
from tensorbridge import files
from tensorbridge.cli import main

EXPECTED = golden().expected()


def _flat(tree: dict[str, object], prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            out.update(_flat(dict(enumerate(value)), f"{prefix}{key}."))  # type: ignore[arg-type]
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_file_reads_bit_for_bit(name: str) -> None:
    """Every tensor of every golden file reads back with the exact dtype, shape and bits."""
    want = _flat(EXPECTED[name])
    got = files.read(DATA / name)
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert bits(got[key]) == bits(value), key


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_inspect_json_lists_every_tensor(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """inspect --json gives the golden names, dtypes, shapes, byte sizes and totals."""
    assert main(["inspect", str(DATA / name), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    want = _flat(EXPECTED[name])
    listed = {t["name"]: t for t in info["tensors"]}
    assert sorted(listed) == sorted(want)
    for key, value in want.items():
        dtype, shape, raw = bits(value)
        assert (listed[key]["dtype"], tuple(listed[key]["shape"]), listed[key]["nbytes"]) == (
            dtype,
            shape,
            len(raw),
        )
    assert info["total_tensors"] == len(want)
    assert info["total_bytes"] == sum(len(bits(v)[2]) for v in want.values())
    assert info["file_bytes"] == (DATA / name).stat().st_size


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_inspect_table_names_every_tensor(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """inspect's table shows each tensor's name and dtype and a total line."""
    assert main(["inspect", str(DATA / name)]) == 0
    out = capsys.readouterr().out
    for key, value in _flat(EXPECTED[name]).items():
        assert key in out and bits(value)[0] in out
    assert "tensor" in out and "elements" in out


def test_golden_pt_round_trips_through_pt(tmp_path: Path) -> None:
    """The golden .pt (bfloat16, float8, complex32, nesting) converts to .pt bit for bit, nested."""
    assert main(["convert", str(DATA / "golden.pt"), str(tmp_path / "x.pt"), "--verify", "-q"]) == 0
    got = _flat(torch.load(tmp_path / "x.pt", weights_only=True))
    want = _flat(EXPECTED["golden.pt"])
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert bits(got[key]) == bits(value), key


def test_golden_pt_to_safetensors_names_the_complex32_tensor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """complex32 has no safetensors tag: the error names the tensor and the .pt format."""
    assert main(["convert", str(DATA / "golden.pt"), str(tmp_path / "x.safetensors")]) == 1
    err = capsys.readouterr().err
    assert "heads.a" in err and "complex32" in err and ".pt" in err


def test_golden_safetensors_to_pt_keeps_bf16_and_float8(tmp_path: Path) -> None:
    """The official writer's bf16/float8 tensors come out of a .pt conversion bit for bit."""
    assert main(["convert", str(DATA / "golden.safetensors"), str(tmp_path / "x.pt"), "-q"]) == 0
    got = read_plain("pt", tmp_path / "x.pt")
    for key, value in EXPECTED["golden.safetensors"].items():
        assert bits(got[key]) == bits(value), key
