"""Image files on the command line: convert to and from tensor files (16-bit PNG and TIFF exact),
--value-range/--clip for floats, inspect with mode, bit depth, EXIF and palette — checked with
Pillow's own pixel access."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imagehelpers import pillow_pixels, random_image, with_orientation
from tensorbridge.cli import main


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in os.listdir(folder) if p.endswith(".tbtmp")]


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("tensor_ext", [".npy", ".safetensors", ".pt"])
def test_sixteen_bit_round_trip_is_exact(tmp_path, ext, tensor_ext):
    """A 16-bit grayscale image → tensor file → image keeps every value (verified)."""
    values = np.array([[0, 1, 255, 256], [32767, 32768, 60000, 65535]], np.uint16)
    src, mid, dst = tmp_path / f"a{ext}", tmp_path / f"a{tensor_ext}", tmp_path / f"b{ext}"
    Image.fromarray(values).save(src)
    assert main(["convert", str(src), str(mid), "--verify", "-q"]) == 0
    assert main(["convert", str(mid), str(dst), "--verify", "-q"]) == 0
    with Image.open(dst) as back:
        assert back.mode.startswith("I;16")
        assert np.array_equal(pillow_pixels(back)[..., 0], values)
    assert _no_temp_files(tmp_path)


@pytest.mark.parametrize(
    ("ext", "modes"),
    [
        (".png", ["1", "L", "LA", "RGB", "RGBA"]),
        (".tiff", ["L", "RGB", "RGBA", "I", "F"]),
        (".bmp", ["L", "RGB"]),
        (".webp", ["RGB", "RGBA"]),
        (".gif", ["L"]),
    ],
)
def test_lossless_formats_round_trip_through_npy(tmp_path, ext, modes):
    """Each format's exact modes survive image → .npy → image bit for bit."""
    for mode in modes:
        img = random_image(mode, (6, 4))
        src, mid, dst = (
            tmp_path / f"{mode}{ext}",
            tmp_path / f"{mode}.npy",
            tmp_path / f"o{mode}{ext}",
        )
        options = {".webp": {"lossless": True, "exact": True}, ".gif": {"optimize": False}}
        img.save(src, **options.get(ext, {}))
        assert main(["convert", str(src), str(mid), "-q"]) == 0
        stored = np.load(mid)
        want = pillow_pixels(img)
        assert np.array_equal(stored, (want != 0 if mode == "1" else want).transpose(2, 0, 1))
        assert main(["convert", str(mid), str(dst), "--verify", "-q"]) == 0
        with Image.open(dst) as back:
            assert np.array_equal(pillow_pixels(back), want), mode


def test_float_tensor_needs_value_range_and_clip(tmp_path, capsys):
    """A float tensor refuses without --value-range (the message names it); with it, values map
    with round half to even; out-of-range values refuse until --clip."""
    t = torch.tensor([[[0.0, 0.5 / 255, 1.5 / 255, 1.0]]])
    torch.save({"x": t}, tmp_path / "f.pt")
    dst = str(tmp_path / "f.png")
    assert main(["convert", str(tmp_path / "f.pt"), dst]) == 1
    assert "--value-range LO,HI" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "f.pt"), dst, "--value-range", "0,1", "-q"]) == 0
    with Image.open(dst) as img:
        want = np.rint(t.numpy()[0, 0].astype(np.float64) * 255)
        assert pillow_pixels(img)[0, :, 0].tolist() == want.tolist()
    torch.save({"x": t * 2}, tmp_path / "g.pt")
    g = str(tmp_path / "g.png")
    assert main(["convert", str(tmp_path / "g.pt"), g, "--value-range", "0,1"]) == 1
    assert "--clip" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "g.pt"), g, "--value-range", "0,1", "--clip", "-q"]) == 0
    with Image.open(g) as img:
        want = np.rint(np.clip((t * 2).numpy()[0, 0].astype(np.float64), 0, 1) * 255)
        assert pillow_pixels(img)[0, :, 0].tolist() == want.tolist()
    assert _no_temp_files(tmp_path)


def test_mode_a_format_cannot_hold_names_those_that_can(tmp_path, capsys):
    """A 16-bit image to .gif refuses naming .png; writing the suggested .png works."""
    src = tmp_path / "a.png"
    Image.fromarray(np.array([[0, 65535]], np.uint16)).save(src)
    assert main(["convert", str(src), str(tmp_path / "a.gif")]) == 1
    err = capsys.readouterr().err
    assert ".png" in err and not (tmp_path / "a.gif").exists()
    assert main(["convert", str(src), str(tmp_path / "b.png"), "-q"]) == 0
    assert _no_temp_files(tmp_path)


def test_jpeg_is_written_but_verify_reports_the_loss(tmp_path, capsys):
    """JPEG is lossy by design: it is written, and --verify refuses it, leaving nothing."""
    src = tmp_path / "a.png"
    random_image("RGB", (16, 16)).save(src)
    assert main(["convert", str(src), str(tmp_path / "a.jpg"), "--verify"]) == 1
    assert "lossy" in capsys.readouterr().err and not (tmp_path / "a.jpg").exists()
    assert main(["convert", str(src), str(tmp_path / "a.jpg"), "-q"]) == 0
    assert main(["convert", str(tmp_path / "a.jpg"), str(tmp_path / "j.npy"), "-q"]) == 0
    assert np.load(tmp_path / "j.npy").shape == (3, 16, 16)


def test_image_source_applies_exif_and_palette(tmp_path):
    """An image source converts as image.to_torch reads it: EXIF applied, palette expanded."""
    rotated = with_orientation(random_image("RGB", (5, 3)), 6)
    rotated.save(tmp_path / "r.png", exif=rotated.getexif())
    assert main(["convert", str(tmp_path / "r.png"), str(tmp_path / "r.npy"), "-q"]) == 0
    assert np.load(tmp_path / "r.npy").shape == (3, 5, 3)
    p = random_image("P")
    p.save(tmp_path / "p.png")
    assert main(["convert", str(tmp_path / "p.png"), str(tmp_path / "p.npy"), "-q"]) == 0
    assert np.array_equal(
        np.load(tmp_path / "p.npy"), pillow_pixels(p.convert("RGB")).transpose(2, 0, 1)
    )


def test_tensor_file_with_many_tensors_refused(tmp_path, capsys):
    """A tensor file holding several tensors cannot become one image."""
    np.savez(tmp_path / "m.npz", a=np.zeros((2, 2), np.uint8), b=np.zeros((2, 2), np.uint8))
    assert main(["convert", str(tmp_path / "m.npz"), str(tmp_path / "m.png")]) == 1
    assert "2 tensors" in capsys.readouterr().err


def test_value_range_for_a_tensor_destination_is_a_usage_error(tmp_path):
    """--value-range applies only when writing an image (exit 2 otherwise); a bad LO,HI too."""
    random_image("L").save(tmp_path / "a.png")
    assert main(["convert", str(tmp_path / "a.png"), str(tmp_path / "a.npy"), "--clip"]) == 2
    assert (
        main(["convert", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--value-range", "x"])
        == 2
    )


def test_inspect_image_text_and_json(tmp_path, capsys):
    """inspect shows mode, size, bit depth, EXIF orientation, palette and the to_torch result."""
    img = with_orientation(random_image("RGB", (5, 3)), 6)
    img.save(tmp_path / "r.png", exif=img.getexif())
    assert main(["inspect", str(tmp_path / "r.png")]) == 0
    out = capsys.readouterr().out
    for word in ("mode = RGB", "5×3", "8 per channel", "rotate 90° clockwise", "(3, 5, 3)"):
        assert word in out, word
    p = random_image("P")
    p.info["transparency"] = 3
    p.save(tmp_path / "p.png")
    assert main(["inspect", str(tmp_path / "p.png"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    meta = doc["metadata"]
    assert meta["mode"] == "P" and "index 3 transparent" in meta["palette"]
    assert doc["tensors"][0]["shape"] == [4, 3, 5] and "uint8" in meta["to_torch"]
    Image.fromarray(np.zeros((2, 2), np.uint16)).save(tmp_path / "s.tif")
    assert main(["inspect", str(tmp_path / "s.tif"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metadata"]["bit_depth"] == "16 per channel"


def test_inspect_cmyk_shows_raw_channels(tmp_path, capsys):
    """A CMYK image is inspected: its raw channels, and that to_torch needs mode=."""
    random_image("CMYK").save(tmp_path / "c.tif")
    assert main(["inspect", str(tmp_path / "c.tif"), "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)["metadata"]
    assert "mode='CMYK'" in meta["to_torch"]


def test_demo_has_the_image_pitfalls():
    """demo runs the five image pitfalls live: each idiom goes wrong, tensorbridge handles it."""
    from tensorbridge import _demo

    rows = {r.pitfall: r for r in _demo.run(tuple(c for c in _demo.CASES if c.pillow))}
    for word in ("16-bit", "float pixels", "palette", "EXIF", "channel guessing"):
        row = next(r for name, r in rows.items() if word in name)
        assert row.idiom_outcome in ("silent", "error"), row
        assert row.tensorbridge_outcome == "ok", row


def test_bench_image_group_runs(monkeypatch):
    """The bench's image batch case runs (one round, small images) and reports a ratio."""
    import dataclasses

    from tensorbridge.bench import _image, config, run_cases

    monkeypatch.setattr(_image, "SIDE", 16)
    monkeypatch.setattr(_image, "BATCH", 4)
    cfg = dataclasses.replace(config(quick=True, rounds=1), repeats=1, round_s=0.0)
    picked = [c for c in _image.cases(cfg) if c.name.startswith("to_torch(batch")]
    results = run_cases(picked, cfg)
    assert len(results) == 1 and results[0].status in ("PASS", "MISS")
    assert all(r.comparison is not None and r.comparison.ratio > 0 for r in results)


def test_inspect_sixteen_bit_rgb_png_says_what_pillow_does(tmp_path, capsys):
    """A 16-bit RGB PNG is inspected: 16 bits in the file, Pillow reads 8, to_torch needs mode=."""
    from imagehelpers import png_rgb16

    (tmp_path / "d.png").write_bytes(png_rgb16(np.zeros((2, 3, 3), np.uint16)))
    assert main(["inspect", str(tmp_path / "d.png"), "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)["metadata"]
    assert meta["bit_depth"] == "16 per channel (Pillow reads 8)"
    assert "mode='RGB'" in meta["to_torch"] and "(3, 2, 3)" in meta["to_torch"]


def test_cmyk_source_refused_naming_the_python_call(tmp_path, capsys):
    """A CMYK file converts only with mode=, which the message points to in Python; that works."""
    from tensorbridge import image

    random_image("CMYK").save(tmp_path / "c.tif")
    assert main(["convert", str(tmp_path / "c.tif"), str(tmp_path / "c.npy")]) == 1
    assert "tensorbridge.image.to_torch(path, mode=" in capsys.readouterr().err
    assert image.to_torch(tmp_path / "c.tif", mode="RGB").shape == (3, 3, 5)
