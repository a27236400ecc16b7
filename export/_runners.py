"""Run an exported artifact for parity: through the project runtime (`runtime.load(path).predict`).

Example: python -c "from export._runners import predict; import numpy as np;
                    print(predict('dist/student.fp32.onnx', np.zeros((1,3,256,256), np.float32))[1])"
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def predict(path: Path, x: np.ndarray) -> tuple[np.ndarray, str]:
    """float32 (N, 3, H, W) in [-1, 1] -> (output in the same form, the engine that ran it)."""
    import runtime

    with runtime.load(path, threads=2) as session:
        return session.predict(x), session.verified_by
