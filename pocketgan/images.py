"""Image loading, resizing and normalization shared by every stage (torch-free).

Resizing always uses Pillow's bicubic filter on uint8 RGB (`RESIZE_FILTER`), so that parity numbers
from export, runtime and eval are computed on identical pixels.

Example: python -c "from pocketgan.images import load_images; print(load_images('photos/'))"
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pocketgan.errors import ImageLoadError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
RESIZE_FILTER = "bicubic"
_PIL_FILTER = Image.Resampling.BICUBIC


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: alpha composited on white, 16-bit scaled, gray replicated."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 or img.mode.startswith("I;16") else 255.0
        arr = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Decode one image file to uint8 (H, W, 3) RGB, upright per its EXIF orientation.

    Raises ImageLoadError with the file name on anything that is not a readable image.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageLoadError(f"{path}: empty file")
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            rgb = _to_rgb(img)
    except ImageLoadError:
        raise
    except FileNotFoundError:
        raise ImageLoadError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        reason = "not an image" if isinstance(exc, UnidentifiedImageError) else str(exc) or type(exc).__name__
        raise ImageLoadError(f"{path}: cannot decode ({reason})") from None
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


@dataclass
class LoadedImages:
    """Images decoded from a folder, and the files that could not be decoded."""

    images: list[np.ndarray] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)


def find_images(root: str | os.PathLike) -> list[Path]:
    """Image files under `root` (recursive, sorted), or `root` itself if it is a file."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ImageLoadError(f"{root}: no such file or folder")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_images(root: str | os.PathLike) -> LoadedImages:
    """Load every image under a folder; broken files are logged by name, recorded and skipped."""
    loaded = LoadedImages()
    for path in find_images(root):
        try:
            loaded.images.append(load_image(path))
            loaded.paths.append(path)
        except ImageLoadError as exc:
            log.warning("skipping %s", exc)
            loaded.failures.append((path, str(exc)))
    return loaded


def resize(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize uint8 (H, W, 3) to `size` (an int for square, or (height, width)) with RESIZE_FILTER."""
    height, width = (size, size) if isinstance(size, int) else size
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), _PIL_FILTER))


def center_crop_square(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[top : top + side, left : left + side]


def to_float(image: np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (H, W, 3) in `value_range`."""
    low, high = value_range
    return (image.astype(np.float32) / 255.0) * (high - low) + low


def uint8_steps(value_range: tuple[float, float]) -> tuple[np.float32, np.float32]:
    """(shift, step) of the float -> uint8 mapping in `value_range`: `rint((value + shift) / step)`."""
    low, high = value_range
    return np.float32(-low), np.float32((high - low) / 255.0)


def to_uint8(array: np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """float (H, W, 3) in `value_range` -> uint8 `clip(rint((value + shift) / step), 0, 255)` (uint8_steps).

    Each step is one float32 operation and rint rounds half to even: the arithmetic of ONNX's
    QuantizeLinear, so runtime.Session.run gives these bytes on every engine and path.
    """
    shift, step = uint8_steps(value_range)
    scaled = (np.asarray(array, dtype=np.float32) + shift) / step
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def to_nchw(images: Iterable[np.ndarray], value_range=(-1.0, 1.0)) -> np.ndarray:
    """A list of uint8 (H, W, 3) -> float32 (N, 3, H, W) in `value_range`."""
    return np.stack([to_float(im, value_range).transpose(2, 0, 1) for im in images]).astype(np.float32)


def from_nchw(batch: np.ndarray, value_range=(-1.0, 1.0)) -> list[np.ndarray]:
    """float (N, 3, H, W) -> list of uint8 (H, W, 3)."""
    return [to_uint8(x.transpose(1, 2, 0), value_range) for x in np.asarray(batch)]
