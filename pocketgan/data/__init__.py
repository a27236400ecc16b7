"""The embedded default image set: offline photos from installed packages plus committed portraits.

Fixed split: the colour portraits (`astronaut`, `grace_hopper`) are held out for evaluation and never
used for training; training images come from the other photos, with seeded augmentation.

Example: python -c "from pocketgan.data import heldout_images; print([n for n, _ in heldout_images(256)])"
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from pocketgan.errors import UsageError
from pocketgan.images import center_crop_square, load_image, resize

IMAGES_DIR = Path(__file__).with_name("images")

# name -> (source, file). Source "skimage" files are bundled in scikit-image's wheel, not downloaded.
HELDOUT = {
    "astronaut": ("skimage", "astronaut.png"),
    "grace_hopper": ("pocketgan", "grace_hopper_512x512.jpg"),
}
TRAIN_PHOTOS = {
    "coffee": ("skimage", "coffee.png"),
    "chelsea": ("skimage", "chelsea.png"),
    "rocket": ("skimage", "rocket.jpg"),
    "ihc": ("skimage", "ihc.png"),
    "hubble_deep_field": ("skimage", "hubble_deep_field.jpg"),
    "motorcycle_left": ("skimage", "motorcycle_left.png"),
    "retina": ("skimage", "retina.jpg"),
    "astronaut_free_colour": ("skimage", "color.png"),
}
LFW_FACES = 100  # lfw_subset.npy holds 100 faces then 100 non-faces, 25x25 float in [0, 1]


def skimage_data_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise UsageError("the embedded image set needs scikit-image: pip install scikit-image==0.26.0")
    return Path(spec.origin).parent / "data"


def _path(source: str, file: str) -> Path:
    return (skimage_data_dir() if source == "skimage" else IMAGES_DIR) / file


@lru_cache(maxsize=32)
def _load_named(source: str, file: str) -> np.ndarray:
    # The stored values, not colour-managed: the training pools, the teacher cache and the shipped student
    # were built from them (rocket.jpg carries Adobe RGB, color.png a display profile; the held-out
    # portraits are sRGB or untagged, so evaluation is the same either way).
    return load_image(_path(source, file), to_srgb=False)


def heldout_images(size: int | None = 256) -> list[tuple[str, np.ndarray]]:
    """The held-out colour portraits as (name, uint8 (size, size, 3)), centre-cropped to square."""
    out = []
    for name, (source, file) in HELDOUT.items():
        image = center_crop_square(_load_named(source, file))
        out.append((name, resize(image, size) if size else image))
    return out


def train_photos() -> list[tuple[str, np.ndarray]]:
    """Training photos at their native size (uint8 RGB), no held-out image among them."""
    photos = [(name, _load_named(source, file)) for name, (source, file) in TRAIN_PHOTOS.items()]
    faces = np.load(skimage_data_dir() / "lfw_subset.npy", allow_pickle=False)[:LFW_FACES]
    for i, face in enumerate(faces):
        gray = _unit_to_uint8(np.asarray(face, dtype=np.float64))
        photos.append((f"lfw_{i:03d}", np.repeat(gray[:, :, None], 3, axis=2)))
    return photos


def _unit_to_uint8(x: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1] -> uint8, rounded half up. The training pools (and so the teacher cache and the
    shipped student) are built with it: not images.to_uint8, whose ties round to even."""
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _colour_jitter(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """White balance, exposure, gamma, saturation and hue mixing on float RGB in [0, 1]."""
    x = image
    gains = np.exp(rng.normal(0.0, 0.15 * strength, size=3))  # white balance
    x = x * gains * np.exp(rng.normal(0.0, 0.2 * strength))  # exposure
    x = np.clip(x, 0.0, 1.0) ** np.exp(rng.normal(0.0, 0.25 * strength))  # gamma
    gray = x.mean(axis=2, keepdims=True)
    x = gray + (x - gray) * np.exp(rng.normal(0.0, 0.35 * strength))  # saturation
    mix = np.eye(3) + rng.normal(0.0, 0.08 * strength, size=(3, 3))  # hue / channel mixing
    mix /= mix.sum(axis=1, keepdims=True)
    x = x @ mix.T
    if rng.random() < 0.3:  # a colour tint, e.g. warm or cool light, on grayscale faces too
        tint = rng.uniform(0.6, 1.0, size=3)
        x = x * tint / tint.max()
    return np.clip(x, 0.0, 1.0)


def augment(
    image: np.ndarray, rng: np.random.Generator, size: int, colour_strength: float = 1.0
) -> np.ndarray:
    """A random square view of `image` at `size`: scale, rotation, flip, colour jitter. uint8 in, uint8 out."""
    from PIL import Image

    height, width = image.shape[:2]
    side = int(min(height, width) * rng.uniform(0.5, 1.0))
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    view = Image.fromarray(image[top : top + side, left : left + side])
    angle = float(rng.uniform(-12, 12)) if rng.random() < 0.5 else 0.0
    if angle:
        view = view.rotate(angle, resample=Image.Resampling.BILINEAR, expand=False)
        margin = int(side * 0.12)  # crop away the rotated corners
        view = view.crop((margin, margin, side - margin, side - margin))
    view = view.resize((size, size), Image.Resampling.BICUBIC)
    x = np.asarray(view, dtype=np.float32) / 255.0
    if rng.random() < 0.5:
        x = x[:, ::-1]
    x = _colour_jitter(x, rng, colour_strength)
    return _unit_to_uint8(x)


def _dead_leaves_discs(rng: np.random.Generator, size: int, n_discs: int = 600):
    """dead_leaves' random draws: (background colour, [(radius, cy, cx, colour), ...] largest first)."""
    background = rng.uniform(0.0, 1.0, size=3)
    r_min, r_max = size / 80.0, size / 4.0
    radii = (r_min**-2 + rng.random(n_discs) * (r_max**-2 - r_min**-2)) ** -0.5  # p(r) ~ r^-3
    palette = rng.uniform(0.05, 0.95, size=(8, 3))
    discs = []
    for radius in np.sort(radii)[::-1]:
        cy, cx = rng.uniform(0, size, size=2)
        colour = np.clip(palette[rng.integers(0, 8)] + rng.normal(0, 0.08, size=3), 0, 1)
        discs.append((radius, cy, cx, colour))
    return background, discs


def _render_dead_leaves(size: int, background: np.ndarray, discs) -> np.ndarray:
    canvas = np.zeros((size, size, 3), dtype=np.float32)
    canvas[:] = background
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for radius, cy, cx, colour in discs:  # later (smaller) discs occlude earlier ones
        canvas[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = colour
    return _unit_to_uint8(canvas)


def dead_leaves(rng: np.random.Generator, size: int, n_discs: int = 600) -> np.ndarray:
    """A procedural 'dead leaves' image: occluding discs with power-law radii and natural-ish colours."""
    return _render_dead_leaves(size, *_dead_leaves_discs(rng, size, n_discs))


# Skin tones from light to dark and hair colours (black, brown, blond, grey), linear-ish RGB in [0, 1].
SKIN_TONES = np.array(
    [[0.98, 0.84, 0.74], [0.92, 0.72, 0.58], [0.78, 0.56, 0.42], [0.55, 0.37, 0.26], [0.38, 0.25, 0.17]]
)
HAIR_COLOURS = np.array([[0.1, 0.07, 0.05], [0.35, 0.22, 0.12], [0.75, 0.6, 0.35], [0.6, 0.6, 0.6]])


def synthetic_portrait(
    rng: np.random.Generator, size: int, background: np.ndarray, face: np.ndarray
) -> np.ndarray:
    """A crude colour portrait (uint8 (size, size, 3)): a grayscale `face` (H, W, 3) coloured with a random
    skin tone, in an ellipse, over an ellipse of hair, above a block of clothes, on `background`.

    No colour portrait ships in any package here: these give the student's grade the global statistics of a
    portrait (a large skin-toned area, hair, clothes) that the bundled photos lack.
    """
    from PIL import Image

    x = background.astype(np.float32) / 255.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    width = rng.uniform(0.28, 0.5)
    height = width * rng.uniform(1.2, 1.4)
    cx, cy = rng.uniform(0.4, 0.6), rng.uniform(0.3, 0.5)
    # clothes: a block widening from the chin down, one random colour, shaded across
    clothes = rng.uniform(0.05, 0.95, size=3)
    shoulders = (yy > cy + height * 0.45) & (np.abs(xx - cx) < width * (0.9 + (yy - cy) * 1.5))
    shade = 0.75 + 0.25 * np.cos((xx - cx) * 6)[..., None]
    x = np.where(shoulders[..., None], clothes * shade, x)
    # hair: an ellipse a little larger than the face and higher
    hair = rng.choice(HAIR_COLOURS) * rng.uniform(0.8, 1.2)
    hair_mask = ((xx - cx) / (width * 0.62)) ** 2 + ((yy - cy + height * 0.1) / (height * 0.58)) ** 2 <= 1
    x = np.where(hair_mask[..., None], np.clip(hair, 0, 1), x)
    # face: the grayscale face stretched over the ellipse's box, shaded skin tone, soft elliptical edge
    pixels_w, pixels_h = max(2, int(width * size)), max(2, int(height * size))
    gray = np.asarray(Image.fromarray(face[:, :, 0]).resize((pixels_w, pixels_h), Image.Resampling.BICUBIC))
    tone = SKIN_TONES[int(rng.integers(0, len(SKIN_TONES)))] * rng.uniform(0.9, 1.1, size=3)
    top, left = int((cy - height / 2) * size), int((cx - width / 2) * size)
    patch = np.zeros((size, size), np.float32)
    rows = slice(max(top, 0), min(top + pixels_h, size))
    cols = slice(max(left, 0), min(left + pixels_w, size))
    patch[rows, cols] = gray[rows.start - top : rows.stop - top, cols.start - left : cols.stop - left] / 255.0
    distance = ((xx - cx) / (width / 2)) ** 2 + ((yy - cy) / (height / 2)) ** 2
    alpha = np.clip((1.0 - distance) * 6.0, 0.0, 1.0)[..., None]
    skin = np.clip(tone * (0.35 + 0.85 * patch[..., None]), 0.0, 1.0)
    x = x * (1 - alpha) + skin * alpha
    x = _colour_jitter(x, rng, 0.5)
    return _unit_to_uint8(x)


def training_images(
    count: int,
    size: int,
    seed: int = 0,
    synthetic_fraction: float = 0.25,
    colour_strength: float = 1.0,
    portrait_fraction: float = 0.0,
) -> list[np.ndarray]:
    """`count` deterministic augmented training images (uint8 (size, size, 3)) for a given seed.

    A `synthetic_fraction` of them are synthetic: dead leaves, or with probability `portrait_fraction` a
    synthetic_portrait. The portraits draw from a random stream of their own, so the other images of a pool
    are the same whatever `portrait_fraction` is (and stay in the teacher cache).
    """
    rng = np.random.default_rng(seed)
    named = train_photos()
    photos = [image for name, image in named if not name.startswith("lfw_")]
    faces = [image for name, image in named if name.startswith("lfw_")]
    out = []
    for _ in range(count):
        draw = rng.random()
        if draw < synthetic_fraction:
            leaves = _dead_leaves_discs(rng, size)  # drawn either way: the images after it stay the same
            extra = np.random.default_rng([seed, len(out), 7])
            if extra.random() < portrait_fraction:
                background = augment(photos[int(extra.integers(0, len(photos)))], extra, size)
                out.append(
                    synthetic_portrait(extra, size, background, faces[int(extra.integers(0, len(faces)))])
                )
            else:
                out.append(_render_dead_leaves(size, *leaves))
            continue
        # Photos and faces in equal parts, so the 100 small faces do not drown the colour photos.
        pool = photos if draw < synthetic_fraction + (1 - synthetic_fraction) / 2 else faces
        out.append(augment(pool[int(rng.integers(0, len(pool)))], rng, size, colour_strength))
    return out
