"""The "coreml-reference" runtime backend: .mlpackage files run by the numpy ML Program interpreter.

Used where Apple's Core ML cannot run (Linux CI); the real "coreml" backend wins wherever it is available.
After each `run`, `first_nonfinite` names the first op whose output went inf/NaN (None when clean), so
parity checks can say where an fp16 model overflowed.

Example: pocketgan run dist/student.fp16.mlpackage photo.jpg --backend coreml-reference -o out/
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan.errors import UsageError
from pocketgan.runtime.base import IMAGE_DTYPE, Backend, register_backend
from pocketgan.runtime.coreml import coreml_embedded_manifest, coreml_io_specs
from pocketgan.runtime.coreml_reference.interpreter import load_interpreter
from pocketgan.status import OK, Status, unavailable

log = logging.getLogger(__name__)

VERSION = "0.1.0"
VERIFIED_BY = f"coreml-reference {VERSION} (numpy ML Program interpreter, not Apple's runtime)"


@register_backend("coreml-reference")
class CoreMLReferenceBackend(Backend):
    """An ML Program executed op by op in numpy, fp16 programs in fp16 semantics."""

    format = "coreml"
    suffixes = (".mlpackage", ".mlmodel")
    priority = 90  # a reference implementation: only when real Core ML is unavailable
    video_note = (
        "not run: coreml-reference checks Core ML numerics in numpy (50-140 ms a 256x144 frame), it is not a "
        "video runtime; the flicker of a Core ML artifact is measured where Core ML runs (macOS)"
    )
    verified_by = VERIFIED_BY

    @classmethod
    def availability(cls) -> Status:
        if importlib.util.find_spec("coremltools") is None:
            return unavailable("pip install coremltools (reads the ML Program spec and weights)")
        return OK

    def __init__(self, path: Path, threads: int | None = None, providers: Sequence[str] | None = None):
        if providers:
            raise UsageError("providers apply to the onnxruntime backend only")
        if threads is not None:
            log.debug(
                "coreml-reference runs numpy; its BLAS decides the thread count (threads=%s ignored)", threads
            )
        self.path = Path(path)
        self.interpreter = load_interpreter(self.path)
        spec = self.interpreter.program.spec
        inputs, self.outputs = coreml_io_specs(spec)
        # An image input takes (N, H, W, 3) pixels (runtime.base.TensorSpec), whatever the spec's CHW view says.
        images = self.interpreter.program.image_inputs
        self.inputs = [
            replace(s, shape=(1, images[s.name].height, images[s.name].width, 3))
            if s.dtype == IMAGE_DTYPE and min(s.shape) > 0
            else s
            for s in inputs
        ]
        self._manifest = coreml_embedded_manifest(spec)
        self.first_nonfinite: tuple[str, str] | None = None

    def run(self, array: np.ndarray) -> np.ndarray:
        """(N, ...) artifact-native input (uint8/float (N, H, W, 3) pixels for an image input) -> first output."""
        return self.run_inputs([array])

    def run_inputs(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Every input (in `inputs` order, batch N each) -> the first output, one batch item at a time."""
        names, output_name = [spec.name for spec in self.inputs], self.outputs[0].name
        self.first_nonfinite = None
        results = []
        for items in zip(*(np.asarray(array) for array in arrays), strict=True):
            result = self.interpreter.run({name: item[None] for name, item in zip(names, items, strict=True)})
            if self.first_nonfinite is None:
                self.first_nonfinite = result.first_nonfinite
            results.append(result[output_name])
        return np.concatenate(results, axis=0)

    def embedded_manifest(self) -> dict[str, Any] | None:
        return self._manifest
