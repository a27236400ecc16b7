"""The "onnxruntime" backend: CPU execution provider by default, others by name when the build has them.

Example: python -c "from pocketgan import runtime; print(runtime.load('dist/student.fp32.onnx', threads=2).size)"
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan.errors import BackendUnavailable, ModelLoadError
from pocketgan.manifest import EMBEDDED_MANIFEST_KEY, parse_manifest
from pocketgan.runtime.base import Backend, PixelIO, T, TensorSpec, register_backend
from pocketgan.status import OK, Status, unavailable

log = logging.getLogger(__name__)

# Short provider names accepted by `providers=` / `--providers`.
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "nnapi": "NnapiExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "dml": "DmlExecutionProvider",
}
_ONNX_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
}


def resolve_providers(requested: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """Full provider names, CPU last as the fallback; BackendUnavailable if the build lacks one."""
    if not requested:
        return ["CPUExecutionProvider"]
    names = [PROVIDER_ALIASES.get(p.lower(), p) for p in requested]
    missing = [n for n in names if n not in available]
    if missing:
        raise BackendUnavailable(
            f"this onnxruntime build has no {', '.join(missing)} (it has: {', '.join(available)})"
        )
    if "CPUExecutionProvider" not in names:
        names.append("CPUExecutionProvider")
    return names


def _dims(shape: Sequence[Any]) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else -1 for d in shape)


@register_backend("onnxruntime")
class OnnxRuntimeBackend(Backend):
    """An ONNX model in an onnxruntime InferenceSession (intra-op threads = `threads`)."""

    format = "onnx"
    suffixes = (".onnx",)
    priority = 10
    output_is_scratch = True  # run_with reads a fresh array or this thread's IO-binding buffer

    @classmethod
    def availability(cls) -> Status:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return unavailable("pip install onnxruntime")
        return OK

    def __init__(self, path: Path, threads: int | None = None, providers: Sequence[str] | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        self.providers = resolve_providers(providers, ort.get_available_providers())
        with open(self.path, "rb") as handle:
            if handle.read(8)[4:8] == b"TFL3":
                raise ModelLoadError(f"{self.path}: this is a TFLite model, not ONNX (rename it to .tflite)")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        # Idle intra-op threads sleep instead of spinning: spinning threads take the cores that the image
        # decode, resize and encode of `pocketgan run` (and other processes) need; on the 2 shared cores
        # this made a 200-photo run 1.7x faster under load (README, "Output format and speed").
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: warnings go to stderr, not through logging
        self._options = options
        try:
            self.session = self._new_session(str(self.path))
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"{self.path}: not a loadable ONNX model ({first_line})") from None
        self.inputs = [
            TensorSpec(i.name, _dims(i.shape), _ONNX_TYPES.get(i.type, i.type))
            for i in self.session.get_inputs()
        ]
        self.outputs = [
            TensorSpec(o.name, _dims(o.shape), _ONNX_TYPES.get(o.type, o.type))
            for o in self.session.get_outputs()
        ]
        self._input_name = self.inputs[0].name if self.inputs else ""
        self._output_names = [self.outputs[0].name] if self.outputs else None
        self._bindings = threading.local()  # per thread: an IO binding and its output buffer
        # run_with binds when one CPU provider runs a static float32 model; otherwise it calls run.
        self._bindable = (
            len(self.providers) == 1
            and len(self.inputs) == 1
            and bool(self.outputs)
            and self.inputs[0].dtype == self.outputs[0].dtype == "float32"
            and all(d > 0 for d in self.outputs[0].shape)
        )

    @property
    def verified_by(self) -> str:
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__} ({', '.join(self.session.get_providers())})"

    def run(self, array: np.ndarray) -> np.ndarray:
        return self.session.run(self._output_names, {self._input_name: array})[0]

    def run_inputs(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        feeds = {spec.name: array for spec, array in zip(self.inputs, arrays, strict=True)}
        return self.session.run(self._output_names, feeds)[0]

    def run_with(
        self, write: Callable[[np.ndarray | None], np.ndarray], read: Callable[[np.ndarray], T]
    ) -> T:
        """Through an IO binding: the output lands in a buffer reused across runs (per thread), so no run
        allocates (and page-faults) a fresh output array. Falls back to `run` for dynamic shapes."""
        array = write(None)
        if not self._bindable:
            return read(self.run(array))
        binding, output = _thread_binding(
            self._bindings, self.session, self._output_names[0], np.float32, self.outputs[0].shape
        )
        binding.bind_cpu_input(self._input_name, np.ascontiguousarray(array))
        self.session.run_with_iobinding(binding)
        return read(output)

    def pixel_runner(self, io: PixelIO) -> Callable[[np.ndarray], np.ndarray] | None:
        """The model with Session.run's pixel steps spliced around it, as one graph in a second session
        with the same options: Cast, Div, Add (+ Transpose) before, Add, QuantizeLinear (+ Transpose) after.

        Its elementwise steps run on the session's thread pool, where numpy runs them on one thread with
        the input and output evicted from cache by the model. Bit-identical to the numpy path: the same
        IEEE float32 operations in the same order (QuantizeLinear divides, rounds half to even and
        saturates, as numpy's divide, rint and clip do).
        None (Session then uses numpy) unless one CPU provider runs a static, batch-1, float32 model and
        the `onnx` package is importable.
        """
        shape = self.inputs[0].shape if self.inputs else ()
        if not (self._bindable and len(shape) == 4 and shape[0] == 1 and all(d > 0 for d in shape)):
            return None
        in_shape = _image_shape(shape, io.input_layout)  # (1, H, W, 3) uint8, either side
        out_shape = _image_shape(self.outputs[0].shape, io.output_layout)
        try:
            model = _with_pixel_io(
                self.path, self.inputs[0].name, self.outputs[0].name, io, in_shape, out_shape
            )
            session = self._new_session(model.SerializeToString())
        except Exception as exc:  # no onnx package, an opset below 10, a model onnx cannot reload
            log.debug("%s: no pixel graph (%s); Session.run uses numpy", self.path, exc)
            return None
        bindings = threading.local()  # per thread: an IO binding and its uint8 output buffer

        def run_pixels(image: np.ndarray) -> np.ndarray:
            binding, output = _thread_binding(bindings, session, _PIXELS_OUT, np.uint8, out_shape)
            binding.bind_cpu_input(_PIXELS_IN, image[None])
            session.run_with_iobinding(binding)
            return output[0].copy()

        return run_pixels

    def _new_session(self, model: bytes | str):
        import onnxruntime as ort

        return ort.InferenceSession(model, self._options, providers=self.providers)

    def embedded_manifest(self) -> dict[str, Any] | None:
        text = self.session.get_modelmeta().custom_metadata_map.get(EMBEDDED_MANIFEST_KEY)
        return parse_manifest(text, f"{self.path} (embedded manifest)") if text else None


_PIXELS_IN, _PIXELS_OUT = "pocketgan_pixels_in", "pocketgan_pixels_out"


def _thread_binding(local: threading.local, session, output_name: str, dtype: type, shape: tuple[int, ...]):
    """This thread's IO binding of `session` with `output_name` bound to a buffer of its own, reused across
    runs (no run allocates, and page-faults, a fresh output): (binding, buffer)."""
    state = local.__dict__
    if "binding" not in state:
        state["output"] = np.empty(shape, dtype)
        state["binding"] = session.io_binding()
        state["binding"].bind_output(output_name, "cpu", 0, dtype, shape, state["output"].ctypes.data)
    return state["binding"], state["output"]


def _image_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    """A model tensor's shape -> the shape of the uint8 image it stands for, channels last."""
    return (shape[0], shape[2], shape[3], 3) if layout == "NCHW" else tuple(shape)


def _with_pixel_io(
    path: Path,
    input_name: str,
    output_name: str,
    io: PixelIO,
    in_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
):
    """The ONNX model at `path` with its input and output (by name) replaced by uint8 images of `in_shape` and
    `out_shape`, converted as `io` says."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 10:  # QuantizeLinear is there from opset 10
        raise ValueError(f"opset {opset} < 10")
    graph = model.graph
    in_index = next(i for i, value in enumerate(graph.input) if value.name == input_name)
    out_index = next(i for i, value in enumerate(graph.output) if value.name == output_name)

    def name(step: str) -> str:
        return f"pocketgan_pixels/{step}"

    constants = {"divisor": io.divisor, "offset": io.offset, "shift": io.shift, "step": io.step}
    graph.initializer.extend(
        helper.make_tensor(name(key), TensorProto.FLOAT, [], [value]) for key, value in constants.items()
    )
    graph.initializer.append(helper.make_tensor(name("zero"), TensorProto.UINT8, [], [0]))
    before, after = [], []
    pixels = _PIXELS_IN
    if io.input_layout == "NCHW":  # the uint8 image, transposed while it is 4x smaller than the floats
        before.append(helper.make_node("Transpose", [pixels], [name("nchw")], perm=[0, 3, 1, 2]))
        pixels = name("nchw")
    before += [
        helper.make_node("Cast", [pixels], [name("float")], to=TensorProto.FLOAT),
        helper.make_node("Div", [name("float"), name("divisor")], [name("divided")]),
        helper.make_node("Add", [name("divided"), name("offset")], [input_name]),
    ]
    values = output_name
    if io.shift:  # adding -0.0 changes no value
        after.append(helper.make_node("Add", [values, name("shift")], [name("shifted")]))
        values = name("shifted")
    # QuantizeLinear: saturate(rint(values / step) + 0), rint rounding half to even, in one pass
    nchw = io.output_layout == "NCHW"
    uint8 = name("uint8") if nchw else _PIXELS_OUT
    after.append(helper.make_node("QuantizeLinear", [values, name("step"), name("zero")], [uint8]))
    if nchw:
        after.append(helper.make_node("Transpose", [uint8], [_PIXELS_OUT], perm=[0, 2, 3, 1]))
    nodes = [*before, *graph.node, *after]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.input[in_index].CopyFrom(helper.make_tensor_value_info(_PIXELS_IN, TensorProto.UINT8, in_shape))
    graph.output[out_index].CopyFrom(helper.make_tensor_value_info(_PIXELS_OUT, TensorProto.UINT8, out_shape))
    return model
