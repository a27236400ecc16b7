"""The embedded default image set: real photos split per photo (photos.toml), LFW faces and synthetic images.

Splits (pocketgan.data.photos): `train` photos feed the training pools as multi-scale random crops;
`validation` photos choose best.pt and the recipe; `test` photos (the two portraits among them) are only
for reporting. Validation and test photos ship with the package; training photos come from `make data`.

Example: python -c "from pocketgan.data import split_images; print([n for n, _ in split_images('test', 256)])"
"""

from __future__ import annotations

import numpy as np

from pocketgan.data.photos import skimage_data_dir, split_images, split_photos, training_photos

__all__ = ["heldout_images", "split_images", "train_photos", "training_images", "augment", "dead_leaves"]

LFW_FACES = 100  # lfw_subset.npy holds 100 faces then 100 non-faces, 25x25 float in [0, 1]
DEFAULT_CROP_SCALE = (0.5, 1.0)
CONTRAST_TRIES = 8  # draws of a crop before augment() keeps the most contrasted one


def heldout_images(size: int | None = 256) -> list[tuple[str, np.ndarray]]:
    """The test split's two colour portraits as (name, uint8 (size, size, 3)), centre-cropped to square."""
    portraits = {p.name for p in split_photos("test") if p.kind == "portrait"}
    return [(name, image) for name, image in split_images("test", size) if name in portraits]


def lfw_faces() -> list[np.ndarray]:
    """scikit-image's 100 grayscale 25x25 LFW faces as uint8 RGB."""
    faces = np.load(skimage_data_dir() / "lfw_subset.npy", allow_pickle=False)[:LFW_FACES]
    return [np.repeat(_unit_to_uint8(np.asarray(f, np.float64))[:, :, None], 3, axis=2) for f in faces]


def train_photos() -> list[tuple[str, np.ndarray]]:
    """Training photos (uint8 RGB, native size up to photos.TRAIN_MAX_SIDE) and the LFW faces; no
    validation or test photo among them."""
    return [*training_photos(), *((f"lfw_{i:03d}", face) for i, face in enumerate(lfw_faces()))]


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
    image: np.ndarray,
    rng: np.random.Generator,
    size: int,
    colour_strength: float = 1.0,
    crop_scale: tuple[float, float] = DEFAULT_CROP_SCALE,
    min_contrast: float = 0.0,
) -> np.ndarray:
    """A random square crop of `image` at `size`: scale, rotation, flip, colour jitter. uint8 in, uint8 out.

    The crop's side is a log-uniform fraction in `crop_scale` of the photo's short side, but never below
    `size` pixels (where the photo allows): a 5120 px photo gives crops from close-ups to the whole view.
    A crop whose luminance std (0-1 scale) is below `min_contrast` is drawn again (up to
    CONTRAST_TRIES draws; the most contrasted is kept): close-ups of sky or bokeh are flatter than any whole
    photo, and on them the teacher's InstanceNorm stretches noise into strong colours no photo gets.
    A crop that passes first time uses the random stream exactly as without the check.
    """
    best, best_contrast = None, -1.0
    for _ in range(CONTRAST_TRIES if min_contrast > 0 else 1):
        crop = _augment_once(image, rng, size, colour_strength, crop_scale)
        contrast = float((crop.astype(np.float32).mean(axis=-1) / 255.0).std())
        if contrast >= min_contrast:
            return crop
        if contrast > best_contrast:
            best, best_contrast = crop, contrast
    return best


def _augment_once(
    image: np.ndarray,
    rng: np.random.Generator,
    size: int,
    colour_strength: float,
    crop_scale: tuple[float, float],
) -> np.ndarray:
    from PIL import Image

    height, width = image.shape[:2]
    short = min(height, width)
    low, high = np.log(crop_scale[0]), np.log(crop_scale[1])
    side = int(short * np.exp(rng.uniform(low, high))) if high > low else int(short * crop_scale[0])
    side = max(1, min(short, max(side, min(size, short))))
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
    face_fraction: float = 0.5,
    crop_scale: tuple[float, float] = DEFAULT_CROP_SCALE,
    min_contrast: float = 0.0,
) -> list[np.ndarray]:
    """`count` deterministic augmented training images (uint8 (size, size, 3)) for a given seed.

    A `synthetic_fraction` of them are synthetic: dead leaves, or with probability `portrait_fraction` a
    synthetic_portrait. Of the others, a `face_fraction` are LFW faces and the rest multi-scale crops of the
    training photos, each photo drawn with a weight proportional to its short side (a 2560 px wallpaper
    holds many more distinct crops than a 370 px test image). Image i draws from its own random stream
    ([seed, i]): changing a fraction changes only the images whose kind it flips, so the rest keep their
    teacher-cache entries.
    """
    named = train_photos()
    photos = [image for name, image in named if not name.startswith("lfw_")]
    faces = [image for name, image in named if name.startswith("lfw_")]
    weights = np.array([min(image.shape[:2]) for image in photos], np.float64)
    weights /= weights.sum()
    out = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        kind, portrait = rng.random(), rng.random()
        if kind < synthetic_fraction and portrait < portrait_fraction:
            background = augment(photos[int(rng.integers(0, len(photos)))], rng, size, crop_scale=crop_scale)
            out.append(synthetic_portrait(rng, size, background, faces[int(rng.integers(0, len(faces)))]))
        elif kind < synthetic_fraction:
            out.append(dead_leaves(rng, size))
        else:
            if rng.random() < face_fraction:
                photo = faces[int(rng.integers(0, len(faces)))]
            else:
                photo = photos[int(rng.choice(len(photos), p=weights))]
            out.append(augment(photo, rng, size, colour_strength, crop_scale, min_contrast))
    return out


def black_and_white(image: np.ndarray) -> np.ndarray:
    """A uint8 (H, W, 3) image as black and white: its luma (ITU-R BT.601 weights) in all three channels."""
    luma = np.rint(image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    return np.repeat(np.clip(luma, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
