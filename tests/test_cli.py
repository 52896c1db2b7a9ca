"""The command line, run in-process through ``main([...])``: demo, convert, inspect, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from filehelpers import DATA
from tensorbridge.cli import main

PITFALL_WORDS = [
    "GPU tensor",
    "requires grad",
    "in-place edit after .numpy()",
    "in-place edit after from_numpy",
    "torch.Tensor()",
    "int32",
    "float64",
    ".item()",
    "bfloat16",
    "conjugate",
    "negative strides",
    "big-endian",
    "read-only",
    "masked",
    "nested batch",
]


@pytest.fixture(scope="module")
def demo_json() -> dict[str, object]:
    """The demo's JSON output, run once for the module."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["demo", "--json"]) == 0
    return json.loads(out.getvalue())


def test_demo_covers_every_pitfall(demo_json: dict[str, object]) -> None:
    """demo --json has a row for each classic pitfall the issue lists."""
    names = " | ".join(row["pitfall"] for row in demo_json["rows"])  # type: ignore[index, union-attr]
    for word in PITFALL_WORDS:
        assert word in names, word


def test_demo_rows_show_idiom_failure_beside_tensorbridge_success(
    demo_json: dict[str, object],
) -> None:
    """Each CPU row: the idiom errs, warns or surprises; tensorbridge succeeds or refuses."""
    rows = demo_json["rows"]  # type: ignore[index]
    for row in rows:  # type: ignore[union-attr]
        if row["idiom_outcome"] == "skipped":
            assert row["idiom_result"] == "skipped: no GPU" and not torch.cuda.is_available()
            continue
        assert row["idiom_outcome"] in ("error", "warning", "silent"), row
        assert row["tensorbridge_outcome"] in ("ok", "refused"), row
        assert row["idiom_seconds"] >= 0 and row["tensorbridge_seconds"] >= 0
        assert row["idiom"] and row["call"].count("tb.") >= 1


def test_demo_reports_memory_sharing(demo_json: dict[str, object]) -> None:
    """The bfloat16 row shares memory (a zero-copy view); the conj row cannot (a copy)."""
    rows = {row["pitfall"]: row for row in demo_json["rows"]}  # type: ignore[index, union-attr]
    assert rows["bfloat16"]["tensorbridge_shared"] is True
    assert rows["conjugate view"]["tensorbridge_shared"] is False
    assert rows["in-place edit after .numpy()"]["idiom_shared"] is True


def test_demo_table_renders_without_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    """demo prints a readable table when stdout is not a TTY (piped, under pytest)."""
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "hand-written idiom" in out and "tensorbridge" in out
    assert "bfloat16" in out and "BFloat16" in out
    assert "skipped: no GPU" in out or torch.cuda.is_available()


def test_demo_is_fast() -> None:
    """The whole demo runs in well under 5 seconds."""
    import time

    from tensorbridge import _demo

    start = time.perf_counter()
    _demo.run()
    assert time.perf_counter() - start < 5


def test_convert_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """convert prints one summary line with the tensor count and 'verified' when asked."""
    np.savez(tmp_path / "a.npz", x=np.ones(3), y=np.zeros(2))
    assert (
        main(["convert", str(tmp_path / "a.npz"), str(tmp_path / "b.safetensors"), "--verify"]) == 0
    )
    out = capsys.readouterr().out
    assert "2 tensors" in out and "verified" in out


def test_convert_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """convert --json prints the report: tensors, bytes, verified."""
    np.save(tmp_path / "a.npy", np.ones(4, dtype=np.float32))
    assert main(["convert", str(tmp_path / "a.npy"), str(tmp_path / "b.pt"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tensors"] == 1 and report["bytes"] == 16 and report["verified"] is False


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["convert"],
        ["convert", "only-one.npy"],
        ["inspect"],
        ["convert", "a.npy", "b.txt"],
        ["convert", "a.txt", "b.npy"],
        ["inspect", "model.h5"],
        ["convert", "a.npy", "b.npz", "--dtype", "not-a-dtype"],
        ["convert", "a.npy", "b.npz", "--no-such-option"],
    ],
    ids=lambda argv: " ".join(argv) or "(none)",
)
def test_usage_errors_exit_2(
    argv: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Bad command lines exit 2; error lines start 'tensorbridge: error:' and are one line."""
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "a.npy", np.ones(2))
    assert main(argv) == 2
    err = capsys.readouterr().err
    if argv:
        assert err.startswith("tensorbridge: error: ") and err.count("\n") == 1


def test_missing_file_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A SRC that does not exist is bad input: exit 1, one line naming it."""
    assert main(["inspect", str(tmp_path / "nope.safetensors")]) == 1
    err = capsys.readouterr().err
    assert "nope.safetensors" in err and "no such file" in err and err.count("\n") == 1


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    """--help lists the subcommands and the exit codes, and exits 0."""
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for word in ("demo", "convert", "inspect", "bench", "Exit status"):
        assert word in out


def test_inspect_shows_totals_and_metadata(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """inspect prints totals and a safetensors file's metadata."""
    assert main(["inspect", str(DATA / "golden.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "8 tensors" in out and "21 elements" in out and "57 B" in out


def test_python_dash_m_runs_the_cli(tmp_path: Path) -> None:
    """`python -m tensorbridge inspect FILE --json` works as a separate process, exit 0."""
    proc = subprocess.run(
        [sys.executable, "-m", "tensorbridge", "inspect", str(DATA / "golden.npy"), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tensors"][0]["shape"] == [2, 3]
