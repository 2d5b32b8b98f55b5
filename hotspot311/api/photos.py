"""Photos posted with a request: type and size checked, metadata stripped.

A photo is accepted when it is a JPEG or PNG (by its bytes, not its name or declared
type), no larger than the limit in bytes and :data:`MAX_PIXELS` in pixels. It is
decoded and written again as a JPEG from its pixels alone, turned upright first: EXIF
(camera, time, GPS position), XMP, ICC and text chunks are not carried over. The file is
named by the SHA-256 of what is written, so posting a photo twice keeps one file.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path
from typing import Final

from PIL import Image, ImageOps, UnidentifiedImageError

from hotspot311.api.errors import Open311Error

ALLOWED: Final = {"JPEG": "image/jpeg", "PNG": "image/png"}
MAX_PIXELS: Final = 40_000_000


def clean_photo(data: bytes, *, max_bytes: int) -> bytes:
    """The photo's pixels as a JPEG without metadata.

    Parameters
    ----------
    data
        The uploaded bytes.
    max_bytes
        Largest upload accepted.

    Returns
    -------
    bytes
        A JPEG holding the pixels only.

    Raises
    ------
    Open311Error
        413 when too large; 400 when not a JPEG or PNG or not decodable.
    """
    if len(data) > max_bytes:
        raise Open311Error(413, f"media: the photo is {len(data):,} bytes; allowed: at most "
                                f"{max_bytes:,} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            kind = img.format
            if kind not in ALLOWED:
                raise Open311Error(400, f"media: a {kind or 'unknown'} file; allowed: "
                                        f"{', '.join(ALLOWED.values())}")
            if img.width * img.height > MAX_PIXELS:
                raise Open311Error(413, f"media: {img.width}x{img.height} pixels; allowed: "
                                        f"at most {MAX_PIXELS:,} pixels")
            img.load()
            upright = ImageOps.exif_transpose(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Open311Error(400, "media: not a readable image; allowed: "
                                f"{', '.join(ALLOWED.values())}") from None
    pixels = upright.convert("RGB")
    clean = Image.new("RGB", pixels.size)
    clean.paste(pixels)
    out = io.BytesIO()
    clean.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue()


def save_photo(clean: bytes, folder: Path) -> str:
    """Write a cleaned photo under ``folder``; return its file name."""
    name = hashlib.sha256(clean).hexdigest()[:32] + ".jpg"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if not target.exists():
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(clean)
        os.replace(tmp, target)
    return name


__all__ = ["ALLOWED", "MAX_PIXELS", "clean_photo", "save_photo"]
