"""Core ML exporter: torch.export -> run_decompositions -> ML Program (iOS 16), RGB image input.

The input is an RGB ImageType with scale 2/255 and bias -1, so an app passes a camera pixel buffer; the
output is a float tensor in [-1, 1]. fp32/fp16 compute precision; w8 = linear int8 weights, p6 = 6-bit
k-means palettized weights (both on the fp16 program). Activation int8 needs Core ML prediction for
calibration, which only runs on macOS.

A context model gets a second RGB image input, "context" (256x256, the thumbnail), and an image input of
flexible size: `ct.RangeDim` height and width in [64, 4096] (the manifest says multiples of 4). Core ML
runs range-shaped inputs on the CPU and GPU; the Neural Engine takes only enumerated shapes
(`ct.EnumeratedShapes`), so an app that wants it converts with the few sizes it uses.

Example: pocketgan export runs/quick/best.pt --format coreml --precision fp16,p6 --out dist/
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

from pocketgan.export.base import (
    CONTEXT_SIZE,
    MAX_SIDE,
    MIN_SIDE,
    Exporter,
    Prepared,
    context_entry,
    image_sizes,
    library_missing,
    register_exporter,
)
from pocketgan.manifest import EMBEDDED_MANIFEST_KEY
from pocketgan.status import OK, Status, unavailable

log = logging.getLogger(__name__)

INPUT_NAME, OUTPUT_NAME = "image", "output"
IMAGE_SCALE = 2.0 / 255.0
IMAGE_BIAS = [-1.0, -1.0, -1.0]
# coremltools skips tensors under 2048 elements by default, i.e. most of a phone-sized student's weights.
# 256 compresses them while leaving biases and tiny heads alone (64 palette entries need enough values).
WEIGHT_THRESHOLD = 256


@register_exporter("coreml")
class CoreMLExporter(Exporter):
    suffix = ".mlpackage"
    libraries = ("torch", "coremltools", "scikit-learn")
    precisions = ("fp32", "fp16", "w8", "p6")
    unsupported_precisions = {
        "int8": "needs macOS (activation calibration runs Core ML prediction)",
        "int8-full": "needs macOS (activation calibration runs Core ML prediction)",
    }
    unverified_reason = "Core ML prediction needs macOS"

    @classmethod
    def availability(cls) -> Status:
        missing = library_missing("coremltools")
        return unavailable(f"pip install coremltools (missing {missing})") if missing else OK

    @classmethod
    def precision_status(cls, precision: str) -> Status:
        if precision == "p6" and library_missing("sklearn"):
            return unavailable("pip install scikit-learn (k-means palettization)")
        return super().precision_status(precision)

    def export(self, prepared: Prepared, precision: str, path: Path) -> dict[str, Any]:
        import coremltools as ct
        import torch

        from pocketgan.export.prepare import (
            CONTEXT_NAME,
            dynamic_image_shapes,
            sample_inputs,
        )  # imports torch

        size = prepared.size
        samples = sample_inputs(size, size, prepared.context, layout="NCHW")
        dynamic = dynamic_image_shapes("NCHW") if prepared.context else None
        with torch.no_grad():
            program = torch.export.export(prepared.model, samples, dynamic_shapes=dynamic).run_decompositions(
                {}
            )
        compute = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlmodel = ct.convert(
                program,
                inputs=_image_inputs(ct, size, prepared.context, CONTEXT_NAME),
                outputs=[ct.TensorType(name=OUTPUT_NAME)],
                convert_to="mlprogram",
                minimum_deployment_target=ct.target.iOS16,
                compute_precision=compute,
            )
        mlmodel = _compress(mlmodel, precision)
        io = {
            "input": {
                "name": INPUT_NAME,
                "shape": [1, 3, size, size],
                "layout": "NCHW",
                "dtype": "image",
                "range": [0, 255],
                "color": "RGB",
                "scale": IMAGE_SCALE,
                "bias": IMAGE_BIAS,
                "sizes": image_sizes(prepared),
            },
            "output": {
                "name": OUTPUT_NAME,
                "shape": [1, 3, size, size],
                "layout": "NCHW",
                "dtype": _output_dtype(mlmodel),
                "range": [-1, 1],
                "color": "RGB",
            },
        }
        if prepared.context:
            pixels = {key: value for key, value in io["input"].items() if key not in ("name", "sizes")}
            shape = [1, 3, CONTEXT_SIZE, CONTEXT_SIZE]
            io["context_input"] = context_entry(CONTEXT_NAME, {**pixels, "shape": shape})
        mlmodel.user_defined_metadata[EMBEDDED_MANIFEST_KEY] = json.dumps(
            {**prepared.metadata, **io}, default=str
        )
        mlmodel.short_description = f"PocketGAN {prepared.metadata.get('name', 'model')} ({precision})"
        mlmodel.save(str(path))
        return io


def _image_inputs(ct, size: int, context: bool, context_name: str) -> list:
    """The RGB image input (flexible H and W for a context model) and the context thumbnail input."""
    flexible = ct.RangeDim(MIN_SIDE, MAX_SIDE, default=size)
    height, width = (flexible, ct.RangeDim(MIN_SIDE, MAX_SIDE, default=size)) if context else (size, size)
    image = {"scale": IMAGE_SCALE, "bias": IMAGE_BIAS, "color_layout": ct.colorlayout.RGB}
    inputs = [ct.ImageType(name=INPUT_NAME, shape=ct.Shape(shape=(1, 3, height, width)), **image)]
    if context:
        inputs.append(ct.ImageType(name=context_name, shape=(1, 3, CONTEXT_SIZE, CONTEXT_SIZE), **image))
    return inputs


def _compress(mlmodel, precision: str):
    if precision in ("fp32", "fp16"):
        return mlmodel
    import coremltools.optimize.coreml as cto

    if precision == "w8":
        config = cto.OptimizationConfig(
            global_config=cto.OpLinearQuantizerConfig(
                mode="linear_symmetric", granularity="per_channel", weight_threshold=WEIGHT_THRESHOLD
            )
        )
        return cto.linear_quantize_weights(mlmodel, config=config)
    if precision == "p6":
        config = cto.OptimizationConfig(
            global_config=cto.OpPalettizerConfig(mode="kmeans", nbits=6, weight_threshold=WEIGHT_THRESHOLD)
        )
        return cto.palettize_weights(mlmodel, config=config)
    raise ValueError(f"coreml cannot export precision {precision!r}")


def _output_dtype(mlmodel) -> str:
    from coremltools.proto import FeatureTypes_pb2

    data_type = mlmodel.get_spec().description.output[0].type.multiArrayType.dataType
    return "float16" if data_type == FeatureTypes_pb2.ArrayFeatureType.FLOAT16 else "float32"
