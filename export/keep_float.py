"""Fidelity-budgeted mixed precision: keep the fewest layers of an int8 artifact in float that reach a PSNR.

Greedy, guided by `pocketgan explain`: export int8; while the parity PSNR (held-out photos vs torch) is under
the budget, triage the artifact on calibration images and keep the top-ranked layer that is not float yet in
float, then export again. A layer whose error persists although it is float already, or an op of the top
module (no layer of its own), is fixed at its consumers: the layers that read the tensor quantize it on their
input, so those go float next.

Example: pocketgan export runs/quick/best.pt --format onnx,tflite --precision int8 --keep-float auto:38
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan.errors import UsageError
from pocketgan.export.base import ArtifactResult, Prepared

log = logging.getLogger(__name__)

MAX_LAYERS = 8  # give up (and say so) rather than export a model that is mostly float
TRIAGE_IMAGES = 8


def check_layers(model, layers: tuple[str, ...]) -> None:
    """UsageError naming any `layers` entry that is not a submodule of `model`."""
    names = {name for name, _ in model.named_modules() if name}
    unknown = [layer for layer in layers if layer not in names]
    if unknown:
        shown = ", ".join(sorted(names)[:12])
        raise UsageError(f"--keep-float: no layer {', '.join(unknown)} in the model (layers: {shown}, ...)")


def next_layer(ranked, kept: list[str]) -> str | None:
    """The first layer to keep in float, from `pocketgan explain`'s ranking (None: nothing left to try)."""
    for row in ranked:
        if row.drop_db <= 0:
            return None
        if row.module and row.module not in kept:
            return row.module
        for module in row.consumer_modules:
            if module and module not in kept:
                return module
    return None


def _psnr(result: ArtifactResult) -> float:
    value = ((result.manifest or {}).get("parity") or {}).get("psnr_db")
    return float(value) if value is not None else float("-inf")


def search(
    export_one: Callable[[Prepared], ArtifactResult], prepared: Prepared, fmt: str, budget_db: float
) -> tuple[ArtifactResult, dict[str, Any]]:
    """Export with ever more layers in float until parity PSNR >= `budget_db`; (last result, search log)."""
    from pocketgan.export.explain import explain_artifact

    images = np.ascontiguousarray(prepared.calibration()[:TRIAGE_IMAGES].transpose(0, 2, 3, 1))
    kept: list[str] = list(prepared.keep_float)
    result = export_one(prepared)
    steps = [{"keep_float": list(kept), "psnr_db": _psnr(result)}]
    while result.status.is_ok and _psnr(result) < budget_db and len(kept) < MAX_LAYERS:
        explanation = explain_artifact(Path(result.path), fmt, "int8", prepared.model, images)
        layer = next_layer(explanation.ranked, kept)
        if layer is None:
            break
        kept.append(layer)
        log.info(
            "%s int8: %.2f dB < %.2f dB budget; keeping %s in float", fmt, _psnr(result), budget_db, layer
        )
        result = export_one(dataclasses.replace(prepared, keep_float=tuple(kept)))
        steps.append({"keep_float": list(kept), "psnr_db": _psnr(result)})
    summary = {"budget_db": budget_db, "passed": _psnr(result) >= budget_db, "steps": steps}
    return result, summary
