"""Tiny image helpers shared by the loaders and the miniature world."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError


def decode_image_bytes(data: bytes) -> Image.Image:
    """Decode encoded image bytes (PNG, JPEG, ...) into an RGB image; ValueError if they are not an image."""
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise ValueError("no image bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # full decode: verify() alone misses truncated JPEGs
            return img.convert("RGB")
    except UnidentifiedImageError:
        raise ValueError("cannot decode image: not a recognised image format") from None
    except Exception as exc:  # noqa: BLE001 -- PIL raises many types (OSError, SyntaxError, ...) on bad data
        raise ValueError(f"cannot decode image: {exc}") from None


def encode_png(img: Image.Image) -> bytes:
    """PNG bytes with no metadata chunks, so the same pixels always give byte-identical output."""
    buf = io.BytesIO()
    # A fresh image drops any `info` (text chunks, gamma, ...) carried by the source image.
    clean = (
        Image.frombytes(img.mode, img.size, img.tobytes())
        if img.mode in ("RGB", "L", "RGBA")
        else img.convert("RGB")
    )
    clean.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()
