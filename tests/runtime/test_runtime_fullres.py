"""Session.run at the photo's own size: working sizes, the context input, guided upsampling, memory bounds."""

import tracemalloc

import numpy as np
import pytest
from runtime_testkit import MODEL_SIZE

from pocketgan import runtime
from pocketgan.data import heldout_images
from pocketgan.errors import UsageError
from pocketgan.images import CONTEXT_SIZE, context_thumbnail, resize, to_float, to_uint8
from pocketgan.runtime.working import SizePolicy, guided_upsample, working_size


def _photo(height: int, width: int) -> np.ndarray:
    return resize(heldout_images(None)[0][1], (height, width))


def _direct(session, image: np.ndarray, thumbnail: np.ndarray) -> np.ndarray:
    """The raw model at the image's size with the given thumbnail, scaled to uint8 as run does."""
    x = to_float(image).transpose(2, 0, 1)[None]
    context = to_float(np.asarray(thumbnail, np.uint8)).transpose(2, 0, 1)[None]
    return to_uint8(session.predict(x, context=context)[0].transpose(1, 2, 0))


def test_context_thumbnail_is_a_box_average_of_the_whole_image():
    image = np.zeros((512, 1024, 3), np.uint8)
    image[:, 512:] = 200  # right half bright: the thumbnail keeps the whole width, aspect not kept
    thumb = context_thumbnail(image)
    assert thumb.shape == (CONTEXT_SIZE, CONTEXT_SIZE, 3) and thumb.dtype == np.uint8
    assert (thumb[:, :128] == 0).all() and (thumb[:, 128:] == 200).all()
    assert context_thumbnail(np.full((3, 1000, 3), 7, np.uint8)).shape == (CONTEXT_SIZE, CONTEXT_SIZE, 3)


def test_working_size_rounds_caps_and_picks_the_nearest_fixed_size():
    dynamic = SizePolicy(dynamic=True, multiple=4, min=16, max=4096)
    assert working_size(dynamic, (37, 91), None) == (36, 92)
    assert working_size(dynamic, (3024, 4032), 1536) == (1152, 1536)
    assert working_size(dynamic, (1, 1), 1536) == (16, 16)
    assert working_size(dynamic, (3, 100000), 1536) == (16, 1536)
    fixed = SizePolicy(fixed=((256, 256), (768, 1024), (1080, 1920)))
    assert working_size(fixed, (3024, 4032), 1536) == (768, 1024)
    assert working_size(fixed, (1080, 1920), None) == (1080, 1920)
    assert working_size(fixed, (500, 510), 1536) == (256, 256)
    # a 720p frame never runs at a larger fixed size, though 1920x1080 has its aspect
    assert working_size(fixed, (720, 1280), 1536) == (768, 1024)
    assert working_size(fixed, (1080, 1920), 1920) == (1080, 1920)
    assert working_size(fixed, (1080, 1920), 1536) == (768, 1024)  # the cap holds for per-size exports too
    assert working_size(fixed, (720, 1280), 640) == (256, 256)
    assert SizePolicy.from_manifest(None, (256, 256)).fixed == ((256, 256),)  # an old manifest
    assert SizePolicy.from_manifest({"dynamic": True, "multiple": 8}, (-1, -1)).multiple == 8


@pytest.mark.parametrize("size", [(37, 91), (300, 200), (64, 64), (1, 1), (3, 1000), (1000, 3)])
def test_run_returns_the_input_size_for_odd_and_non_square_sizes(context_onnx, size):
    session = runtime.load(context_onnx)
    assert session.has_context and session.size is None and session.sizes.dynamic
    photo = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    output = session.run(photo)
    assert output.shape == photo.shape and output.dtype == np.uint8


def test_dynamic_artifact_runs_at_the_photos_own_size_with_its_thumbnail(context_onnx):
    session = runtime.load(context_onnx, max_side=None)
    photo = _photo(120, 200)  # multiples of 4: the working size is the photo's own
    assert session.working_size(photo.shape[:2]) == photo.shape[:2]
    thumb = session.thumbnail(photo)
    np.testing.assert_array_equal(thumb, context_thumbnail(photo))
    np.testing.assert_array_equal(session.run(photo), _direct(session, photo, thumb))


def test_a_given_thumbnail_replaces_the_images_own(context_onnx):
    session = runtime.load(context_onnx)
    photo = _photo(96, 128)
    dark = np.zeros((CONTEXT_SIZE, CONTEXT_SIZE, 3), np.uint8)
    own, steered = session.run(photo), session.run(photo, thumbnail=dark)
    assert np.abs(own.astype(int) - steered).mean() > 1  # the grade follows the context
    np.testing.assert_array_equal(steered, session.run(photo, thumbnail=dark.astype(np.float32)))
    with pytest.raises(UsageError, match="thumbnail"):
        session.run(photo, thumbnail=np.zeros((8, 8, 3), np.uint8))


def test_one_input_artifacts_ignore_the_thumbnail(tiny_onnx):
    session = runtime.load(tiny_onnx)
    photo = _photo(MODEL_SIZE, MODEL_SIZE)
    assert not session.has_context and session.thumbnail(photo) is None
    np.testing.assert_array_equal(session.run(photo), session.run(photo, thumbnail=np.zeros((1, 1, 3))))


def test_beyond_the_cap_the_change_is_carried_by_guided_upsampling(context_onnx):
    session = runtime.load(context_onnx, max_side=64)
    photo = _photo(150, 240)
    work_size = session.working_size(photo.shape[:2])
    assert work_size == (40, 64)
    work = resize(photo, work_size)
    expected = guided_upsample(photo, work, _direct(session, work, context_thumbnail(photo)))
    output = session.run(photo)
    np.testing.assert_array_equal(output, expected)
    # the photo's own detail stays: the output's fine band is the input's, unlike a stretched result
    stretched = runtime.load(context_onnx, max_side=64, size_mode="model").run(photo)
    detail = np.abs(np.diff(photo.astype(int), axis=1)).mean()
    assert abs(np.abs(np.diff(output.astype(int), axis=1)).mean() - detail) < 0.25 * detail
    assert np.abs(np.diff(stretched.astype(int), axis=1)).mean() < 0.8 * detail


def test_guided_upsample_adds_the_change_exactly():
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, (101, 77, 3), dtype=np.uint8)
    work = resize(photo, (25, 19))
    np.testing.assert_array_equal(guided_upsample(photo, work, work), photo)  # no change: the photo
    brighter = np.clip(work.astype(int) + 40, 0, 255).astype(np.uint8)
    constant = guided_upsample(photo, np.full_like(work, 100), np.full_like(work, 140))
    np.testing.assert_array_equal(constant, np.clip(photo.astype(int) + 40, 0, 255))
    big = guided_upsample(photo, np.full_like(work, 0), np.full_like(work, 255))  # halved: within a level
    assert np.abs(big.astype(int) - np.clip(photo.astype(int) + 255, 0, 255)).max() <= 1
    one = guided_upsample(photo, work, brighter, rows=8)
    np.testing.assert_array_equal(one, guided_upsample(photo, work, brighter, rows=8, workers=3))  # threads


def test_guided_upsample_with_ffmpegs_scaler_is_exact_where_it_must_be_and_near_pillow_elsewhere():
    rng = np.random.default_rng(2)
    photo = rng.integers(0, 256, (72, 128, 3), dtype=np.uint8)
    work = resize(photo, (36, 64))
    np.testing.assert_array_equal(guided_upsample(photo, work, work, scaler="swscale"), photo)
    constant = guided_upsample(photo, np.full_like(work, 100), np.full_like(work, 140), scaler="swscale")
    np.testing.assert_array_equal(constant, np.clip(photo.astype(int) + 40, 0, 255))
    changed = np.clip(work.astype(int) + rng.integers(-60, 60, work.shape), 0, 255).astype(np.uint8)
    near = guided_upsample(photo, work, changed, scaler="swscale").astype(int)
    assert np.abs(near - guided_upsample(photo, work, changed)).max() <= 4  # two resamplers' rounding
    assert np.abs(near - guided_upsample(photo, work, changed)).mean() < 0.5
    with pytest.raises(ValueError):
        guided_upsample(photo, work, work, scaler="cv2")


def test_guided_upsample_of_12_mp_needs_no_full_size_float_copy():
    photo = np.zeros((3024, 4032, 3), np.uint8)
    work = np.full((1152, 1536, 3), 90, np.uint8)
    tracemalloc.start()
    output = guided_upsample(photo, work, work + 10)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert (output == 10).all()
    assert peak < photo.nbytes + 3 * work.nbytes + 8_000_000  # the output, the change code, strips


def test_size_model_keeps_the_model_size_round_trip(tiny_onnx):
    session = runtime.load(tiny_onnx, size_mode="model")
    photo = _photo(150, 100)
    small = session.run(resize(photo, MODEL_SIZE))
    np.testing.assert_array_equal(session.run(photo), resize(small, photo.shape[:2]))
    with pytest.raises(UsageError, match="size_mode"):
        runtime.load(tiny_onnx, size_mode="tiles")


def test_a_per_size_export_runs_each_photo_with_the_file_of_its_nearest_size(tmp_path):
    pytest.importorskip("onnxscript")
    from runtime_testkit import export_onnx, tiny_net, write_sidecar

    source = {"checkpoint_sha256": "ab" * 32}
    for name, size in (("tiny.fp32.onnx", MODEL_SIZE), ("tiny.fp32.128x128.onnx", 128)):
        export_onnx(tiny_net(), tmp_path / name, size)
        image = {
            "shape": [1, 3, size, size],
            "layout": "NCHW",
            "sizes": {"dynamic": False, "fixed": [[size, size]]},
        }
        write_sidecar(tmp_path / name, input=image, source=source)
    session = runtime.load(tmp_path / "tiny.fp32.onnx")
    assert session.size_files == {
        (64, 64): tmp_path / "tiny.fp32.onnx",
        (128, 128): tmp_path / "tiny.fp32.128x128.onnx",
    }
    large, small = _photo(300, 280), _photo(70, 66)
    assert session.working_size(large.shape[:2]) == (128, 128)
    np.testing.assert_array_equal(
        session.run(large), runtime.load(tmp_path / "tiny.fp32.128x128.onnx").run(large)
    )
    assert session.working_size(small.shape[:2]) == (64, 64)
    write_sidecar(tmp_path / "tiny.fp32.128x128.onnx", source={"checkpoint_sha256": "cd" * 32})
    assert (
        runtime.load(tmp_path / "tiny.fp32.onnx").size_files == {}
    )  # another checkpoint's file: not a sibling


def test_bench_times_a_two_input_artifact_with_its_context(context_onnx):
    """eval/demo latency runs the engine on every native input: a context artifact fed only its image failed
    ("Required inputs (['context']) are missing") and its row had no latency."""
    from pocketgan.evals._bench_worker import measure

    result = measure(str(context_onnx), threads=1, warmup=0, iterations=3, backend=None, size=64)
    assert result["input_size"] == [64, 64] and len(result["times_ms"]) == 3
    assert all(t > 0 for t in result["times_ms"])
