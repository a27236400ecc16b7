"""Run an exported artifact for parity: through the project runtime (`runtime.load(path).predict`).

Example: python -c "from export._runners import predict; import numpy as np;
                    print(predict('dist/student.fp32.onnx', np.zeros((1,3,256,256), np.float32))[1])"
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pocketgan import runtime


def predict(path: Path, x: np.ndarray, context: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """float32 (N, 3, H, W) in [-1, 1] -> (output in the same form, the engine that ran it).

    context: float32 (N, 3, 256, 256) in [-1, 1], the thumbnails a two-input artifact takes."""
    output, verified_by, _ = predict_traced(path, x, context)
    return output, verified_by


def predict_traced(
    path: Path, x: np.ndarray, context: np.ndarray | None = None
) -> tuple[np.ndarray, str, str | None]:
    """Like `predict`, plus the first op whose output went inf/NaN where the engine can tell (Core ML reference)."""
    with runtime.load(path, threads=2) as session:
        output = session.predict(x, context) if session.has_context else session.predict(x)
        return output, session.verified_by, session.first_nonfinite_op
