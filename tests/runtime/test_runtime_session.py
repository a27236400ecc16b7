"""runtime.load / Session on tiny exported models: parity across formats, manifests, int8 I/O, bad models."""

import json
import sys

import numpy as np
import pytest
from runtime_testkit import MODEL_SIZE, copy_model, write_sidecar

from pocketgan import runtime
from pocketgan.data import heldout_images
from pocketgan.errors import ModelLoadError, UsageError
from pocketgan.images import resize, to_float, to_nchw, to_uint8
from pocketgan.runtime import base

FP32_MAX_ABS = 1e-3  # export parity threshold for fp32 (INTERFACES.md)


def _heldout_batch():
    images = [image for _, image in heldout_images(MODEL_SIZE)]
    return images, to_nchw(images)


def test_onnx_session_infers_nchw_and_runs(tiny_onnx):
    session = runtime.load(tiny_onnx)
    assert (session.backend, session.layout, session.size) == (
        "onnxruntime",
        "NCHW",
        (MODEL_SIZE, MODEL_SIZE),
    )
    assert session.manifest is None
    images, batch = _heldout_batch()
    predicted = session.predict(batch)
    assert predicted.shape == batch.shape and predicted.dtype == np.float32
    raw = np.concatenate([session.run_array(batch[i : i + 1]) for i in range(len(batch))])
    np.testing.assert_array_equal(predicted, raw)
    output = session.run(images[0])
    assert output.shape == images[0].shape and output.dtype == np.uint8 and output.flags.c_contiguous
    assert session.verified_by.startswith("onnxruntime ") and "CPUExecutionProvider" in session.verified_by


@pytest.mark.tflite
def test_onnx_and_tflite_agree_through_session(tiny_onnx, tiny_tflite):
    onnx_session, tflite_session = runtime.load(tiny_onnx, threads=1), runtime.load(tiny_tflite, threads=1)
    assert tflite_session.backend == "litert" and tflite_session.layout == "NHWC"
    images, batch = _heldout_batch()
    max_abs = np.abs(onnx_session.predict(batch) - tflite_session.predict(batch)).max()
    assert max_abs <= FP32_MAX_ABS
    for image in images:
        difference = onnx_session.run(image).astype(int) - tflite_session.run(image).astype(int)
        assert np.abs(difference).max() <= 1
    # run() is predict() on the same pixels, scaled to [0, 255] and rounded
    expected = np.clip(np.rint((onnx_session.predict(batch[:1])[0] + 1) * 127.5), 0, 255)
    assert np.abs(onnx_session.run(images[0]).astype(float) - expected.transpose(1, 2, 0)).max() <= 1


def _model_fixtures():
    return ["tiny_onnx", pytest.param("tiny_tflite", marks=pytest.mark.tflite)]


@pytest.mark.parametrize("model", _model_fixtures())
def test_run_is_predict_on_the_same_pixels_bit_for_bit(model, request):
    session = runtime.load(request.getfixturevalue(model), threads=1)
    images, batch = _heldout_batch()
    for image, item in zip(images, batch, strict=True):
        predicted = session.predict(item[None])[0]  # to_float pixels, as run's input path must give
        np.testing.assert_array_equal(session.run(image), to_uint8(predicted.transpose(1, 2, 0)))


class RecordingBackend(runtime.Backend):
    """An identity model on a float32 (1, 3, 16, 16) or (1, 16, 16, 3) tensor that keeps what it was fed."""

    suffixes = (".onnx",)
    layout = "NCHW"

    @classmethod
    def availability(cls):
        return "ok"

    def __init__(self, path, threads=None, providers=None):
        shape = (1, 3, 16, 16) if self.layout == "NCHW" else (1, 16, 16, 3)
        self.inputs = [runtime.TensorSpec("x", shape, "float32")]
        self.outputs = [runtime.TensorSpec("y", shape, "float32")]
        self.fed = []

    def run(self, array):
        self.fed.append(array.copy())
        return array.copy()


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("value_range", [(-1.0, 1.0), (0.0, 1.0), (-2.0, 3.0)])
def test_run_feeds_exactly_the_shared_to_float_values(layout, value_range, tmp_path, monkeypatch):
    monkeypatch.setattr(RecordingBackend, "layout", layout)
    runtime.register_backend("recording")(RecordingBackend)
    try:
        model = tmp_path / "identity.onnx"
        model.write_bytes(b"not read by the recording backend")
        write_sidecar(model, input={"layout": layout, "range": list(value_range)})
        session = runtime.load(model, backend="recording")
        image = np.random.default_rng(0).permutation(np.arange(768) % 256).astype(np.uint8).reshape(16, 16, 3)
        session.run(image)
    finally:
        base.unregister_backend("recording")
    expected = to_float(image, value_range)[None]
    if layout == "NCHW":
        expected = expected.transpose(0, 3, 1, 2)
    (fed,) = session.engine.fed
    np.testing.assert_array_equal(fed.view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("model", _model_fixtures())
def test_run_after_a_batch_and_from_threads(model, request):
    """Engines that reuse their own buffers across runs (LiteRT tensors, onnxruntime IO bindings) stay
    correct after a batch and when threads share the session."""
    import threading

    session = runtime.load(request.getfixturevalue(model), threads=1)
    images, batch = _heldout_batch()
    expected = [session.run(image) for image in images]
    assert session.predict(batch).shape == batch.shape  # resizes the interpreter to the batch
    results = {}

    def worker(index):
        results[index] = [session.run(image) for image in images for _ in range(3)][::3]

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for outputs in results.values():
        for output, reference in zip(outputs, expected, strict=True):
            np.testing.assert_array_equal(output, reference)


def test_run_resizes_to_model_size_and_back_with_the_shared_filter(tiny_onnx):
    session = runtime.load(tiny_onnx, size_mode="model")
    photo = heldout_images(None)[0][1][:150, :100]
    output = session.run(photo)
    assert output.shape == photo.shape
    expected_small = session.run(resize(photo, MODEL_SIZE))
    np.testing.assert_array_equal(output, resize(expected_small, photo.shape[:2]))
    assert [o.shape for o in session.run_batch([photo, photo[:80]])] == [photo.shape, photo[:80].shape]


def test_run_refuses_non_rgb_arrays(tiny_onnx):
    session = runtime.load(tiny_onnx)
    with pytest.raises(UsageError, match="uint8"):
        session.run(np.zeros((8, 8), np.uint8))
    with pytest.raises(UsageError, match="model size"):
        session.predict(np.zeros((1, 3, 8, 8), np.float32))


@pytest.mark.tflite
def test_int8_io_tflite_is_quantized_and_dequantized(tiny_tflite, tiny_tflite_int8):
    session = runtime.load(tiny_tflite_int8)
    assert session.input_spec.dtype == "int8" and session.input_spec.quantization is not None
    images, batch = _heldout_batch()
    float_session = runtime.load(tiny_tflite)
    predicted = session.predict(batch)
    assert predicted.dtype == np.float32
    assert np.abs(predicted - float_session.predict(batch)).max() < 0.05
    scale, zero_point = session.input_spec.quantization
    nhwc = batch[:1].transpose(0, 2, 3, 1)
    quantized = np.clip(np.rint(nhwc / scale) + zero_point, -128, 127).astype(np.int8)
    out_scale, out_zero = session.output_spec.quantization
    raw = (session.run_array(quantized).astype(np.float32) - out_zero) * out_scale
    np.testing.assert_allclose(predicted[:1], raw.transpose(0, 3, 1, 2), atol=1e-6)
    assert np.abs(session.run(images[0]).astype(int) - float_session.run(images[0])).max() <= 8


def test_sidecar_manifest_sets_range_and_is_exposed(tiny_onnx, tmp_path):
    model = copy_model(tiny_onnx, tmp_path)
    images, batch = _heldout_batch()
    reference = runtime.load(model).predict(batch)
    write_sidecar(
        model,
        input={"shape": [1, 3, MODEL_SIZE, MODEL_SIZE], "layout": "NCHW", "range": [0, 1]},
        output={"shape": [1, 3, MODEL_SIZE, MODEL_SIZE], "layout": "NCHW", "range": [-1, 1]},
    )
    session = runtime.load(model)
    assert session.manifest["input"]["range"] == [0, 1]
    # The session now feeds (x + 1) / 2: the model sees a different input than without the manifest.
    shifted = runtime.load(tiny_onnx).run_array((batch[:1] + 1) / 2)
    np.testing.assert_allclose(session.predict(batch[:1]), shifted, atol=1e-6)
    assert not np.allclose(session.predict(batch[:1]), reference[:1], atol=1e-3)


def test_embedded_onnx_manifest_is_read(tiny_onnx, tmp_path):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(tiny_onnx))
    manifest = {"format": "onnx", "name": "embedded", "input": {"shape": [1, 3, MODEL_SIZE, MODEL_SIZE]}}
    entry = model.metadata_props.add()
    entry.key, entry.value = "pocketgan_manifest", json.dumps(manifest)
    path = tmp_path / "embedded.onnx"
    onnx.save(model, str(path))
    assert runtime.load(path).manifest["name"] == "embedded"
    write_sidecar(path, name="sidecar")  # the sidecar wins over the embedded copy
    assert runtime.load(path).manifest["name"] == "sidecar"


@pytest.mark.tflite
def test_embedded_tflite_manifest_is_read_and_applied(tiny_tflite, tmp_path):
    from pocketgan.export.tflite_exporter import embed_metadata

    path = copy_model(tiny_tflite, tmp_path, "embedded.tflite")
    manifest = {"format": "tflite", "name": "embedded", "input": {"range": [0, 1]}}
    embed_metadata(path, "pocketgan_manifest", json.dumps(manifest))
    session = runtime.load(path)
    assert session.manifest["name"] == "embedded"
    x = _heldout_batch()[1][:1]
    shifted = runtime.load(path).run_array(((x + 1) / 2).transpose(0, 2, 3, 1).astype(np.float32))
    np.testing.assert_allclose(session.predict(x), shifted.transpose(0, 3, 1, 2), atol=1e-6)
    write_sidecar(path, name="sidecar")  # the sidecar wins over the embedded copy
    assert runtime.load(path).manifest["name"] == "sidecar"

    broken = copy_model(tiny_tflite, tmp_path, "broken.tflite")
    embed_metadata(broken, "pocketgan_manifest", "{not json")
    with pytest.raises(ModelLoadError, match=r"broken.tflite \(embedded manifest\): not a valid manifest"):
        runtime.load(broken)
    assert not runtime.load(tiny_tflite).manifest  # a plain conversion carries none


def test_manifest_that_does_not_match_the_model_is_refused(tiny_onnx, tmp_path):
    model = copy_model(tiny_onnx, tmp_path)
    write_sidecar(model, input={"shape": [1, 3, 256, 256], "layout": "NCHW"})
    with pytest.raises(ModelLoadError, match=r"manifest input shape \[1, 3, 256, 256\] does not match"):
        runtime.load(model)
    write_sidecar(model, format="tflite")
    with pytest.raises(ModelLoadError, match="describes a tflite model"):
        runtime.load(model)


@pytest.mark.tflite
def test_truncated_and_misnamed_models_fail_with_one_line(tiny_onnx, tiny_tflite, tmp_path):
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(tiny_onnx.read_bytes()[:300])
    with pytest.raises(ModelLoadError, match="not a loadable ONNX model") as info:
        runtime.load(truncated)
    assert "\n" not in str(info.value)
    misnamed = copy_model(tiny_onnx, tmp_path, "model.tflite")
    with pytest.raises(ModelLoadError, match="not a TFLite model"):
        runtime.load(misnamed)
    with pytest.raises(ModelLoadError, match="this is a TFLite model, not ONNX"):
        runtime.load(copy_model(tiny_tflite, tmp_path, "model.onnx"))
    unknown = copy_model(tiny_onnx, tmp_path, "model.bin")
    with pytest.raises(UsageError, match=r"unknown model type '\.bin'"):
        runtime.load(unknown)
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty model file"):
        runtime.load(tmp_path / "empty.onnx")
    with pytest.raises(ModelLoadError, match="no such model file"):
        runtime.load(tmp_path / "missing.onnx")


def test_model_with_two_inputs_but_no_context_input_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 8, 8]) for n in ("image", "mask")]
    output = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Add", ["image", "mask"], ["out"])], "two", inputs, [output])
    path = tmp_path / "two_inputs.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(path))
    with pytest.raises(ModelLoadError, match=r"at most a 'context' input, the model has 2 \(image, mask\)"):
        runtime.load(path)


def test_model_without_rgb_layout_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    result = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "four", [value], [result])
    path = tmp_path / "four_channels.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(path))
    with pytest.raises(ModelLoadError, match="cannot tell the layout"):
        runtime.load(path)


@pytest.mark.parametrize("model", _model_fixtures())
def test_native_input_is_what_run_feeds_the_engine(model, request):
    """run_array(native_input(image)) gives the same pixels as run(image) once mapped back."""
    session = runtime.load(request.getfixturevalue(model))
    image = np.random.default_rng(0).integers(0, 256, (*session.size, 3), dtype=np.uint8)
    native = session.native_input(image)
    assert native.shape == tuple(session.input_spec.shape)
    assert np.array_equal(session._to_image(session.run_array(native)[0]), session.run(image))
    with pytest.raises(UsageError, match="model size"):
        session.native_input(image[:-1])


def _affine_onnx(path, layout, scale, bias):
    """y = scale * x + bias on float32 (1, 3, 16, 16) or (1, 16, 16, 3); bias a float or an array of that
    shape."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    shape = [1, 3, 16, 16] if layout == "NCHW" else [1, 16, 16, 3]
    bias = np.broadcast_to(np.float32(bias), shape)
    constants = [
        helper.make_tensor("a", TensorProto.FLOAT, [], [scale]),
        helper.make_tensor("b", TensorProto.FLOAT, shape, bias.ravel().tolist()),
    ]
    nodes = [helper.make_node("Mul", ["x", "a"], ["ax"]), helper.make_node("Add", ["ax", "b"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        initializer=constants,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), str(path))
    return path


def _nudged(values: np.ndarray, ulps: np.ndarray) -> np.ndarray:
    """float32 `values`, each moved by its count of `ulps` (negative: down)."""
    values = values.copy()
    for count in range(1, int(np.abs(ulps).max()) + 1):
        values[ulps >= count] = np.nextafter(values[ulps >= count], np.float32(np.inf))
        values[ulps <= -count] = np.nextafter(values[ulps <= -count], np.float32(-np.inf))
    return values


@pytest.mark.parametrize("stretch", [True, False], ids=["stretch", "ties"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("value_range", [(-1.0, 1.0), (0.0, 1.0), (0.0, 255.0)])
def test_onnxruntime_pixel_graph_matches_the_numpy_steps_bit_for_bit(
    layout, value_range, stretch, tmp_path, monkeypatch
):
    """Session.run on onnxruntime runs the pixel steps inside the graph (OnnxRuntimeBackend.pixel_runner);
    it must give exactly what the numpy steps give, clipping and ties included, and numpy must take over
    without onnx."""
    low, high = value_range
    shift, step = np.float32(-low), np.float32((high - low) / 255.0)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(3)]
    images.append(np.arange(768, dtype=np.uint16).reshape(16, 16, 3).astype(np.uint8))  # every pixel value
    if stretch:  # 1.7x about the middle of the range: both ends clip
        scale, bias = np.float32(1.7), np.float32(-0.7 * (low + high) / 2)
        model_bias = bias
    else:  # outputs on and a few ulp around every rounding tie, -0.5 to 256.5, whatever the input
        ties = (np.arange(768) % 258 - 0.5).astype(np.float32) * step - shift
        scale, bias = np.float32(0.0), _nudged(ties, np.arange(768) % 5 - 2).reshape(16, 16, 3)
        model_bias = bias.transpose(2, 0, 1) if layout == "NCHW" else bias
        assert ((bias + shift) / step % 1 == 0.5).sum() > 50  # exact ties, where rounding rules differ
    model = _affine_onnx(tmp_path / "affine.onnx", layout, scale, model_bias)
    write_sidecar(
        model, input={"layout": layout, "range": list(value_range)}, output={"range": list(value_range)}
    )
    expected = []
    for image in images:  # the documented arithmetic, in float32, step by step
        x = image / np.float32(255.0 / (high - low)) + np.float32(low)
        y = x * scale + bias
        expected.append(np.clip(np.rint((y + shift) / step), 0, 255).astype(np.uint8))
    assert any((e == 0).any() and (e == 255).any() for e in expected)  # the clip is exercised

    session = runtime.load(model, threads=1)
    assert session._pixel_runner is not None  # the in-graph path, not the numpy fallback
    for image, reference in zip(images, expected, strict=True):
        np.testing.assert_array_equal(session.run(image), reference)

    monkeypatch.setitem(sys.modules, "onnx", None)  # a runtime-only install without onnx
    fallback = runtime.load(model, threads=1)
    assert fallback._pixel_runner is None
    for image, reference in zip(images, expected, strict=True):
        np.testing.assert_array_equal(fallback.run(image), reference)
