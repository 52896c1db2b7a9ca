"""tensorbridge.image.to_pil: declared layouts, exact modes, value ranges with round half to even,
overflow refused or clipped, NaN refused — checked with Pillow's own pixel access."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import tensorbridge as tb
from conftest import cuda_only
from imagehelpers import pillow_pixels, random_image, record_steps
from tensorbridge import image as ti

rng = np.random.default_rng(0)


@pytest.mark.parametrize(
    ("dtype", "channels", "mode"),
    [
        (np.bool_, 1, "1"),
        (np.uint8, 1, "L"),
        (np.uint8, 2, "LA"),
        (np.uint8, 3, "RGB"),
        (np.uint8, 4, "RGBA"),
        (np.uint16, 1, "I;16"),
        (np.int32, 1, "I"),
        (np.float32, 1, "F"),
    ],
)
@pytest.mark.parametrize("kind", ["tensor CHW", "array HWC", "tensor HWC", "array CHW"])
def test_exact_modes_from_each_layout(dtype, channels, mode, kind):
    """Each dtype and channel count makes its Pillow mode with every value exact."""
    hwc = rng.integers(0, 2 if dtype is np.bool_ else 250, (3, 5, channels)).astype(dtype)
    if dtype is np.float32:
        hwc = rng.standard_normal((3, 5, 1)).astype(np.float32)
    layout = kind.split()[1]
    data = hwc if layout == "HWC" else np.ascontiguousarray(hwc.transpose(2, 0, 1))
    x = torch.from_numpy(data) if kind.startswith("tensor") else data
    img = ti.to_pil(x, layout=layout)
    assert img.mode == mode and img.size == (5, 3)
    got = pillow_pixels(img)
    want = hwc.astype(np.int64) * 255 if dtype is np.bool_ else hwc
    assert np.array_equal(got, want)


def test_two_d_is_one_channel_and_four_d_is_a_list():
    """2-D gives a one-channel image; 4-D gives one image per leading index."""
    assert ti.to_pil(np.zeros((3, 4), np.uint8)).mode == "L"
    batch = torch.arange(2 * 3 * 2 * 2, dtype=torch.uint8).reshape(2, 3, 2, 2)
    imgs = ti.to_pil(batch)
    assert isinstance(imgs, list) and [i.mode for i in imgs] == ["RGB", "RGB"]
    for i, img in enumerate(imgs):
        assert np.array_equal(pillow_pixels(img), batch[i].permute(1, 2, 0).numpy())


def test_channel_count_is_never_guessed():
    """A CHW array under the HWC default raises naming layout='CHW', which then works."""
    chw = np.zeros((3, 8, 8), np.uint8)
    with pytest.raises(tb.ConversionError, match="layout='CHW'"):
        ti.to_pil(chw)
    assert ti.to_pil(chw, layout="CHW").size == (8, 8)
    with pytest.raises(tb.ConversionError, match="layout="):
        ti.to_pil(np.zeros((8, 8, 8), np.uint8))


def test_four_channels_is_rgba_unless_mode_says_otherwise():
    """Four uint8 channels are RGBA by default; mode='CMYK' or 'RGBX' keeps them as stored."""
    x = rng.integers(0, 256, (2, 3, 4), dtype=np.uint8)
    for mode in ("RGBA", "CMYK", "RGBX"):
        img = ti.to_pil(x, mode=mode)
        assert img.mode == mode and np.array_equal(pillow_pixels(img), x)
    with pytest.raises(tb.ConversionError, match="RGBA"):
        ti.to_pil(x, mode="RGB")


def test_value_range_maps_with_round_half_to_even():
    """(v - lo) / (hi - lo) * 255 is rounded half to even: 0.5 → 0, 1.5 → 2, 0.9999 → 255."""
    v = np.array([0.0, 0.5, 1.5, 2.5, 254.5, 254.97, 255.0]) / 255
    v = np.append(v, 0.9999)
    img = ti.to_pil(v.reshape(1, -1), value_range=(0, 1))
    assert img.mode == "L"
    assert pillow_pixels(img)[0, :, 0].tolist() == [0, 0, 2, 2, 254, 255, 255, 255]


def test_value_range_float32_chw_against_float64_reference():
    """A float32 CHW tensor maps like np.rint((v - lo) / (hi - lo) * 255) in float64."""
    t = torch.rand(3, 4, 5)
    img = ti.to_pil(t, value_range=(0, 1))
    want = np.rint(t.permute(1, 2, 0).numpy().astype(np.float64) * 255).astype(np.uint8)
    assert img.mode == "RGB" and np.array_equal(pillow_pixels(img), want)
    lo, hi = -1.0, 3.0
    t2 = torch.rand(1, 4, 5, dtype=torch.float64) * 4 - 1
    img2 = ti.to_pil(t2, value_range=(lo, hi), mode="I;16")
    want2 = np.rint((t2[0].numpy() - lo) / (hi - lo) * 65535)
    assert img2.mode == "I;16" and np.array_equal(pillow_pixels(img2)[..., 0], want2)


def test_out_of_range_raises_naming_count_and_extremes_then_clip_works():
    """Values outside value_range raise with how many and min/max; overflow='clip' clips."""
    t = torch.tensor([[[-0.25, 0.5, 1.5, 2.0]]])
    with pytest.raises(tb.LossyConversionError, match=r"3 value.*min -0.25, max 2.0.*clip"):
        ti.to_pil(t, value_range=(0, 1))
    img = ti.to_pil(t, value_range=(0, 1), overflow="clip")
    assert pillow_pixels(img)[0, :, 0].tolist() == [0, 128, 255, 255]


def test_nan_always_raises_and_nan_to_num_fixes_it():
    """NaN raises even with overflow='clip'; the suggested nan_to_num makes it convert."""
    t = torch.tensor([[[0.0, float("nan")]]])
    for overflow in ("error", "clip"):
        with pytest.raises(tb.LossyConversionError, match="NaN"):
            ti.to_pil(t, value_range=(0, 1), overflow=overflow)
    assert ti.to_pil(torch.nan_to_num(t), value_range=(0, 1)).getpixel((1, 0)) == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_float_without_value_range_raises_and_the_fix_works(dtype):
    """Multi-channel floats need value_range=; the message's fix converts."""
    t = torch.rand(3, 2, 2).to(dtype)
    with pytest.raises(tb.ConversionError, match="value_range="):
        ti.to_pil(t)
    assert ti.to_pil(t, value_range=(0, 1)).mode == "RGB"


def test_one_channel_float64_names_the_float32_cast():
    """A one-channel float64 image raises naming value_range= and a float32 cast (mode F)."""
    a = np.array([[0.25, 3.0]])
    with pytest.raises(tb.ConversionError, match="float32"):
        ti.to_pil(a)
    img = ti.to_pil(a.astype(np.float32))
    assert img.mode == "F" and pillow_pixels(img)[0, :, 0].tolist() == [0.25, 3.0]


@pytest.mark.parametrize("dtype", [np.int16, np.int64, np.uint32, np.int8])
def test_other_integers_raise_naming_value_range_or_a_cast(dtype):
    """Integer dtypes Pillow has no mode for raise naming value_range= and a cast; both work."""
    a = np.array([[0, 100], [7, 127]], dtype=dtype)[..., None].repeat(3, axis=-1)
    with pytest.raises(tb.ConversionError, match=r"value_range=.*cast"):
        ti.to_pil(a)
    assert np.array_equal(pillow_pixels(ti.to_pil(a.astype(np.uint8))), a)
    hi = float(np.iinfo(dtype).max)
    assert ti.to_pil(a, value_range=(0, hi)).mode == "RGB"


def test_multichannel_uint16_suggests_value_range():
    """Three uint16 channels raise (Pillow has no 16-bit RGB); value_range=(0, 65535) maps."""
    a = np.full((2, 2, 3), 65535, np.uint16)
    with pytest.raises(tb.ConversionError, match=r"value_range=\(0, 65535\)"):
        ti.to_pil(a)
    assert ti.to_pil(a, value_range=(0, 65535)).getpixel((0, 0)) == (255, 255, 255)


def test_bool_with_channels_and_complex_refused():
    """Bool with 3 channels names a uint8 cast (which works); complex is not a pixel."""
    b = np.ones((2, 2, 3), bool)
    with pytest.raises(tb.ConversionError, match="uint8"):
        ti.to_pil(b)
    assert ti.to_pil(b.astype(np.uint8) * 255).getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(tb.UnsupportedInputError):
        ti.to_pil(torch.zeros(1, 2, 2, dtype=torch.complex64))
    with pytest.raises(tb.UnsupportedInputError):
        ti.to_pil([[0, 1]])


def test_tensor_with_grad_and_non_contiguous_views():
    """A tensor that requires grad converts; permuted and sliced views give the right pixels."""
    t = torch.rand(3, 4, 6, requires_grad=True)
    img = ti.to_pil(t, value_range=(0, 1))
    want = np.rint(t.detach().permute(1, 2, 0).numpy().astype(np.float64) * 255)
    assert np.array_equal(pillow_pixels(img), want)
    u = torch.arange(4 * 6 * 3, dtype=torch.uint8).reshape(4, 6, 3)
    assert np.array_equal(pillow_pixels(ti.to_pil(u.permute(2, 0, 1))), u.numpy())
    assert np.array_equal(pillow_pixels(ti.to_pil(u[:, ::2], layout="HWC")), u[:, ::2].numpy())


@cuda_only
def test_cuda_tensor_to_pil():
    """A CUDA tensor (grad or not) converts like its CPU copy."""
    t = torch.rand(3, 4, 5, device="cuda", requires_grad=True)
    a = ti.to_pil(t, value_range=(0, 1))
    b = ti.to_pil(t.detach().cpu(), value_range=(0, 1))
    assert a.tobytes() == b.tobytes()
    assert ti.to_torch(a, device="cuda").device.type == "cuda"


def test_explain_to_pil_reports_what_runs(monkeypatch):
    """explain(to='pil') lists exactly the steps to_pil executes."""
    t = torch.rand(3, 4, 5, requires_grad=True)
    plan = ti.explain(t, to="pil", value_range=(0, 1))
    ran = record_steps(monkeypatch)
    ti.to_pil(t, value_range=(0, 1))
    assert ran == list(plan.steps)
    assert plan.copies >= 1 and "round half to even" in "\n".join(plan.steps)


# --------------------------------------------------------------------------------------------
# round trips (hypothesis): to_pil(to_torch(img)) == img for every lossless mode

LOSSLESS = ["1", "L", "LA", "RGB", "RGBA", "I;16", "I", "F"]
KEEP_MODE = ["RGBX", "CMYK", "I;16B", "I;16L"]


@settings(max_examples=60, deadline=None)
@given(
    mode=st.sampled_from(LOSSLESS),
    w=st.integers(0, 7),
    h=st.integers(0, 5),
    seed=st.integers(0, 2**32 - 1),
    layout=st.sampled_from(["CHW", "HWC"]),
)
def test_round_trip_is_exact(mode, w, h, seed, layout):
    """to_pil(to_torch(img)) == img bit for bit (NaN payloads and -0.0 in F included)."""
    img = random_image(mode, (w, h), seed)
    back = ti.to_pil(ti.to_torch(img, layout=layout), layout=layout)
    assert back == img
    assert ti.to_pil(ti.to_numpy(img)) == img


@settings(max_examples=30, deadline=None)
@given(mode=st.sampled_from(KEEP_MODE), seed=st.integers(0, 2**32 - 1))
def test_round_trip_with_mode_given(mode, seed):
    """Modes a tensor cannot name by itself round trip when mode= names them both ways."""
    img = random_image(mode, (4, 3), seed)
    kw = {"mode": mode} if mode == "CMYK" else {}
    assert ti.to_pil(ti.to_torch(img, **kw), mode=mode) == img


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.integers(0, 255), min_size=1, max_size=12),
)
def test_scaled_round_trip_through_value_range(values):
    """to_pil(to_torch(img, scale=True), value_range=(0, 1)) gives the original 8-bit image."""
    img = Image.fromarray(np.array([values], np.uint8))
    back = ti.to_pil(ti.to_torch(img, scale=True), value_range=(0, 1))
    assert back == img


def test_to_pil_never_aliases_the_callers_memory():
    """The image owns its pixels: writing to the array afterwards does not change it."""
    a = np.zeros((2, 3), np.uint8)
    img = ti.to_pil(a)
    a[:] = 9
    assert img.getpixel((0, 0)) == 0


def test_batch_layouts_accept_the_n_prefix():
    """For 4-D input NCHW/NHWC name the same layouts as CHW/HWC; 3-D input refuses them."""
    x = np.zeros((2, 4, 5, 3), np.uint8)
    assert [i.size for i in ti.to_pil(x, layout="NHWC")] == [(5, 4), (5, 4)]
    with pytest.raises(tb.ConversionError, match="layout='HWC'"):
        ti.to_pil(x[0], layout="NHWC")


def test_every_remaining_suggested_fix_works():
    """Each fix a to_pil error suggests, applied as written, makes an image."""
    c = torch.zeros(1, 2, 2, dtype=torch.complex64)
    with pytest.raises(tb.UnsupportedInputError, match=r"x\.real"):
        ti.to_pil(c)
    assert ti.to_pil(c.real, value_range=(0, 1)).mode == "L"
    s = torch.zeros(2, 2).to_sparse()
    with pytest.raises(tb.UnsupportedInputError, match="to_dense"):
        ti.to_pil(s)
    assert ti.to_pil(s.to_dense()).mode == "F"
    x = np.zeros((4, 5, 3), np.uint8)
    with pytest.raises(tb.ConversionError, match="layout='HWC'"):
        ti.to_pil(x, layout="NHWC")
    assert ti.to_pil(x, layout="HWC").size == (5, 4)
    f = np.zeros((2, 2), np.float32)
    with pytest.raises(tb.ConversionError, match="value_range="):
        ti.to_pil(f, mode="L")
    assert ti.to_pil(f, mode="L", value_range=(0, 1)).mode == "L"


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(
        st.floats(-2, 3, allow_nan=False, width=32) | st.sampled_from([k + 0.5 for k in range(4)]),
        min_size=1,
        max_size=24,
    ),
    lo=st.sampled_from([0.0, -1.0, 0.25]),
    span=st.sampled_from([1.0, 2.0, 255.0, 0.1]),
    channels=st.sampled_from([1, 3]),
)
def test_value_range_clip_matches_the_float64_formula(data, lo, span, channels):
    """With overflow='clip', every pixel is rint((clip(v) - lo) / (hi - lo) * 255) in float64."""
    hi = lo + span
    v = np.array(data, np.float32)
    v = np.resize(v, 2 * 4 * channels).reshape(channels, 2, 4)
    img = ti.to_pil(torch.from_numpy(v), value_range=(lo, hi), overflow="clip")
    ref = np.clip(v.astype(np.float64), lo, hi)
    want = np.rint((ref - lo) / (hi - lo) * 255).transpose(1, 2, 0)
    assert np.array_equal(pillow_pixels(img), want)
