"""Fidelity per image and per split: PSNR/SSIM plus the grade and texture metrics, the gain over doing
nothing, and how many images of each split score below doing nothing (torch-free).

Example: python -c "import numpy as np; from pocketgan.evals.splits import split_fidelity; x = [np.zeros((16, 16, 3))]; print(split_fidelity(x, x, ['a'], {'a': 'test'})['splits'])"
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

SPLIT_KEYS = ("psnr_db", "ssim", "grade_de2000", "texture_swd", "detail_energy_db")


def split_fidelity(
    outputs: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
    names: Sequence[str],
    split_of: dict[str, str],
    baseline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """compare_images' numbers plus grade/texture per image, and per split their means; with `baseline` (the
    do-nothing result of this function) also each image's PSNR gain over it and per split `below_baseline`."""
    from pocketgan.metrics import compare_images, grade_texture

    result = compare_images(outputs, references, names)
    for name, output, reference in zip(names, outputs, references, strict=True):
        scores = result["per_image"][name]
        scores.update(grade_texture(output, reference), split=split_of.get(name, "data"))
        if baseline is not None:
            scores["gain_db"] = scores["psnr_db"] - baseline["per_image"][name]["psnr_db"]
    for key in SPLIT_KEYS[2:]:
        result[key] = float(np.mean([s[key] for s in result["per_image"].values()]))
    result["splits"] = {}
    for split in dict.fromkeys(s["split"] for s in result["per_image"].values()):
        members = [s for s in result["per_image"].values() if s["split"] == split]
        summary: dict[str, Any] = {"images": len(members)}
        summary.update({key: float(np.mean([s[key] for s in members])) for key in SPLIT_KEYS})
        if baseline is not None:
            summary["gain_db"] = float(np.mean([s["gain_db"] for s in members]))
            summary["below_baseline"] = sum(s["gain_db"] < 0 for s in members)
        result["splits"][split] = summary
    if baseline is not None:
        result["below_baseline"] = sum(s["below_baseline"] for s in result["splits"].values())
    return result
