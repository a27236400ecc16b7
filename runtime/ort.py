"""The "onnxruntime" backend: CPU execution provider by default, others by name when the build has them.

Example: python -c "import runtime; print(runtime.load('dist/student.fp32.onnx', threads=2).size)"
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
from runtime.base import Backend, T, TensorSpec, register_backend

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

    suffixes = (".onnx",)
    priority = 10
    output_is_scratch = True  # run_with reads a fresh array or this thread's IO-binding buffer

    @classmethod
    def availability(cls) -> str:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "unavailable: pip install onnxruntime"
        return "ok"

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
        options.log_severity_level = 3  # errors only: warnings go to stderr, not through logging
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=self.providers)
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

    def run_with(
        self, write: Callable[[np.ndarray | None], np.ndarray], read: Callable[[np.ndarray], T]
    ) -> T:
        """Through an IO binding: the output lands in a buffer reused across runs (per thread), so no run
        allocates (and page-faults) a fresh output array. Falls back to `run` for dynamic shapes."""
        array = write(None)
        if not self._bindable:
            return read(self.run(array))
        state = self._bindings.__dict__
        if "binding" not in state:
            shape = self.outputs[0].shape
            state["output"] = np.empty(shape, np.float32)
            state["binding"] = self.session.io_binding()
            state["binding"].bind_output(
                self._output_names[0], "cpu", 0, np.float32, shape, state["output"].ctypes.data
            )
        binding = state["binding"]
        binding.bind_cpu_input(self._input_name, np.ascontiguousarray(array))
        self.session.run_with_iobinding(binding)
        return read(state["output"])

    def embedded_manifest(self) -> dict[str, Any] | None:
        text = self.session.get_modelmeta().custom_metadata_map.get(EMBEDDED_MANIFEST_KEY)
        return parse_manifest(text, f"{self.path} (embedded manifest)") if text else None
