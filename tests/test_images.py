"""Any input Pillow opens becomes an upright RGB image; anything else gets a one-line reason."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from fol_core.images import ImageError, load_image


def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.new("RGBA", (40, 30), (10, 20, 30, 0)),
        lambda: Image.new("L", (40, 30), 128),
        lambda: Image.new("RGB", (40, 30), (200, 0, 0)).convert("P"),
        lambda: Image.new("CMYK", (40, 30), (0, 255, 255, 0)),
        lambda: Image.fromarray(np.linspace(0, 65535, 40 * 30).reshape(30, 40).astype(np.uint16)),
        lambda: Image.new("1", (40, 30), 1),
    ],
    ids=["RGBA", "L", "P", "CMYK", "16-bit", "1-bit"],
)
def test_modes_become_rgb(make):
    img = make()
    fmt = "TIFF" if img.mode == "CMYK" else "PNG"
    out = load_image(encoded(img, fmt))
    assert out.mode == "RGB" and out.size == (40, 30)


def test_transparent_pixels_become_white_and_16_bit_keeps_its_range():
    assert load_image(Image.new("RGBA", (20, 20), (0, 0, 0, 0))).getpixel((0, 0)) == (255, 255, 255)
    ramp = Image.fromarray(np.linspace(0, 65535, 400).reshape(20, 20).astype(np.uint16))
    arr = np.asarray(load_image(encoded(ramp, "PNG")))
    assert arr.min() == 0 and arr.max() == 255


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (60, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = load_image(encoded(img, "JPEG", exif=exif.tobytes()))
    assert out.size == (20, 60)


def test_any_size_and_aspect(examples_dir, model):
    from fol_core import localize

    thin = Image.open(examples_dir / "coffee.png").convert("RGB").resize((1000, 60))
    result = localize(thin, model, "gradcam")
    assert (result.width, result.height) == (1000, 60)
    assert all(0 <= b.x0 < b.x1 <= 1000 and 0 <= b.y0 < b.y1 <= 60 for b in result.boxes)


def test_bad_inputs_get_one_line_reasons(tmp_path):
    cases = {
        "empty.jpg": b"",
        "text.jpg": b"this is not an image at all",
        "truncated.jpg": encoded(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")[:200],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "tiny.png").write_bytes(encoded(Image.new("RGB", (1, 1)), "PNG"))
    (tmp_path / "huge.png").write_bytes(encoded(Image.new("1", (20000, 20000)), "PNG"))
    expected = {
        "empty.jpg": "empty", "text.jpg": "not an image", "truncated.jpg": "corrupt or truncated",
        "tiny.png": "too small", "huge.png": "too large", "missing.png": "no such file",
    }
    for name, words in expected.items():
        with pytest.raises(ImageError) as info:
            load_image(tmp_path / name)
        message = str(info.value)
        assert words in message and "\n" not in message and name in message


def claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels."""
    png = bytearray(encoded(Image.new("L", (16, 16)), "PNG"))
    png[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    png[29:33] = zlib.crc32(bytes(png[12:29])).to_bytes(4, "big")
    return bytes(png)


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(ImageError, match="decompression bomb|too large"):
        load_image(claiming(60000, 60000))  # 3.6 gigapixels in a few bytes
    with pytest.raises(ImageError, match="more than 100 megapixels"):
        load_image(claiming(10001, 10000))
    with pytest.raises(ImageError, match="corrupt or truncated"):  # a 95 MP scan is not refused by its size
        load_image(claiming(9500, 10000))  # (Pillow's own guard called one above 89.5 MP a bomb)
