"""Make the golden files in this folder with plain NumPy, PyTorch and safetensors, no tensorbridge.

Run from the repository root: ``python tests/data/make_golden.py``. The tests import ``expected()``
from here, so each golden file's contents are defined once, in plain library code.

Files (all a few hundred bytes):
- ``golden.npy``: float32 (2, 3) with -0.0, inf and a NaN with a payload.
- ``golden_fortran_be.npy``: big-endian int32 (3, 2) in Fortran order.
- ``golden.npz``: bool, int8, uint16, int64, float16, float64, complex128 (``np.savez``).
- ``golden.safetensors``: bf16, float8_e4m3fn, float8_e5m2, float16, int64, uint8, bool, complex64
  (``safetensors.torch.save_file``).
- ``golden.pt``: a nested dict with bf16, complex32, float8 and int tensors (``torch.save``).
- ``golden_legacy.pt``: the same without float8/complex32, in PyTorch's legacy (pre-1.6) format.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def _specials_f32() -> np.ndarray:
    bits = [0x80000000, 0x7F800000, 0x7FC00123, 0x3F800000, 0xFF800000, 0x00000001]
    return np.array(bits, dtype=np.uint32).view(np.float32).reshape(2, 3)


def expected() -> dict[str, dict[str, object]]:
    """Golden file name → {tensor name → the array or tensor it must hold}."""
    npz = {
        "flags": np.array([True, False, True]),
        "i8": np.array([-128, 0, 127], dtype=np.int8),
        "u16": np.array([0, 1, 65535], dtype=np.uint16),
        "i64": np.arange(6, dtype=np.int64).reshape(2, 3),
        "f16": np.array([-0.0, 65504.0, np.inf], dtype=np.float16),
        "f64": np.array([[1.5, -2.25], [np.nan, 1e300]]),
        "c128": np.array([1 + 2j, -3.5j]),
    }
    st = {
        "bf16": torch.tensor([1.0, -0.0, float("inf"), 3.140625], dtype=torch.bfloat16),
        "f8e4m3": torch.tensor([0.5, -448.0, 1.0], dtype=torch.float8_e4m3fn),
        "f8e5m2": torch.tensor([0.25, -57344.0], dtype=torch.float8_e5m2),
        "f16": torch.tensor([[1.0, 2.0], [3.0, -0.0]], dtype=torch.float16),
        "i64": torch.tensor([-(2**63), 2**63 - 1]),
        "u8": torch.tensor([0, 255], dtype=torch.uint8),
        "mask": torch.tensor([True, False]),
        "c64": torch.tensor([1 + 1j, 2 - 3j], dtype=torch.complex64),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "ComplexHalf support is experimental"
        c32 = torch.tensor([1 + 2j], dtype=torch.complex32)
    pt: dict[str, object] = {
        "encoder.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "encoder.bias": torch.tensor([0.5, -0.5], dtype=torch.bfloat16),
        "heads": {"a": c32, "b": [torch.tensor([7], dtype=torch.int16)]},
        "scale": torch.tensor(2.0, dtype=torch.float8_e5m2),
    }
    fortran_be = np.asfortranarray(np.arange(6, dtype=">i4").reshape(3, 2))
    # PyTorch cannot read float8 or complex32 back from its legacy format, so they are left out
    legacy = {"encoder.weight": pt["encoder.weight"], "encoder.bias": pt["encoder.bias"]}
    legacy["heads"] = {"b": [torch.tensor([7], dtype=torch.int16)]}
    return {
        "golden.npy": {"golden": _specials_f32()},
        "golden_fortran_be.npy": {"golden_fortran_be": fortran_be},
        "golden.npz": npz,
        "golden.safetensors": st,
        "golden.pt": pt,
        "golden_legacy.pt": legacy,
    }


def main() -> None:
    from safetensors.torch import save_file

    files = expected()
    np.save(HERE / "golden.npy", files["golden.npy"]["golden"])
    np.save(HERE / "golden_fortran_be.npy", files["golden_fortran_be.npy"]["golden_fortran_be"])
    np.savez(HERE / "golden.npz", **files["golden.npz"])  # type: ignore[arg-type]
    save_file(files["golden.safetensors"], str(HERE / "golden.safetensors"))  # type: ignore[arg-type]
    torch.save(files["golden.pt"], HERE / "golden.pt")
    torch.save(
        files["golden_legacy.pt"], HERE / "golden_legacy.pt", _use_new_zipfile_serialization=False
    )


if __name__ == "__main__":
    main()
