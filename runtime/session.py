"""`load(path) -> Session`: one artifact in one backend, with the image pre/post-processing its manifest asks for.

Pre/post-processing comes from the artifact's manifest (the sidecar NAME.manifest.json, else the copy
embedded in the model file), or, without one, from the model's input shape: NCHW if dim 1 is 3, NHWC if
the last dim is 3, range [-1, 1]. Images are resized to the model size, and back to their own size,
with `pocketgan.images.resize` (Pillow bicubic on uint8 RGB), the one filter used by every stage.

Example: python -c "import numpy as np; from pocketgan import runtime; s = runtime.load('dist/student.fp32.onnx');
                    print(s.run(np.zeros((480, 640, 3), np.uint8)).shape)"
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan.errors import ModelLoadError, UsageError
from pocketgan.images import resize, to_float, uint8_steps
from pocketgan.manifest import read_manifest, sha256_file, verify_artifact
from pocketgan.runtime.base import IMAGE_DTYPE, Backend, PixelIO, TensorSpec, choose_backend, format_of

log = logging.getLogger(__name__)

DEFAULT_RANGE = (-1.0, 1.0)
PIXEL_RANGE = (0.0, 255.0)


def _infer_layout(shape: tuple[int, ...]) -> str | None:
    if len(shape) != 4:
        return None
    if shape[1] == 3:
        return "NCHW"
    if shape[-1] == 3:
        return "NHWC"
    return None


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join("?" if d < 0 else str(d) for d in shape) + "]"


def _shapes_agree(declared: Sequence[Any], actual: Sequence[int]) -> bool:
    if len(declared) != len(actual):
        return False
    return all(
        not isinstance(d, int) or d <= 0 or a < 0 or d == a for d, a in zip(declared, actual, strict=True)
    )


class _TensorCodec:
    """How one model tensor maps to images in a value range: layout, dtype, quantization."""

    def __init__(self, spec: TensorSpec, layout: str, value_range: tuple[float, float]):
        self.spec = spec
        self.layout = layout
        self.is_image = spec.dtype == IMAGE_DTYPE
        self.range = PIXEL_RANGE if self.is_image else value_range
        self.dtype = np.dtype("uint8" if self.is_image else spec.dtype)
        self.quantization = spec.quantization if self.dtype.kind in "iu" and not self.is_image else None
        if self.dtype.kind in "iu" and not self.is_image and self.quantization is None:
            raise ModelLoadError(
                f"tensor {spec.name!r} is {self.dtype.name} without quantization parameters; cannot map it to images"
            )

    def encode(self, values: np.ndarray) -> np.ndarray:
        """float32 in self.range (layout already native) -> the tensor's dtype."""
        if self.is_image:
            return np.clip(np.rint(values), 0, 255).astype(np.uint8)
        if self.quantization is not None:
            scale, zero_point = self.quantization
            info = np.iinfo(self.dtype)
            quantized = np.rint(values / np.float32(scale)) + zero_point
            return np.clip(quantized, info.min, info.max).astype(self.dtype)
        return values.astype(self.dtype, copy=False)

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """The tensor's dtype -> float32 in self.range (layout unchanged)."""
        if self.quantization is not None:
            scale, zero_point = self.quantization
            return (raw.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
        return raw.astype(np.float32, copy=False)


def _exact_pixel_division(
    table: np.ndarray, value_range: tuple[float, float]
) -> tuple[np.float32, np.float32] | None:
    """(divisor, offset) with `pixel / divisor + offset` equal to a float32 table bit for bit, else None.

    Two vectorized passes beat a per-element gather from the table (by half for NHWC, ~15% for NCHW); the
    table (built with the shared `to_float`) stays the reference: the arithmetic is used only where it
    reproduces it.
    """
    low, high = value_range
    if table.dtype != np.float32 or high == low:
        return None
    divisor, offset = np.float32(255.0 / (high - low)), np.float32(low)
    computed = np.arange(256, dtype=np.uint8) / divisor + offset
    return (divisor, offset) if np.array_equal(computed.view(np.uint32), table.view(np.uint32)) else None


def _convert_range(
    values: np.ndarray, source: tuple[float, float], target: tuple[float, float]
) -> np.ndarray:
    if tuple(source) == tuple(target):
        return values
    (s_low, s_high), (t_low, t_high) = source, target
    return (
        (values - np.float32(s_low)) * np.float32((t_high - t_low) / (s_high - s_low)) + np.float32(t_low)
    ).astype(np.float32, copy=False)


class Session:
    """A loaded artifact: `run` on uint8 images, `predict` on [-1, 1] NCHW floats, `run_array` raw.

    Attributes: path, backend (name), manifest (dict or None), size ((H, W) or None when dynamic),
    layout ("NCHW" | "NHWC"), engine (the Backend instance), verified_by (engine and version), sha256.
    """

    def __init__(
        self, path: Path, engine: Backend, manifest: dict[str, Any] | None, sha256: str | None = None
    ):
        self.path = path
        self._sha256 = sha256
        self.engine = engine
        self.backend = engine.name
        self.manifest = manifest
        if len(engine.inputs) != 1:
            names = ", ".join(spec.name for spec in engine.inputs) or "none"
            raise ModelLoadError(
                f"{path}: expected one image input, the model has {len(engine.inputs)} ({names})"
            )
        if not engine.outputs:
            raise ModelLoadError(f"{path}: the model has no outputs")
        input_spec, output_spec = engine.inputs[0], engine.outputs[0]
        input_meta = (manifest or {}).get("input") or {}
        output_meta = (manifest or {}).get("output") or {}
        self._check_manifest(input_spec, input_meta)
        self.layout = self._layout(input_spec, input_meta)
        output_layout = self._layout(output_spec, output_meta, fallback=self.layout)
        self._input = _TensorCodec(input_spec, self.layout, tuple(input_meta.get("range", DEFAULT_RANGE)))
        self._output = _TensorCodec(
            output_spec, output_layout, tuple(output_meta.get("range", DEFAULT_RANGE))
        )
        shape = input_spec.shape
        height, width = (shape[2], shape[3]) if self.layout == "NCHW" else (shape[1], shape[2])
        self.size = (height, width) if height > 0 and width > 0 else None
        self._fixed_batch = shape[0] if shape[0] > 0 else None
        self._output_shift, self._output_step = uint8_steps(self._output.range)
        self._scratch = threading.local()
        # uint8 pixel -> model input value, computed once with the shared to_float so values match bit for bit.
        self._input_table = self._input.encode(
            to_float(np.arange(256, dtype=np.uint8), self._input.range)
            if not self._input.is_image
            else np.arange(256)
        )
        self._input_division = _exact_pixel_division(self._input_table, self._input.range)

    # -- construction checks -------------------------------------------------------------------------------
    def _check_manifest(self, spec: TensorSpec, meta: dict[str, Any]) -> None:
        if not self.manifest:
            return
        declared_format = self.manifest.get("format")
        expected_format = format_of(self.path)
        if declared_format and expected_format and declared_format != expected_format:
            raise ModelLoadError(
                f"{self.path}: its manifest describes a {declared_format} model, but the file is {expected_format}"
            )
        declared = meta.get("shape")
        actual = spec.shape
        if spec.dtype == IMAGE_DTYPE and declared is not None and len(declared) == 4 and declared[1] == 3:
            actual = (actual[0], actual[3], actual[1], actual[2])  # the manifest may describe pixels as NCHW
        if declared is not None and not _shapes_agree(declared, actual):
            raise ModelLoadError(
                f"{self.path}: manifest input shape {_shape_text([d if isinstance(d, int) else -1 for d in declared])} "
                f"does not match the model's input shape {_shape_text(actual)}"
            )

    def _layout(self, spec: TensorSpec, meta: dict[str, Any], fallback: str | None = None) -> str:
        if spec.dtype == IMAGE_DTYPE:
            return "NHWC"  # image features carry HxWx3 pixels
        layout = meta.get("layout") or _infer_layout(spec.shape) or fallback
        if layout not in ("NCHW", "NHWC"):
            raise ModelLoadError(
                f"{self.path}: cannot tell the layout of {spec.name!r} with shape {_shape_text(spec.shape)} "
                "(expected 3 channels in dim 1 or last; add a manifest)"
            )
        channel_dim = 1 if layout == "NCHW" else -1
        if spec.shape and (len(spec.shape) != 4 or spec.shape[channel_dim] not in (3, -1)):
            raise ModelLoadError(
                f"{self.path}: {spec.name!r} with shape {_shape_text(spec.shape)} is not a {layout} RGB image tensor"
            )
        return layout

    # -- public API ----------------------------------------------------------------------------------------
    @property
    def input_spec(self) -> TensorSpec:
        return self._input.spec

    @property
    def output_spec(self) -> TensorSpec:
        return self._output.spec

    @property
    def verified_by(self) -> str:
        """The engine that ran the model, e.g. "onnxruntime 1.32.0 (CPUExecutionProvider)"."""
        return self.engine.verified_by

    @property
    def first_nonfinite_op(self) -> str | None:
        """After a run, "op_type (op_name)" of the first op whose output went inf/NaN, for engines that trace
        ops (coreml-reference); None when the run was clean or the engine cannot tell."""
        first = getattr(self.engine, "first_nonfinite", None)
        return f"{first[0]} ({first[1]})" if first else None

    @property
    def sha256(self) -> str:
        """sha256 of the model file (of every file, for an .mlpackage directory); hashed once per load."""
        if self._sha256 is None:
            self._sha256 = sha256_file(self.path)
        return self._sha256

    def native_input(self, image: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) RGB at the model size -> the artifact-native input array that `run_array` takes."""
        image = np.asarray(image)
        if self.size and image.shape[:2] != self.size:
            raise UsageError(f"native_input takes the model size {self.size}, got {image.shape[:2]}")
        return self._prepare(image).copy()

    def run_array(self, array: np.ndarray) -> np.ndarray:
        """The raw model: artifact-native input (layout, dtype) -> its first output, no processing."""
        return self.engine.run(array)

    def run(self, image: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) RGB -> uint8 (H, W, 3) RGB at the same size (pixels as pocketgan.images.to_uint8)."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise UsageError(f"Session.run takes uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        resized = resize(image, self.size) if self.size else image
        if self._pixel_runner is not None:
            result = self._pixel_runner(np.ascontiguousarray(resized))
        else:
            result = self.engine.run_with(
                lambda buffer: self._prepare(resized, buffer), lambda output: self._to_image(output[0])
            )
        return resize(result, (height, width)) if result.shape[:2] != (height, width) else result

    @cached_property
    def _pixel_runner(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """The engine's own run of the pixel steps below (Backend.pixel_runner), built on first use;
        None for models whose input or output is not a float tensor in a value range."""
        if self._input_division is None or self._output.is_image or self._output.dtype != np.float32:
            return None
        divisor, offset = self._input_division
        io = PixelIO(
            self.layout,
            float(divisor),
            float(offset),
            self._output.layout,
            float(self._output_shift),
            float(self._output_step),
        )
        return self.engine.pixel_runner(io)

    def _buffer(self, key: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A scratch array reused across calls in this thread (no allocation or page faults per image)."""
        buffers = self._scratch.__dict__.setdefault("buffers", {})
        buffer = buffers.get(key)
        if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
            buffer = buffers[key] = np.empty(shape, dtype)
        return buffer

    def _prepare(self, pixels: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """uint8 (H, W, 3) -> the model input (1, ...) in `out` if it fits, else in a scratch array.

        Values come from the per-pixel-value table, or from its exact arithmetic form where there is one.
        """
        height, width = pixels.shape[:2]
        nchw = self.layout == "NCHW"
        shape = (1, 3, height, width) if nchw else (1, height, width, 3)
        if out is not None and out.shape == shape and out.dtype == self._input_table.dtype:
            prepared = out
        else:
            prepared = self._buffer("input", shape, self._input_table.dtype)
        if self._input_division is not None:  # layout change, uint8 -> float and division in one pass
            divisor, offset = self._input_division
            np.divide(pixels.transpose(2, 0, 1) if nchw else pixels, divisor, out=prepared[0])
            np.add(prepared, offset, out=prepared)
        elif nchw:
            for channel in range(3):
                np.take(self._input_table, pixels[:, :, channel], out=prepared[0, channel], mode="wrap")
        else:
            np.take(self._input_table, pixels, out=prepared[0], mode="wrap")
        return prepared

    def _to_image(self, raw: np.ndarray) -> np.ndarray:
        """One output item -> uint8 (H, W, 3) = `clip(rint((value + shift) / step), 0, 255)` (to_uint8's steps).

        `raw` may be engine memory (see Backend.run_with): it is never returned, and it is overwritten in
        place only when the engine says its output is the reader's scratch (`Backend.output_is_scratch`).
        """
        if self._output.is_image:
            return np.array(raw, dtype=np.uint8)
        values = self._output.decode(raw)
        if self.engine.output_is_scratch and values is raw and values.flags.writeable:
            scaled = values  # the engine's output is ours to overwrite: no second float buffer
        else:
            scaled = self._buffer("output", values.shape, np.dtype(np.float32))  # model layout
        if self._output_shift:
            np.add(values, self._output_shift, out=scaled)
            np.divide(scaled, self._output_step, out=scaled)
        else:  # adding -0.0 changes no value: the in-graph path skips it too
            np.divide(values, self._output_step, out=scaled)
        np.rint(scaled, out=scaled)
        np.clip(scaled, 0.0, 255.0, out=scaled)
        if self._output.layout == "NHWC":
            result = np.empty(scaled.shape, np.uint8)
            np.copyto(result, scaled, casting="unsafe")
        else:  # channel by channel into the interleaved image: twice as fast as one strided transpose
            result = np.empty((*scaled.shape[1:], 3), np.uint8)
            for channel in range(3):
                np.copyto(result[:, :, channel], scaled[channel], casting="unsafe")
        return result

    def run_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """`run` on each image (images may differ in size)."""
        return [self.run(image) for image in images]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """float32 (N, 3, H, W) in [-1, 1] at the model size -> float32 (N, 3, H, W) in [-1, 1].

        Handles NHWC, integer I/O (de)quantization and Core ML image inputs; parity checks use this.
        """
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[1] != 3:
            raise UsageError(f"Session.predict takes float32 (N, 3, H, W), got {x.shape}")
        if self.size and x.shape[2:] != self.size:
            raise UsageError(f"Session.predict takes the model size {self.size}, got {x.shape[2:]}")
        values = _convert_range(x, DEFAULT_RANGE, self._input.range)
        if self.layout == "NHWC":
            values = values.transpose(0, 2, 3, 1)
        prepared = self._input.encode(np.ascontiguousarray(values))
        step = self._fixed_batch or len(prepared)
        raws = [self.engine.run(prepared[i : i + step]) for i in range(0, len(prepared), step)]
        output = self._output.decode(raws[0] if len(raws) == 1 else np.concatenate(raws, axis=0))
        if self._output.layout == "NHWC":
            output = output.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(
            _convert_range(output, self._output.range, DEFAULT_RANGE), dtype=np.float32
        )

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Session({str(self.path)!r}, backend={self.backend!r}, size={self.size}, layout={self.layout!r})"
        )


def load(
    path: str | os.PathLike,
    backend: str | None = None,
    threads: int | None = None,
    providers: Sequence[str] | None = None,
    verify: bool = True,
) -> Session:
    """Load an artifact (.onnx, .tflite, .mlpackage/.mlmodel) in the named or best available backend.

    With `verify`, a sidecar manifest's size_bytes and sha256 must match the file before any backend parses
    it (IntegrityError otherwise); callers that verified the artifact already pass False.
    """
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such model file")
    if threads is not None and int(threads) < 1:
        raise UsageError(f"threads must be >= 1, got {threads}")
    if path.is_file() and path.stat().st_size == 0:
        raise ModelLoadError(f"{path}: empty model file")
    manifest = read_manifest(path)
    sha256 = verify_artifact(path, manifest) if verify and manifest is not None else None
    engine_class = choose_backend(path, backend)
    engine = engine_class(path, threads=threads, providers=providers)
    if manifest is None:
        manifest = engine.embedded_manifest()
    return Session(path, engine, manifest, sha256)
