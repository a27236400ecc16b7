"""coreml-reference: a numpy interpreter for Core ML ML Programs, so Core ML numerics are checked on Linux.

Reads the ML Program inside an `.mlpackage` through coremltools' spec (no Core ML framework needed) and runs
it op by op; fp16 programs run in fp16 semantics. Needs coremltools and numpy, not torch. Importing this
package registers the "coreml-reference" runtime backend.

Example: python -c "import numpy as np; from runtime.coreml_reference import run_program;
print(run_program('dist/student.fp16.mlpackage', {'input': np.zeros((1, 256, 256, 3), np.uint8)}))"
"""

from pocketgan.runtime.coreml_reference.backend import VERIFIED_BY, VERSION, CoreMLReferenceBackend
from pocketgan.runtime.coreml_reference.interpreter import (
    Interpreter,
    RunResult,
    ShapeMismatchError,
    load_interpreter,
    run_program,
    supported_ops,
)
from pocketgan.runtime.coreml_reference.program import Program, load_program

__version__ = VERSION

__all__ = [
    "VERIFIED_BY",
    "CoreMLReferenceBackend",
    "Interpreter",
    "Program",
    "RunResult",
    "ShapeMismatchError",
    "__version__",
    "load_interpreter",
    "load_program",
    "run_program",
    "supported_ops",
]
