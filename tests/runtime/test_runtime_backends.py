"""The backend registry: names, availability reasons, selection by file type, plugins, providers, threads."""

import platform

import numpy as np
import pytest

from pocketgan import runtime
from pocketgan.errors import BackendUnavailable, UsageError
from pocketgan.runtime import base, ort


class FakeImageBackend(runtime.Backend):
    """An identity model with a Core ML style image input, standing in for a Core ML engine."""

    suffixes = (".mlpackage",)
    priority = 20

    @classmethod
    def availability(cls):
        return "ok"

    def __init__(self, path, threads=None, providers=None):
        self.inputs = [runtime.TensorSpec("image", (1, 16, 16, 3), base.IMAGE_DTYPE)]
        self.outputs = [runtime.TensorSpec("styled", (1, 3, 16, 16), "float32")]

    def run(self, array):
        assert array.dtype == np.uint8 and array.shape[1:] == (16, 16, 3)
        return (array.astype(np.float32) / 127.5 - 1.0).transpose(0, 3, 1, 2)


@pytest.fixture
def fake_image_backend():
    name = "fake-image-engine"
    runtime.register_backend(name)(FakeImageBackend)
    yield name
    base.unregister_backend(name)


def test_builtin_backends_are_registered_with_reasons():
    status = runtime.available_backends()
    assert status["onnxruntime"] == "ok" and status["litert"] == "ok"
    if platform.system() != "Darwin":
        assert status["coreml"] == "unavailable: Core ML prediction needs macOS"
    assert all(value == "ok" or value.startswith("unavailable: ") for value in status.values())


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        runtime.register_backend("onnxruntime")(FakeImageBackend)
    with pytest.raises(TypeError, match="must subclass"):
        runtime.register_backend("not-a-backend")(object)


def test_real_coreml_is_preferred_for_mlpackage():
    names = [cls.name for cls in base.backends_for("student.fp32.mlpackage")]
    assert names[0] == "coreml"
    if "coreml-reference" in names:
        assert names.index("coreml-reference") > 0


@pytest.mark.skipif(platform.system() == "Darwin", reason="Core ML runs on macOS")
def test_mlpackage_falls_back_to_an_available_engine(tmp_path, fake_image_backend):
    package = tmp_path / "student.fp32.mlpackage"
    package.mkdir()
    session = runtime.load(package)
    assert session.backend == fake_image_backend and session.layout == "NHWC"
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 16, 16)).astype(np.float32)
    assert np.abs(session.predict(x) - x).max() <= 1 / 127.5 + 1e-6  # image inputs carry 8-bit pixels
    image = np.random.default_rng(1).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    small = session.run(image[:16, :16])
    np.testing.assert_array_equal(small, image[:16, :16])
    with pytest.raises(BackendUnavailable, match="Core ML prediction needs macOS"):
        runtime.load(package, backend="coreml")


@pytest.mark.skipif(platform.system() == "Darwin", reason="Core ML runs on macOS")
def test_mlpackage_without_any_engine_says_why(tmp_path, monkeypatch):
    package = tmp_path / "student.fp32.mlpackage"
    package.mkdir()
    monkeypatch.setattr(
        base, "_REGISTRY", {k: v for k, v in base._REGISTRY.items() if k != "coreml-reference"}
    )
    with pytest.raises(
        BackendUnavailable, match=r"no backend can run \.mlpackage here \(coreml: unavailable"
    ):
        runtime.load(package)


def test_missing_optional_plugins_are_recorded(monkeypatch):
    from pocketgan.runtime import backends

    monkeypatch.setattr(backends, "_PLUGIN_STATUS", {})
    assert backends.load_plugins(("runtime.no_such_plugin",)) == {"runtime.no_such_plugin": "not installed"}
    assert "onnxruntime" in runtime.available_backends()
    assert backends.plugin_status() == {"runtime.no_such_plugin": "not installed"}


def test_unknown_backend_and_bad_arguments(tiny_onnx):
    with pytest.raises(UsageError, match="unknown runtime backend 'tensorflow'"):
        runtime.load(tiny_onnx, backend="tensorflow")
    with pytest.raises(UsageError, match="threads must be >= 1"):
        runtime.load(tiny_onnx, threads=0)
    with pytest.raises(UsageError, match="onnxruntime backend only"):
        runtime.load(tiny_onnx, backend="litert", providers=["xnnpack"])


def test_onnxruntime_providers(tiny_onnx):
    import onnxruntime

    session = runtime.load(tiny_onnx, providers=["cpu"], threads=1)
    assert session.engine.providers == ["CPUExecutionProvider"]
    missing = next(
        p
        for p in ("qnn", "nnapi", "coreml")
        if ort.PROVIDER_ALIASES[p] not in onnxruntime.get_available_providers()
    )
    with pytest.raises(BackendUnavailable, match="this onnxruntime build has no"):
        runtime.load(tiny_onnx, providers=[missing])
