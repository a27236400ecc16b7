"""The teacher's grain: synthesis (runtime.grain), its fit (distill.grain), and Session.run adding it."""

import json

import numpy as np
import pytest
from runtime_testkit import copy_model

from pocketgan import runtime
from pocketgan.data import heldout_images
from pocketgan.distill.grain import DETAIL_EDGES, fit_deficit, fit_grain
from pocketgan.errors import ModelLoadError
from pocketgan.images import resize, to_float
from pocketgan.runtime.grain import GrainModel, add_grain, grain_pattern, rows_adder
from pocketgan.runtime.video import ClipModel
from pocketgan.runtime.working import guided_upsample


def _flat(height=200, width=300, level=128):
    return np.full((height, width, 3), level, np.uint8)


def test_grain_has_the_models_std_by_luminance_and_the_same_bytes_on_any_threads():
    model = GrainModel(((1.0,),), ((1.0, 0, 0), (1.0, 0, 0), (1.0, 0, 0)), (0.0, 255.0), (0.0, 8.0))
    dark, bright = add_grain(_flat(level=32), model), add_grain(_flat(level=192), model)
    # std table at the pixel's luminance: 8 * 32/255 = 1.0 and 8 * 192/255 = 6.0 levels (rounding adds 1/12)
    assert abs(dark.astype(float).std() - 1.0) < 0.2
    assert abs(bright.astype(float).std() - 6.0) < 0.4
    photo = resize(heldout_images(None)[0][1], (333, 517))
    one = add_grain(photo, model)
    assert np.array_equal(one, add_grain(photo, model, workers=3))
    assert np.array_equal(one, add_grain(photo, model))  # seeded: same photo, same bytes
    in_place = photo.copy()
    assert add_grain(in_place, model, workers=3, in_place=True) is in_place and np.array_equal(in_place, one)
    assert add_grain(photo, model, 0.0) is photo
    assert not np.array_equal(one, add_grain(photo, GrainModel(**{**model.to_json(), "seed": 1})))
    # the pattern depends on the position only: a crop's pattern is the whole image's there
    assert np.array_equal(grain_pattern(model, 0, 150, 200), grain_pattern(model, 0, 320, 517)[:150, :200])


def test_grain_added_strip_by_strip_during_guided_upsampling_gives_the_same_bytes():
    """Session.run adds the grain to each strip of the guided upsampling as it is written (rows_adder): the
    same bytes as upsampling first and adding the grain to the whole image, at sizes that are not multiples
    of the strip or block sides, on any number of threads."""
    model = GrainModel.unit(std=4.0)
    photo = resize(heldout_images(None)[0][1], (333, 517))
    work = resize(photo, (100, 156))
    work_out = np.clip(work.astype(np.int16) + np.arange(156, dtype=np.int16)[None, :, None] // 8, 0, 255)
    work_out = work_out.astype(np.uint8)
    two_passes = add_grain(guided_upsample(photo, work, work_out), model, 0.7)
    for workers in (1, 3):
        fused = guided_upsample(photo, work, work_out, workers=workers, then=rows_adder(model, 0.7))
        assert np.array_equal(fused, two_passes)
    with pytest.raises(ValueError, match="multiple of 64"):
        rows_adder(model)(photo.copy(), 32, 96)


def test_grain_fills_flat_areas_and_leaves_detailed_ones():
    model = GrainModel.unit(std=4.0)
    image = _flat(128, 256)
    image[:, 128:] = np.random.default_rng(1).normal(128, 20, (128, 128, 3)).clip(0, 255)
    change = add_grain(image, model).astype(float) - image
    assert abs(change[:, :112].std() - 4.0) < 0.3  # flat blocks: the full grain
    assert np.abs(change[:, 128:]).max() == 0  # blocks with more detail than the grain: none added


def test_grain_pattern_has_the_kernels_spectrum_and_the_colour_correlation():
    low_pass = GrainModel(
        kernel=tuple(tuple(1 / 9 for _ in range(3)) for _ in range(3)),
        colour=((1, 0, 0), (0.8, 0.6, 0), (0, 0, 1)),
        luma_levels=(0, 255),
        std_levels=(4, 4),
    )
    pattern = grain_pattern(low_pass, 0, 256, 512)
    white = grain_pattern(GrainModel.unit(), 0, 256, 512)
    neighbours = lambda p: np.mean(p[:, 1:, 0] * p[:, :-1, 0]) / np.mean(p[..., 0] ** 2)  # noqa: E731
    assert neighbours(pattern) > 0.5 and abs(neighbours(white)) < 0.05
    corr = np.corrcoef(pattern.reshape(-1, 3).T)
    assert abs(corr[0, 1] - 0.8) < 0.05 and abs(corr[0, 2]) < 0.05
    with pytest.raises(ValueError, match="multiple"):
        grain_pattern(low_pass, 10, 64, 64)


def test_grain_model_refuses_malformed_sections():
    good = GrainModel.unit().to_json()
    for bad in (
        {"kernel": [[1, 0]]},
        {"colour": [[1, 0, 0]]},
        {"luma_levels": [10, 5]},
        {"std_levels": [-1, 2]},
    ):
        with pytest.raises(ModelLoadError):
            GrainModel.from_json({**good, **bad})
    with pytest.raises(ModelLoadError, match="unreadable"):
        GrainModel.from_json({"kernel": [[1]]})


def test_fit_recovers_known_grain_from_flat_photos_and_ignores_their_detail():
    rng = np.random.default_rng(0)
    pairs = []
    for level in (60, 120, 180):
        photo = np.full((256, 256, 3), level, np.uint8)
        photo[:, 128:] = rng.integers(0, 256, (256, 128, 3), dtype=np.uint8)  # detailed half: not flat
        luma_grain = rng.normal(0, 3.0 + level / 60, (256, 256, 1))  # 4, 5, 6 levels by brightness
        grain = np.concatenate([luma_grain, luma_grain, rng.normal(0, 2.0, (256, 256, 1))], axis=2)
        pairs.append((photo, to_float(photo) + grain / 127.5))
    model = fit_grain(pairs)
    table = model.std_table()
    # at each level's bin centre: the rms over channels of (s, s, 2), of which the high-pass residual keeps
    # ~93% (the blur takes the rest)
    for centre, luma_std in ((56, 4.0), (120, 5.0), (184, 6.0)):
        expected = np.sqrt((2 * luma_std**2 + 2.0**2) / 3)
        assert abs(table[centre] / expected - 0.93) < 0.06, (centre, table[centre])
    mixed = np.asarray(model.colour) @ np.asarray(model.colour).T
    corr = mixed / np.sqrt(np.outer(np.diag(mixed), np.diag(mixed)))
    assert corr[0, 1] > 0.95 and corr[0, 2] < 0.25
    with pytest.raises(ValueError, match="flat patches"):
        fit_grain([(pairs[0][0][:, 128:], pairs[0][1][:, 128:])])


def test_deficit_table_fits_the_teachers_extra_detail_by_luminance_and_detail():
    rng = np.random.default_rng(3)
    base = GrainModel.unit(std=1.0)
    pairs = []
    for level in (60, 180):
        output = np.full((256, 256, 3), level, np.uint8)
        output[:, 128:] = np.clip(
            rng.normal(level, 12, (256, 128, 1)), 0, 255
        )  # detailed half, luminance noise
        extra = rng.normal(0, 2.0 if level == 60 else 5.0, (256, 256, 1))  # the teacher's grain on top
        teacher = (output.astype(np.float64) + extra) / 127.5 - 1.0
        teacher[:, 128:] = output[:, 128:] / 127.5 - 1.0  # where detailed, the teacher adds nothing
        pairs.append((teacher, output))
    model = fit_deficit(base, pairs)
    table = np.asarray(model.deficit_std)
    assert model.detail_edges == DETAIL_EDGES and table.shape == (16, len(DETAIL_EDGES) - 1)
    # white grain of std s adds 4 s² of luminance detail (2 s² per direction), and the unit pattern has 4
    # per unit variance: the table gives s back
    flat_dark, flat_bright = table[60 // 16, 0], table[180 // 16, 0]
    assert abs(flat_dark - 2.0) < 0.3 and abs(flat_bright - 5.0) < 0.5, table
    detailed = np.searchsorted(np.asarray(DETAIL_EDGES[1:-1]), 4 * 12.0**2, side="right")
    assert table[60 // 16, detailed] < 0.5 and table[180 // 16, detailed] < 0.5
    # the runtime uses the table: flat grey gets its entry, the detailed half nothing
    image = pairs[1][1].copy()
    change = add_grain(image, model).astype(float) - image
    assert abs(change[:, :112].std() - flat_bright) < 0.4 and np.abs(change[:, 144:]).mean() < 0.6
    with pytest.raises(ModelLoadError, match="deficit_std"):
        GrainModel.from_json({**model.to_json(), "deficit_std": [[1.0]]})


def _with_grain(model_path, directory, grain):
    copy = copy_model(model_path, directory)
    manifest = json.loads((model_path.parent / (model_path.name + ".manifest.json")).read_text())
    (directory / (copy.name + ".manifest.json")).write_text(json.dumps({**manifest, "grain": grain}))
    return copy


def test_session_adds_the_manifests_grain_to_photos_only(context_onnx, tmp_path):
    grain = GrainModel.unit(std=3.0).to_json()
    grained = runtime.load(_with_grain(context_onnx, tmp_path, grain), max_side=64)
    plain = runtime.load(context_onnx, max_side=64)
    photo = np.full((96, 160, 3), 120, np.uint8)  # flat: the grain shows in full
    without = plain.run(photo)
    assert plain.grain_model is None and np.array_equal(without, plain.run(photo, grain=1.0))
    with_grain = grained.run(photo)
    difference = with_grain.astype(float) - without
    assert 2.5 < difference.std() < 3.5 and abs(difference.mean()) < 0.3
    assert np.array_equal(grained.run(photo, grain=0.0), without)
    assert np.array_equal(runtime.load(grained.path, max_side=64, grain=0.0).run(photo), without)
    # video frames: no grain (it would shimmer from frame to frame)
    assert np.array_equal(ClipModel(grained, smoothing=0.0)(photo), without)
    with pytest.raises(Exception, match="grain"):
        runtime.load(context_onnx, grain=-1.0)
    # `pocketgan inspect` says whether an artifact carries grain
    from pocketgan.artifact_info import describe_artifact

    assert describe_artifact(grained.path)["grain"].startswith("std 3.0-3.0 levels")
    assert describe_artifact(context_onnx)["grain"].startswith("none")


def test_export_takes_the_grain_beside_the_checkpoint_a_named_file_or_none(tmp_path):
    pytest.importorskip("torch")
    from pocketgan.errors import UsageError
    from pocketgan.export.base import ExportConfig
    from pocketgan.export.pipeline import grain_section

    checkpoint = tmp_path / "run" / "best.pt"
    checkpoint.parent.mkdir()
    entry = {"checkpoint": str(checkpoint)}
    assert grain_section(ExportConfig(), entry) is None  # no grain.json beside it
    assert grain_section(ExportConfig(), {"checkpoint": None}) is None  # a teacher spec
    (checkpoint.parent / "grain.json").write_text(json.dumps(GrainModel.unit(std=2.0).to_json()))
    section = grain_section(ExportConfig(), entry)
    assert GrainModel.from_json(section) == GrainModel.unit(std=2.0)
    assert grain_section(ExportConfig(grain="none"), entry) is None
    other = tmp_path / "other.json"
    other.write_text(json.dumps(GrainModel.unit(std=5.0).to_json()))
    assert GrainModel.from_json(grain_section(ExportConfig(grain=str(other)), {})).std_levels == (5.0, 5.0)
    with pytest.raises(UsageError, match="not a file"):
        ExportConfig(grain=str(tmp_path / "missing.json"))
    other.write_text("{not json")
    with pytest.raises(UsageError, match="unreadable"):
        grain_section(ExportConfig(grain=str(other)), {})
    # the zoo student ships the teacher's grain, fitted on training photos only
    from pocketgan.data.photos import split_photos
    from pocketgan.demo import SHIPPED_STUDENT

    shipped = json.loads((SHIPPED_STUDENT.parent / "grain.json").read_text())
    assert GrainModel.from_json(shipped).std_levels and shipped["fitted_on"]["split"] == "train"
    assert set(shipped["fitted_on"]["photos"]) <= {photo.name for photo in split_photos("train")}
    assert GrainModel.from_json(shipped).deficit_std and shipped["fitted_on"]["deficit_artifact"]["sha256"]
