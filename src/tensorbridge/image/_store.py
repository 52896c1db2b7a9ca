"""How pixel values land in the output: kept, cast, scaled to [0, 1] or rescaled — never wrapped.

A ``Store`` is decided once per conversion (source dtype, target dtype, ``scale``) and then writes
block after block; a cast that cannot hold every value is counted and refused at the end.

>>> s = Store(np.dtype(np.uint8), np.dtype(np.float32), scale=True)
>>> out = np.empty(2, np.float32); s.write(np.array([0, 255], np.uint8), out); out
array([0., 1.], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._errors import ConversionError, LossyConversionError

__all__ = ["SCALE_MAX", "Store"]

SCALE_MAX = {np.dtype(np.bool_): 1, np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}
"""The maximum ``scale=True`` divides by, per pixel dtype (others have none)."""


class Store:
    """Writes source blocks into destination blocks of dtype ``out``, as ``scale`` asks."""

    def __init__(self, src: np.dtype[Any], out: np.dtype[Any], scale: bool, what: str = "") -> None:
        self.src = src.newbyteorder("=")
        self.out = out
        self.scale = scale
        self.what = what
        self.bad = 0
        self.nans = 0
        self.bad_lo: Any = None
        self.bad_hi: Any = None
        if scale:
            if self.src not in SCALE_MAX:
                raise ConversionError(
                    f"{what}: scale=True needs pixels with a defined maximum (bool, uint8 or "
                    f"uint16), and these are {self.src}; pass scale=False and divide by a "
                    "maximum of your choosing"
                )
            self.max = SCALE_MAX[self.src]
            if out.kind == "f":
                self.kind = "divide"
            elif out in (np.dtype(np.uint8), np.dtype(np.uint16)):
                self.kind = "same" if SCALE_MAX[out] == self.max else "rescale"
            else:
                raise ConversionError(
                    f"{what}: scale=True maps pixels to [0, 1] (a floating-point dtype) or "
                    f"rescales them to uint8/uint16, not to {out}; pass dtype=torch.float32, "
                    "dtype=torch.uint8 or dtype=torch.uint16"
                )
        else:
            self.kind = "same" if self.src == out else "cast"
        self.checked = self.kind == "cast" and not _exact(self.src, out)

    @property
    def text(self) -> str:
        """What this store does to each value, for plans."""
        if self.kind == "divide":
            return f"scale v / {self.max} into {self.out} (correctly rounded)"
        if self.kind == "rescale":
            top = SCALE_MAX[self.out]
            return f"rescale 0..{self.max} → 0..{top} into {self.out}, round half to even"
        if self.kind == "cast":
            check = ", every value checked to fit" if self.checked else " (exact)"
            return f"cast {self.src} → {self.out}{check}"
        return f"as {self.out}"

    def write(self, block: np.ndarray, dest: np.ndarray) -> None:
        """Store ``block``'s values into ``dest`` (same shape)."""
        if self.kind == "same":
            dest[...] = block
        elif self.kind == "divide":
            self._divide(block, dest)
        elif self.kind == "rescale":
            v = block.astype(np.int64) * SCALE_MAX[self.out]
            q, r = np.divmod(v, self.max)
            q += (2 * r > self.max) | ((2 * r == self.max) & (q % 2 == 1))
            dest[...] = q
        else:
            with np.errstate(all="ignore"):  # NaN/inf/overflow casts are checked just below
                dest[...] = block
                if self.checked:
                    self._check(block, dest)

    def _divide(self, block: np.ndarray, dest: np.ndarray) -> None:
        # IEEE division of exact operands is correctly rounded. float16 goes through float64: a
        # 16-bit v / 65535 can lie within 2**-28 of a float16 tie, so a float32 quotient rounded
        # again to float16 is wrong twice in 65536 values; a float64 one is never near enough.
        if self.out == np.float32:
            np.divide(block, np.float32(self.max), out=dest, dtype=np.float32)
        elif self.out == np.float64:
            np.divide(block, np.float64(self.max), out=dest, dtype=np.float64)
        else:
            dest[...] = np.divide(block, np.float64(self.max), dtype=np.float64)

    def _check(self, block: np.ndarray, dest: np.ndarray) -> None:
        # both tests: a wrap (200 → int8 -56) casts back to 200, and a rounding (2**53 + 1 →
        # float32) compares equal in float64; NumPy compares mixed dtypes by value
        same = (dest == block) & (dest.astype(block.dtype) == block)
        if block.dtype.kind == "f" and dest.dtype.kind == "f":
            same |= np.isnan(block) & np.isnan(dest)
        if not same.all():
            lost = block[~same]
            self.bad += int(lost.size)
            if lost.dtype.kind == "f":  # NaN is counted apart: it has no place in a min or max
                nan = np.isnan(lost)
                self.nans += int(nan.sum())
                lost = lost[~nan]
            if lost.size:
                lo, hi = lost.min(), lost.max()
                self.bad_lo = lo if self.bad_lo is None else min(self.bad_lo, lo)
                self.bad_hi = hi if self.bad_hi is None else max(self.bad_hi, hi)

    def finish(self) -> None:
        """Raise ``LossyConversionError`` if any value written did not fit."""
        if not self.bad:
            return
        rescales = self.out.kind == "f" or self.out in (np.dtype(np.uint8), np.dtype(np.uint16))
        fixes = ["scale=True to rescale"] if self.src in SCALE_MAX and rescales else []
        fixes.append("dtype=None to keep the stored values")
        parts = [f"{self.nans} NaN"] if self.nans else []
        if self.bad_lo is not None:
            parts.insert(0, f"min {self.bad_lo.item()!r}, max {self.bad_hi.item()!r}")
        raise LossyConversionError(
            f"{self.what}: {self.bad} pixel value(s) do not fit {self.out} exactly "
            f"({', '.join(parts)}); nothing is wrapped or "
            f"saturated silently: pass {' or '.join(fixes)}, or a wider dtype"
        )


def _exact(src: np.dtype[Any], out: np.dtype[Any]) -> bool:
    """Whether every ``src`` value has an exact ``out`` value (NumPy calls int64 → float64 safe,
    but 2**53 + 1 has no float64 form)."""
    if not np.can_cast(src, out, "safe"):
        return False
    if src.kind in "iu" and out.kind == "f":
        return src.itemsize * 8 - (src.kind == "i") <= np.finfo(out).nmant + 1
    return True
