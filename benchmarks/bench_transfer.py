"""Batched host ↔ GPU transfers against the per-leaf idioms (``.cpu().numpy()``, ``.to("cuda")``).

Run ``python benchmarks/bench_transfer.py`` on a machine with CUDA (it says so and exits where
there is none). Each case is a plain function returning a dict of timings (seconds) and ratios,
listed by ``cases()`` for ``tensorbridge bench``:

- ``small_d2h`` / ``small_h2d``: 1,000 small leaves; target ≥ 5× faster than the idiom;
- ``large_d2h`` / ``large_h2d``: 10 large leaves, also as a fraction of the pinned bandwidth
  measured in the same run with one large ``copy_``; target ≥ 85 %;
- ``sweep_threshold`` / ``sweep_chunk``: the measurements behind ``SMALL_ITEM_BYTES`` and
  ``STAGING_CHUNK_BYTES`` in ``tensorbridge._transfer_plan``.

>>> [name for name, _ in cases()][:2]
['small_d2h', 'small_h2d']
"""

from __future__ import annotations

import functools
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from tensorbridge import _transfer as tr
from tensorbridge import _transfer_plan as tp

Result = dict[str, Any]


def _time(fn: Callable[[], Any], *, repeat: int = 7, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in seconds, the GPU idle before and after each run."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def pinned_bandwidth(nbytes: int = 512 << 20) -> Result:
    """Bytes per second of one large pinned ``copy_`` each way: the ceiling for transfers."""
    host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
    dev = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    h2d = _time(lambda: dev.copy_(host, non_blocking=True))
    d2h = _time(lambda: host.copy_(dev, non_blocking=True))
    return {"h2d_bytes_per_s": nbytes / h2d, "d2h_bytes_per_s": nbytes / d2h}


def _to_numpy_engine(tensors: list[torch.Tensor]) -> list[np.ndarray]:
    return [t.numpy() for t in tr.to_host(tensors)]


def _to_numpy_public(tensors: list[torch.Tensor]) -> Any:
    import tensorbridge

    return tensorbridge.to_numpy(tensors)


def _to_cuda_public(arrays: list[np.ndarray]) -> Any:
    import tensorbridge

    return tensorbridge.to_torch(arrays, device="cuda")


def _d2h(tensors: list[torch.Tensor]) -> Result:
    idiom = _time(lambda: [t.cpu().numpy() for t in tensors])
    engine = _time(lambda: _to_numpy_engine(tensors))
    public = _time(lambda: _to_numpy_public(tensors))
    return {
        "idiom_s": idiom,
        "engine_s": engine,
        "to_numpy_s": public,
        "speedup_engine": idiom / engine,
        "speedup_to_numpy": idiom / public,
    }


def _h2d(arrays: list[np.ndarray]) -> Result:
    idiom = _time(lambda: [torch.from_numpy(a).to("cuda") for a in arrays])
    engine = _time(lambda: tr.to_device([torch.from_numpy(a) for a in arrays], "cuda"))
    public = _time(lambda: _to_cuda_public(arrays))
    return {
        "idiom_s": idiom,
        "engine_s": engine,
        "to_torch_s": public,
        "speedup_engine": idiom / engine,
        "speedup_to_torch": idiom / public,
    }


def small_d2h(n: int = 1000, shape: tuple[int, ...] = (16, 16)) -> Result:
    """1,000 small CUDA tensors to NumPy: the batch against per-leaf ``.cpu().numpy()``."""
    tensors = [torch.randn(shape, device="cuda") for _ in range(n)]
    return _d2h(tensors)


def small_h2d(n: int = 1000, shape: tuple[int, ...] = (16, 16)) -> Result:
    """1,000 small arrays to CUDA: the batch against per-leaf ``torch.from_numpy(a).to("cuda")``."""
    rng = np.random.default_rng(0)
    return _h2d([rng.standard_normal(shape, dtype=np.float32) for _ in range(n)])


def large_d2h(n: int = 10, nbytes: int = 64 << 20) -> Result:
    """10 large CUDA tensors to NumPy, also as a fraction of the pinned bandwidth."""
    tensors = [torch.randn(nbytes // 4, device="cuda") for _ in range(n)]
    result = _d2h(tensors)
    ceiling = pinned_bandwidth()["d2h_bytes_per_s"]
    result["pinned_bytes_per_s"] = ceiling
    result["fraction_of_pinned_engine"] = n * nbytes / result["engine_s"] / ceiling
    result["fraction_of_pinned_idiom"] = n * nbytes / result["idiom_s"] / ceiling
    return result


def large_h2d(n: int = 10, nbytes: int = 64 << 20) -> Result:
    """10 large arrays to CUDA, also as a fraction of the pinned bandwidth."""
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(nbytes // 4, dtype=np.float32) for _ in range(n)]
    result = _h2d(arrays)
    ceiling = pinned_bandwidth()["h2d_bytes_per_s"]
    result["pinned_bytes_per_s"] = ceiling
    result["fraction_of_pinned_engine"] = n * nbytes / result["engine_s"] / ceiling
    result["fraction_of_pinned_idiom"] = n * nbytes / result["idiom_s"] / ceiling
    return result


SWEEP_SIZES = (1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24)


def sweep_threshold(sizes: tuple[int, ...] = SWEEP_SIZES) -> Result:
    """Per leaf size: 64 leaves packed into one copy against 64 direct copies (device → host)."""
    out: Result = {}
    saved = tp.SMALL_ITEM_BYTES
    try:
        for size in sizes:
            tensors = [torch.randn(size // 4, device="cuda") for _ in range(64)]
            tp.SMALL_ITEM_BYTES = size  # packed
            packed = _time(functools.partial(tr.to_host, tensors))
            tp.SMALL_ITEM_BYTES = size - 1  # direct
            direct = _time(functools.partial(tr.to_host, tensors))
            out[f"{size}B_packed_over_direct"] = packed / direct
    finally:
        tp.SMALL_ITEM_BYTES = saved
    return out


def sweep_chunk(chunks: tuple[int, ...] = (4 << 20, 16 << 20, 64 << 20)) -> Result:
    """Staging chunk size for large pageable host → device leaves, as a fraction of pinned."""
    ceiling = pinned_bandwidth()["h2d_bytes_per_s"]
    src = torch.randn(256 << 18)  # 256 MiB
    out: Result = {"pageable_direct": src.nbytes / _time(lambda: src.to("cuda")) / ceiling}
    saved = tp.STAGING_CHUNK_BYTES
    try:
        for chunk in chunks:
            tp.STAGING_CHUNK_BYTES = chunk
            out[f"chunk_{chunk >> 20}MiB"] = (
                src.nbytes / _time(lambda: tr.to_device([src], "cuda")) / ceiling
            )
    finally:
        tp.STAGING_CHUNK_BYTES = saved
    return out


def cases() -> list[tuple[str, Callable[[], Result]]]:
    """The benchmark cases by name, each a function returning its measurements."""
    return [
        ("small_d2h", small_d2h),
        ("small_h2d", small_h2d),
        ("large_d2h", large_d2h),
        ("large_h2d", large_h2d),
        ("sweep_threshold", sweep_threshold),
        ("sweep_chunk", sweep_chunk),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the cases named in ``argv`` (all by default) and print their results."""
    if not torch.cuda.is_available():
        print("bench_transfer: no CUDA device here; nothing to measure (skipped)")
        return 0
    names = argv if argv else [name for name, _ in cases()]
    table = dict(cases())
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    for name in names:
        result = table[name]()
        print(name)
        for key, value in result.items():
            shown = f"{value * 1e3:10.3f} ms" if key.endswith("_s") else f"{value:10.3g}"
            print(f"  {key:32s}{shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
