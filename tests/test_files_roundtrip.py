"""Conversions between every pair of formats, for every dtype both can hold, checked bit for bit
with each format's own library; and clear refusals where a format cannot hold a dtype."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from filehelpers import FORMATS, HOLDS, bits, make_tensor, read_plain, write_plain
from tensorbridge import files
from tensorbridge.cli import main

PAIRS = [
    pytest.param(src, dst, tag, id=f"{src}-{dst}-{tag}")
    for src in FORMATS
    for dst in FORMATS
    for tag in HOLDS[src]
    if tag in HOLDS[dst]
]
REFUSED = [
    pytest.param(src, dst, tag, id=f"{src}-{dst}-{tag}")
    for src in FORMATS
    for dst in FORMATS
    for tag in HOLDS[src]
    if tag not in HOLDS[dst]
]


def _only(found: dict[str, object]) -> object:
    (value,) = found.values()
    return value


@pytest.mark.parametrize(("src_fmt", "dst_fmt", "tag"), PAIRS)
def test_round_trip_is_bit_exact(tmp_path: Path, src_fmt: str, dst_fmt: str, tag: str) -> None:
    """Every dtype two formats share survives SRC → DST → SRC bit for bit (NaN payloads, -0.0)."""
    t = make_tensor(tag)
    src, dst, back = tmp_path / f"a.{src_fmt}", tmp_path / f"b.{dst_fmt}", tmp_path / f"c.{src_fmt}"
    write_plain(src_fmt, src, {"x": t})
    assert main(["convert", str(src), str(dst), "--verify", "-q"]) == 0
    assert bits(_only(read_plain(dst_fmt, dst))) == bits(t)
    assert main(["convert", str(dst), str(back), "--verify", "-q"]) == 0
    assert bits(_only(read_plain(src_fmt, back))) == bits(t)


@pytest.mark.parametrize(("src_fmt", "dst_fmt", "tag"), REFUSED)
def test_unholdable_dtype_is_refused_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], src_fmt: str, dst_fmt: str, tag: str
) -> None:
    """A dtype DST cannot hold: exit 1, one line naming the tensor and the formats that can."""
    src, dst = tmp_path / f"a.{src_fmt}", tmp_path / f"b.{dst_fmt}"
    write_plain(src_fmt, src, {"weights": make_tensor(tag)})
    assert main(["convert", str(src), str(dst)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tensorbridge: error:" in err
    assert tag in err and "formats that can" in err
    assert ("weights" in err) or src_fmt == "npy"
    assert not dst.exists()


@pytest.mark.parametrize("dst_fmt", ["npz", "safetensors", "pt"])
def test_float_dtype_casts_floats_and_leaves_integers(tmp_path: Path, dst_fmt: str) -> None:
    """--float-dtype casts only real floating tensors; integer labels keep their dtype."""
    src, dst = tmp_path / "a.pt", tmp_path / f"b.{dst_fmt}"
    x = torch.tensor([0.1, 2.5], dtype=torch.float64)
    y = torch.tensor([1, 2], dtype=torch.int64)
    torch.save({"x": x, "y": y}, src)
    assert main(["convert", str(src), str(dst), "--float-dtype", "float32", "--verify", "-q"]) == 0
    found = read_plain(dst_fmt, dst)
    assert bits(found["x"]) == bits(x.to(torch.float32))
    assert bits(found["y"]) == bits(y)


def test_dtype_casts_everything_to_bfloat16(tmp_path: Path) -> None:
    """--dtype bfloat16 casts every tensor, as torch's .to(torch.bfloat16) would."""
    src, dst = tmp_path / "a.npz", tmp_path / "b.safetensors"
    np.savez(src, a=np.array([1.1, -2.7]), b=np.array([3, 4], dtype=np.int32))
    assert main(["convert", str(src), str(dst), "--dtype", "bfloat16", "-q"]) == 0
    found = read_plain("safetensors", dst)
    expected_a = torch.tensor([1.1, -2.7], dtype=torch.float64).to(torch.bfloat16)
    assert bits(found["a"]) == bits(expected_a)
    assert bits(found["b"]) == bits(torch.tensor([3, 4], dtype=torch.bfloat16))


def test_complex_to_real_cast_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dtype float32 on a complex tensor is refused: it would drop the imaginary part."""
    src, dst = tmp_path / "a.npz", tmp_path / "b.npz"
    np.savez(src, z=np.array([1 + 2j]))
    assert main(["convert", str(src), str(dst), "--dtype", "float32"]) == 1
    assert "imaginary" in capsys.readouterr().err
    assert not dst.exists()


def test_nested_state_dict_flattens_and_comes_back(tmp_path: Path) -> None:
    """A nested .pt flattens to dotted keys; .safetensors → .pt rebuilds the nesting."""
    w, b, e = torch.randn(2, 3), torch.randn(3), torch.arange(4)
    tree = {"encoder": {"layer": [{"w": w, "b": b}]}, "embed": e}
    torch.save(tree, tmp_path / "a.pt")
    assert main(["convert", str(tmp_path / "a.pt"), str(tmp_path / "b.safetensors"), "-q"]) == 0
    flat = read_plain("safetensors", tmp_path / "b.safetensors")
    assert sorted(flat) == ["embed", "encoder.layer.0.b", "encoder.layer.0.w"]
    assert main(["convert", str(tmp_path / "b.safetensors"), str(tmp_path / "c.pt"), "-q"]) == 0
    back = torch.load(tmp_path / "c.pt", weights_only=True)
    assert set(back) == {"encoder", "embed"} and isinstance(back["encoder"]["layer"], list)
    assert bits(back["encoder"]["layer"][0]["w"]) == bits(w)
    assert main(["convert", str(tmp_path / "a.pt"), str(tmp_path / "d.npz"), "-q"]) == 0
    assert sorted(read_plain("npz", tmp_path / "d.npz")) == sorted(flat)


def test_flat_state_dict_stays_flat(tmp_path: Path) -> None:
    """A flat state dict with dotted keys (model.state_dict()) comes back flat, not nested."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    state = {k: v.detach() for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "a.pt")
    assert main(["convert", str(tmp_path / "a.pt"), str(tmp_path / "b.safetensors"), "-q"]) == 0
    assert main(["convert", str(tmp_path / "b.safetensors"), str(tmp_path / "c.pth"), "-q"]) == 0
    back = torch.load(tmp_path / "c.pth", weights_only=True)
    assert list(back) == list(state)
    model.load_state_dict(back)


def test_write_nests_mappings_lists_and_tuples_only(tmp_path: Path) -> None:
    """``files.write`` names a namedtuple's tensors by position and refuses a dataclass leaf."""
    import collections
    import dataclasses

    from tensorbridge.files import BadFileError

    pair = collections.namedtuple("pair", "x y")
    a, b, c = np.arange(3.0), np.arange(4), np.ones((2, 2), np.float32)
    files.write(tmp_path / "a.npz", {"p": pair(a, b), 7: [c]})
    with np.load(tmp_path / "a.npz") as got:
        assert sorted(got.files) == ["7.0", "p.0", "p.1"]
        assert got["p.0"].tobytes() == a.tobytes() and got["7.0"].tobytes() == c.tobytes()

    @dataclasses.dataclass
    class Box:
        w: np.ndarray

    with pytest.raises(BadFileError, match="'box' is a Box, not a tensor"):
        files.write(tmp_path / "b.npz", {"box": Box(a)})
    with pytest.raises(BadFileError, match=r"same name 'a\.b'"):
        files.write(tmp_path / "c.npz", {"a.b": a, "a": {"b": b}})
    assert not (tmp_path / "b.npz").exists() and not (tmp_path / "c.npz").exists()


@pytest.mark.parametrize("dst_fmt", ["safetensors", "npz", "pt"])
def test_conj_neg_and_views_are_written_as_logical_values(tmp_path: Path, dst_fmt: str) -> None:
    """Conj/neg views, strided, offset and shared tensors are written as their logical values."""
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    z = torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex64)
    tensors = {
        "conj": z.conj(),
        "neg": base[0]._neg_view(),
        "transposed": base.t(),
        "offset": base[1:, 2:],
        "shared": base[0],
    }
    src, dst = tmp_path / "a.pt", tmp_path / f"b.{dst_fmt}"
    torch.save(tensors, src)
    assert main(["convert", str(src), str(dst), "--verify", "-q"]) == 0
    found = read_plain(dst_fmt, dst)
    for name, t in tensors.items():
        assert bits(found[name]) == bits(t.resolve_conj().resolve_neg().contiguous()), name


def test_safetensors_written_from_a_conj_view_keeps_the_conjugate(tmp_path: Path) -> None:
    """files.write of an in-memory conj view stores conj values (safetensors' writer would not)."""
    z = torch.tensor([1 + 2j, 3 - 4j], dtype=torch.complex64)
    files.write(tmp_path / "z.safetensors", {"z": z.conj(), "n": torch.ones(2)._neg_view()})
    found = read_plain("safetensors", tmp_path / "z.safetensors")
    assert bits(found["z"]) == bits(torch.tensor([1 - 2j, 3 + 4j], dtype=torch.complex64))
    assert bits(found["n"]) == bits(torch.tensor([-1.0, -1.0]))


@pytest.mark.parametrize("ext", [".pt", ".pth", ".bin"])
def test_pytorch_extensions_are_one_format(tmp_path: Path, ext: str) -> None:
    """.pt, .pth and .bin are all PyTorch's format."""
    t = torch.randn(3)
    torch.save({"t": t}, tmp_path / f"a{ext}")
    assert main(["convert", str(tmp_path / f"a{ext}"), str(tmp_path / "b.bin"), "-q"]) == 0
    assert bits(torch.load(tmp_path / "b.bin", weights_only=True)["t"]) == bits(t)


def test_npy_to_pt_writes_a_bare_tensor(tmp_path: Path) -> None:
    """A .npy becomes a bare tensor in a .pt, and one named by its stem in .safetensors."""
    a = np.arange(6, dtype=np.int16).reshape(2, 3)
    np.save(tmp_path / "weights.npy", a)
    assert main(["convert", str(tmp_path / "weights.npy"), str(tmp_path / "w.pt"), "-q"]) == 0
    assert bits(torch.load(tmp_path / "w.pt", weights_only=True)) == bits(a)
    assert (
        main(["convert", str(tmp_path / "weights.npy"), str(tmp_path / "w.safetensors"), "-q"]) == 0
    )
    assert list(read_plain("safetensors", tmp_path / "w.safetensors")) == ["weights"]


def test_many_tensors_into_npy_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A .npy holds one array: a two-tensor source is refused with a pointer to .npz."""
    np.savez(tmp_path / "a.npz", x=np.ones(2), y=np.zeros(2))
    assert main(["convert", str(tmp_path / "a.npz"), str(tmp_path / "b.npy")]) == 1
    assert ".npz" in capsys.readouterr().err
    assert not (tmp_path / "b.npy").exists()


def test_non_tensor_values_need_an_explicit_skip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint with an epoch number is refused, and converts with --skip-non-tensors."""
    w = torch.randn(2)
    torch.save({"w": w, "epoch": 3, "name": "run-1"}, tmp_path / "ckpt.pt")
    dst = tmp_path / "ckpt.safetensors"
    assert main(["convert", str(tmp_path / "ckpt.pt"), str(dst)]) == 1
    assert "epoch" in capsys.readouterr().err and not dst.exists()
    assert main(["convert", str(tmp_path / "ckpt.pt"), str(dst), "--skip-non-tensors"]) == 0
    assert "epoch" in capsys.readouterr().out
    assert list(read_plain("safetensors", dst)) == ["w"]


def test_large_conversion_streams_one_tensor_at_a_time(tmp_path: Path) -> None:
    """safetensors → npz → safetensors holds about one tensor in memory, not the whole file."""
    import tracemalloc

    mib = 1 << 20
    tensors = {f"t{i}": torch.full((2 * mib,), float(i)) for i in range(6)}  # 6 × 8 MiB
    write_plain("safetensors", tmp_path / "a.safetensors", tensors)
    del tensors
    tracemalloc.start()
    try:
        files.convert(tmp_path / "a.safetensors", tmp_path / "b.npz")
        files.convert(tmp_path / "b.npz", tmp_path / "c.safetensors", verify=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * mib  # the file is 48 MiB; one tensor is 8 MiB
    found = read_plain("safetensors", tmp_path / "c.safetensors")
    assert bits(found["t5"]) == bits(torch.full((2 * mib,), 5.0))


def test_big_endian_fortran_npy_converts_to_logical_values(tmp_path: Path) -> None:
    """A big-endian, Fortran-order .npy converts to the same values in native order."""
    a = np.asfortranarray(np.arange(6, dtype=">i4").reshape(2, 3))
    np.save(tmp_path / "a.npy", a)
    assert (
        main(["convert", str(tmp_path / "a.npy"), str(tmp_path / "b.safetensors"), "--verify"]) == 0
    )
    assert bits(_only(read_plain("safetensors", tmp_path / "b.safetensors"))) == bits(a)
