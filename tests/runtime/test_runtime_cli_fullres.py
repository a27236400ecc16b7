"""`pocketgan run` at full resolution: a 12 MP EXIF-rotated JPEG, extreme sizes, --max-side, --size model."""

import numpy as np
import pytest
from PIL import Image
from runtime_testkit import jpeg_bytes, jpeg_xmp, xmp_fields

from pocketgan import runtime
from pocketgan.cli import main
from pocketgan.errors import UsageError
from pocketgan.images import load_image

AI_GENERATED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
IPTC = "{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}"


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(["run", *map(str, args)])
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def _twelve_megapixel_upright() -> np.ndarray:
    """4032 wide, 3024 high after rotation: a red band at the top, blue at the bottom, fine stripes."""
    upright = np.zeros((4032, 3024, 3), np.uint8)
    upright[..., 1] = (np.arange(3024) % 2 * 120 + 60).astype(np.uint8)[None, :]
    upright[:800, :, 0] = 230
    upright[-800:, :, 2] = 230
    return upright


def test_12_mp_jpeg_with_orientation_6_comes_back_upright_full_size_labelled(context_onnx, tmp_path, capsys):
    upright = _twelve_megapixel_upright()
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # stored 4032 x 3024; orientation 6 turns it
    exif = Image.Exif()
    exif[0x0112] = 6
    source = tmp_path / "selfie.jpg"
    source.write_bytes(jpeg_bytes(stored, exif=exif.tobytes()))
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, context_onnx, source, "-o", out)
    assert code == 0, err
    result = np.asarray(Image.open(out / "selfie.jpg"))
    assert result.shape == (4032, 3024, 3)
    assert result[:700, :, 0].mean() > 150 > result[-700:, :, 0].mean()  # red stays on top: upright

    def stripes(image):
        return np.abs(np.diff(image[2000, 1000:1100, 1].astype(int))).mean()

    # the one-pixel stripes survive (guided upsampling), not blurred away (JPEG softens both sides alike)
    assert stripes(result) > 0.5 * stripes(load_image(source)) > 30
    fields = xmp_fields(jpeg_xmp((out / "selfie.jpg").read_bytes()))
    assert fields[IPTC + "DigitalSourceType"] == AI_GENERATED


@pytest.mark.parametrize("size", [(1, 1), (3, 5000), (5000, 3)])
def test_extreme_sizes_are_processed(tiny_onnx, context_onnx, tmp_path, capsys, size):
    photo = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "odd.png")
    for model in (tiny_onnx, context_onnx):
        out = tmp_path / model.stem
        code, _, err = run_cli(capsys, model, tmp_path / "odd.png", "-o", out)
        assert code == 0, err
        assert np.asarray(Image.open(out / "odd.png")).shape == photo.shape


def test_decompression_bomb_gets_one_error_line(tiny_onnx, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses twice this: 2000 pixels
    Image.fromarray(np.zeros((60, 40, 3), np.uint8)).save(tmp_path / "bomb.png")
    code, _, err = run_cli(capsys, tiny_onnx, tmp_path / "bomb.png", "-o", tmp_path / "out")
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "decompression bomb" in lines[0] and "Traceback" not in err


def test_max_side_and_size_model_reach_the_session(context_onnx, tmp_path, capsys):
    photo = np.random.default_rng(2).integers(0, 256, (120, 200, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "p.png")
    for args, options in (
        (["--max-side", "64"], {"max_side": 64}),
        (["--size", "model"], {"size_mode": "model"}),
    ):
        out = tmp_path / args[-1]
        assert run_cli(capsys, context_onnx, tmp_path / "p.png", "-o", out, *args)[0] == 0
        expected = runtime.load(context_onnx, **options).run(load_image(tmp_path / "p.png"))
        np.testing.assert_array_equal(np.asarray(Image.open(out / "p.png")), expected)


def test_session_run_takes_the_photo_as_a_pil_image_too(context_onnx):
    """source= (read_photo(keep_image=True).image) saves a conversion and gives the same bytes; a source
    that is not the image's pixels (size, mode) is refused."""
    pixels = np.random.default_rng(2).integers(0, 256, (300, 420, 3), dtype=np.uint8)
    with runtime.load(context_onnx, max_side=128) as session:
        plain = session.run(pixels)
        assert np.array_equal(session.run(pixels, source=Image.fromarray(pixels)), plain)
        with pytest.raises(UsageError, match="not the image's RGB pixels"):
            session.run(pixels, source=Image.fromarray(pixels[:, :-4]))
        with pytest.raises(UsageError, match="not the image's RGB pixels"):
            session.run(pixels, source=Image.fromarray(pixels).convert("L"))
