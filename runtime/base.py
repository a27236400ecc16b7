"""The runtime backend interface and its registry (torch-free).

A backend wraps one loaded model in one inference engine. It describes its single image input and its
output as `TensorSpec`s and runs artifact-native arrays; `runtime.session.Session` does all image pre- and
post-processing around it, so every backend sees the same prepared tensors.

Register a backend by name; a backend whose library is missing reports why from `availability()` instead of
failing at import time:

    @register_backend("my-engine")
    class MyEngine(Backend):
        format = "onnx"
        suffixes = (".onnx",)

        @classmethod
        def availability(cls) -> Status:
            return OK

        def __init__(self, path, threads=None, providers=None):
            ...  # load; fill self.inputs / self.outputs with TensorSpec

        def run(self, array):
            ...  # one artifact-native input array -> the first output array

An engine that exposes its own tensor memory may also override `run_with`, so that `Session.run` writes the
input into it and reads the output from it without copies (the "litert" backend does). An engine that can
run Session.run's pixel arithmetic itself, bit for bit, may offer a `pixel_runner` (the "onnxruntime" backend
does, as one graph on its own thread pool).

This module does not know its backends: runtime/backends.py lists them, and `pocketgan.runtime` imports
that list, so every backend is registered once the package is imported.

Example: python -c "from pocketgan import runtime; print(runtime.available_backends())"
"""

from __future__ import annotations

import abc
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from pocketgan.errors import BackendUnavailable, ModelLoadError, UsageError
from pocketgan.status import Status, unavailable

log = logging.getLogger(__name__)

# dtype of an input that takes an image (Core ML ImageType) rather than a tensor.
IMAGE_DTYPE = "image"

T = TypeVar("T")


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as the engine sees it.

    shape: the shape of the array the backend takes or returns, -1 for a dynamic dim. dtype: a numpy
    dtype name ("float32", "float16", "int8", "uint8", ...) or "image" for a Core ML ImageType feature,
    whose array is uint8 (N, H, W, 3) RGB pixels (shape (1, H, W, 3)); the model applies its own scale
    and bias to an image input. quantization: (scale, zero_point) of an integer
    tensor that stands for real values, else None.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: tuple[float, int] | None = None


@dataclass(frozen=True)
class PixelIO:
    """Session.run's exact pixel arithmetic around a float model, for `Backend.pixel_runner`.

    In: uint8 (H, W, 3) RGB -> float32 `pixel / divisor + offset` in `input_layout` ("NCHW" | "NHWC"),
    batch 1. Out: the first output, float32 in `output_layout` -> uint8 (H, W, 3) =
    `clip(rint((value + shift) / step), 0, 255)`, rint rounding half to even (pocketgan.images.to_uint8;
    no addition when shift is 0). Each step is one IEEE float32 operation, in this order.
    """

    input_layout: str
    divisor: float
    offset: float
    output_layout: str
    shift: float
    step: float


class Backend(abc.ABC):
    """One model loaded in one inference engine; subclasses register with `@register_backend(name)`."""

    name: ClassVar[str] = ""  # set by register_backend
    format: ClassVar[str] = ""  # the artifact format it runs, as the exporters name it ("onnx", ...)
    suffixes: ClassVar[tuple[str, ...]] = ()  # file types this backend opens, lower-case with the dot
    # Among available backends for the same file type, the lowest priority wins (ties: registration order).
    priority: ClassVar[int] = 50
    # True when the output that run_with hands to `read` is memory of this thread's own, reused only by the
    # next run: the reader may overwrite it in place (saves a scratch copy). False for engine memory.
    output_is_scratch: ClassVar[bool] = False
    # Why eval's video section leaves this backend out (a numerical reference, not a runtime); None: it runs.
    video_note: ClassVar[str | None] = None

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    @classmethod
    @abc.abstractmethod
    def availability(cls) -> Status:
        """OK if this backend can run on this machine, else unavailable(<why / what to install>)."""

    @abc.abstractmethod
    def __init__(
        self, path: Path, threads: int | None = None, providers: Sequence[str] | None = None
    ) -> None:
        """Load the model; raise pocketgan.errors.ModelLoadError (one line) if the file is not one."""

    @abc.abstractmethod
    def run(self, array: np.ndarray) -> np.ndarray:
        """Run one artifact-native input array (shape/dtype per `inputs[0]`); return the first output.

        The caller may reuse `array`'s memory after this returns: do not keep a reference to it.
        """

    def run_inputs(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Run a model with several inputs (artifact-native arrays in `inputs` order); the first output.

        Engines that run two-input artifacts (image + context thumbnail) override this; the default runs
        one-input models only.
        """
        if len(arrays) == 1:
            return self.run(arrays[0])
        raise ModelLoadError(
            f"the {self.name} backend runs one-input models only; this one has {len(arrays)}"
        )

    def run_with(
        self, write: Callable[[np.ndarray | None], np.ndarray], read: Callable[[np.ndarray], T]
    ) -> T:
        """One run without the copies `run` makes where the engine allows: `read(output of write(buffer))`.

        `write(buffer)` writes the input into `buffer` (the engine's own input memory, or None: then into
        memory of its own) and returns the array it wrote; `read(output)` turns the first output into the
        result. Engine memory is valid only during the call: neither callback may keep or return it.
        """
        return read(self.run(write(None)))

    def pixel_runner(self, io: PixelIO) -> Callable[[np.ndarray], np.ndarray] | None:
        """A callable uint8 (H, W, 3) -> uint8 (H, W, 3) that runs `io` and the model in the engine, equal
        bit for bit to Session's numpy path, or None (the default) where the engine cannot. Thread-safe."""
        return None

    @property
    def verified_by(self) -> str:
        """What ran the model, for manifests' parity.verified_by: engine, version, execution path."""
        return self.name

    def embedded_manifest(self) -> dict[str, Any] | None:
        """The PocketGAN manifest stored inside the model file, if the format has one there."""
        return None

    def close(self) -> None:  # noqa: B027  (optional hook; most engines free themselves)
        """Release engine resources."""


_REGISTRY: dict[str, type[Backend]] = {}


def register_backend(name: str) -> Callable[[type[Backend]], type[Backend]]:
    """Class decorator: register a Backend subclass under `name`; a second registration is refused."""

    def decorator(cls: type[Backend]) -> type[Backend]:
        if name in _REGISTRY:
            raise ValueError(
                f"runtime backend {name!r} is already registered ({_REGISTRY[name].__qualname__})"
            )
        if not (isinstance(cls, type) and issubclass(cls, Backend)):
            raise TypeError(f"runtime backend {name!r} must subclass runtime.base.Backend")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def unregister_backend(name: str) -> None:
    """Remove a registered backend (for tests and plugins that replace themselves)."""
    _REGISTRY.pop(name, None)


def registered_backends() -> dict[str, type[Backend]]:
    return dict(_REGISTRY)


def backend_status(cls: type[Backend]) -> Status:
    """A backend's availability, never raising (a plugin that answers with plain text is read as such)."""
    try:
        status = cls.availability()
    except Exception as exc:
        return unavailable(f"{type(exc).__name__}: {exc}")
    parsed = Status.parse(status)
    return parsed if parsed is not None and not parsed.is_failed else unavailable(str(status))


def available_backends() -> dict[str, Status]:
    """Every registered backend name -> "ok" or "unavailable: <why>"."""
    return {name: backend_status(cls) for name, cls in registered_backends().items()}


def get_backend(name: str) -> type[Backend]:
    """The backend class registered as `name`; UsageError listing the known names otherwise."""
    backends = registered_backends()
    if name not in backends:
        raise UsageError(f"unknown runtime backend {name!r}; known: {', '.join(sorted(backends))}")
    return backends[name]


def model_suffix(path: str | os.PathLike) -> str:
    return Path(path).suffix.lower()


def known_suffixes() -> list[str]:
    return sorted({s for cls in registered_backends().values() for s in cls.suffixes})


def format_of(path: str | os.PathLike) -> str | None:
    """The artifact format of a file by its suffix, as the backends that open it say; None if none does."""
    suffix = model_suffix(path)
    return next((cls.format for cls in registered_backends().values() if suffix in cls.suffixes), None)


def backends_for(path: str | os.PathLike) -> list[type[Backend]]:
    """Backends that open this file type, best first (priority, then registration order)."""
    suffix = model_suffix(path)
    ordered = list(registered_backends().values())
    matching = [cls for cls in ordered if suffix in cls.suffixes]
    return sorted(matching, key=lambda cls: (cls.priority, ordered.index(cls)))


def choose_backend(path: str | os.PathLike, backend: str | None = None) -> type[Backend]:
    """The backend to open `path` with: the named one (must be available), else the best available."""
    if backend is not None:
        cls = get_backend(backend)
        status = backend_status(cls)
        if not status.is_ok:
            raise BackendUnavailable(f"backend {backend!r} is {status}")
        return cls
    candidates = backends_for(path)
    if not candidates:
        raise UsageError(
            f"{path}: unknown model type {model_suffix(path) or '(no extension)'!r}; "
            f"expected one of {', '.join(known_suffixes())} (or pass --backend)"
        )
    reasons = []
    for cls in candidates:
        status = backend_status(cls)
        if status.is_ok:
            return cls
        reasons.append(f"{cls.name}: {status}")
    raise BackendUnavailable(f"no backend can run {model_suffix(path)} here ({'; '.join(reasons)})")
