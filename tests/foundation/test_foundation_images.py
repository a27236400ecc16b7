"""pocketgan.images: colour profiles converted to sRGB, EXIF kept upright, folders scanned without temps."""

import io

import numpy as np
from PIL import Image, ImageCms

from pocketgan import data
from pocketgan.images import (
    center_crop_square,
    load_image,
    load_images,
    read_photo,
    resize,
    scan_folder,
    srgb_icc_profile,
)


def colourful(size: int = 64) -> np.ndarray:
    """A seeded image with saturated colours (where Display P3 and sRGB values differ most)."""
    rng = np.random.default_rng(3)
    blocks = rng.choice([0, 40, 128, 215, 255], size=(size // 8, size // 8, 3)).astype(np.uint8)
    return np.kron(blocks, np.ones((8, 8, 1), np.uint8))


def test_display_p3_png_is_converted_to_srgb(tmp_path, display_p3_profile):
    photo = colourful()
    p3 = ImageCms.ImageCmsProfile(io.BytesIO(display_p3_profile))
    encoded = ImageCms.profileToProfile(Image.fromarray(photo), ImageCms.createProfile("sRGB"), p3)
    encoded.save(tmp_path / "p3.png", icc_profile=display_p3_profile)
    managed = load_image(tmp_path / "p3.png").astype(int)
    assert np.abs(managed - photo).max() <= 3 and np.abs(managed - photo).mean() < 0.5  # 8-bit P3: rounding
    raw = load_image(tmp_path / "p3.png", to_srgb=False).astype(int)
    np.testing.assert_array_equal(raw, np.asarray(encoded))
    assert np.abs(raw - photo).max() > 20


def test_srgb_tagged_and_untagged_files_read_the_same(tmp_path):
    photo = colourful()
    Image.fromarray(photo).save(tmp_path / "tagged.png", icc_profile=srgb_icc_profile())
    np.testing.assert_array_equal(load_image(tmp_path / "tagged.png"), photo)


def test_unusable_profile_is_read_as_srgb_with_a_warning(tmp_path, caplog):
    photo = colourful()
    Image.fromarray(photo).save(tmp_path / "broken.png", icc_profile=b"not a colour profile")
    with caplog.at_level("WARNING"):
        pixels = load_image(tmp_path / "broken.png")
    np.testing.assert_array_equal(pixels, photo)
    assert "broken.png: colour profile not usable" in caplog.text


def test_embedded_set_is_colour_managed_like_any_photo():
    """The photo set is read like a user's photos: rocket.jpg (validation) is Adobe RGB, converted to sRGB."""
    from pocketgan.data import photos

    (rocket,) = [p for p in photos.split_photos("validation") if p.name == "rocket"]
    stored = np.asarray(Image.open(rocket.path()).convert("RGB"))
    converted = load_image(rocket.path())
    assert converted.shape == stored.shape and not np.array_equal(converted, stored)
    photos._split_photo.cache_clear()
    np.testing.assert_array_equal(
        dict(data.split_images("validation", None))["rocket"], center_crop_square(converted)
    )


def test_exif_is_kept_with_orientation_1_and_srgb_colour_space(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 8
    exif[0x8298] = "(c) Grace Hopper"
    exif.get_ifd(0x8769)[0xA001] = 0xFFFF  # "uncalibrated", as Adobe RGB cameras write
    Image.fromarray(colourful()[:, :40]).save(tmp_path / "tagged.jpg", exif=exif.tobytes())
    photo = read_photo(tmp_path / "tagged.jpg")
    assert photo.pixels.shape == (40, 64, 3) and photo.frames == 1
    kept = Image.Exif()
    kept.load(photo.exif)
    assert kept[0x0112] == 1 and kept[0x8298] == "(c) Grace Hopper"
    assert kept.get_ifd(0x8769)[0xA001] == 1
    Image.fromarray(colourful()).save(tmp_path / "plain.png")
    assert read_photo(tmp_path / "plain.png").exif is None


def test_read_photo_keeps_a_usable_pil_image_of_the_same_pixels_when_asked(tmp_path):
    """keep_image: Photo.image holds photo.pixels as an RGB PIL image (what Session.run(source=) takes),
    after the file is closed: a rotated JPEG, an RGBA PNG, a 16-bit PNG, an animation's and a
    two-page RGB TIFF's first frame."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(colourful()[:, :40]).save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    Image.fromarray(np.dstack([colourful(), np.full((64, 64), 128, np.uint8)])).save(tmp_path / "alpha.png")
    Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 20).astype(np.uint16)).save(tmp_path / "deep.png")
    frames = [Image.fromarray(colourful()), Image.fromarray(255 - colourful())]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    frames[0].save(
        tmp_path / "pages.tiff", save_all=True, append_images=frames[1:]
    )  # RGB, its file kept open
    for name in ("rotated.jpg", "alpha.png", "deep.png", "anim.gif", "pages.tiff"):
        photo = read_photo(tmp_path / name, keep_image=True)
        assert photo.image.mode == "RGB", name
        assert np.array_equal(np.asarray(photo.image), photo.pixels), name
        plain = read_photo(tmp_path / name)
        assert np.array_equal(photo.pixels, plain.pixels) and photo.exif == plain.exif, name
        assert plain.image is None
    assert read_photo(tmp_path / "rotated.jpg", keep_image=True).pixels.shape == (40, 64, 3)  # upright


def test_a_large_runtime_shrink_box_averages_first_within_a_few_levels():
    """resize(reducing_gap=1.9), the runtime's shrink to a working size: at 4x a box average by 2 first, a
    few levels from the bicubic filter alone; under 3.8x the same bytes as the bicubic filter alone."""
    photo = data.heldout_images(None)[0][1]  # a 512 px portrait
    big = resize(photo, (1024, 1536))
    fast, exact = resize(big, (256, 384), reducing_gap=1.9), resize(big, (256, 384))
    error = fast.astype(float) - exact
    assert 0 < np.abs(error).max() <= 8 and 10 * np.log10(255**2 / np.mean(error**2)) > 45
    assert np.array_equal(resize(big, (300, 450), reducing_gap=1.9), resize(big, (300, 450)))


def test_load_images_warns_about_animations(tmp_path, caplog):
    frames = [Image.fromarray(colourful()), Image.fromarray(255 - colourful())]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with caplog.at_level("WARNING"):
        loaded = load_images(tmp_path)
    assert [p.name for p in loaded.paths] == ["anim.gif"]
    assert "only the first frame of 2 is used" in caplog.text


def test_scan_folder_leaves_out_unfinished_writes_and_hidden_files(tmp_path):
    Image.fromarray(colourful()).save(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    Image.fromarray(colourful()).save(tmp_path / "sub" / "b.JPG")
    (tmp_path / ".tmp-99-c.png-x1").mkdir()
    Image.fromarray(colourful()).save(tmp_path / ".tmp-99-c.png-x1" / "c.png")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    (tmp_path / "sub" / "clip.mp4").write_bytes(b"\0")
    images, others = scan_folder(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in images] == ["a.png", "sub/b.JPG"]
    assert [p.relative_to(tmp_path).as_posix() for p in others] == ["sub/clip.mp4"]
