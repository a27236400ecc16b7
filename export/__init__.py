"""Export and quantization to ONNX, Core ML and TFLite, with a manifest and a parity check per artifact.

    from pocketgan.export import export, ExportConfig
    result = export("runs/quick/best.pt", ExportConfig(formats=("onnx", "tflite"), precisions=("fp32", "int8")))

(Importing this package does not import torch; export/parity.py is torch-free for evals.)

Example: pocketgan export runs/quick/best.pt --format all --precision all --out dist/
"""

from pocketgan.export import coreml_exporter, onnx_exporter, tflite_exporter  # noqa: F401  (register the exporters)
from pocketgan.export.base import (
    PRECISIONS,
    ArtifactResult,
    ExportConfig,
    ExportResult,
    available_formats,
    register_exporter,
    registered_exporters,
)
from pocketgan.export.pipeline import export


def exportability(model, size: int = 256) -> dict[str, str]:
    """{format: "ok" | why not} per registered exporter: an op check and availability, no conversion."""
    from pocketgan.export.prepare import exportability as check

    return check(model, size)


__all__ = [
    "PRECISIONS",
    "ArtifactResult",
    "ExportConfig",
    "ExportResult",
    "available_formats",
    "export",
    "exportability",
    "register_exporter",
    "registered_exporters",
]
