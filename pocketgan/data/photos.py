"""The photo set: photos.toml lists every photo with its split (train / validation / test), source and licence.

Validation and test photos ship in pocketgan/data/photos/ (no apt needed); training photos are read where
their package put them: Debian's plasma-workspace-wallpapers, lomiri-wallpapers-20.04,
lomiri-wallpapers-16.04, lxqt-themes, tuxpaint-data, palapeli-data and gcompris-qt-data (`make data`; GCompris keeps
its photos inside Qt resource bundles, which are unpacked once into $POCKETGAN_CACHE/photos/), scikit-image's and
scikit-learn's bundled photos. Splits are per photo,
so crops of one photo never cross splits. Every read of a validation or test photo goes through `_read_split_file` (tests instrument it).

Example: python -m pocketgan.data.photos   # which training photos this machine has (exit 1 if any missing)
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import sys
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from pocketgan.artifacts import cache_home
from pocketgan.data.rcc import read_rcc
from pocketgan.errors import UsageError
from pocketgan.images import center_crop_square, find_images, load_image, resize
from pocketgan.manifest import atomic_write_bytes

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).parent
MANIFEST = DATA_DIR / "photos.toml"
PHOTOS_DIR = DATA_DIR / "photos"
SPLITS = ("train", "validation", "test")
SHIP_LONG_SIDE = 1280
SHIP_QUALITY = 92
TRAIN_MAX_SIDE = 2560  # training photos are kept in memory at most this large (a 5120 px PNG is 44 MB)
WALLPAPERS = Path("/usr/share/wallpapers")
BACKGROUNDS = Path("/usr/share/backgrounds")
SHARE = Path("/usr/share")
GCOMPRIS_RCC = SHARE / "gcompris-qt" / "rcc"
MAKE_DATA_HINT = (
    "run `make data` (apt-get install plasma-workspace-wallpapers lomiri-wallpapers-20.04 "
    "lomiri-wallpapers-16.04 lxqt-themes tuxpaint-data palapeli-data gcompris-qt-data), "
    "or pass --data with your own photos"
)


@dataclass(frozen=True)
class Photo:
    """One entry of photos.toml."""

    name: str
    split: str
    kind: str
    source: str
    file: str
    licence: str
    author: str
    original_size: tuple[int, int]
    sha256: str
    shipped: str | None = None
    shipped_sha256: str | None = None

    def path(self) -> Path:
        """The shipped copy for validation/test photos, else the file where its package installed it."""
        return PHOTOS_DIR / self.shipped if self.shipped else source_path(self.file)


def _package_dir(module: str, sub: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise UsageError(
            f"the photo set needs {module}: pip install {module.replace('sklearn', 'scikit-learn')}"
        )
    return Path(spec.origin).parent / sub


def skimage_data_dir() -> Path:
    return _package_dir("skimage", "data")


def source_path(file: str) -> Path:
    """Resolve a manifest `file` ("plasma:Kite", "lomiri:X.jpg", "lxqt:fog.jpg", "tuxpaint:sheep.jpg",
    "palapeli:citrus-fruits.jpg", "gcompris:erase/alpaca.webp", "skimage:coffee.png", "sklearn:china.jpg",
    "pocketgan:images/x.jpg") to a path; a plasma wallpaper resolves to its largest image, a GCompris photo
    to its copy unpacked from the activity's resource bundle (a missing path when the package is not here)."""
    scheme, _, name = file.partition(":")
    if scheme == "gcompris":
        return _gcompris_photo(name)
    if scheme == "plasma":
        folder = WALLPAPERS / name / "contents" / "images"
        candidates = sorted(folder.glob("*.*")) if folder.is_dir() else []
        if not candidates:
            return folder / "missing"
        return max(candidates, key=lambda p: (_pixels(p.stem), p.name))
    roots = {
        "lomiri": lambda: BACKGROUNDS,
        "lxqt": lambda: SHARE / "lxqt" / "wallpapers",
        "tuxpaint": lambda: SHARE / "tuxpaint" / "templates",
        "palapeli": lambda: SHARE / "palapeli" / "collection",
        "skimage": skimage_data_dir,
        "sklearn": lambda: _package_dir("sklearn", "datasets/images"),
        "pocketgan": lambda: DATA_DIR,
    }
    if scheme not in roots:
        raise UsageError(f"photos.toml: unknown source {file!r}")
    return roots[scheme]() / name


def photo_cache_dir() -> Path:
    """$POCKETGAN_CACHE (else ~/.cache/pocketgan)/photos: photos unpacked from resource bundles."""
    return cache_home() / "photos"


def gcompris_member(activity: str, path: str) -> str:
    """The name, inside ACTIVITY.rcc, of the file PATH under that activity's resource/ folder."""
    return f"gcompris/src/activities/{activity}/resource/{path}"


def _gcompris_photo(name: str) -> Path:
    """ "ACTIVITY/PATH" -> the file PATH under the activity's resource/ folder, unpacked from ACTIVITY.rcc
    on first use (written atomically; the manifest's sha256 checks its content like any other photo)."""
    activity, _, member = name.partition("/")
    target = photo_cache_dir() / "gcompris" / activity / member
    bundle = GCOMPRIS_RCC / f"{activity}.rcc"
    if not target.is_file() and bundle.is_file():
        files = read_rcc(bundle)
        key = gcompris_member(activity, member)
        if key in files:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, files[key])
    return target


def _pixels(stem: str) -> int:
    width, _, height = stem.partition("x")
    return int(width) * int(height) if width.isdigit() and height.isdigit() else 0


@lru_cache(maxsize=1)
def photos() -> tuple[Photo, ...]:
    """Every photo of photos.toml, in file order."""
    entries = tomllib.loads(MANIFEST.read_text())["photo"]
    out = tuple(Photo(**{**e, "original_size": tuple(e["original_size"])}) for e in entries)
    bad = [p.name for p in out if p.split not in SPLITS]
    if bad:
        raise UsageError(f"photos.toml: unknown split for {bad}")
    return out


def split_photos(split: str) -> list[Photo]:
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    return [p for p in photos() if p.split == split]


def _read_split_file(path: Path) -> np.ndarray:
    """The one place validation and test photos are decoded (instrumented by the leak tests)."""
    return load_image(path)


@lru_cache(maxsize=64)
def _split_photo(name: str, size: int | None) -> np.ndarray:
    photo = next(p for p in photos() if p.name == name)
    image = center_crop_square(_read_split_file(photo.path()))
    return resize(image, size) if size else image


def split_images(split: str, size: int | None = 256) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 (size, size, 3)) for a validation or test split: centre square, resized."""
    if split == "train":
        raise UsageError("split_images is for validation and test; training photos come as crops")
    return [(p.name, _split_photo(p.name, size)) for p in split_photos(split)]


def content_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@lru_cache(maxsize=1)
def training_photos() -> tuple[tuple[str, np.ndarray], ...]:
    """(name, uint8 RGB) of every training photo present here, downscaled to TRAIN_MAX_SIDE at most.

    Missing ones (wallpaper packages not installed) are logged and skipped; none present is a UsageError.
    """
    out, missing = [], []
    for photo in split_photos("train"):
        path = photo.path()
        if not path.is_file():
            missing.append(photo.name)
            continue
        image = load_image(path)
        if max(image.shape[:2]) > TRAIN_MAX_SIDE:
            scale = TRAIN_MAX_SIDE / max(image.shape[:2])
            image = resize(image, (round(image.shape[0] * scale), round(image.shape[1] * scale)))
        out.append((photo.name, image))
    if missing:
        log.warning("training photos missing here: %s; %s", ", ".join(missing), MAKE_DATA_HINT)
    if not out:
        raise UsageError(f"no training photo found; {MAKE_DATA_HINT}")
    return tuple(out)


def provenance(user_data: str | None = None) -> dict:
    """What a training run reads, by content: each training photo present here (name, split, sha256 of the
    file read), the LFW faces file, and the validation photos that choose best.pt (name, sha256 of the
    shipped file). With `user_data` (--data) the user's files instead of the training photos and faces (such
    runs add only dead leaves). Written as data.json next to every run and shipped student, so a test can
    check that none is a test photo."""
    if user_data is not None:
        train = [
            {"name": str(f), "split": "user", "sha256": content_sha256(f)} for f in find_images(user_data)
        ]
    else:
        train = [
            {"name": p.name, "split": p.split, "sha256": content_sha256(p.path())}
            for p in split_photos("train")
            if p.path().is_file()
        ]
    lfw = skimage_data_dir() / "lfw_subset.npy"
    faces = {"file": "skimage:lfw_subset.npy", "sha256": content_sha256(lfw)} if user_data is None else None
    return {
        "train": train,
        "lfw_faces": faces,
        "validation": [{"name": p.name, "sha256": p.shipped_sha256} for p in split_photos("validation")],
    }


def check_training_photos() -> list[str]:
    """Problems with the training photos on this machine (missing, or content not the manifest's)."""
    problems = []
    for photo in split_photos("train"):
        path = photo.path()
        if not path.is_file():
            problems.append(f"{photo.name}: missing ({photo.source}: {photo.file})")
        elif content_sha256(path) != photo.sha256:
            problems.append(f"{photo.name}: {path} differs from the manifest's sha256")
    return problems


def main() -> int:
    problems = check_training_photos()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(f"error: {len(problems)} training photo(s) unavailable; {MAKE_DATA_HINT}", file=sys.stderr)
        return 1
    print(f"all {len(split_photos('train'))} training photos present, contents as in {MANIFEST.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
