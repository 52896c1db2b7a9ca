"""tensorbridge.image: cases found by trying to break it, each checked against NumPy, PyTorch or
Pillow directly."""

from __future__ import annotations

import io
import json
import os
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile, ImageOps

import tensorbridge as tb
from imagehelpers import record_steps
from tensorbridge import image as ti
from tensorbridge.cli import main


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        (np.array([[0, 127, 200]], np.uint8), np.int8),
        (np.array([[0, 32767, 65535]], np.uint16), np.int16),
        (np.array([[5, -1]], np.int32), np.uint16),
        (np.array([[5, -1]], np.int32), np.uint32),
        (np.array([[1, 2**53 + 1]], np.int64), np.float64),
    ],
)
def test_a_cast_that_wraps_or_rounds_is_refused(values, dtype):
    """A narrowing cast that would wrap (uint8 200 → int8 -56) or round (int64 → float64) raises
    LossyConversionError naming the one value, and never suggests scale=True where it fails."""
    with pytest.raises(tb.LossyConversionError, match=r"1 pixel value.*dtype=None") as info:
        ti.to_numpy(values, dtype=dtype)
    assert "scale=True" not in str(info.value)
    fits = values[:, :1]
    assert np.array_equal(ti.to_numpy(fits, dtype=dtype)[..., 0], fits.astype(dtype))
    assert np.array_equal(ti.to_numpy(values, dtype=None)[..., 0], values)  # the fix named


def test_a_wrapping_cast_from_a_pil_image_is_refused():
    """An L image's 200 into int8 raises (Pillow's pixel is 200, int8 cannot hold it)."""
    img = Image.fromarray(np.array([[0, 200]], np.uint8))
    assert img.getpixel((1, 0)) == 200
    with pytest.raises(tb.LossyConversionError, match="min 200, max 200"):
        ti.to_torch(img, dtype=torch.int8)
    assert ti.to_torch(img, dtype=torch.int16).flatten().tolist() == [0, 200]


def _tiff_with_orientation(pixels: np.ndarray, orientation: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "TIFF", tiffinfo={0x0112: orientation})
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_is_applied_once(orientation):
    """A TIFF with an orientation tag reads as ImageOps.exif_transpose shows it (Pillow's own TIFF
    reader may turn it while decoding: never twice), and exif=False gives the stored pixels."""
    stored = np.random.default_rng(orientation).integers(0, 256, (3, 5, 3), dtype=np.uint8)
    data = _tiff_with_orientation(stored, orientation)
    with Image.open(io.BytesIO(data)) as img:
        want = np.asarray(ImageOps.exif_transpose(img))
    with Image.open(io.BytesIO(data)) as img:
        plan = str(ti.explain(img))
        got = ti.to_numpy(img)
    assert np.array_equal(got, want)
    assert ("EXIF orientation" in plan) == (orientation != 1)
    with Image.open(io.BytesIO(data)) as img:
        assert np.array_equal(ti.to_numpy(img, exif=False), stored)


def test_scale_into_float16_is_correctly_rounded_for_every_uint16():
    """Every uint16 value with scale=True into float16 is v / 65535 rounded once (NumPy's float64
    quotient cast to float16), including 65455 and 65519, where a float32 quotient rounds twice."""
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    want = (values.astype(np.float64) / 65535).astype(np.float16)
    got = ti.to_numpy(Image.fromarray(values), scale=True, dtype=np.float16)[..., 0]
    assert got.tobytes() == want.tobytes()
    assert torch.equal(
        ti.to_torch(values, scale=True, dtype=torch.float16)[0], torch.from_numpy(want)
    )
    for v in (65455, 65519):  # the nearer float16 of the exact quotient, by exact arithmetic
        exact = Fraction(v, 65535)
        below = np.float16(np.nextafter(np.float16(float(exact)), np.float16(0)))
        cands = [
            np.float16(float(exact)),
            below,
            np.nextafter(np.float16(float(exact)), np.float16(2)),
        ]
        nearest = min(cands, key=lambda c: abs(Fraction(float(c)) - exact))
        assert want[v // 256, v % 256] == nearest


def test_bfloat16_keeps_nan_and_signed_zero_and_names_the_image():
    """An F image's NaN, inf and -0.0 go into bfloat16 bit for bit as PyTorch casts them; a value
    bfloat16 cannot hold raises naming the image, and scale=True is not offered for F pixels."""
    stored = np.array([[np.nan, np.inf, -0.0, 1.5]], np.float32)
    got = ti.to_torch(Image.fromarray(stored), dtype=torch.bfloat16)
    want = torch.from_numpy(stored).to(torch.bfloat16)[None]
    assert torch.equal(got.view(torch.int16), want.view(torch.int16))
    with pytest.raises(tb.LossyConversionError, match=r"mode='F'.*1 pixel value.*dtype=None") as e:
        ti.to_torch(Image.fromarray(np.array([[np.nan, 1.001]], np.float32)), dtype="bfloat16")
    assert "scale=True" not in str(e.value)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float8_e4m3fn])
def test_to_pil_of_other_floats_needs_value_range_like_float16(dtype):
    """A one-channel bfloat16/float8 tensor is a float other than float32: it needs value_range
    (or a float32 cast for mode F), as SPEC says; both fixes give Pillow's own result."""
    x = torch.tensor([[[0.0, 0.5, 1.0]]]).to(dtype)
    with pytest.raises(tb.ConversionError, match=r"value_range=.*float32") as info:
        ti.to_pil(x)
    assert str(dtype).removeprefix("torch.") in str(info.value)
    mapped = ti.to_pil(x, value_range=(0, 1))
    want = np.rint(x.float().numpy()[0].astype(np.float64) * 255).astype(np.uint8)
    assert mapped.mode == "L" and np.array_equal(np.asarray(mapped), want)
    exact = ti.to_pil(x.float())
    assert exact.mode == "F" and [exact.getpixel((i, 0)) for i in range(3)] == [0.0, 0.5, 1.0]


def test_to_pil_of_an_ml_dtypes_array_names_the_cast():
    """An ml_dtypes bfloat16 ndarray is refused naming astype(np.float32) and value_range, and
    that fix gives the values NumPy computes."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    a = np.array([[0.0, 0.5, 1.0]], dtype=ml_dtypes.bfloat16)
    with pytest.raises(tb.ConversionError, match=r"astype\(np.float32\).*value_range"):
        ti.to_pil(a)
    got = ti.to_pil(a.astype(np.float32), value_range=(0, 1))
    assert np.array_equal(np.asarray(got), np.rint(a.astype(np.float64) * 255).astype(np.uint8))


@pytest.mark.parametrize(("fmt", "exif"), [("PNG", True), ("PNG", False), ("JPEG", True)])
def test_a_truncated_file_names_its_path_and_the_setting_that_reads_it(
    tmp_path, monkeypatch, fmt, exif
):
    """A truncated file raises a ConversionError naming the path; the fix it names
    (PIL.ImageFile.LOAD_TRUNCATED_IMAGES) then gives exactly the pixels Pillow gives."""
    pixels = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    whole = io.BytesIO()
    Image.fromarray(pixels).save(whole, fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    with pytest.raises(tb.ConversionError, match=r"cut.*truncated.*LOAD_TRUNCATED_IMAGES = True"):
        ti.to_numpy(str(path), exif=exif)
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with Image.open(path) as img:
        want = np.asarray(img.convert("RGB"))
    assert np.array_equal(ti.to_numpy(str(path), exif=exif), want)


def test_a_bad_path_in_a_batch_names_its_index(tmp_path):
    """A missing file or a directory inside a batch is named with its index (img[1] = ...);
    a directory's message names the fix, a path of an image file, which then works."""
    good = tmp_path / "ok.png"
    Image.new("L", (2, 2), 7).save(good)
    with pytest.raises(tb.ConversionError, match=r"^img\[1\] = '.*nope\.png': no such file"):
        ti.to_torch([str(good), str(tmp_path / "nope.png")])
    with pytest.raises(tb.ConversionError, match=r"^img\[1\] = .* is a directory; pass the path"):
        ti.to_torch([good, tmp_path])
    assert ti.to_torch([good, good]).flatten().tolist() == [7] * 8


@pytest.mark.parametrize("exif", [True, False])
def test_explain_of_an_oriented_tiff_is_what_runs(monkeypatch, exif):
    """For a TIFF with orientation 6, the steps that run are the steps explain lists, and the
    bytes it reports for the result match the result's shape (Pillow's own pixels)."""
    stored = np.random.default_rng(6).integers(0, 256, (3, 5, 3), dtype=np.uint8)
    data = _tiff_with_orientation(stored, 6)
    with Image.open(io.BytesIO(data)) as img:
        plan = ti.explain(img, to="numpy", exif=exif)
        ran = record_steps(monkeypatch)
        out = ti.to_numpy(img, exif=exif)
    assert ran == list(plan.steps)
    assert out.shape == ((5, 3, 3) if exif else (3, 5, 3))
    assert any(f"({out.nbytes} B)" in step for step in plan.steps)


@pytest.mark.parametrize(
    ("to", "kwargs"), [("pil", {"scale": True}), ("torch", {"overflow": "clip"})]
)
def test_explain_names_the_function_a_wrong_keyword_belongs_to(to, kwargs):
    """explain(to=...) with a keyword that function does not take raises TypeError naming
    to_<to>(), as calling that function with it does."""
    x = torch.zeros(1, 2, 2) if to == "pil" else np.zeros((2, 2), np.uint8)
    with pytest.raises(TypeError, match=rf"to_{to}\(\) got unexpected keyword"):
        ti.explain(x, to=to, **kwargs)
    with pytest.raises(TypeError, match="unexpected keyword"):
        getattr(ti, f"to_{to}")(x, **kwargs)


@pytest.mark.parametrize("fmt", ["TIFF", "JPEG"])
def test_inspect_shows_the_stored_size_of_an_oriented_file(tmp_path, capsys, fmt):
    """inspect of a TIFF or JPEG with orientation 6 shows the size the file stores (Pillow's
    pixels read with exif_transpose off: width 5, height 3) and the turned to_torch shape."""
    path = tmp_path / f"o6.{fmt.lower()}"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((3, 5, 3), np.uint8)).save(path, fmt, exif=exif)
    with Image.open(path) as img:
        shown = ImageOps.exif_transpose(img).size
    assert main(["inspect", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["metadata"]["size"].startswith("5×3")
    assert doc["tensors"][0]["shape"] == [3, shown[1], shown[0]] == [3, 5, 3]


def test_to_pil_mode_mismatches_name_a_fix_that_works():
    """A mode= the pixels cannot make names a fix (a cast, value_range, dropping value_range or
    mode=None); each applied gives Pillow the values NumPy computes."""
    x = np.array([[0, 1, 200]], np.uint8)
    cases = [
        ({"mode": "I"}, "cast them to int32", lambda: ti.to_pil(x.astype(np.int32), mode="I")),
        ({"mode": "P"}, "pass mode=None", lambda: ti.to_pil(x)),
        ({"mode": "I;16"}, "value_range", lambda: ti.to_pil(x, value_range=(0, 255), mode="I;16")),
    ]
    for kwargs, fix, fixed in cases:
        with pytest.raises(tb.ConversionError, match=fix):
            ti.to_pil(x, **kwargs)
        img = fixed()
        want = x.astype(np.int64) * (257 if img.mode == "I;16" else 1)
        assert [img.getpixel((i, 0)) for i in range(3)] == want[0].tolist()
    f = np.array([[0.25, -3.5]], np.float32)
    with pytest.raises(tb.ConversionError, match="drop value_range to store the values in mode F"):
        ti.to_pil(f, value_range=(0, 1), mode="F")
    img = ti.to_pil(f, mode="F")
    assert img.mode == "F" and [img.getpixel((i, 0)) for i in range(2)] == [0.25, -3.5]


def test_an_mpo_photo_reads_as_its_first_frame(tmp_path):
    """A JPEG holding an MPO preview (two frames of different sizes, as phones write them) reads
    as its first frame, EXIF orientation applied, as ImageOps.exif_transpose gives it."""
    photo = np.random.default_rng(9).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(photo).save(
        path, "MPO", save_all=True, append_images=[Image.new("RGB", (3, 2))], exif=exif
    )
    with Image.open(path) as img:
        assert img.format == "MPO" and img.n_frames == 2
        want = np.asarray(ImageOps.exif_transpose(img))
    assert np.array_equal(ti.to_numpy(str(path)), want)
    assert ti.to_torch(path).shape == (3, 6, 4)


def test_mode_on_an_array_is_refused_when_its_pixels_are_not_that_mode():
    """mode='L' on an (H, W, 3) array raises instead of being ignored; mode=None and the
    conversion it names (Image.fromarray(a).convert('L')) both work; a matching mode passes."""
    a = np.random.default_rng(10).integers(0, 256, (2, 3, 3), dtype=np.uint8)
    with pytest.raises(tb.ConversionError, match=r"mode='L'.*mode=None.*convert\('L'\)"):
        ti.to_numpy(a, mode="L")
    with pytest.raises(tb.ConversionError, match="mode='L'"):
        ti.to_numpy(a[None], mode="L")
    assert np.array_equal(ti.to_numpy(a, mode=None), a)
    gray = Image.fromarray(a).convert("L")
    assert np.array_equal(ti.to_numpy(gray)[..., 0], np.asarray(gray))
    assert np.array_equal(ti.to_numpy(a, mode="RGB"), a)


@pytest.mark.parametrize("dtype", ["bfloat16", torch.bfloat16, "float8_e4m3fn"])
def test_to_numpy_into_an_ml_dtypes_float(dtype):
    """to_numpy(dtype=bfloat16/float8) gives the ml_dtypes array PyTorch's own rounding gives
    (as SPEC lets dtype= name ml_dtypes types in both functions); a value that does not fit
    without scale raises as to_torch does."""
    img = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16))
    tdt = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    want = (torch.from_numpy(np.array(img)).float() / 255).to(tdt)
    got = ti.to_numpy(img, scale=True, dtype=dtype)[..., 0]
    assert got.dtype.name == str(tdt).removeprefix("torch.")
    bits = want.view(torch.int16 if tdt.itemsize == 2 else torch.uint8).numpy()
    assert np.array_equal(got.view(bits.dtype), bits)
    with pytest.raises(tb.LossyConversionError, match=r"1 pixel value.*scale=True"):
        ti.to_numpy(np.array([[257, 1]], np.uint16), dtype=dtype)


def test_a_batch_of_paths_holds_one_file_open_at_a_time(tmp_path):
    """A batch of more files than the process may hold open at once reads (each file is opened
    to plan it and again to read it, closed in between); values are Pillow's own."""
    resource = pytest.importorskip("resource")
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("counts open files through /proc")
    paths = []
    for i in range(120):
        paths.append(tmp_path / f"{i}.png")
        Image.new("L", (3, 2), i).save(paths[-1])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 40, hard))
    try:
        out = ti.to_torch(paths)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert out.shape == (120, 1, 2, 3)
    assert out[:, 0, 0, 0].tolist() == list(range(120))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_an_uncompressed_tiff_opened_by_name_is_oriented_right(tmp_path, orientation):
    """A TIFF path, or Image.open(path), reads as a stream-opened TIFF shows it with
    ImageOps.exif_transpose (Pillow's memory-mapped read of a named file turns 5–8 wrongly);
    the caller's image keeps its filename; exif=False gives the stored pixels."""
    stored = np.arange(6, dtype=np.uint8).reshape(2, 3)
    path = tmp_path / "o.tif"
    Image.fromarray(stored).save(path, tiffinfo={0x0112: orientation})
    with Image.open(io.BytesIO(path.read_bytes())) as streamed:
        want = np.asarray(ImageOps.exif_transpose(streamed))
    assert np.array_equal(ti.to_numpy(path)[..., 0], want)
    with Image.open(path) as img:
        assert np.array_equal(ti.to_numpy(img)[..., 0], want)
        assert img.filename == str(path)
    with Image.open(path) as img:
        assert np.array_equal(ti.to_numpy([img, path], exif=False)[:, :, :, 0], [stored, stored])


def test_values_that_do_not_fit_report_nan_apart_from_min_and_max():
    """An F image's NaN, 300.0 and -4.0 into uint8 raise naming the finite extremes (NumPy's
    nanmin and nanmax of the values that do not fit) and the NaN count, not 'min nan'."""
    stored = np.array([[np.nan, 300.0, 2.0, np.nan, -4.0]], np.float32)
    fits = (stored >= 0) & (stored <= 255) & (stored == np.round(stored))  # NaN fits nothing
    lost = stored[~fits]
    lo, hi = np.nanmin(lost).item(), np.nanmax(lost).item()
    pattern = rf"{lost.size} pixel value\(s\).*\(min {lo!r}, max {hi!r}, 2 NaN\)"
    with pytest.raises(tb.LossyConversionError, match=pattern):
        ti.to_numpy(Image.fromarray(stored), dtype=np.uint8)


def test_a_masked_array_is_refused_and_filled_works():
    """A masked array raises LossyConversionError in to_torch, to_numpy (alone or in a batch),
    to_pil and explain, naming .filled(); the filled array converts to NumPy's own values."""
    m = np.ma.masked_array(np.array([[1, 2]], np.uint8), mask=[[False, True]])
    for call in (
        lambda: ti.to_torch(m),
        lambda: ti.to_numpy([m]),
        lambda: ti.to_pil(m),
        lambda: ti.explain(m, to="pil"),
    ):
        with pytest.raises(tb.LossyConversionError, match=r"a\.filled\(value\)"):
            call()
    assert ti.to_numpy(m.filled(0))[..., 0].tolist() == m.filled(0).tolist()
    assert np.asarray(ti.to_pil(m.filled(0))).tolist() == m.filled(0).tolist()
