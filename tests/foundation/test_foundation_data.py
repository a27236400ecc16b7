import hashlib

import numpy as np
from PIL import Image

from pocketgan import data
from pocketgan.data import photos
from pocketgan.images import center_crop_square, load_image, load_images, resize


def _digest(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


def test_embedded_set_loads_offline(no_network):
    photos._split_photo.cache_clear()
    heldout = data.heldout_images(256)
    assert [name for name, _ in heldout] == ["astronaut", "grace_hopper"]
    assert all(im.shape == (256, 256, 3) and im.dtype == np.uint8 for _, im in heldout)
    test = data.split_images("test", 64)
    assert len(test) >= 12 and {"astronaut", "grace_hopper"} <= {name for name, _ in test}
    assert len(data.split_images("validation", 64)) >= 9
    named = data.train_photos()
    assert len(named) >= 100
    images = data.training_images(6, 64, seed=3)
    assert len(images) == 6 and all(im.shape == (64, 64, 3) for im in images)


def test_manifest_records_every_photo_and_ships_validation_and_test():
    entries = photos.photos()
    assert len({p.name for p in entries}) == len(entries)
    for photo in entries:
        assert photo.licence and photo.source and len(photo.sha256) == 64 and len(photo.original_size) == 2
        if photo.split == "train":
            assert photo.shipped is None
            continue
        shipped = photos.PHOTOS_DIR / photo.shipped
        assert photos.content_sha256(shipped) == photo.shipped_sha256
        with Image.open(shipped) as image:
            assert max(image.size) <= photos.SHIP_LONG_SIDE
    kinds = {p.kind for p in photos.split_photos("test")}
    assert "portrait" in kinds and "digital painting" in kinds and len(kinds) >= 10
    # 32 shipped photos (19 validation, 13 test) at <= 1280 px: ~7.4 MB; the budget keeps the package small
    assert sum(p.stat().st_size for p in photos.PHOTOS_DIR.iterdir()) < 9e6


def _thumbnail(image: np.ndarray) -> np.ndarray:
    """A 16x16 gray thumbnail of the centre square, zero mean, unit norm: near-duplicates correlate > 0.95."""
    gray = resize(center_crop_square(image), 16).astype(np.float64).mean(axis=2).ravel()
    gray -= gray.mean()
    return gray / (np.linalg.norm(gray) + 1e-9)


def _near_duplicates(images_a, images_b) -> list[tuple[str, str]]:
    thumbs_b = [(name, _thumbnail(image)) for name, image in images_b]
    return [
        (name_a, name_b)
        for name_a, image in images_a
        for name_b, thumb in thumbs_b
        if float(_thumbnail(image) @ thumb) > 0.95
    ]


def test_test_split_is_never_in_training_or_validation_data():
    """By content: file hashes, decoded-pixel hashes and near-duplicate thumbnails of every test photo
    against every training photo (wallpapers, bundled photos, LFW faces) and every validation photo."""
    test, validation = photos.split_photos("test"), photos.split_photos("validation")
    test_files = {p.sha256 for p in test} | {p.shipped_sha256 for p in test}
    others = photos.split_photos("train") + validation
    assert not test_files & ({p.sha256 for p in others} | {p.shipped_sha256 for p in validation})
    present = [p.path() for p in photos.split_photos("train") if p.path().is_file()]
    assert not test_files & {photos.content_sha256(path) for path in present}
    test_images = [(p.name, load_image(p.path())) for p in test]
    training = list(data.train_photos()) + [(p.name, load_image(p.path())) for p in validation]
    assert not {_digest(im) for _, im in test_images} & {_digest(im) for _, im in training}
    assert _near_duplicates(test_images, training) == []
    # the near-duplicate check does catch a test photo at another size and crop
    hopper = dict(test_images)["grace_hopper"]
    assert _near_duplicates(test_images, [("copy", resize(hopper[8:-8, 8:-8], 300))]) == [
        ("grace_hopper", "copy")
    ]


def test_training_images_are_seeded():
    a = data.training_images(4, 48, seed=7)
    b = data.training_images(4, 48, seed=7)
    c = data.training_images(4, 48, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_synthetic_portraits_replace_only_synthetic_images():
    """portrait_fraction swaps dead leaves for seeded colour portraits and leaves every other image as it was
    (so a pool's photos keep their teacher-cache entries)."""
    plain = data.training_images(24, 48, seed=5, synthetic_fraction=0.5)
    mixed = data.training_images(24, 48, seed=5, synthetic_fraction=0.5, portrait_fraction=1.0)
    again = data.training_images(24, 48, seed=5, synthetic_fraction=0.5, portrait_fraction=1.0)
    assert all(np.array_equal(x, y) for x, y in zip(mixed, again, strict=True))
    changed = [i for i, (x, y) in enumerate(zip(plain, mixed, strict=True)) if not np.array_equal(x, y)]
    assert 6 <= len(changed) <= 18  # about half of 24: the synthetic slots
    photos_only = data.training_images(8, 48, seed=5, synthetic_fraction=0.0)
    unchanged = data.training_images(8, 48, seed=5, synthetic_fraction=0.0, portrait_fraction=1.0)
    assert all(np.array_equal(x, y) for x, y in zip(photos_only, unchanged, strict=True))
    leaves = data.dead_leaves(np.random.default_rng(0), 48)
    assert all(m.shape == leaves.shape and m.dtype == np.uint8 for m in mixed)
    portrait = data.synthetic_portrait(
        np.random.default_rng(1), 64, np.zeros((64, 64, 3), np.uint8), np.full((25, 25, 3), 200, np.uint8)
    )
    skin = portrait[20:30, 28:36].reshape(-1, 3).astype(int)  # around the face's centre
    assert (skin[:, 0] > skin[:, 2]).all()  # a skin tone: more red than blue


def test_black_and_white_is_the_luma_in_every_channel():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 30]]], np.uint8)
    grey = data.black_and_white(rgb)
    assert grey.shape == rgb.shape and grey.dtype == np.uint8
    assert (grey == grey[..., :1]).all()
    assert grey[0, :, 0].tolist() == [76, 150, 29, 124]  # 0.299 R + 0.587 G + 0.114 B, rounded


def test_load_images_converts_and_skips_broken(tmp_path):
    rgb = (np.arange(20 * 30 * 3) % 251).astype(np.uint8).reshape(20, 30, 3)
    (tmp_path / "sub").mkdir()
    Image.fromarray(rgb).save(tmp_path / "sub" / "good.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / "gray.jpg")
    Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257).save(tmp_path / "deep.png")
    Image.fromarray(rgb).save(tmp_path / "pic.webp")
    Image.fromarray(rgb).save(tmp_path / "pic.bmp")
    Image.fromarray(rgb).save(tmp_path / "sub" / "pic.tiff")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    Image.fromarray(rgb).save(tmp_path / "trunc.jpg")
    (tmp_path / "trunc.jpg").write_bytes((tmp_path / "trunc.jpg").read_bytes()[:100])
    (tmp_path / "notes.txt").write_text("ignored")

    loaded = load_images(tmp_path)
    names = sorted(p.name for p in loaded.paths)
    assert names == ["deep.png", "good.png", "gray.jpg", "pic.bmp", "pic.tiff", "pic.webp", "rgba.png"]
    assert all(im.dtype == np.uint8 and im.shape == (20, 30, 3) for im in loaded.images)
    globbed = load_images(str(tmp_path / "**" / "*.png"))
    assert sorted(p.name for p in globbed.paths) == ["deep.png", "good.png", "rgba.png"]
    assert [p.name for p, _ in globbed.failures] == ["text.png"]
    assert sorted(p.name for p, _ in loaded.failures) == ["empty.jpg", "text.png", "trunc.jpg"]
    deep = loaded.images[names.index("deep.png")]
    np.testing.assert_array_equal(deep[:, :, 0], rgb[:, :, 0])


def test_exif_orientation_is_applied(tmp_path):
    wide = np.zeros((10, 40, 3), dtype=np.uint8)
    wide[:, :20] = 255
    img = Image.fromarray(wide)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 CW on display
    img.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    upright = load_image(tmp_path / "rotated.jpg")
    assert upright.shape == (40, 10, 3)


def test_flat_crops_are_drawn_again_and_the_others_are_unchanged():
    """min_contrast: a crop of the flat half (sky, bokeh) is redrawn; a crop that passes is the same bytes as
    without the check, so its teacher-cache entry stays valid."""
    photo = np.full((400, 800, 3), 128, np.uint8)
    yy, xx = np.mgrid[0:400, 0:400]
    photo[:, 400:] = (((yy // 20 + xx // 20) % 2) * 255)[..., None]  # right half: a 20 px checkerboard

    def contrast(image):
        return float((image.astype(np.float32).mean(axis=-1) / 255.0).std())

    plain = [data.augment(photo, np.random.default_rng([1, i]), 32, 0.0, (0.2, 0.4)) for i in range(40)]
    checked = [
        data.augment(photo, np.random.default_rng([1, i]), 32, 0.0, (0.2, 0.4), 0.05) for i in range(40)
    ]
    flat = [i for i, image in enumerate(plain) if contrast(image) < 0.05]
    assert 5 <= len(flat) < 35  # the photo gives both kinds
    assert all(contrast(image) >= 0.05 for image in checked)
    assert all(np.array_equal(plain[i], checked[i]) for i in range(40) if i not in flat)
