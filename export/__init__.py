"""Export and quantization to ONNX, Core ML and TFLite, with a manifest and a parity check per artifact.

    from pocketgan.export import export, ExportConfig  # imports torch
    result = export("runs/quick/best.pt", ExportConfig(formats=("onnx", "tflite"), precisions=("fp32", "int8")))

(Importing this package does not import torch; export/parity.py is torch-free for evals.)

Adding a format (e.g. ExecuTorch):
  1. export/NAME_exporter.py: a class `@register_exporter("NAME")` subclassing `base.Exporter`, with its facts
     as class data (suffix, libraries, precisions, unsupported_precisions, and where they differ from the
     defaults unsupported_ops, unverified_reason) plus `availability()` and `export()`.
  2. export/exporters.py: one line, "pocketgan.export.NAME_exporter", in EXPORTER_MODULES.
  3. A runtime backend that opens its suffix (see `pocketgan.runtime`), so parity can run the artifact.
The CLI choices and help, `--format all`, inspect, demo, eval's artifact discovery and the parity test
matrix (tests/export/test_export_parity.py) all follow from the registry; tests/export/
test_export_registry.py fails when a registered exporter lacks a fact or no backend opens its suffix.

Example: pocketgan export runs/quick/best.pt --format all --precision all --out dist/
"""

from pocketgan.export import exporters  # noqa: F401  (registers the exporters)
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
    from pocketgan.export.prepare import exportability as check  # imports torch

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
