"""Parity thresholds per precision (the one table) and `compare`, the judgement against them (torch-free).

Outputs are float arrays in [-1, 1]; the numbers and the judgement are pocketgan.metrics'.
p6 (6-bit palettized weights, 64 values per tensor) gets 30 dB: coarser than int8's 256 levels, and
the level Qualcomm AI Hub calls "typically good" for on-device image models.

Example: python -c "import numpy as np; from export.parity import compare;
                    print(compare(np.zeros((1,3,8,8)), np.zeros((1,3,8,8)), 'fp32'))"
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pocketgan.metrics import judge, rule_text

# precision -> (metric, bound): "max_abs" passes when <= bound, "psnr_db" when >= bound.
THRESHOLDS: dict[str, tuple[str, float]] = {
    "fp32": ("max_abs", 1e-3),
    "fp16": ("psnr_db", 45.0),
    "int8": ("psnr_db", 35.0),
    "w8": ("psnr_db", 35.0),
    "p6": ("psnr_db", 30.0),
    "int8-full": ("psnr_db", 30.0),
}


def threshold_text(precision: str) -> str:
    return rule_text(*THRESHOLDS[precision])


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


def compare(output: np.ndarray, reference: np.ndarray, precision: str) -> dict[str, Any]:
    """{"psnr_db", "max_abs", "passed", "threshold"} for one output against its reference (metrics.judge)."""
    if precision not in THRESHOLDS:
        raise KeyError(f"no parity threshold for precision {precision!r}")
    return judge(output, reference, *THRESHOLDS[precision])
