"""The "coreml" backend: Apple's Core ML through coremltools prediction (macOS only).

Elsewhere it reports "unavailable: Core ML prediction needs macOS"; `.mlpackage` files then go to the
"coreml-reference" backend (a numpy ML Program interpreter in runtime/coreml_reference/) if it is installed.
`coreml_io_specs` and `coreml_embedded_manifest` read a model spec and work on any OS.

Example: python -c "from pocketgan import runtime; print(runtime.available_backends()['coreml'])"
"""

from __future__ import annotations

import json
import logging
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan.errors import ModelLoadError, UsageError
from pocketgan.manifest import EMBEDDED_MANIFEST_KEY
from pocketgan.runtime.base import IMAGE_DTYPE, Backend, TensorSpec, register_backend
from pocketgan.status import OK, Status, unavailable

log = logging.getLogger(__name__)

# ArrayFeatureType.ArrayDataType values in Core ML's FeatureTypes.proto.
_ARRAY_DTYPES = {65568: "float32", 65552: "float16", 65600: "float64", 131104: "int32", 131080: "int8"}


def _feature_spec(feature: Any) -> TensorSpec:
    kind = feature.type.WhichOneof("Type")
    if kind == "imageType":
        image = feature.type.imageType
        if image.WhichOneof("SizeFlexibility") is not None:  # a range or enumerated sizes: H, W dynamic
            return TensorSpec(feature.name, (1, -1, -1, 3), IMAGE_DTYPE)
        return TensorSpec(feature.name, (1, int(image.height), int(image.width), 3), IMAGE_DTYPE)
    if kind == "multiArrayType":
        array = feature.type.multiArrayType
        dtype = _ARRAY_DTYPES.get(int(array.dataType), "float32")
        return TensorSpec(feature.name, tuple(int(d) for d in array.shape), dtype)
    raise ModelLoadError(f"Core ML feature {feature.name!r} has unsupported type {kind!r}")


def coreml_io_specs(spec: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Input and output TensorSpecs of a Core ML model spec (ImageType: dtype "image", shape (1, H, W, 3))."""
    description = spec.description
    return [_feature_spec(f) for f in description.input], [_feature_spec(f) for f in description.output]


def coreml_embedded_manifest(spec: Any) -> dict[str, Any] | None:
    """The manifest the exporter stored in the model's user_defined_metadata, if any."""
    text = spec.description.metadata.userDefined.get(EMBEDDED_MANIFEST_KEY)
    if not text:
        return None
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError:
        return None
    return manifest if isinstance(manifest, dict) else None


@register_backend("coreml")
class CoreMLBackend(Backend):
    """An .mlpackage / .mlmodel run by Core ML itself (all compute units, as on the phone)."""

    format = "coreml"
    suffixes = (".mlpackage", ".mlmodel")
    priority = 0  # real Core ML beats any reference implementation where it exists

    @classmethod
    def availability(cls) -> Status:
        if platform.system() != "Darwin":
            return unavailable("Core ML prediction needs macOS")
        try:
            import coremltools  # noqa: F401
        except ImportError:
            return unavailable("pip install coremltools")
        return OK

    def __init__(self, path: Path, threads: int | None = None, providers: Sequence[str] | None = None):
        import coremltools as ct

        if providers:
            raise UsageError("providers apply to the onnxruntime backend only")
        self.path = Path(path)
        try:
            self.model = ct.models.MLModel(str(self.path))
        except Exception as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"{self.path}: not a loadable Core ML model ({first_line})") from None
        self._spec = self.model.get_spec()
        self.inputs, self.outputs = coreml_io_specs(self._spec)

    @property
    def verified_by(self) -> str:
        import coremltools

        return f"Core ML via coremltools {coremltools.__version__} ({platform.platform()})"

    def run(self, array: np.ndarray) -> np.ndarray:
        from PIL import Image

        source, target = self.inputs[0], self.outputs[0]
        results = []
        for item in array:
            value = (
                Image.fromarray(np.asarray(item, dtype=np.uint8))
                if source.dtype == IMAGE_DTYPE
                else item[None]
            )
            output = self.model.predict({source.name: value})[target.name]
            if isinstance(output, Image.Image):
                output = np.asarray(output.convert("RGB"))[None]
            results.append(np.asarray(output))
        return np.concatenate(results, axis=0)

    def embedded_manifest(self) -> dict[str, Any] | None:
        return coreml_embedded_manifest(self._spec)
