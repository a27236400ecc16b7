"""The "executorch" backend: a .pte program in ExecuTorch's runtime (XNNPACK delegate + portable CPU kernels).

The one runtime backend that needs torch: ExecuTorch's Python runtime (`executorch.runtime`) links libtorch
and takes and returns torch tensors. This module imports neither at import time, so `pocketgan.runtime`
stays torch-free; without executorch or torch the backend reports itself unavailable with the install
command. On a phone the same .pte runs in ExecuTorch's C++/Swift/Kotlin runtime, which has no torch.
`threads` sets the size of ExecuTorch's one process-wide thread pool (the XNNPACK delegate's workers).

Example: python -c "from pocketgan import runtime; print(runtime.load('dist/student.int8.pte', threads=2).size)"
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan.errors import BackendUnavailable, ModelLoadError, UsageError
from pocketgan.manifest import EMBEDDED_MANIFEST_KEY, parse_manifest
from pocketgan.runtime.base import Backend, TensorSpec, register_backend
from pocketgan.status import OK, Status, unavailable

log = logging.getLogger(__name__)

PTE_IDENTIFIER = b"ET"  # flatbuffer file identifier "ET" + 2-digit schema version, bytes 4..8 of a .pte
METHOD = "forward"
INSTALL = 'pip install "pocketgan[executorch]"'
# c10::ScalarType codes that TensorInfo.dtype() returns -> numpy dtype names
_SCALAR_TYPES = {
    0: "uint8",
    1: "int8",
    2: "int16",
    3: "int32",
    4: "int64",
    5: "float16",
    6: "float32",
    7: "float64",
}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a blocked import, or a module left half-imported
        return False


@register_backend("executorch")
class ExecuTorchBackend(Backend):
    """A .pte program's `forward` method in executorch.runtime (thread pool size = `threads`)."""

    format = "executorch"
    suffixes = (".pte",)
    priority = 10

    @classmethod
    def availability(cls) -> Status:
        missing = [name for name in ("executorch", "torch") if not _importable(name)]
        if missing:
            return unavailable(
                f"needs {' and '.join(missing)} (ExecuTorch's Python runtime links libtorch): {INSTALL}"
            )
        return OK

    def __init__(self, path: Path, threads: int | None = None, providers: Sequence[str] | None = None):
        if providers:
            raise UsageError("providers apply to the onnxruntime backend only")
        self.path = Path(path)
        with open(self.path, "rb") as handle:
            if handle.read(8)[4:6] != PTE_IDENTIFIER:
                raise ModelLoadError(
                    f"{self.path}: not an ExecuTorch program (no ET identifier in its header)"
                )
        engine = _engine()
        _set_thread_pool(engine, threads)
        try:
            self.program = engine._load_program(str(self.path))
            self.method = self.program.load_method(METHOD)
        except Exception as exc:  # the runtime raises RuntimeError with its own multi-line text
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"{self.path}: not a loadable ExecuTorch program ({first_line})") from None
        meta = self.method.method_meta()
        self.inputs = [_spec(f"input{i}", meta.input_tensor_meta(i)) for i in range(meta.num_inputs())]
        self.outputs = [_spec(f"output{i}", meta.output_tensor_meta(i)) for i in range(meta.num_outputs())]
        self._lock = threading.Lock()  # one method: one execute at a time
        self.inputs = _named_inputs(self.inputs, self.embedded_manifest())

    @property
    def verified_by(self) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            engine = f"executorch {version('executorch')}"
        except PackageNotFoundError:
            engine = "executorch"
        return f"{engine} (XNNPACK delegate + portable kernels)"

    def run(self, array: np.ndarray) -> np.ndarray:
        return self.run_inputs([array])

    def run_inputs(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Every input in `inputs` order (image, and the context of a two-input program) -> first output."""
        import torch

        tensors = tuple(
            torch.from_numpy(np.array(array, copy=not array.flags.writeable, order="C")) for array in arrays
        )
        with self._lock, _torch_on_one_thread(torch):
            output = self.method(tensors)[0]  # a fresh tensor each call: the runtime copies outputs out
        return output.numpy()

    def embedded_manifest(self) -> dict[str, Any] | None:
        names = {self.program.get_method_name(i) for i in range(self.program.num_methods())}
        if EMBEDDED_MANIFEST_KEY not in names:
            return None
        text = self.program.load_method(EMBEDDED_MANIFEST_KEY)(())[0]
        return parse_manifest(text, f"{self.path} (embedded manifest)")


def _named_inputs(inputs: list[TensorSpec], manifest: dict[str, Any] | None) -> list[TensorSpec]:
    """The program's inputs named as its manifest names them (a .pte stores no names), and the image's H and
    W as -1 where the manifest declares dynamic sizes (the program's metadata gives their upper bound)."""
    image, context = (manifest or {}).get("input") or {}, (manifest or {}).get("context_input") or {}
    names = [image.get("name"), context.get("name")]
    named = [replace(spec, name=name) if name else spec for spec, name in zip(inputs, names, strict=False)]
    if named and (image.get("sizes") or {}).get("dynamic"):
        batch, _, _, channels = named[0].shape
        named[0] = replace(named[0], shape=(batch, -1, -1, channels))
    return named + inputs[len(named) :]


def _spec(name: str, info) -> TensorSpec:
    return TensorSpec(
        name, tuple(int(d) for d in info.sizes()), _SCALAR_TYPES.get(info.dtype(), str(info.dtype()))
    )


@contextlib.contextmanager
def _torch_on_one_thread(torch) -> Iterator[None]:
    """torch's intra-op pool at one thread for the call, then as it was (process-wide, briefly).

    The bindings copy the input and output with torch ops; on two threads torch's OpenMP workers go on
    spinning after each copy and take the cores from XNNPACK's own pool. Shipped student, 2 XNNPACK
    threads, 2 cores, interleaved blocks: int8 p50 31.5 -> 9.7 ms, fp32 49.0 -> 34.9 ms.
    """
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _engine():
    """ExecuTorch's C++ runtime bindings (the module `executorch.runtime` wraps).

    Imported directly after torch: `executorch.runtime` first imports the whole ahead-of-time compiler
    (executorch.exir), 2.4 s -> 9.6 s to load a model here. Falls back to the public module.
    """
    try:
        import torch  # noqa: F401  (the bindings link libtorch and expect it loaded)
        from executorch.extension.pybindings import _C

        return _C
    except ImportError:
        pass
    try:
        from executorch.extension.pybindings import portable_lib
    except ImportError as exc:
        raise BackendUnavailable(f"executorch cannot be imported ({exc}): {INSTALL}") from None
    return portable_lib


def _set_thread_pool(engine, threads: int | None) -> None:
    """Size ExecuTorch's process-wide thread pool; its creation writes CPU-probe chatter to fd 2, hidden."""
    with _stderr_to_devnull():
        if threads and engine._threadpool_get_thread_count() != int(threads):
            engine._unsafe_reset_threadpool(int(threads))
        else:
            engine._threadpool_get_thread_count()


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null (C++ logging bypasses sys.stderr), then restore it."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
