"""Helpers for the file-format and command-line tests: plain NumPy/PyTorch/safetensors only.

Files are written and read back here with each format's own library (``np.save``, ``torch.save``,
``safetensors.torch.save_file``), never with tensorbridge, so the tests check tensorbridge's files
against an independent reference.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

DATA = Path(__file__).resolve().parent / "data"

NPY_DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
]  # fmt: skip
SAFETENSORS_DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "bfloat16", "float8_e4m3fn", "float8_e5m2",
    "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu",
]  # fmt: skip
PT_DTYPES = [*SAFETENSORS_DTYPES, "complex128", "complex32"]
HOLDS = {"npy": NPY_DTYPES, "npz": NPY_DTYPES, "pt": PT_DTYPES, "safetensors": SAFETENSORS_DTYPES}
FORMATS = list(HOLDS)


def golden() -> Any:
    """The ``tests/data/make_golden.py`` module (its ``expected()`` defines the golden contents)."""
    spec = importlib.util.spec_from_file_location("make_golden", DATA / "make_golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_tensor(tag: str, seed: int = 0, shape: tuple[int, ...] = (2, 3)) -> torch.Tensor:
    """A tensor of ``tag`` whose bits are random (NaN payloads, -0.0, subnormals included)."""
    dtype = getattr(torch, tag)
    n = int(np.prod(shape))
    gen = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=gen).bool()
    itemsize = torch.empty(0, dtype=dtype).element_size() if dtype != torch.complex32 else 4
    raw = torch.randint(0, 256, (n * itemsize,), dtype=torch.uint8, generator=gen)
    return raw.view(dtype).reshape(shape)


def to_plain_numpy(t: torch.Tensor) -> np.ndarray:
    """``t`` as a NumPy array (native dtypes only)."""
    return t.numpy()


def write_plain(fmt: str, path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write ``tensors`` to ``path`` with the format's own library."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "npy":
            (only,) = tensors.values()
            np.save(path, to_plain_numpy(only))
        elif fmt == "npz":
            np.savez(path, **{k: to_plain_numpy(v) for k, v in tensors.items()})  # type: ignore[arg-type]
        elif fmt == "pt":
            torch.save(tensors, path)
        else:
            from safetensors.torch import save_file

            save_file(tensors, str(path))


def read_plain(fmt: str, path: Path) -> dict[str, Any]:
    """Read every tensor of ``path`` with the format's own library (a bare one under ``""``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "npy":
            return {"": np.load(path, allow_pickle=False)}
        if fmt == "npz":
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        if fmt == "pt":
            obj = torch.load(path, weights_only=True)
            return {"": obj} if isinstance(obj, torch.Tensor) else dict(obj)
        from safetensors.torch import load_file

        return dict(load_file(str(path)))


def bits(x: Any) -> tuple[str, tuple[int, ...], bytes]:
    """dtype name, shape and C-order bytes (native order) of a tensor or array."""
    if isinstance(x, torch.Tensor):
        x = x.resolve_conj().resolve_neg().contiguous()
        name = str(x.dtype).removeprefix("torch.")
        raw = x.reshape(-1).view(torch.uint8).numpy().tobytes() if x.numel() else b""
        return name, tuple(x.shape), raw
    x = np.asarray(x)
    if not x.dtype.isnative:
        x = x.astype(x.dtype.newbyteorder("="))
    return str(x.dtype), tuple(x.shape), np.ascontiguousarray(x).tobytes()
