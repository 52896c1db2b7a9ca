"""Image cases (``tensorbridge.image``, needs Pillow): a 1920×1080 RGB image against the
hand-written idioms, a batch of 64 images, and the peak memory of the copying conversions.

The idioms: ``torch.from_numpy(np.asarray(img)).permute(2, 0, 1)`` (then ``.float().div(255)``
for scaling), and ``Image.fromarray((t.permute(1, 2, 0).numpy() * 255).clip(0, 255).round()
.astype(np.uint8))`` for floats back to an image. Without Pillow every case is a SKIP.

>>> [c.name for c in cases()][0]
'to_torch(img) vs from_numpy(asarray(img)).permute, 1920×1080 RGB'
"""

from __future__ import annotations

import contextlib
import ctypes
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ._bulk import memory_comparison
from ._case import Case, Config, Skip, Target
from ._harness import Comparison

__all__ = ["cases"]

W, H = 1920, 1080
BATCH, SIDE = 64, 224
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
# Peak ÷ (input + output) may exceed 1 by page rounding and the 256 KiB working rows the
# conversions keep beside the output; one extra full copy would show as 1.2 or more.
MEMORY_SLACK = 1.02


def _modules() -> tuple[Any, Any]:
    try:
        from PIL import Image

        from .. import image
    except ImportError as exc:
        raise Skip(f'needs Pillow: pip install "tensorbridge[image]" ({exc})') from None
    return Image, image


def _rgb(w: int = W, h: int = H, seed: int = 0) -> Any:
    Image, _ = _modules()
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _quiet_once(fn: Callable[[], object]) -> None:
    # torch.from_numpy warns once per process that np.asarray(img) is read-only
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn()


def _to_torch(cfg: Config) -> Comparison:
    _, image = _modules()
    img = _rgb()

    def idiom() -> object:
        return torch.from_numpy(np.asarray(img)).permute(2, 0, 1)

    _quiet_once(idiom)
    return cfg.compare(lambda: image.to_torch(img), idiom)


def _scaled(cfg: Config) -> Comparison:
    _, image = _modules()
    img = _rgb()

    def idiom() -> object:
        return torch.from_numpy(np.asarray(img)).permute(2, 0, 1).float().div(255)

    _quiet_once(idiom)
    return cfg.compare(lambda: image.to_torch(img, scale=True), idiom)


def _to_pil(cfg: Config) -> Comparison:
    Image, image = _modules()
    t = torch.rand(3, H, W, generator=torch.Generator().manual_seed(0))

    def idiom() -> object:
        pixels = (t.permute(1, 2, 0).numpy() * 255).clip(0, 255).round().astype(np.uint8)
        return Image.fromarray(pixels)

    return cfg.compare(lambda: image.to_pil(t, value_range=(0, 1)), idiom)


def _batch(cfg: Config) -> Comparison:
    _, image = _modules()
    imgs = [_rgb(SIDE, SIDE, seed=i) for i in range(BATCH)]

    def idiom() -> object:
        return torch.stack([torch.from_numpy(np.asarray(i)).permute(2, 0, 1) for i in imgs])

    _quiet_once(idiom)
    return cfg.compare(lambda: image.to_torch(imgs), idiom)


def _release_large_buffers() -> None:
    """Have glibc hand freed memory back to the OS (a fixed mmap threshold, and a trim), so the
    RSS high-water mark counts each call's own allocations instead of memory an earlier call
    freed and the allocator kept. No-op where glibc is not the libc."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)
        libc.malloc_trim(0)  # and give back what earlier cases freed but glibc kept


def _memory(
    run: Callable[[Any, Any], Callable[[], Any]], make: str
) -> Callable[[Config], Comparison]:
    def measure(cfg: Config) -> Comparison:
        _, image = _modules()
        _release_large_buffers()
        if make == "image":
            x: Any = _rgb()
            in_bytes = W * H * 3
        elif make == "batch":
            x = [_rgb(SIDE, SIDE, seed=i) for i in range(BATCH)]
            in_bytes = BATCH * SIDE * SIDE * 3
        else:
            x = torch.rand(3, H, W)
            in_bytes = x.numel() * x.element_size()
        ours = run(image, x)
        out = ours()
        out_bytes = (
            out.numel() * out.element_size() if isinstance(out, torch.Tensor) else W * H * 4
        )  # Pillow keeps RGB in 4 bytes a pixel
        del out
        return memory_comparison(ours, in_bytes, out_bytes, before_each=_release_large_buffers)

    return measure


def cases(cfg: Config | None = None) -> list[Case]:
    """The image group: three single-image idioms, a batch, and peak memory."""
    size = f"{W}×{H} RGB"
    return [
        Case(
            "image",
            f"to_torch(img) vs from_numpy(asarray(img)).permute, {size}",
            "image.to_torch(img)",
            "torch.from_numpy(np.asarray(img)).permute(2, 0, 1)",
            Target("<=", 1.1),
            _to_torch,
        ),
        Case(
            "image",
            f"to_torch(img, scale=True) vs ….float().div(255), {size}",
            "image.to_torch(img, scale=True)",
            "torch.from_numpy(np.asarray(img)).permute(2, 0, 1).float().div(255)",
            Target("<=", 1.0),
            _scaled,
        ),
        Case(
            "image",
            f"to_pil(float CHW, value_range=(0, 1)) vs fromarray(… * 255 …), {size}",
            "image.to_pil(t, value_range=(0, 1))",
            "Image.fromarray((t.permute(1, 2, 0).numpy() * 255).clip(0, 255).round()"
            ".astype(np.uint8))",
            Target("<=", 1.0),
            _to_pil,
        ),
        Case(
            "image",
            f"to_torch(batch of {BATCH}) vs torch.stack of the idiom, {SIDE}×{SIDE} RGB",
            "image.to_torch(imgs)",
            "torch.stack([torch.from_numpy(np.asarray(i)).permute(2, 0, 1) for i in imgs])",
            Target("<=", 1.0),
            _batch,
        ),
        Case(
            "image",
            f"peak: to_torch(img, scale=True), {size}",
            "image.to_torch(img, scale=True)",
            "input + output bytes",
            Target("<=", MEMORY_SLACK),
            _memory(lambda image, x: lambda: image.to_torch(x, scale=True), "image"),
            ratio="memory",
        ),
        Case(
            "image",
            f"peak: to_torch(batch of {BATCH}), {SIDE}×{SIDE} RGB",
            "image.to_torch(imgs)",
            "input + output bytes",
            Target("<=", MEMORY_SLACK),
            _memory(lambda image, x: lambda: image.to_torch(x), "batch"),
            ratio="memory",
        ),
        Case(
            "image",
            f"peak: to_pil(float CHW, value_range=(0, 1)), {size}",
            "image.to_pil(t, value_range=(0, 1))",
            "input + output bytes",
            Target("<=", MEMORY_SLACK),
            _memory(lambda image, x: lambda: image.to_pil(x, value_range=(0, 1)), "tensor"),
            ratio="memory",
        ),
    ]
