"""No leaked warnings and no unneeded imports (SPEC: "No PyTorch or NumPy warning leaks")."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import ml_dtypes
import numpy as np
import pytest
import torch

import tensorbridge as tb
from helpers import quiet

OPTIONAL = ["jax", "cupy", "tensorflow", "pandas", "PIL", "xarray", "scipy", "h5py"]


def _run(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where any warning is an error."""
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_loads_no_optional_framework():
    """``import tensorbridge`` loads no optional framework (jax, pandas, scipy, h5py, ...)."""
    proc = _run(
        f"""
        import sys
        import tensorbridge
        loaded = [m for m in {OPTIONAL!r} if m in sys.modules]
        print(",".join(loaded))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_conversions_load_no_optional_framework():
    """Converting tensors, arrays and containers loads no optional framework either."""
    proc = _run(
        f"""
        import sys
        import numpy as np, torch
        import tensorbridge as tb
        tb.to_numpy({{"a": torch.ones(2), "b": [np.ones(2)]}})
        tb.to_torch({{"a": np.ones(2), "b": (torch.ones(1),)}})
        tb.to_python(torch.ones(2)); tb.item(np.ones(1)); tb.explain(np.ones(2), to="torch")
        for refused in ((x for x in [1]), {1}, None):
            try:
                tb.to_numpy(refused)
            except tb.ConversionError:
                pass
        loaded = [m for m in {OPTIONAL!r} if m in sys.modules]
        print(",".join(loaded))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_import_is_warning_free():
    """Importing tensorbridge raises no warning."""
    proc = _run("import tensorbridge")
    assert proc.returncode == 0, proc.stderr


# Fresh interpreters: PyTorch emits some warnings once per process, so in-process tests could
# pass only because an earlier test already used the warning up.
FRESH_PROCESS_SNIPPETS = {
    "readonly-from_numpy": """
        a = np.arange(3.0); a.flags.writeable = False
        tb.to_torch(a, copy=False); tb.to_torch(a); tb.to_torch(a, copy=True)
        """,
    "complex32-to_torch": """
        tb.to_torch(np.array([1 + 2j, 3 - 4j]).astype(ml_dtypes.complex32))
        """,
    "complex32-to_torch-copy": """
        tb.to_torch(np.array([1 + 2j, 3 - 4j]).astype(ml_dtypes.complex32), copy=True)
        """,
    "complex32-to_torch-reversed": """
        tb.to_torch(np.array([1 + 2j, 3 - 4j]).astype(ml_dtypes.complex32)[::-1])
        """,
    "complex64-to-complex32": """
        tb.to_torch(np.array([1 + 2j]), dtype=torch.complex32)
        """,
    "complex32-to_numpy-copy": """
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = torch.zeros(3, dtype=torch.complex32)
        tb.to_numpy(t, copy=True)
        """,
    "nan-to-int-numpy": """
        tb.to_numpy(np.array([np.nan, np.inf, -np.inf, 1e300]), dtype=np.int32)
        """,
    "nan-to-int-torch": """
        tb.to_torch(np.array([np.nan, np.inf, 1e300]), dtype=torch.int64)
        """,
    "nan-to-int-tensor-to_numpy": """
        tb.to_numpy(torch.tensor([float("nan"), float("inf")]), dtype=np.int16)
        """,
    "overflow-float64-to-float16": """
        tb.to_numpy(np.array([1e300]), dtype=np.float16)
        tb.to_torch(np.array([1e300]), float_dtype=torch.float16)
        """,
    "sparse-csr": """
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s = torch.eye(3).to_sparse_csr()
        tb.to_numpy(s)
        """,
    "nested": """
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nt = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)])
        tb.to_numpy(nt)
        """,
    "quantized": """
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q = torch.quantize_per_tensor(torch.ones(3), 0.5, 0, torch.quint8)
        tb.to_numpy(q); tb.to_numpy(q, dtype=np.float64)
        """,
    "matrix": """
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = np.matrix([[1.0, 2.0]])
        tb.to_numpy(m); tb.to_torch(m)
        """,
    "bytes-buffer": """
        tb.to_torch(b"\\x01\\x02"); tb.to_torch(memoryview(b"\\x01\\x02"), copy=False)
        """,
    "item-and-python": """
        tb.item(torch.ones(1, requires_grad=True)); tb.to_python(torch.ones(2, requires_grad=True))
        """,
}


# One interpreter imports the libraries once, then forks a child per snippet: each child starts
# with PyTorch's warn-once flags untouched, as a fresh process would, at a fraction of the cost.
_FORK_RUNNER = r"""
import json, os, sys, traceback, warnings
import numpy as np, torch, ml_dtypes
import tensorbridge as tb
snippets = json.loads(sys.stdin.read())
results = {}
for name, code in snippets.items():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        warnings.simplefilter("error")
        try:
            exec(code, {"np": np, "torch": torch, "ml_dtypes": ml_dtypes, "tb": tb})
            msg = ""
        except BaseException:
            msg = traceback.format_exc() or "failed"
        os.write(w, msg.encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    out = b"".join(chunks).decode()
    results[name] = out if status == 0 else (out or f"child died with status {status}")
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def fresh_results() -> dict[str, str]:
    """Run each snippet in its own freshly forked interpreter: name → traceback ('' if clean)."""
    import json

    if not hasattr(__import__("os"), "fork"):
        pytest.skip("needs os.fork")
    snippets = {k: textwrap.dedent(v) for k, v in FRESH_PROCESS_SNIPPETS.items()}
    proc = subprocess.run(
        [sys.executable, "-c", _FORK_RUNNER],
        input=json.dumps(snippets),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(FRESH_PROCESS_SNIPPETS))
def test_no_warning_leaks_in_a_fresh_process(fresh_results, name):
    """A conversion that warns in raw PyTorch/NumPy emits no warning (warnings are errors here)."""
    assert fresh_results[name] == "", fresh_results[name][-2000:]


def test_fork_runner_catches_warnings():
    """Sanity check of the runner: a raw idiom that warns is reported as a failure."""
    import json

    proc = subprocess.run(
        [sys.executable, "-c", _FORK_RUNNER],
        input=json.dumps({"raw": "a = np.array([np.nan]).astype(np.int32)"}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "RuntimeWarning" in json.loads(proc.stdout.strip().splitlines()[-1])["raw"]


def test_raw_numpy_does_warn_here():
    """Sanity check: the raw NumPy NaN → int cast really warns on this install."""
    with pytest.warns(RuntimeWarning):
        np.array([np.nan]).astype(np.int32)


def test_nan_cast_in_process_is_silent():
    """In this process too (filterwarnings=error), a NaN → int cast with dtype= does not warn."""
    tb.to_numpy(np.array([np.nan]), dtype=np.int64)
    tb.to_torch(np.array([np.nan]), dtype=torch.int32)


def test_readonly_copy_false_in_process_is_silent():
    """A read-only array with ``copy=False`` converts without a warning."""
    a = np.frombuffer(b"\x00" * 16, dtype=np.float64)
    tb.to_torch(a, copy=False)


def test_complex32_in_process_is_silent():
    """complex32 conversions in both directions raise no warning."""
    with quiet():
        t = torch.zeros(2, dtype=torch.complex32)
    tb.to_numpy(t, copy=True)
    tb.to_torch(np.zeros(2, dtype=ml_dtypes.complex32), copy=True)
