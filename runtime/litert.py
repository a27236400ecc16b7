"""The "litert" backend: a .tflite model in the ai_edge_litert Interpreter (XNNPACK, the default delegate).

Example: python -c "from pocketgan import runtime; print(runtime.load('dist/student.int8.tflite', threads=2).layout)"
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan.errors import ModelLoadError, UsageError
from pocketgan.manifest import EMBEDDED_MANIFEST_KEY, parse_manifest
from pocketgan.runtime.base import Backend, T, TensorSpec, register_backend
from pocketgan.status import OK, Status, unavailable

log = logging.getLogger(__name__)

TFLITE_IDENTIFIER = b"TFL3"  # flatbuffer file identifier, bytes 4..8 of every .tflite


def tflite_metadata(path: Path, name: str) -> bytes | None:
    """The named entry of a .tflite flatbuffer's metadata table (what export.tflite_exporter embeds), or None.

    Reads the flatbuffer in place through the generated schema; no unpacking of the model's weights.
    """
    from ai_edge_litert import schema_py_generated as schema

    data = Path(path).read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() != name.encode() or entry.Buffer() >= model.BuffersLength():
            continue
        buffer = model.Buffers(entry.Buffer())
        if buffer.Offset() > 1:  # stored after the flatbuffer itself (models over 2 GB)
            return data[buffer.Offset() : buffer.Offset() + buffer.Size()]
        return buffer.DataAsNumpy().tobytes() if buffer.DataLength() else b""
    return None


def _spec(detail: dict) -> TensorSpec:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    dtype = np.dtype(detail["dtype"]).name
    quantized = scale != 0.0 and dtype in ("int8", "uint8", "int16")
    signature = detail.get("shape_signature", detail["shape"])
    return TensorSpec(
        detail["name"],
        tuple(int(d) for d in signature),
        dtype,
        (float(scale), int(zero_point)) if quantized else None,
    )


@register_backend("litert")
class LiteRTBackend(Backend):
    """A TFLite flatbuffer in ai_edge_litert's Interpreter with `num_threads` = `threads`."""

    format = "tflite"
    suffixes = (".tflite",)
    priority = 10

    @classmethod
    def availability(cls) -> Status:
        try:
            from ai_edge_litert import interpreter  # noqa: F401
        except ImportError:
            return unavailable("pip install ai-edge-litert")
        return OK

    def __init__(self, path: Path, threads: int | None = None, providers: Sequence[str] | None = None):
        from ai_edge_litert.interpreter import Interpreter

        if providers:
            raise UsageError("providers apply to the onnxruntime backend only")
        self.path = Path(path)
        with open(self.path, "rb") as handle:
            header = handle.read(8)
        if header[4:8] != TFLITE_IDENTIFIER:
            raise ModelLoadError(f"{self.path}: not a TFLite model (no TFL3 identifier in its header)")
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except Exception as exc:  # the interpreter raises ValueError/RuntimeError with multi-line text
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"{self.path}: not a loadable TFLite model ({first_line})") from None
        input_details = self.interpreter.get_input_details()
        output_details = self.interpreter.get_output_details()
        self.inputs = [_spec(d) for d in input_details]
        self.outputs = [_spec(d) for d in output_details]
        self._input_index = input_details[0]["index"] if input_details else -1
        self._output_index = output_details[0]["index"] if output_details else -1
        self._batch = int(input_details[0]["shape"][0]) if input_details else 1
        self._lock = threading.Lock()  # one interpreter: one invoke (and its output) at a time

    @property
    def verified_by(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            engine = f"ai-edge-litert {version('ai-edge-litert')}"
        except PackageNotFoundError:
            engine = "ai-edge-litert"
        return f"{engine} (Interpreter, default delegates incl. XNNPACK)"

    def embedded_manifest(self) -> dict[str, Any] | None:
        data = tflite_metadata(self.path, EMBEDDED_MANIFEST_KEY)
        return parse_manifest(data, f"{self.path} (embedded manifest)") if data else None

    def _invoke(self, array: np.ndarray) -> None:
        self._set_inputs([array])
        self.interpreter.invoke()

    def _set_inputs(self, arrays: Sequence[np.ndarray]) -> None:
        """Resize the inputs whose shape changed (batch, or height/width of a dynamic model), then set them."""
        details = self.interpreter.get_input_details()
        changed = [
            (d["index"], a.shape)
            for d, a in zip(details, arrays, strict=True)
            if tuple(d["shape"]) != a.shape
        ]
        for index, shape in changed:
            self.interpreter.resize_tensor_input(index, list(shape), strict=False)
        if changed:
            try:
                self.interpreter.allocate_tensors()
            except RuntimeError as exc:
                raise ModelLoadError(
                    f"{self.path}: cannot run at input shape {list(arrays[0].shape)} ({str(exc).splitlines()[0]})"
                ) from None
            self._batch = arrays[0].shape[0]
        for detail, array in zip(details, arrays, strict=True):
            self.interpreter.set_tensor(detail["index"], array)

    def run_inputs(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        with self._lock:
            self._set_inputs(arrays)
            self.interpreter.invoke()
            return self.interpreter.get_tensor(self._output_index)

    def run(self, array: np.ndarray) -> np.ndarray:
        with self._lock:
            self._invoke(array)
            return self.interpreter.get_tensor(self._output_index)

    def run_with(
        self, write: Callable[[np.ndarray | None], np.ndarray], read: Callable[[np.ndarray], T]
    ) -> T:
        with self._lock:
            # Views of the interpreter's tensors: it refuses to run while one is alive, hence the dels.
            buffer = self.interpreter.tensor(self._input_index)()
            array = write(buffer)
            if array is buffer:
                del array, buffer
                self.interpreter.invoke()
            else:  # written elsewhere (another batch size): the copying path
                del buffer
                self._invoke(array)
            output = self.interpreter.tensor(self._output_index)()
            try:
                return read(output)
            finally:
                del output
