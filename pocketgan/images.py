"""Image loading, resizing and normalization shared by every stage (torch-free).

Loading is colour-managed: a file with an embedded ICC profile (a Display P3 phone photo, an Adobe RGB
export, a CMYK JPEG) is converted to sRGB with LittleCMS (Pillow's ImageCms), the colour space every model
here is trained and run in; files without a profile are taken as sRGB.

Resizing always uses Pillow's bicubic filter on uint8 RGB (`RESIZE_FILTER`), so that parity numbers
from export, runtime and eval are computed on identical pixels.

Example: python -c "from pocketgan.images import load_images; print(load_images('photos/'))"
"""

from __future__ import annotations

import functools
import glob
import io
import logging
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from pocketgan.errors import ImageLoadError
from pocketgan.manifest import TEMP_PREFIX

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
RESIZE_FILTER = "bicubic"
_PIL_FILTER = Image.Resampling.BICUBIC
# Side of the square thumbnail of the whole image that students take their global context (grade) from,
# whatever the size they run at: a crop, a tile and a 12 MP photo get the same grade (context_thumbnail).
CONTEXT_SIZE = 256
ORIENTATION_TAG = 0x0112
EXIF_IFD_TAG = 0x8769
COLOR_SPACE_TAG = 0xA001  # in the Exif IFD: 1 = sRGB
_PROFILE_MODES = {"RGB": "RGB", "GRAY": "L", "CMYK": "CMYK"}  # ICC colour space -> the Pillow mode it reads


@dataclass(frozen=True)
class Photo:
    """A decoded image file: upright sRGB pixels, and the metadata an output of it should carry."""

    pixels: np.ndarray  # uint8 (H, W, 3) RGB
    exif: bytes | None = None  # the file's EXIF with orientation 1 (the pixels are upright); None without
    frames: int = 1  # frames in the file (an animation has several); only the first is decoded
    # The same pixels as a PIL RGB image (read_photo(keep_image=True)), for Session.run(source=...): a 12 MP
    # photo converted between numpy and PIL costs 20-50 ms each way.
    image: Image.Image | None = field(default=None, compare=False, repr=False)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: alpha composited on white, 16-bit scaled, gray replicated; an RGB image
    itself (no copy: 13 ms for 12 MP)."""
    if img.mode == "RGB":
        return img
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


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.cache
def srgb_icc_profile() -> bytes:
    """The ICC profile (LittleCMS's built-in sRGB) that PocketGAN embeds in the images it writes."""
    return _srgb_profile().tobytes()


@functools.lru_cache(maxsize=16)
def _transform_to_srgb(icc: bytes) -> ImageCms.ImageCmsTransform | None:
    """The transform from an embedded ICC profile to sRGB; None when it is sRGB already (changes no colour).

    Raises ImageCms.PyCMSError (or OSError) for a profile LittleCMS cannot use.
    """
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    space = profile.profile.xcolor_space.strip()
    if space not in _PROFILE_MODES:
        raise ImageCms.PyCMSError(f"a {space} profile")
    # Perceptual is the ICC default for photographs; a matrix profile (Display P3, Adobe RGB) has no
    # perceptual table and LittleCMS maps it colorimetrically.
    transform = ImageCms.buildTransform(profile, _srgb_profile(), _PROFILE_MODES[space], "RGB")
    return None if _is_identity(transform) else transform


def _is_identity(transform: ImageCms.ImageCmsTransform) -> bool:
    """True when an RGB -> RGB transform leaves every colour of a 32-level-per-channel grid as it is."""
    if transform.input_mode != "RGB":
        return False
    levels = np.linspace(0, 255, 32).round().astype(np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(32 * 32, 32, 3)
    return np.array_equal(np.asarray(ImageCms.applyTransform(Image.fromarray(grid), transform)), grid)


def _to_srgb(img: Image.Image, icc: bytes | None, path: Path) -> Image.Image:
    """8-bit RGB in sRGB: pixels described by an embedded ICC profile are converted, others taken as sRGB."""
    if not icc:
        return _to_rgb(img)
    try:
        transform = _transform_to_srgb(icc)
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        log.warning("%s: colour profile not usable (%s); pixels read as sRGB", path, exc)
        return _to_rgb(img)
    if transform is None:
        return _to_rgb(img)
    if transform.input_mode == "CMYK":
        if img.mode != "CMYK":
            log.warning("%s: a CMYK colour profile on %s pixels; pixels read as sRGB", path, img.mode)
            return _to_rgb(img)
        return ImageCms.applyTransform(img, transform)
    source = _to_rgb(img)
    return ImageCms.applyTransform(source.convert("L") if transform.input_mode == "L" else source, transform)


def _upright_exif(img: Image.Image, path: Path) -> bytes | None:
    """The image's EXIF for an upright sRGB copy of it: orientation 1, colour space sRGB. None without EXIF.

    IFD0, the Exif and GPS IFDs are kept (camera, copyright, dates, place); the thumbnail IFD is not.
    """
    exif = img.getexif()
    if not exif:
        return None
    exif[ORIENTATION_TAG] = 1
    if EXIF_IFD_TAG in exif and COLOR_SPACE_TAG in exif.get_ifd(EXIF_IFD_TAG):
        exif.get_ifd(EXIF_IFD_TAG)[COLOR_SPACE_TAG] = 1
    try:
        return exif.tobytes()
    except (ValueError, TypeError, KeyError, struct.error) as exc:
        log.warning("%s: EXIF not kept (%s)", path, exc)
        return None


def read_photo(path: str | os.PathLike, to_srgb: bool = True, keep_image: bool = False) -> Photo:
    """Decode one image file: uint8 (H, W, 3) RGB, upright per its EXIF orientation, in sRGB.

    An embedded ICC profile (Display P3, Adobe RGB, CMYK, ...) is converted to sRGB unless `to_srgb` is
    False; an animation gives its first frame. Raises ImageLoadError with the file name on anything that
    is not a readable image. keep_image: Photo.image holds the same pixels as a PIL image too.
    """
    path = Path(path)
    kept = None
    try:
        if path.stat().st_size == 0:
            raise ImageLoadError(f"{path}: empty file")
        img = Image.open(path)
        try:
            img.load()  # closes the file of a single-frame image
            frames = getattr(img, "n_frames", 1)
            icc = img.info.get("icc_profile") if to_srgb else None
            ImageOps.exif_transpose(img, in_place=True)  # no copy of a 12 MP photo that is already upright
            exif = _upright_exif(img, path)
            rgb = _to_srgb(img, icc, path)
            pixels = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
            if keep_image:  # closing `img` destroys its pixels: keep it open only when its file is closed
                kept = rgb.copy() if rgb is img and getattr(img, "fp", None) is not None else rgb
        finally:
            if kept is not img:
                img.close()
    except ImageLoadError:
        raise
    except FileNotFoundError:
        raise ImageLoadError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        reason = "not an image" if isinstance(exc, UnidentifiedImageError) else str(exc) or type(exc).__name__
        raise ImageLoadError(f"{path}: cannot decode ({reason})") from None
    return Photo(pixels, exif, frames, kept)


def load_image(path: str | os.PathLike, to_srgb: bool = True) -> np.ndarray:
    """Decode one image file to uint8 (H, W, 3) RGB, upright and in sRGB (see `read_photo`)."""
    return read_photo(path, to_srgb).pixels


@dataclass
class LoadedImages:
    """Images decoded from a folder, and the files that could not be decoded."""

    images: list[np.ndarray] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)


def scan_folder(root: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """(image files, other files) under a folder, recursive and sorted by path.

    Unfinished writes (`.tmp-*` entries of pocketgan.manifest.atomic_path) are in neither list, hidden
    files (`.DS_Store`) are not among the others.
    """
    images, others = [], []
    for path in sorted(Path(root).rglob("*")):
        parts = path.relative_to(root).parts
        if any(part.startswith(TEMP_PREFIX) for part in parts) or not path.is_file():
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
        elif not any(part.startswith(".") for part in parts):
            others.append(path)
    return images, others


def find_images(root: str | os.PathLike) -> list[Path]:
    """Image files under `root` (recursive, sorted), `root` itself if it is a file, or the image files a
    glob pattern matches (`**` recursive), e.g. "photos/**/*.jpg"."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.exists() and any(char in str(root) for char in "*?["):
        matches = glob.glob(str(root), recursive=True)
        return sorted(
            Path(m) for m in matches if Path(m).is_file() and Path(m).suffix.lower() in IMAGE_SUFFIXES
        )
    if not root.is_dir():
        raise ImageLoadError(f"{root}: no such file or folder")
    return scan_folder(root)[0]


def load_images(root: str | os.PathLike) -> LoadedImages:
    """Load every image under a folder; broken files are logged by name, recorded and skipped."""
    loaded = LoadedImages()
    for path in find_images(root):
        try:
            photo = read_photo(path)
        except ImageLoadError as exc:
            log.warning("skipping %s", exc)
            loaded.failures.append((path, str(exc)))
            continue
        if photo.frames > 1:
            log.warning("%s: only the first frame of %d is used", path, photo.frames)
        loaded.images.append(photo.pixels)
        loaded.paths.append(path)
    return loaded


def resize(
    image: np.ndarray,
    size: int | tuple[int, int],
    source: Image.Image | None = None,
    reducing_gap: float | None = None,
) -> np.ndarray:
    """Resize uint8 (H, W, 3) to `size` (an int for square, or (height, width)) with RESIZE_FILTER.

    source: `image` already as a PIL image (the same pixels), so a caller resizing one photo twice converts
    it once (a 12 MP photo: ~20-50 ms a conversion). reducing_gap: Pillow's, for a large shrink: the image is
    first box-averaged by an integer factor that leaves at least that much shrink to the bicubic filter
    (faster, within a few levels; None: the bicubic filter alone, as everywhere but the runtime)."""
    height, width = (size, size) if isinstance(size, int) else size
    if image.shape[:2] == (height, width):
        return image
    picture = source or Image.fromarray(image)
    return np.asarray(picture.resize((width, height), _PIL_FILTER, reducing_gap=reducing_gap))


def context_thumbnail(image: np.ndarray, source: Image.Image | None = None) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (CONTEXT_SIZE, CONTEXT_SIZE, 3): the whole image, aspect not kept.

    An area (box) average when shrinking, so every pixel counts and no detail aliases into the colour
    statistics; bicubic (RESIZE_FILTER) up where a side is below CONTEXT_SIZE. source: as in `resize`.
    """
    height, width = image.shape[:2]
    if (height, width) == (CONTEXT_SIZE, CONTEXT_SIZE):
        return image
    if height >= CONTEXT_SIZE and width >= CONTEXT_SIZE:
        thumb = (source or Image.fromarray(image)).resize((CONTEXT_SIZE, CONTEXT_SIZE), Image.Resampling.BOX)
        return np.asarray(thumb)
    return resize(image, CONTEXT_SIZE, source)


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
