"""Bad files are a security boundary: no pickle runs, no bad byte crashes the tool, no write is
left half done."""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filehelpers import DATA, read_plain
from tensorbridge import files
from tensorbridge.cli import main

GOLDEN = sorted(p.name for p in DATA.iterdir() if p.name.startswith("golden"))


class _Marker:
    """Unpickling this creates a directory: proof that a pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.makedirs, (self.path,))


def _evil_files(tmp_path: Path, marker: Path) -> dict[str, Path]:
    """Files whose loading with pickle enabled would create ``marker``."""
    evil = _Marker(marker)
    out = {}
    out["zip.pt"] = tmp_path / "zip.pt"
    torch.save({"w": torch.ones(2), "x": evil}, out["zip.pt"])
    out["legacy.pth"] = tmp_path / "legacy.pth"
    torch.save(
        {"w": torch.ones(2), "x": evil}, out["legacy.pth"], _use_new_zipfile_serialization=False
    )
    out["raw.bin"] = tmp_path / "raw.bin"
    out["raw.bin"].write_bytes(pickle.dumps({"x": evil}))
    out["object.npy"] = tmp_path / "object.npy"
    np.save(out["object.npy"], np.array([evil], dtype=object), allow_pickle=True)
    out["object.npz"] = tmp_path / "object.npz"
    np.savez(out["object.npz"], ok=np.ones(2), x=np.array([evil], dtype=object))
    return out


@pytest.mark.parametrize("kind", ["zip.pt", "legacy.pth", "raw.bin", "object.npy", "object.npz"])
@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_malicious_pickle_never_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, command: str
) -> None:
    """A file whose unpickling would create a marker is refused; the marker never appears."""
    marker = tmp_path / "PWNED"
    evil = _evil_files(tmp_path, marker)[kind]
    argv = (
        ["inspect", str(evil)]
        if command == "inspect"
        else ["convert", str(evil), str(tmp_path / "o.safetensors")]
    )
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("tensorbridge: error: refused:") and err.count("\n") == 1
    assert "pickle" in err or "weights_only" in err
    assert not marker.exists()
    assert not (tmp_path / "o.safetensors").exists()


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def _assert_clean(code: int, err: str) -> None:
    """Exit 0, or exit 1 with exactly one error line and no traceback or internal error."""
    assert code in (0, 1), err
    assert "Traceback" not in err and "internal error" not in err, err
    if code == 1:
        assert err.startswith("tensorbridge: error: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("name", GOLDEN)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.floats(0, 1, exclude_max=True))
def test_truncated_files_fail_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, cut: float
) -> None:
    """A golden file cut at any offset gives one clean error line and exit 1, never a crash."""
    data = (DATA / name).read_bytes()
    bad = tmp_path / f"cut{Path(name).suffix}"
    bad.write_bytes(data[: int(cut * len(data))])
    code, err = _run(["inspect", str(bad)], capsys)
    _assert_clean(code, err)
    assert code == 1
    dst = tmp_path / "out.safetensors"
    code, err = _run(["convert", str(bad), str(dst), "--force", "--dtype", "float64"], capsys)
    _assert_clean(code, err)
    assert code == 1 and not dst.exists()


@pytest.mark.parametrize("name", GOLDEN)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    flips=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=4
    )
)
def test_byte_flips_fail_cleanly_or_convert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, flips: list[tuple[float, int]]
) -> None:
    """Random byte changes give a clean error or a valid conversion, never a crash."""
    data = bytearray((DATA / name).read_bytes())
    for where, value in flips:
        data[int(where * len(data))] = value
    bad = tmp_path / f"flip{Path(name).suffix}"
    bad.write_bytes(bytes(data))
    _assert_clean(*_run(["inspect", str(bad)], capsys))
    dst = tmp_path / "out.npz"
    dst.unlink(missing_ok=True)  # tmp_path is shared by hypothesis' examples
    code, err = _run(
        ["convert", str(bad), str(dst), "--force", "--verify", "--dtype", "float64"], capsys
    )
    _assert_clean(code, err)
    assert dst.exists() == (code == 0)
    if code == 0:
        read_plain("npz", dst)


def _safetensors_bytes(header: bytes, data: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + data


BAD_FILES = {
    "empty.npy": b"",
    "empty.safetensors": b"",
    "text.npy": b"hello, I am not an array\n",
    "garbage.pt": b"\x00\x01garbage" * 10,
    "notzip.npz": b"PK\x03\x04 nothing else",
    "huge_header.safetensors": struct.pack("<Q", 2**62) + b"{}",
    "long_header.safetensors": struct.pack("<Q", 1000) + b"{}",
    "not_json.safetensors": _safetensors_bytes(b"{not json"),
    "bad_offsets.safetensors": _safetensors_bytes(
        b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,99]}}', b"\0" * 8
    ),
    "bad_size.safetensors": _safetensors_bytes(
        b'{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', b"\0" * 8
    ),
    "overlap.safetensors": _safetensors_bytes(
        b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
        b"\0" * 8,
    ),
    "dup.safetensors": _safetensors_bytes(
        b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}',
        b"\0\0",
    ),
    "deep.safetensors": _safetensors_bytes(b"[" * 100_000 + b"]" * 100_000),
    "huge_header.npy": b"\x93NUMPY\x02\x00" + struct.pack("<I", 200_000) + b"{" + b" " * 200_000,
    "huge_shape.npy": b"\x93NUMPY\x01\x00"
    + struct.pack("<H", 118)
    + b"{'descr': '<f8', 'fortran_order': False, 'shape': (10000000000000,), }".ljust(117)
    + b"\n",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_get_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """Empty, corrupt, huge-header and lying files: one line naming the file, exit 1, no output."""
    bad = tmp_path / name
    bad.write_bytes(BAD_FILES[name])
    for argv in (["inspect", str(bad)], ["convert", str(bad), str(tmp_path / "o.pt")]):
        code, err = _run(argv, capsys)
        assert code == 1, err
        assert err.startswith("tensorbridge: error: ") and err.count("\n") == 1
        assert name in err
    assert not (tmp_path / "o.pt").exists()


def test_wrong_extension_says_what_the_file_looks_like(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A .safetensors file named .npy is refused with a hint to rename it."""
    from safetensors.torch import save_file

    save_file({"a": torch.ones(2)}, str(tmp_path / "x.npy"))
    assert main(["inspect", str(tmp_path / "x.npy")]) == 1
    assert ".safetensors" in capsys.readouterr().err


@pytest.mark.parametrize("ext", ["safetensors", "npz", "pt"])
def test_zero_tensor_files_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ext: str
) -> None:
    """A file with no tensors: inspect exits 1; convert refuses and writes nothing."""
    path = tmp_path / f"empty.{ext}"
    if ext == "safetensors":
        path.write_bytes(_safetensors_bytes(b"{}      "))
    elif ext == "npz":
        np.savez(path)
    else:
        torch.save({}, path)
    assert main(["inspect", str(path)]) == 1
    assert "no tensors" in capsys.readouterr().err
    assert main(["convert", str(path), str(tmp_path / "o.safetensors")]) == 1
    assert "no tensors" in capsys.readouterr().err
    assert not (tmp_path / "o.safetensors").exists()


def test_npz_member_that_is_not_an_array_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An .npz with a non-.npy member is refused, naming the member."""
    with zipfile.ZipFile(tmp_path / "a.npz", "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert main(["inspect", str(tmp_path / "a.npz")]) == 1
    assert "readme.txt" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# atomic writes and overwrite rules


def _listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.mark.parametrize("dst_fmt", ["npy", "npz", "pt", "safetensors"])
def test_failure_mid_write_leaves_dst_untouched(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    dst_fmt: str,
) -> None:
    """A conversion that fails half-way leaves an existing DST byte-identical and no temp file."""
    src, dst = tmp_path / "a.npy", tmp_path / f"b.{dst_fmt}"
    np.save(src, np.arange(1000.0))
    dst.write_bytes(b"precious")
    before = _listing(tmp_path)
    module = files.format_of(dst)
    real_write = module.write

    def failing_write(path: Path, layout: object, arrays: object, progress: object = None) -> None:
        real_write(path, layout, arrays, progress)
        assert path.stat().st_size > 0  # the temporary file was really written...
        raise OSError(28, "No space left on device")  # ...and then the disk "fills up"

    monkeypatch.setattr(module, "write", failing_write)
    assert main(["convert", str(src), str(dst), "--force"]) == 1
    assert "No space left" in capsys.readouterr().err
    assert dst.read_bytes() == b"precious"
    assert _listing(tmp_path) == before


def test_interrupt_mid_write_leaves_no_dst(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during a write leaves no DST and no temporary file, and exits 130."""
    src, dst = tmp_path / "a.npz", tmp_path / "b.safetensors"
    np.savez(src, a=np.ones(10), b=np.ones(10))
    before = _listing(tmp_path)
    real_write = files.safetensors.write_bytes

    def interrupted(
        f: object, array: object, progress: object = None, dtype: object = None
    ) -> None:
        real_write(f, array, progress, dtype)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(files.safetensors, "write_bytes", interrupted)
    assert main(["convert", str(src), str(dst)]) == 130
    assert _listing(tmp_path) == before


def test_failed_verify_leaves_dst_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When --verify finds a difference, the existing DST is kept and the command exits 1."""
    src, dst = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(src, np.arange(4.0))
    np.save(dst, np.zeros(1))
    before = dst.read_bytes()
    monkeypatch.setattr(files._convert, "_same_cast", lambda a, b, dtype: False)
    assert main(["convert", str(src), str(dst), "--force", "--verify"]) == 1
    assert dst.read_bytes() == before


def test_existing_dst_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An existing DST is a usage error (exit 2) unless --force; with --force it is replaced."""
    src, dst = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(src, np.arange(3))
    dst.write_bytes(b"old")
    assert main(["convert", str(src), str(dst)]) == 2
    assert "--force" in capsys.readouterr().err and dst.read_bytes() == b"old"
    assert main(["convert", str(src), str(dst), "--force", "-q"]) == 0
    assert np.array_equal(np.load(dst), np.arange(3))


def test_src_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """DST naming SRC (directly, through '..', or a hard link) is refused even with --force."""
    src = tmp_path / "a.npy"
    np.save(src, np.arange(3))
    data = src.read_bytes()
    os.link(src, tmp_path / "link.npy")
    for dst in (src, tmp_path / "sub" / ".." / "a.npy", tmp_path / "link.npy"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        assert main(["convert", str(src), str(dst), "--force"]) == 2
        assert "source" in capsys.readouterr().err
    assert src.read_bytes() == data


def test_written_file_has_normal_permissions(tmp_path: Path) -> None:
    """The renamed temporary file gets the usual permissions (umask), not mkstemp's 0600."""
    np.save(tmp_path / "a.npy", np.arange(3))
    assert main(["convert", str(tmp_path / "a.npy"), str(tmp_path / "b.npz"), "-q"]) == 0
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "b.npz").stat().st_mode & 0o777 == 0o666 & ~mask


def test_writer_output_is_readable_by_numpy_without_pickle(tmp_path: Path) -> None:
    """The .npz written holds plain .npy members that np.load(allow_pickle=False) reads."""
    torch.save({"a": torch.arange(3), "b.c": torch.ones(2)}, tmp_path / "a.pt")
    assert main(["convert", str(tmp_path / "a.pt"), str(tmp_path / "b.npz"), "-q"]) == 0
    with zipfile.ZipFile(tmp_path / "b.npz") as zf:
        assert sorted(zf.namelist()) == ["a.npy", "b.c.npy"]
        assert zf.read("a.npy").startswith(b"\x93NUMPY")
    assert sorted(read_plain("npz", tmp_path / "b.npz")) == ["a", "b.c"]


def test_read_returns_arrays_by_dotted_name() -> None:
    """files.read gives every tensor of a golden file by its dotted name."""
    found = files.read(DATA / "golden.pt")
    assert sorted(found) == ["encoder.bias", "encoder.weight", "heads.a", "heads.b.0", "scale"]
    assert np.array_equal(found["encoder.weight"], np.arange(6, dtype=np.float32).reshape(2, 3))
