"""Parity thresholds per precision (the one table) and `compare` (torch-free: numpy + scikit-image).

Outputs are float arrays in [-1, 1]; PSNR uses data_range=2.0 like every PocketGAN metric.
p6 (6-bit palettized weights, 64 values per tensor) gets 30 dB: coarser than int8's 256 levels, and
the level Qualcomm AI Hub calls "typically good" for on-device image models.

Example: python -c "import numpy as np; from export.parity import compare;
                    print(compare(np.zeros((1,3,8,8)), np.zeros((1,3,8,8)), 'fp32'))"
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# precision -> (metric, bound): "max_abs" passes when <= bound, "psnr_db" when >= bound.
THRESHOLDS: dict[str, tuple[str, float]] = {
    "fp32": ("max_abs", 1e-3),
    "fp16": ("psnr_db", 45.0),
    "int8": ("psnr_db", 35.0),
    "w8": ("psnr_db", 35.0),
    "p6": ("psnr_db", 30.0),
}


def threshold_text(precision: str) -> str:
    metric, bound = THRESHOLDS[precision]
    return f"max_abs <= {bound:g}" if metric == "max_abs" else f"psnr_db >= {bound:g}"


def _bound_text(bound: float) -> str:
    return f"{bound:.0e}".replace("e-0", "e-") if bound < 0.01 else f"{bound:g}"


def thresholds_summary() -> str:
    """The table in words, equal bounds grouped: "fp32: max-abs <= 1e-3; fp16: PSNR >= 45 dB; int8/w8: ..."."""
    groups: dict[tuple[str, float], list[str]] = {}
    for precision, rule in THRESHOLDS.items():
        groups.setdefault(rule, []).append(precision)
    parts, psnr_named = [], False
    for (metric, bound), precisions in groups.items():
        if metric == "max_abs":
            rule_text = f"max-abs <= {_bound_text(bound)}"
        else:
            rule_text = f"{'' if psnr_named else 'PSNR '}>= {_bound_text(bound)} dB"
            psnr_named = True
        parts.append(f"{'/'.join(precisions)}: {rule_text}")
    return "; ".join(parts)


def psnr_db(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB over [-1, 1] (data_range 2.0); inf for identical arrays."""
    from skimage.metrics import peak_signal_noise_ratio

    output = np.asarray(output, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if np.array_equal(output, reference):
        return math.inf
    return float(peak_signal_noise_ratio(reference, output, data_range=2.0))


def compare(output: np.ndarray, reference: np.ndarray, precision: str) -> dict[str, Any]:
    """{"psnr_db", "max_abs", "passed", "threshold"} for one output against its reference."""
    if precision not in THRESHOLDS:
        raise KeyError(f"no parity threshold for precision {precision!r}")
    output = np.asarray(output, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if output.shape != reference.shape:
        return {
            "psnr_db": None,
            "max_abs": None,
            "passed": False,
            "threshold": threshold_text(precision),
            "error": f"shape {output.shape} != reference {reference.shape}",
        }
    finite = bool(np.isfinite(output).all())
    max_abs = float(np.max(np.abs(output - reference))) if finite else math.inf
    psnr = psnr_db(output, reference) if finite else -math.inf
    metric, bound = THRESHOLDS[precision]
    value = max_abs if metric == "max_abs" else psnr
    passed = finite and (value <= bound if metric == "max_abs" else value >= bound)
    return {
        "psnr_db": _json_number(psnr),
        "max_abs": _json_number(max_abs),
        "passed": bool(passed),
        "threshold": threshold_text(precision),
    }


def _json_number(value: float) -> float | str:
    """JSON has no inf: write "inf"/"-inf" as strings, round the rest."""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return round(value, 6) if abs(value) < 1 else round(value, 3)
