"""tensorbridge.image.to_torch / to_numpy: every Pillow mode, layout and scale, checked against
Pillow's own pixel access; paths, arrays, batches, EXIF, palettes and the no-silent-loss rules."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps, ImageSequence

import tensorbridge as tb
from imagehelpers import (
    RAW_ONLY,
    READABLE,
    SCALE_MAX,
    expected,
    pillow_pixels,
    random_image,
    record_steps,
    with_orientation,
)
from tensorbridge import image as ti


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind == "f":
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return a.dtype == b.dtype and np.array_equal(a, b)


# --------------------------------------------------------------------------------------------
# every mode × layout × scale


@pytest.mark.parametrize("layout", ["HWC", "CHW"])
@pytest.mark.parametrize("mode", READABLE)
def test_every_mode_and_layout_equals_pillow_pixels(mode, layout):
    """Each mode's pixels come out exactly as Pillow stores them, in the asked layout."""
    img = random_image(mode)
    want = expected(img)
    if layout == "CHW":
        want = want.transpose(2, 0, 1)
    a = ti.to_numpy(img, layout=layout)
    t = ti.to_torch(img, layout=layout)
    assert _same(a, want)
    assert _same(t.numpy(), want)
    assert t.dim() == 3


@pytest.mark.parametrize("out", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("mode", ["1", "L", "LA", "RGB", "RGBA", "P", "I;16", "I;16B"])
def test_scale_is_the_correctly_rounded_quotient(mode, out):
    """scale=True gives v / max rounded once into the dtype (float64 quotient, then rounded)."""
    img = random_image(mode, seed=3)
    stored = expected(img).astype(np.float64)
    top = SCALE_MAX.get(mode, 255)
    want = (stored / top).astype(out).transpose(2, 0, 1)
    t = ti.to_torch(img, scale=True, dtype=out)
    assert _same(t.numpy(), want)


def test_scale_defaults_to_float32():
    """scale=True without dtype gives float32 in [0, 1]."""
    t = ti.to_torch(random_image("RGB"), scale=True)
    assert t.dtype == torch.float32 and t.min() >= 0 and t.max() <= 1


def test_scale_is_not_a_multiplication_by_the_reciprocal():
    """Every uint16 value scales to exactly float32(v / 65535), not v * (1 / 65535)."""
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    img = Image.fromarray(values)
    got = ti.to_numpy(img, scale=True)[..., 0]
    assert np.array_equal(got, (values.astype(np.float64) / 65535).astype(np.float32))


@pytest.mark.parametrize("mode", ["I", "F"])
def test_scale_on_I_and_F_raises_and_the_fix_works(mode):
    """scale=True on I/F (no defined maximum) raises naming scale=False, which then works."""
    img = random_image(mode)
    with pytest.raises(tb.ConversionError, match="scale=False"):
        ti.to_torch(img, scale=True)
    assert ti.to_torch(img, scale=False).dtype == (torch.int32 if mode == "I" else torch.float32)


@pytest.mark.parametrize("mode", RAW_ONLY)
def test_raw_only_modes_refused_unless_mode_given(mode):
    """CMYK/YCbCr/LAB/HSV raise naming mode=; mode='RGB' converts through Pillow, the own
    mode keeps the raw channels as Pillow stores them."""
    img = random_image(mode)
    with pytest.raises(tb.ConversionError, match="mode='RGB'"):
        ti.to_numpy(img)
    rgb = ti.to_numpy(img, mode="RGB")
    assert np.array_equal(rgb, pillow_pixels(img.convert("RGB")))
    raw = ti.to_numpy(img, mode=mode)
    assert np.array_equal(raw, pillow_pixels(img)) and raw.dtype == np.uint8


def test_mode_argument_converts_through_pillow():
    """mode='L' on an RGB image equals Pillow's own convert('L')."""
    img = random_image("RGB")
    assert np.array_equal(ti.to_numpy(img, mode="L"), pillow_pixels(img.convert("L")))


def test_sixteen_bit_keeps_full_range_in_native_order():
    """I;16 and I;16B values above 32767 stay uint16, in native byte order."""
    for mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        img = Image.new(mode, (3, 1))
        for x, v in enumerate([0, 40000, 65535]):
            img.putpixel((x, 0), v)
        a = ti.to_numpy(img)
        assert a.dtype == np.dtype(np.uint16) and a.dtype.isnative
        assert a[0, :, 0].tolist() == [0, 40000, 65535]


def test_mode_1_gives_canonical_bools():
    """Mode 1 pixels are bools whose bytes are 0 or 1 (not 255)."""
    a = ti.to_numpy(random_image("1"))
    assert a.dtype == np.bool_ and set(np.unique(a.view(np.uint8)).tolist()) <= {0, 1}


# --------------------------------------------------------------------------------------------
# palettes


def test_palette_transparency_int_gives_rgba_like_pillow():
    """A P image with one transparent index expands to RGBA as Pillow's convert does."""
    img = random_image("P")
    img.info["transparency"] = 7
    got = ti.to_numpy(img)
    assert got.shape[-1] == 4
    assert np.array_equal(got, pillow_pixels(img.copy().convert("RGBA")))


def test_palette_transparency_bytes_and_the_caller_is_untouched():
    """Per-index alpha bytes expand like Pillow; the caller's palette, info and pixels stay."""
    img = random_image("P")
    img.info["transparency"] = bytes(range(0, 256, 2))
    before = (img.tobytes(), img.im.getpalette("RGBA", "RGBA"), dict(img.info))
    got = ti.to_numpy(img)
    assert np.array_equal(got, pillow_pixels(img.copy().convert("RGBA")))
    assert (img.tobytes(), img.im.getpalette("RGBA", "RGBA"), dict(img.info)) == before


def test_rgba_palette_expands_with_its_alpha():
    """A palette of RGBA colours expands to RGBA."""
    img = Image.new("P", (3, 1))
    img.putpalette(bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]), "RGBA")
    img.putdata([0, 1, 2])
    got = ti.to_numpy(img)
    assert got.shape == (1, 3, 4)
    assert np.array_equal(got, pillow_pixels(img.copy().convert("RGBA")))


def test_palette_indices():
    """palette='indices' gives the stored indices (P: one channel, PA: index and alpha)."""
    p, pa = random_image("P"), random_image("PA")
    assert np.array_equal(ti.to_numpy(p, palette="indices"), pillow_pixels(p).astype(np.uint8))
    assert np.array_equal(ti.to_numpy(pa, palette="indices"), pillow_pixels(pa).astype(np.uint8))


# --------------------------------------------------------------------------------------------
# EXIF orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_like_a_viewer(orientation):
    """exif=True gives what ImageOps.exif_transpose shows; exif=False the stored pixels; the
    caller's image keeps its size and tag."""
    img = with_orientation(random_image("RGB", (5, 3)), orientation)
    shown = ImageOps.exif_transpose(img)
    assert np.array_equal(ti.to_numpy(img), pillow_pixels(shown))
    assert np.array_equal(ti.to_numpy(img, exif=False), pillow_pixels(img))
    assert img.size == (5, 3) and img.getexif().get(0x0112) == orientation
    plan = ti.explain(img)
    assert any("EXIF orientation" in s for s in plan.steps) == (orientation != 1)


# --------------------------------------------------------------------------------------------
# paths, arrays, batches


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_paths_are_opened_and_closed(tmp_path):
    """A path is read like the image in it, and the file is closed after (and after explain)."""
    img = random_image("RGBA")
    path = tmp_path / "a.png"
    img.save(path)
    before = _open_fds()
    assert np.array_equal(ti.to_numpy(path), pillow_pixels(img))
    assert np.array_equal(ti.to_numpy(str(path)), pillow_pixels(img))
    ti.explain(path)
    assert _open_fds() == before


def test_missing_and_non_image_paths_raise(tmp_path):
    """A missing file or a file that is no image raises ConversionError naming the path."""
    with pytest.raises(tb.ConversionError, match="no such file"):
        ti.to_torch(tmp_path / "nope.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(tb.ConversionError, match=r"bad\.png"):
        ti.to_torch(bad)


def test_multi_frame_file_refused_and_the_fix_works(tmp_path):
    """An animated file raises; the suggested ImageSequence batch converts every frame."""
    frames = [random_image("L", seed=i) for i in range(3)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(tb.ConversionError, match="ImageSequence"):
        ti.to_torch(path)
    with Image.open(path) as opened:
        batch = [f.copy() for f in ImageSequence.Iterator(opened)]
    assert ti.to_torch(batch).shape[0] == 3


@pytest.mark.parametrize("shape", [(3, 5), (3, 5, 1), (3, 5, 3), (2, 3, 5, 4)])
def test_ndarrays_hw_hwc_nhwc(shape):
    """HW gains a channel axis, HWC stays, NHWC is a batch; values and dtype are kept."""
    a = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    full = a[..., None] if a.ndim == 2 else a
    assert np.array_equal(ti.to_numpy(a), full)
    order = (2, 0, 1) if full.ndim == 3 else (0, 3, 1, 2)
    assert np.array_equal(ti.to_torch(a).numpy(), full.transpose(order))


def test_ndarray_views_share_and_unsafe_arrays_copy():
    """A writable native array is shared; read-only and big-endian arrays are copied."""
    a = np.zeros((2, 3, 3), np.uint8)
    assert tb.shares_memory(ti.to_torch(a), a) and np.shares_memory(ti.to_numpy(a), a)
    ro = a.copy()
    ro.flags.writeable = False
    assert not tb.shares_memory(ti.to_torch(ro), ro)
    be = np.arange(6, dtype=">u2").reshape(2, 3)
    t = ti.to_torch(be)
    assert t.dtype == torch.uint16 and t.flatten().tolist() == list(range(6))


def test_batches_stack_images_paths_and_arrays(tmp_path):
    """A list or tuple of images, paths and arrays gives one N-leading result."""
    imgs = [random_image("RGB", seed=i) for i in range(3)]
    imgs[1].save(tmp_path / "b.png")
    items = (imgs[0], tmp_path / "b.png", np.asarray(imgs[2]))
    got = ti.to_torch(items)
    assert got.shape == (3, 3, 3, 5)
    for i, img in enumerate(imgs):
        assert np.array_equal(got[i].numpy(), pillow_pixels(img).transpose(2, 0, 1))
    assert ti.to_numpy(list(items), scale=True).shape == (3, 3, 5, 3)


def test_batch_mismatch_names_the_first_differing_index():
    """Images of another size or mode raise naming the first index that differs."""
    same = random_image("RGB")
    with pytest.raises(tb.ConversionError, match=r"img\[2\]"):
        ti.to_torch([same, same, random_image("RGB", (4, 4)), random_image("L")])
    with pytest.raises(tb.ConversionError, match=r"img\[1\].*mode="):
        ti.to_torch([same, random_image("L")])
    assert ti.to_torch([same, random_image("L")], mode="RGB").shape == (2, 3, 3, 5)


def test_batch_after_palette_and_exif():
    """Batch sizes and modes are compared after EXIF and palette handling."""
    rgb = random_image("RGB", (3, 5))
    rotated = with_orientation(random_image("RGB", (5, 3)), 6)
    p = random_image("P", (3, 5))
    assert ti.to_torch([rgb, rotated, p]).shape == (3, 3, 5, 3)


def test_empty_batch_and_odd_inputs_raise():
    """An empty list, a tensor and unknown objects raise ConversionErrors with a fix."""
    with pytest.raises(tb.ConversionError, match="at least one"):
        ti.to_torch([])
    with pytest.raises(tb.UnsupportedInputError, match="to_pil"):
        ti.to_torch(torch.zeros(3, 2, 2))
    with pytest.raises(tb.UnsupportedInputError, match="PIL image"):
        ti.to_numpy(object())


def test_closed_image_raises_conversion_error(tmp_path):
    """A closed image raises a ConversionError naming it, with Pillow's error as the cause;
    explain raises it too."""
    path = tmp_path / "c.png"
    random_image("L").save(path)
    img = Image.open(path)
    img.close()
    with pytest.raises(tb.ConversionError) as info:
        ti.to_torch(img)
    assert info.value.__cause__ is not None
    with pytest.raises(tb.ConversionError, match="closed"):
        ti.explain(img)


# --------------------------------------------------------------------------------------------
# dtypes: no silent loss


def test_narrowing_without_scale_raises_with_the_values():
    """uint16 → uint8 with values above 255 raises LossyConversionError naming count and range;
    scale=True (the suggested fix) rescales with round half to even."""
    values = np.array([[0, 200, 300, 65535]], np.uint16)
    img = Image.fromarray(values)
    with pytest.raises(tb.LossyConversionError, match=r"2 pixel.*min 300.*max 65535.*scale=True"):
        ti.to_torch(img, dtype=torch.uint8)
    got = ti.to_numpy(img, dtype=np.uint8, scale=True)[0, :, 0]
    want = [round(Fraction(int(v) * 255, 65535)) for v in values[0]]  # Python rounds half to even
    assert got.tolist() == want


def test_narrowing_that_fits_is_exact():
    """uint16 values that fit uint8 cast exactly without scale."""
    img = Image.fromarray(np.array([[0, 17, 255]], np.uint16))
    assert ti.to_numpy(img, dtype="uint8")[0, :, 0].tolist() == [0, 17, 255]


def test_uint8_to_uint16_rescale_and_widening_casts():
    """scale=True into uint16 multiplies by 257; widening casts keep values."""
    img = random_image("L")
    stored = pillow_pixels(img)
    assert np.array_equal(ti.to_numpy(img, dtype=np.uint16, scale=True), stored * 257)
    assert np.array_equal(ti.to_numpy(img, dtype=np.int64), stored)
    assert ti.to_torch(img, dtype=torch.float64).dtype == torch.float64


def test_float_image_to_integer_refuses_fractions():
    """An F image with a fraction raises for an integer dtype; the stored dtype works."""
    img = Image.fromarray(np.array([[0.5, 2.0]], np.float32))
    with pytest.raises(tb.LossyConversionError, match="dtype=None"):
        ti.to_numpy(img, dtype=np.uint8)
    assert ti.to_numpy(img, dtype=None)[0, :, 0].tolist() == [0.5, 2.0]


def test_bfloat16_through_to_torch():
    """dtype=torch.bfloat16 with scale rounds v / max once; exact values pass without scale."""
    img = random_image("L")
    want = torch.from_numpy(pillow_pixels(img).astype(np.float64) / 255).to(torch.bfloat16)
    assert torch.equal(ti.to_torch(img, layout="HWC", scale=True, dtype=torch.bfloat16), want)
    assert ti.to_torch(img, dtype="bfloat16").dtype == torch.bfloat16
    wide = Image.fromarray(np.array([[257]], np.uint16))
    with pytest.raises(tb.LossyConversionError):
        ti.to_torch(wide, dtype=torch.bfloat16)


def test_bad_arguments():
    """Wrong kinds raise TypeError; unknown values raise ConversionError naming the choices."""
    img = random_image("L")
    with pytest.raises(tb.ConversionError, match="'CHW'"):
        ti.to_torch(img, layout="WHC")
    with pytest.raises(TypeError):
        ti.to_torch(img, scale="yes")
    with pytest.raises(tb.ConversionError, match="'indices'"):
        ti.to_torch(img, palette="rgba")
    with pytest.raises(tb.ConversionError, match="pixel dtype"):
        ti.to_torch(img, dtype=torch.complex64)


# --------------------------------------------------------------------------------------------
# explain: what it reports is what runs


CALLS = [
    ("RGB scale", lambda: random_image("RGB"), {"scale": True}),
    ("P transparent", lambda: _transparent_p(), {}),
    ("I;16B", lambda: random_image("I;16B"), {"layout": "HWC"}),
    ("EXIF 6", lambda: with_orientation(random_image("RGB"), 6), {}),
    ("CMYK as RGB", lambda: random_image("CMYK"), {"mode": "RGB"}),
    ("HW array", lambda: np.zeros((2, 3), np.uint8), {}),
    ("read-only array", lambda: _read_only(), {}),
    ("batch", lambda: [random_image("L"), np.zeros((3, 5), np.uint8)], {"scale": True}),
]


def _transparent_p():
    img = random_image("P")
    img.info["transparency"] = 3
    return img


def _read_only():
    a = np.zeros((2, 3, 3), np.uint8)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("to", ["torch", "numpy"])
@pytest.mark.parametrize(("name", "make", "kwargs"), CALLS, ids=[c[0] for c in CALLS])
def test_explain_reports_the_steps_that_run(monkeypatch, name, make, kwargs, to):
    """The steps executed (recorded as they run) are exactly the steps explain lists, and
    copies == 0 exactly when the result shares memory with the input."""
    x = make()
    plan = ti.explain(x, to=to, **kwargs)
    ran = record_steps(monkeypatch)
    out = (ti.to_torch if to == "torch" else ti.to_numpy)(x, **kwargs)
    listed = [s for leaf in plan.leaves.values() for s in leaf.steps] + list(plan.steps)
    assert ran == listed
    if isinstance(x, np.ndarray):
        assert (plan.copies == 0) == tb.shares_memory(out, x)
    else:
        assert plan.copies >= 1 and plan.bytes_copied > 0


@pytest.mark.parametrize(("name", "make", "kwargs"), CALLS, ids=[c[0] for c in CALLS])
def test_core_step_recorder_sees_the_image_steps(name, make, kwargs):
    """The core's step recorder (``tracing``) sees exactly the steps ``explain`` lists."""
    from tensorbridge._plan import tracing

    x = make()
    plan = ti.explain(x, to="torch", **kwargs)
    with tracing() as executed:
        ti.to_torch(x, **kwargs)
    listed = [s for leaf in plan.leaves.values() for s in leaf.steps] + list(plan.steps)
    assert [step.text for step, _ in executed] == listed


def test_explain_names_palette_swap_and_view():
    """explain says when it expands a palette, swaps bytes and views HWC as CHW."""
    text = "\n".join(ti.explain(_transparent_p()).steps)
    assert "palette" in text and "RGBA" in text and "CHW" in text
    assert "byte swap" in "\n".join(ti.explain(random_image("I;16B")).steps)


def test_explain_error_is_the_conversion_error():
    """explain raises the same error the conversion raises."""
    img = random_image("CMYK")
    with pytest.raises(tb.ConversionError) as a:
        ti.explain(img)
    with pytest.raises(tb.ConversionError) as b:
        ti.to_torch(img)
    assert str(a.value) == str(b.value)


# --------------------------------------------------------------------------------------------
# imports


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p])
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )


def test_import_tensorbridge_does_not_import_pil():
    """``import tensorbridge`` (its conversions, files and command line too) never loads PIL."""
    proc = _python(
        "import sys, numpy as np, tensorbridge as tb, tensorbridge.files, tensorbridge.cli; "
        "tb.to_torch(np.ones(2)); print('PIL' in sys.modules)"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_image_without_pillow_names_the_extra():
    """Without Pillow, ``import tensorbridge.image`` raises one ImportError naming the extra."""
    proc = _python(
        "import sys; sys.modules['PIL'] = None\n"
        "try:\n    import tensorbridge.image\n"
        "except ImportError as e:\n    print(type(e).__name__, e)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert 'pip install "tensorbridge[image]"' in proc.stdout
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------------------------
# decisions where SPEC is silent (docs/design.md)


def test_chw_is_a_view_of_hwc_memory():
    """CHW results are HWC memory viewed as CHW (what .permute(2, 0, 1) gives), scaled or not."""
    img = random_image("RGB")
    for t in (ti.to_torch(img), ti.to_torch(img, scale=True), ti.to_torch([img, img])):
        hwc = t.permute(1, 2, 0) if t.dim() == 3 else t.permute(0, 2, 3, 1)
        assert hwc.is_contiguous()


def test_sixteen_bit_rgb_png_is_refused_unless_mode_given(tmp_path):
    """Pillow reads 16-bit RGB PNGs as 8 bits: that loss is refused until mode='RGB' asks."""
    from imagehelpers import png_rgb16

    values = np.array([[[0, 257, 65535], [1000, 2000, 3000]]], np.uint16)
    path = tmp_path / "rgb16.png"
    path.write_bytes(png_rgb16(values))
    with pytest.raises(tb.LossyConversionError, match="mode='RGB'"):
        ti.to_torch(path)
    with Image.open(path) as img:
        want = pillow_pixels(img)
    assert np.array_equal(ti.to_numpy(path, mode="RGB"), want)


def test_unavailable_device_raises_before_reading():
    """device='cuda' without CUDA raises a ConversionError naming device=."""
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(tb.ConversionError, match="device="):
        ti.to_torch(random_image("L"), device="cuda")


def test_scale_into_other_integer_dtypes_refused():
    """scale=True rescales only into uint8/uint16 (or floats); int32 names those dtypes."""
    with pytest.raises(tb.ConversionError, match=r"torch\.float32"):
        ti.to_torch(random_image("L"), scale=True, dtype=torch.int32)


def test_array_dtypes_are_pixels_or_refused():
    """Complex and object arrays are refused naming a cast; float64 arrays keep their dtype."""
    with pytest.raises(tb.UnsupportedInputError, match="astype"):
        ti.to_torch(np.zeros((2, 2), np.complex64))
    assert ti.to_torch(np.zeros((2, 2))).dtype == torch.float64


def test_public_surface():
    """tensorbridge.image exports exactly to_torch, to_numpy, to_pil and explain."""
    assert sorted(ti.__all__) == ["explain", "to_numpy", "to_pil", "to_torch"]


@pytest.mark.parametrize("factor", [1.5, 3])
def test_decompression_bomb_limit_is_an_error_with_its_fix(tmp_path, monkeypatch, factor):
    """Over Pillow's pixel limit (its warning or its error) raises a ConversionError naming
    MAX_IMAGE_PIXELS; raising the limit, as suggested, converts the file."""
    path = tmp_path / "big.png"
    random_image("L", (20, 10)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", int(200 / factor))
    with pytest.raises(tb.ConversionError, match="MAX_IMAGE_PIXELS"):
        ti.to_torch(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert ti.to_torch(path).shape == (1, 10, 20)


def test_odd_transparency_names_palette_indices():
    """A P image whose transparency is neither an index nor bytes raises naming
    palette='indices', which then converts."""
    img = random_image("P")
    img.info["transparency"] = (1, 2, 3)
    with pytest.raises(tb.ConversionError, match="palette='indices'"):
        ti.to_torch(img)
    assert ti.to_torch(img, palette="indices").shape == (1, 3, 5)


def test_mode_conversion_leaves_a_lazily_opened_palette_untouched(tmp_path):
    """mode='RGBA' on an opened (not yet decoded) transparent P file leaves its palette as is."""
    img = random_image("P")
    img.info["transparency"] = 5
    img.save(tmp_path / "p.png")
    with Image.open(tmp_path / "p.png") as opened:
        got = ti.to_numpy(opened, mode="RGBA")
        assert opened.im.getpalette("RGBA", "RGBA")[4 * 5 + 3] == 255
        assert np.array_equal(got, pillow_pixels(opened.copy().convert("RGBA")))


def test_a_failure_inside_a_step_is_a_conversion_error(monkeypatch):
    """An exception raised inside a step becomes a ConversionError naming the input and step."""
    from tensorbridge.image import _reading

    def broken(work, arg):
        raise RuntimeError("boom")

    monkeypatch.setattr(_reading, "_transpose", broken)
    img = with_orientation(random_image("RGB"), 3)
    with pytest.raises(tb.ConversionError, match=r"EXIF orientation 3.*boom") as info:
        ti.to_torch(img)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_every_remaining_suggested_fix_works(tmp_path, monkeypatch):
    """Each fix an error message suggests, applied as written, converts."""
    rgba_pre = Image.new("RGBa", (2, 2))  # a mode with no exact array form here
    with pytest.raises(tb.ConversionError, match="mode='RGB'"):
        ti.to_torch(rgba_pre)
    assert ti.to_torch(rgba_pre, mode="RGB").shape == (3, 2, 2)

    img = random_image("L")
    with pytest.raises(tb.ConversionError, match=r"torch\.float32"):
        ti.to_torch(img, scale=True, dtype=torch.int32)
    assert ti.to_torch(img, scale=True, dtype=torch.float32).dtype == torch.float32

    assert ti.to_torch(img, dtype=torch.bfloat16).dtype == torch.bfloat16

    path = tmp_path / "c.png"
    img.save(path)
    opened = Image.open(path)
    opened.close()
    with pytest.raises(tb.ConversionError, match="pass its path"):
        ti.to_torch(opened)
    assert ti.to_torch(path).shape == (1, 3, 5)

    def broken_exif(self):
        raise SyntaxError("bad EXIF")

    monkeypatch.setattr(Image.Image, "getexif", broken_exif)
    with pytest.raises(tb.ConversionError, match="exif=False"):
        ti.to_torch(img)
    assert ti.to_torch(img, exif=False).shape == (1, 3, 5)
