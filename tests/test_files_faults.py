"""Faults and hostile names: killed conversions, unsafe tensor names, wrong dtypes, text files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from tensorbridge.cli import main

# A real conversion in a child process that stops for good after its first chunk of data, so the
# test can kill it while its temporary file or directory exists.
_STALLED_CONVERT = """
import sys, time
import tensorbridge.files._common as common
real = common.write_bytes
def stalled(*args, **kwargs):
    real(*args, **kwargs)
    print("writing", flush=True)
    time.sleep(600)
for module in ("npy", "safetensors"):
    setattr(sys.modules["tensorbridge.files." + module], "write_bytes", stalled)
from tensorbridge.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _kill_mid_write(argv: list[str]) -> None:
    """Run a conversion in a child process and SIGKILL it while it writes."""
    with subprocess.Popen(
        [sys.executable, "-c", _STALLED_CONVERT, *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as child:  # fmt: skip
        assert child.stdout is not None
        line = child.stdout.readline()
        child.send_signal(signal.SIGKILL)
        _, err = child.communicate(timeout=60)
    assert line.strip() == "writing", err
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize("dst_name", ["out.safetensors", "shards"])
def test_sigkilled_conversion_leaves_nothing_the_next_run_keeps(
    tmp_path: Path, dst_name: str
) -> None:
    """A conversion killed with SIGKILL leaves a hidden temporary; the next run removes it."""
    src = tmp_path / "m.pt"
    torch.save({"a": torch.ones(1000), "b": torch.zeros(1000)}, src)
    dst = tmp_path / dst_name
    _kill_mid_write(["convert", str(src), str(dst)])
    left = _hidden(tmp_path)
    assert len(left) == 1 and ".tbtmp." in left[0]  # SIGKILL runs no cleanup
    assert not dst.exists()
    assert main(["convert", str(src), str(dst), "-q"]) == 0
    assert _hidden(tmp_path) == []
    assert dst.exists()


def test_a_live_conversions_temporary_is_left_alone(tmp_path: Path) -> None:
    """The next run removes only temporaries whose process is gone, never a running one's."""
    src = tmp_path / "m.pt"
    torch.save({"a": torch.ones(10)}, src)
    with subprocess.Popen(
        [sys.executable, "-c", _STALLED_CONVERT, "convert", str(src), str(tmp_path / "x.npy")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as child:  # fmt: skip
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "writing"
            running = _hidden(tmp_path)
            assert len(running) == 1
            assert main(["convert", str(src), str(tmp_path / "y.safetensors"), "-q"]) == 0
            assert _hidden(tmp_path) == running
        finally:
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=60)


UNSAFE = ["../evil", "/etc/evil", "a/../../evil", "nul\x00byte", "..\\evil", "C:evil", "a//b"]


@pytest.mark.parametrize("name", UNSAFE, ids=repr)
@pytest.mark.parametrize("dst_name", ["out.npz", "shards"])
def test_unsafe_tensor_names_are_refused_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, dst_name: str
) -> None:
    """A tensor name unsafe as an archive member or file name is refused, named, nothing written."""
    src = tmp_path / "m.pt"
    torch.save({"ok": torch.ones(2), name: torch.zeros(2)}, src)
    assert main(["convert", str(src), str(tmp_path / dst_name)]) == 1
    err = capsys.readouterr().err
    assert repr(name) in err and "unsafe" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_unsafe_name_fix_writes_a_safetensors_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The suggested fix works: a .safetensors file keeps `../evil` as a plain key."""
    src = tmp_path / "m.pt"
    torch.save({"../evil": torch.arange(3.0)}, src)
    assert main(["convert", str(src), str(tmp_path / "out.npz")]) == 1
    assert ".safetensors" in capsys.readouterr().err
    dst = tmp_path / "out.safetensors"
    assert main(["convert", str(src), str(dst), "-q"]) == 0
    with safe_open(str(dst), "pt") as f:
        assert torch.equal(f.get_tensor("../evil"), torch.arange(3.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "out.safetensors"]


@pytest.mark.parametrize("dtype", ["int8", "int64", "bool", "complex64", "uint8"])
def test_float_dtype_must_be_floating(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dtype: str
) -> None:
    """--float-dtype int8 is a usage error naming --dtype; applying that fix casts everything."""
    src, dst = tmp_path / "m.pt", tmp_path / "out.safetensors"
    torch.save({"w": torch.tensor([1.5, -2.5]), "n": torch.tensor([3, 4])}, src)
    assert main(["convert", str(src), str(dst), "--float-dtype", dtype]) == 2
    err = capsys.readouterr().err
    assert f"--dtype {dtype}" in err and err.count("\n") == 1
    assert not dst.exists()
    if dtype == "int8":
        assert main(["convert", str(src), str(dst), "--dtype", dtype, "-q"]) == 0
        with safe_open(str(dst), "pt") as f:
            assert torch.equal(f.get_tensor("w"), torch.tensor([1.5, -2.5]).to(torch.int8))


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"hello world\nthis is a text file\n", "a text file (it starts with 'hello world')"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n", "git lfs pull"),
        (b"<!DOCTYPE html><html><body>Not found</body></html>", "HTML page"),
        (b'{"weight_map": {}}', "JSON text file"),
    ],
    ids=["text", "lfs", "html", "json"],
)
def test_text_file_named_pt_says_what_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, words: str
) -> None:
    """inspect of a text file named .pt says what the file looks like, in one line."""
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    assert main(["inspect", str(path)]) == 1
    err = capsys.readouterr().err
    assert words in err and "not a .pt file" in err and err.count("\n") == 1
    assert "101" not in err


def test_inspect_text_file_as_a_subprocess(tmp_path: Path) -> None:
    """`python -m tensorbridge inspect notes.pt` on text exits 1 with one line, no traceback."""
    path = tmp_path / "notes.pt"
    path.write_text("epoch 3 loss 0.1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "tensorbridge", "inspect", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "text file" in proc.stderr


def test_npz_member_names_are_checked_on_the_library_writer_too(tmp_path: Path) -> None:
    """tensorbridge.files.write refuses an unsafe .npz member name as convert does."""
    from tensorbridge import files

    with pytest.raises(files.BadFileError, match="unsafe"):
        files.write(tmp_path / "a.npz", {"../x": np.ones(2)})
    assert list(tmp_path.iterdir()) == []


def test_temporaries_carry_the_pid_of_their_writer(tmp_path: Path) -> None:
    """A temporary's name holds its writer's pid, which is how the next run judges it stale."""
    from tensorbridge.files import _common

    with _common.atomic_path(tmp_path / "x.npy", force=False) as tmp:
        assert f".{os.getpid()}." in tmp.name and tmp.name.startswith(".x.npy.tbtmp.")
        tmp.write_bytes(b"")


def test_float_dtype_must_be_floating_for_image_files_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--float-dtype int8 is refused before an image file is read or written."""
    pytest.importorskip("PIL")
    src = tmp_path / "m.npy"
    np.save(src, np.zeros((4, 4), np.float32))
    assert main(["convert", str(src), str(tmp_path / "x.png"), "--float-dtype", "int8"]) == 2
    assert "--dtype int8" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npy"]


# --------------------------------------------------------------------------------------------
# replacing a directory with --force: one atomic swap, or two renames the next run can undo

# A real `--force` conversion onto an existing directory in a child process that SIGKILLs itself
# at one step of the replacement, reached without any timing: right after the atomic swap
# ("swap"), or, on a system without renameat2 (the old directory is moved aside, then the new one
# moved in), right after the rename that moves DST away ("first") or the one that moves the new
# one in ("second").
_KILLED_AT_A_RENAME = """
import os, signal, sys
from pathlib import Path
import tensorbridge.files._common as common
dst, which = Path(sys.argv[1]), sys.argv[2]
def die():
    os.kill(os.getpid(), signal.SIGKILL)
real_swap, real_rename = common._renameat2, os.rename
def swap(src, target, flags):
    if which != "swap":
        return False
    done = real_swap(src, target, flags)
    if done and flags == common.RENAME_EXCHANGE:
        die()
    return done
def rename(src, target):
    real_rename(src, target)
    if which != "swap" and Path(src if which == "first" else target) == dst:
        die()
common._renameat2, os.rename = swap, rename
from tensorbridge.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _weights(value: float) -> dict[str, torch.Tensor]:
    return {"w": torch.full((3,), value), "b": torch.arange(4.0) * value}


def _dcp_values(ckpt: Path) -> dict[str, torch.Tensor]:
    """The tensors of a DCP checkpoint, read with PyTorch's own loader."""
    import warnings

    import torch.distributed.checkpoint as dcp

    state = {"w": torch.empty(3), "b": torch.empty(4)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.load(state, checkpoint_id=str(ckpt), no_dist=True)
    return state


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _same(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> bool:
    return got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


@pytest.mark.parametrize(("which", "kept"), [("first", "old"), ("second", "new"), ("swap", "new")])
def test_sigkill_during_a_replacement_loses_nothing(tmp_path: Path, which: str, kept: str) -> None:
    """Killed while DST is replaced, the next run leaves one whole DST (the old one if it was
    away) and no temporary."""
    from safetensors.torch import save_file

    from tensorbridge.files import _common

    if which == "swap" and _common._libc_renameat2() is None:
        pytest.skip("this system's C library has no renameat2")

    old_src, new_src, dst = (
        tmp_path / "old.safetensors",
        tmp_path / "new.safetensors",
        tmp_path / "ckpt",
    )
    save_file(_weights(1.0), str(old_src))
    save_file(_weights(2.0), str(new_src))
    assert main(["convert", str(old_src), str(dst), "--format", "dcp", "-q"]) == 0
    before = _snapshot(dst)
    argv = ["convert", str(new_src), str(dst), "--format", "dcp", "--force", "-q"]
    child = subprocess.run(
        [sys.executable, "-c", _KILLED_AT_A_RENAME, str(dst), which, *argv],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert dst.exists() == (which != "first")  # the kill came where it was meant to
    # the old tree (aside, or swapped out), and the new tree's temporary until it was moved in
    assert len(_hidden(tmp_path)) == (2 if which == "first" else 1)
    assert main(["convert", str(old_src), str(tmp_path / "other.npz"), "-q"]) == 0  # next run
    assert _hidden(tmp_path) == []
    if kept == "old":
        assert _snapshot(dst) == before
        assert _same(_dcp_values(dst), _weights(1.0))
    else:
        assert _same(_dcp_values(dst), _weights(2.0))


@pytest.mark.parametrize("swap", ["renameat2", "two renames"])
@pytest.mark.parametrize("existing", ["directory", "file", "symlink to a directory"])
def test_replacing_an_existing_destination_leaves_the_new_tree_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swap: str, existing: str
) -> None:
    """atomic_dir with force puts the new tree at DST, removes the old one, leaves no temporary."""
    from tensorbridge.files import _common

    if swap == "renameat2":
        if _common._libc_renameat2() is None:
            pytest.skip("this system's C library has no renameat2")

        def no_rename(*args: object) -> None:
            raise AssertionError(f"os.rename{args}: the swap should be one renameat2 call")

        monkeypatch.setattr(os, "rename", no_rename)
    else:
        monkeypatch.setattr(_common, "_renameat2", lambda src, dst, flags: False)
    parent = tmp_path / "out"
    parent.mkdir()
    dst, target = parent / "ckpt", tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep.txt").write_text("not ours")
    if existing == "directory":
        (dst / "sub").mkdir(parents=True)
        (dst / "old.txt").write_text("old")
        (dst / "sub" / "old.bin").write_bytes(b"\x00" * 100)
    elif existing == "file":
        dst.write_text("old")
    else:
        dst.symlink_to(target, target_is_directory=True)
    with _common.atomic_dir(dst, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert dst.is_dir() and not dst.is_symlink()
    assert _snapshot(dst) == {"new.txt": b"new"}
    assert sorted(p.name for p in parent.iterdir()) == ["ckpt"]
    assert _snapshot(target) == {"keep.txt": b"not ours"}


def test_without_force_an_existing_destination_is_never_replaced(tmp_path: Path) -> None:
    """atomic_dir without force refuses a DST that appeared while it wrote, and keeps it."""
    from tensorbridge.files import _common

    dst = tmp_path / "ckpt"
    refused = pytest.raises(_common.FileUsageError, match="--force")
    with refused, _common.atomic_dir(dst, force=False) as tmp:
        (tmp / "new.txt").write_text("new")
        dst.mkdir()  # an empty directory: a plain rename would replace it
    assert dst.is_dir() and list(dst.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


@pytest.mark.parametrize("how", ["in-process", "subprocess"])
def test_force_replaces_an_existing_checkpoint_directory(tmp_path: Path, how: str) -> None:
    """`convert SRC DIR --format dcp --force` onto a checkpoint leaves only the new one there."""
    from safetensors.torch import save_file

    old_src, new_src, dst = (
        tmp_path / "old.safetensors",
        tmp_path / "new.safetensors",
        tmp_path / "ckpt",
    )
    save_file(_weights(1.0), str(old_src))
    save_file(_weights(-0.0), str(new_src))
    assert main(["convert", str(old_src), str(dst), "--format", "dcp", "-q"]) == 0
    argv = ["convert", str(new_src), str(dst), "--format", "dcp", "--force", "-q"]
    if how == "in-process":
        assert main(argv) == 0
    else:
        proc = subprocess.run(
            [sys.executable, "-m", "tensorbridge", *argv],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
    got = _dcp_values(dst)
    assert _same(got, _weights(-0.0)) and torch.signbit(got["w"]).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt",
        "new.safetensors",
        "old.safetensors",
    ]
