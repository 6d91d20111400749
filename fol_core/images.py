"""Open any photo Pillow can read as an upright 8-bit RGB image, or say in one line why not."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError

ImageSource = str | os.PathLike | bytes | Image.Image | np.ndarray

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
"""File endings read as images when a folder is listed (a dataset's XML, CSV or README are skipped)."""
MAX_PIXELS = 100_000_000
"""Larger images are refused before decoding: a 20000 x 20000 photo or a decompression bomb."""
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own guard at ours (its 89.5 MP would refuse a 90 MP scan first)
HIGH_DEPTH_MODES = frozenset({"I;16", "I;16B", "I;16L", "I", "F"})
"""16-bit and float pixels: shown stretched to 8 bits (an 8-bit reader would see them white or black)."""
ALPHA_MODES = frozenset({"RGBA", "LA", "PA"})
"""Pixels with transparency, shown on white."""
MIN_SIDE = 16
"""Smaller images hold too little to localize anything in."""

_ORIENTATION = 0x0112  # the EXIF tag of how the stored pixels must be turned to stand upright


def turned(img: Image.Image) -> bool:
    """Whether the photo's pixels are stored turned, with an EXIF orientation to apply (read from its header)."""
    return img.getexif().get(_ORIENTATION, 1) != 1


def _repainted(img: Image.Image) -> bool:
    """Whether fol shows the pixels otherwise than they are stored: 16-bit or float (stretched), CMYK (as RGB),
    transparent (on white)."""
    return img.mode in HIGH_DEPTH_MODES | ALPHA_MODES | {"CMYK"} or "transparency" in img.info


def misread(img: Image.Image, depth: bool = True) -> bool:
    """Whether common readers would see the file otherwise than fol showed it: turned (EXIF, which many ignore),
    and with depth repainted: 16-bit or float pixels (8-bit readers clip them), CMYK (4 channels where 3 are
    expected), transparency (OpenCV, and so Ultralytics, shows it black where fol showed white)."""
    return turned(img) or (depth and _repainted(img))


def stored_misread(path: str | os.PathLike, depth: bool = True) -> bool:
    """`misread` from the image file's header; False for a file that cannot be read as an image (or no longer
    exists)."""
    try:
        with Image.open(path) as img:
            return misread(img, depth)
    except (OSError, SyntaxError, ValueError):
        return False


def as_rgb(img: Image.Image) -> Image.Image:
    """The image in RGB: itself where it already is (Pillow's convert copies it even then, 23 ms for a 12 MP
    photo, once per scale of each pass)."""
    return img if img.mode == "RGB" else img.convert("RGB")


def jpeg_bytes(data: bytes) -> bytes:
    """An image file's bytes as a JPEG at quality 95 (8-bit RGB as `load_image` makes it: transparency on white,
    16-bit data stretched): for a format that holds JPEG only (Pascal VOC's JPEGImages/ID.jpg)."""
    with Image.open(io.BytesIO(data)) as img:
        out = io.BytesIO()
        _to_rgb(img).save(out, format="JPEG", quality=95)
        return out.getvalue()


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files under `folder` (recursive, sorted, so that a run is repeatable). Only names with an image
    ending are listed: a dataset's XML, CSV or README is not an image, and is not reported as unreadable."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def portable_bytes(data: bytes, depth: bool = True) -> bytes | None:
    """The image file's bytes as every reader will see what the reviewer saw, where `misread` says a reader would
    not (depth: repainted files too); None when there is nothing to change (or Pillow cannot write the format
    back).

    Boxes are in the upright photo's pixels, so EXIF's turn is applied to the pixels (the tag then dropped): a
    reader that ignores EXIF (torchvision's decode_jpeg, OpenCV's IMREAD_IGNOREORIENTATION, COCO's own tools)
    would put them in the wrong place. 16-bit and float pixels are stretched to 8 bits as fol showed them, CMYK
    becomes RGB, transparency white. The format and so the file name stay; JPEG is written again at quality 95."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if not misread(img, depth):
                return None
            kind = "JPEG" if img.format in ("JPEG", "MPO") else img.format
            shown = ImageOps.exif_transpose(img) if turned(img) else img
            if depth and _repainted(img):
                shown = _to_8bit(shown) if img.mode in HIGH_DEPTH_MODES else _to_rgb(shown)
            profile = img.info.get("icc_profile") if shown.mode == img.mode else None  # CMYK's profile is not RGB's
            out = io.BytesIO()
            extra = {"quality": 95} if kind == "JPEG" else {}
            shown.save(out, format=kind, exif=shown.getexif(), icc_profile=profile, **extra)
            return out.getvalue()
    except (OSError, SyntaxError, ValueError, KeyError):  # unreadable, or a format Pillow cannot save
        return None


class ImageError(UserError):
    """An input that is not a usable image; the message is one line meant for the user."""


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit or float pixels stretched from their least to their greatest value, as 8-bit grey."""
    arr = np.asarray(img, dtype=np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
    return Image.fromarray(arr.astype(np.uint8), "L")


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in HIGH_DEPTH_MODES:
        img = _to_8bit(img)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ALPHA_MODES or (img.mode == "RGB" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def load_image(source: ImageSource, name: str | None = None) -> Image.Image:
    """An RGB image with its EXIF orientation applied; raises ImageError with a one-line reason."""
    label = name or (str(source) if isinstance(source, (str, os.PathLike)) else "image")
    if isinstance(source, Image.Image):
        img = source
    elif isinstance(source, np.ndarray):
        arr = source
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr)
    else:
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            try:
                if not path.is_file():
                    raise ImageError(f"{label}: no such file")
                if path.stat().st_size == 0:
                    raise ImageError(f"{label}: the file is empty")
                data = path.read_bytes()
            except OSError as exc:  # unreadable (permissions), a name too long for the file system...
                raise ImageError(f"{label}: cannot be read ({exc.strerror or type(exc).__name__})") from None
        else:
            data = bytes(source)
            if not data:
                raise ImageError(f"{label}: the file is empty")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"{label}: too large to open (more than {MAX_PIXELS // 1_000_000} megapixels, or a "
                             "decompression bomb)") from None
        except UnidentifiedImageError:
            raise ImageError(f"{label}: not an image file Pillow can read") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{label}: the image data is corrupt or truncated ({exc})") from None
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{label}: {w} x {h} pixels is too large (at most {MAX_PIXELS // 1_000_000} megapixels)")
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"{label}: {w} x {h} pixels is too small (at least {MIN_SIDE} pixels a side)")
    try:
        img.load()
        if turned(img):
            img = ImageOps.exif_transpose(img)
        if img.mode == "RGB" and "transparency" not in img.info:
            return img  # already upright RGB (e.g. loaded once before): no full-size copy
        return _to_rgb(img)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{label}: the image data is corrupt or truncated ({exc})") from None
