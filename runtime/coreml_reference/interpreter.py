"""Execute a loaded ML Program with numpy, op by op, in the precision its types declare.

Every op computes in float32 and its result is then cast to the type the program declares for that output:
a FLOAT16 output is rounded to float16 (overflow becomes inf), as fp16 execution on a device would do. The
first op whose output holds inf/NaN is recorded, so parity reports can name it.

Example: python -c "import numpy as np; from runtime.coreml_reference import load_interpreter;
i = load_interpreter('dist/student.fp16.mlpackage'); print(i.program.op_types());
print(i.run({'input': np.zeros((1, 256, 256, 3), np.uint8)}).first_nonfinite)"
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan.errors import UnsupportedOpError, UsageError
from pocketgan.runtime.coreml_reference import ops_nn, ops_tensor  # noqa: F401  (register the op implementations)
from pocketgan.runtime.coreml_reference.program import Binding, Program, ValueType, decode_value, load_program
from pocketgan.runtime.coreml_reference.registry import OPS

log = logging.getLogger(__name__)

VARIADIC_INPUTS = {"values"}  # inputs that take a list (concat's `values`)


class ShapeMismatchError(RuntimeError):
    """An op produced a shape other than the one coremltools recorded for it: an interpreter bug."""


def supported_ops() -> list[str]:
    return sorted(["const", *OPS])


@dataclass(frozen=True)
class _Ref:
    name: str


@dataclass
class _Step:
    type: str
    name: str
    args: dict[str, Any]  # _Ref, constant array, or a list of them
    outputs: list[tuple[str, ValueType]]


class RunResult(dict):
    """Output name -> array, plus `first_nonfinite`: (op_type, op_name) of the first op that produced inf/NaN."""

    first_nonfinite: tuple[str, str] | None = None
    seconds_by_op: dict[str, float]


def cast_to_declared(value: Any, vtype: ValueType) -> Any:
    """Cast an op result to its declared type; float16 results are kept as float32 holding fp16 values."""
    if isinstance(value, str) or vtype.dtype == "STRING":
        return value
    array = np.asarray(value)
    if vtype.dtype == "FLOAT16":
        with np.errstate(over="ignore", invalid="ignore"):
            return array.astype(np.float16).astype(np.float32)
    if vtype.dtype in ("FLOAT32", "FLOAT64"):
        return array.astype(np.float32, copy=False)
    return array.astype(vtype.numpy_dtype, copy=False)


def shape_matches(shape: tuple[int, ...], declared: tuple[int | None, ...]) -> bool:
    """True if `shape` fits `declared` (None matches any size)."""
    return len(shape) == len(declared) and all(
        d is None or d == s for d, s in zip(declared, shape, strict=True)
    )


def _check_shape(step: _Step, out_name: str, value: Any, vtype: ValueType) -> None:
    shape = np.shape(value)
    if not shape_matches(shape, vtype.shape):
        raise ShapeMismatchError(
            f"op {step.type} ({step.name}) produced {out_name} with shape {tuple(shape)}; "
            f"the program declares {vtype.shape}"
        )


class Interpreter:
    """A program prepared to run: constants decoded and weight decompression (constexpr_*) done once."""

    def __init__(self, program: Program, blobs: Any) -> None:
        self.program = program
        unsupported = sorted(
            {op.type for op in program.operations if op.type != "const" and op.type not in OPS}
        )
        if unsupported:
            raise UnsupportedOpError(
                f"{program.path}: coreml-reference cannot run op(s) {', '.join(unsupported)}; "
                f"supported ops: {', '.join(supported_ops())}"
            )
        self.constants: dict[str, Any] = {}
        self.steps: list[_Step] = []
        for op in program.operations:
            if op.type == "const":
                name, vtype = op.outputs[0]
                self.constants[name] = cast_to_declared(decode_value(op.attributes["val"], blobs), vtype)
                continue
            args = {key: self._bind(key, bindings, blobs) for key, bindings in op.inputs.items()}
            # iOS16 constexpr_* ops keep their constant operands as attributes.
            args.update({key: decode_value(value, blobs) for key, value in op.attributes.items()})
            step = _Step(op.type, op.name, args, op.outputs)
            if op.type.startswith("constexpr_"):
                self._execute(step, self.constants)
            else:
                self.steps.append(step)

    def _bind(self, key: str, bindings: list[Binding], blobs: Any) -> Any:
        resolved = []
        for binding in bindings:
            if binding.name is None:
                resolved.append(decode_value(binding.value, blobs))
            elif binding.name in self.constants:
                resolved.append(self.constants[binding.name])
            else:
                resolved.append(_Ref(binding.name))
        return resolved if key in VARIADIC_INPUTS else resolved[0]

    def _execute(self, step: _Step, values: dict[str, Any]) -> None:
        args = {}
        for key, arg in step.args.items():
            if isinstance(arg, list):
                args[key] = [values[a.name] if isinstance(a, _Ref) else a for a in arg]
            else:
                args[key] = values[arg.name] if isinstance(arg, _Ref) else arg
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            result = OPS[step.type](args)
        results = result if isinstance(result, tuple) else (result,)
        for (name, vtype), value in zip(step.outputs, results, strict=True):
            value = cast_to_declared(value, vtype)
            _check_shape(step, name, value, vtype)
            values[name] = value

    def prepare_inputs(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check names and shapes; an image input also takes (N, H, W, C) / (H, W, C) pixels (RGB order)."""
        missing = set(self.program.inputs) - set(inputs)
        if missing:
            raise UsageError(f"{self.program.path.name}: missing input(s) {', '.join(sorted(missing))}")
        prepared = {}
        for name, vtype in self.program.inputs.items():
            array = np.asarray(inputs[name])
            expected = tuple(vtype.shape)
            image = self.program.image_inputs.get(name)
            if image is not None and array.shape != expected and array.shape[-1] == expected[1]:
                array = array[None] if array.ndim == 3 else array
                array = np.moveaxis(array, -1, 1)
                if image.color == "BGR":
                    array = array[:, ::-1]
            if not shape_matches(array.shape, expected):
                raise UsageError(
                    f"{self.program.path.name}: input {name!r} has shape {array.shape}, expected {expected}"
                )
            prepared[name] = cast_to_declared(np.ascontiguousarray(array), vtype)
        return prepared

    def trace(self, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
        """Every named value of the program (constants, inputs, each op's outputs) for these inputs."""
        values: dict[str, Any] = dict(self.constants)
        values.update(self.prepare_inputs(inputs))
        for step in self.steps:
            self._execute(step, values)
        return values

    def run(self, inputs: dict[str, np.ndarray], profile: bool = False) -> RunResult:
        """The program's outputs; `profile=True` also fills `seconds_by_op` (op type -> seconds)."""
        values: dict[str, Any] = dict(self.constants)
        values.update(self.prepare_inputs(inputs))
        result = RunResult()
        result.seconds_by_op = {}
        for step in self.steps:
            start = time.perf_counter() if profile else 0.0
            self._execute(step, values)
            if profile:
                result.seconds_by_op[step.type] = (
                    result.seconds_by_op.get(step.type, 0.0) + time.perf_counter() - start
                )
            if result.first_nonfinite is None:
                for name, _ in step.outputs:
                    value = values[name]
                    if (
                        isinstance(value, np.ndarray)
                        and value.dtype.kind == "f"
                        and not np.isfinite(value).all()
                    ):
                        result.first_nonfinite = (step.type, step.name)
                        log.warning("first non-finite output: op %s (%s)", step.type, step.name)
                        break
        for name in self.program.outputs:
            value = values[name]
            vtype = self.program.output_types.get(name)
            result[name] = (
                value.astype(np.float16) if vtype is not None and vtype.dtype == "FLOAT16" else value
            )
        return result


_CACHE: dict[tuple[str, float], Interpreter] = {}


def load_interpreter(path: str | Path) -> Interpreter:
    """Load and prepare an .mlpackage (cached per path and modification time)."""
    path = Path(path)
    key = (str(path.resolve()), path.stat().st_mtime if path.exists() else 0.0)
    if key not in _CACHE:
        _CACHE.clear()  # keep at most one prepared program (a teacher holds ~46 MB of weights)
        _CACHE[key] = Interpreter(*load_program(path))
    return _CACHE[key]


def run_program(
    program: str | Path | Interpreter, inputs: dict[str, np.ndarray], profile: bool = False
) -> RunResult:
    """Run an ML Program on numpy inputs; returns its outputs (a dict with `first_nonfinite`)."""
    interpreter = program if isinstance(program, Interpreter) else load_interpreter(program)
    return interpreter.run(inputs, profile=profile)
