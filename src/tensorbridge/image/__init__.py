"""PIL ↔ NumPy ↔ PyTorch for images, exact for every Pillow mode (Pillow: the ``image`` extra).

``to_torch``/``to_numpy`` read a PIL image, an image file, an HW/HWC/NHWC ndarray or a list of
these; every pixel equals what Pillow stores (16-bit stays uint16, palettes expand to their colours,
EXIF orientation is applied, nothing wraps or saturates). ``to_pil`` makes images from tensors and
arrays whose layout is declared, never guessed. ``explain`` shows the steps a call runs.

>>> import numpy as np
>>> from PIL import Image
>>> from tensorbridge import image
>>> img = Image.fromarray(np.array([[0, 60000]], dtype=np.uint16))
>>> image.to_torch(img)
tensor([[[    0, 60000]]], dtype=torch.uint16)
>>> image.to_pil(image.to_torch(img)).getpixel((1, 0))
60000
"""

from __future__ import annotations

try:
    import PIL.Image  # noqa: F401
except ImportError:
    raise ImportError(
        'tensorbridge.image needs Pillow, which is not installed: pip install "tensorbridge[image]"'
    ) from None

from typing import Any

import numpy as np
import torch

from .._plan import Plan
from . import _reading, _to_pil

__all__ = ["explain", "to_numpy", "to_pil", "to_torch"]


def to_torch(
    img: Any,
    /,
    *,
    layout: str = "CHW",
    dtype: Any = None,
    scale: bool = False,
    mode: str | None = None,
    exif: bool = True,
    palette: str = "rgb",
    device: Any = None,
) -> torch.Tensor:
    """An image (or a batch) as a tensor: ``(C, H, W)`` (a view of HWC memory) or ``(H, W, C)``.

    ``scale=True`` maps bool/uint8/uint16 pixels to [0, 1] (float32 unless ``dtype`` says
    otherwise), each value the correctly rounded ``v / max``.

    >>> from PIL import Image
    >>> to_torch(Image.new("RGB", (2, 1), (255, 0, 51)), scale=True)[:, 0, 0]
    tensor([1.0000, 0.0000, 0.2000])
    """
    opts = _reading.Options.make("torch", layout, dtype, scale, mode, exif, palette, device)
    return _reading.run(img, opts)


def to_numpy(
    img: Any,
    /,
    *,
    layout: str = "HWC",
    dtype: Any = None,
    scale: bool = False,
    mode: str | None = None,
    exif: bool = True,
    palette: str = "rgb",
) -> np.ndarray:
    """An image (or a batch) as an ndarray: ``(H, W, C)`` or ``(C, H, W)`` (C = 1 kept).

    >>> from PIL import Image
    >>> img = Image.new("P", (1, 1)); img.putpalette([10, 20, 30])
    >>> to_numpy(img).tolist(), to_numpy(img, palette="indices").tolist()
    ([[[10, 20, 30]]], [[[0]]])
    """
    opts = _reading.Options.make("numpy", layout, dtype, scale, mode, exif, palette)
    return _reading.run(img, opts)


def to_pil(
    x: Any,
    /,
    *,
    layout: str | None = None,
    value_range: tuple[float, float] | None = None,
    overflow: str = "error",
    mode: str | None = None,
) -> Any:
    """A PIL image from a tensor or ndarray (a list of images from a 4-D batch).

    ``layout`` defaults to ``"CHW"`` for tensors and ``"HWC"`` for arrays; the channel count is
    read from it. Floats need ``value_range=(lo, hi)`` (mapped to uint8, round half to even);
    values outside it raise unless ``overflow="clip"``.

    >>> import torch
    >>> to_pil(torch.tensor([[[0.0, 0.5, 1.0]]]), value_range=(0, 1)).getpixel((1, 0))
    128
    """
    return _to_pil.run(x, layout, value_range, overflow, mode)


def explain(obj: Any, /, to: str = "torch", **kwargs: Any) -> Plan:
    """The steps ``to_torch``/``to_numpy``/``to_pil`` run for ``obj`` (``to=``), without running.

    >>> from PIL import Image
    >>> print(explain(Image.new("RGB", (4, 2)), scale=True))  # doctest: +NORMALIZE_WHITESPACE
    to torch: PIL image (mode='RGB', size=4×2)
      1. read pixels from Pillow (mode RGB), scale v / 255 into float32 (correctly rounded) (96 B)
      2. view as torch.Tensor (no copy)
      3. view HWC as CHW (no copy)
      = 1 copy, 96 B copied, no memory shared, no device sync
    """
    if to not in ("torch", "numpy", "pil"):
        raise TypeError(f"to must be 'torch', 'numpy' or 'pil', not {to!r}")
    if to == "pil":
        _check_keywords(to, kwargs, ("layout", "value_range", "overflow", "mode"))
        return _to_pil.explain(obj, *_pil_args(**kwargs))
    defaults: dict[str, Any] = {
        "layout": "CHW" if to == "torch" else "HWC",
        "dtype": None,
        "scale": False,
        "mode": None,
        "exif": True,
        "palette": "rgb",
    }
    if to == "torch":
        defaults["device"] = None
    _check_keywords(to, kwargs, tuple(defaults))
    defaults.update(kwargs)
    opts = _reading.Options.make(to, **defaults)
    return _reading.explain(obj, opts)


def _pil_args(
    layout: str | None = None,
    value_range: tuple[float, float] | None = None,
    overflow: str = "error",
    mode: str | None = None,
) -> tuple[Any, ...]:
    return layout, value_range, overflow, mode


def _check_keywords(to: str, kwargs: dict[str, Any], known: tuple[str, ...]) -> None:
    unknown = set(kwargs) - set(known)
    if unknown:
        raise TypeError(
            f"to_{to}() got unexpected keyword argument(s) {', '.join(sorted(unknown))}"
        )
