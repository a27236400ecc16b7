"""`load(path) -> Session`: one artifact in one backend, with the image pre/post-processing its manifest asks for.

Pre/post-processing comes from the artifact's manifest (the sidecar NAME.manifest.json, else the copy
embedded in the model file), or, without one, from the model's input shape: NCHW if dim 1 is 3, NHWC if
the last dim is 3, range [-1, 1]. `run` returns the photo's own size: it runs the model at the photo's
size where the artifact takes any size (up to `max_side` on the long side), else at its nearest fixed
size, and carries the model's change to the photo's size by guided upsampling (runtime/working.py);
`size_mode="model"` resizes to the model size and back instead (`pocketgan.images.resize`, Pillow bicubic).
Artifacts with a second "context" input (manifest "context_input") get the thumbnail of the whole photo
(`pocketgan.images.context_thumbnail`) there, so the grade does not depend on the working size.
An artifact whose manifest carries the teacher's grain statistics ("grain", runtime/grain.py) gets that
grain added to `run`'s output at its final size (`grain=0` leaves it out; `predict` and video frames never
get it).

Example: python -c "import numpy as np; from pocketgan import runtime; s = runtime.load('dist/student.fp32.onnx');
                    print(s.run(np.zeros((480, 640, 3), np.uint8)).shape)"
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Sequence
from functools import cached_property
from glob import escape as glob_escape
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pocketgan.errors import ModelLoadError, UsageError
from pocketgan.images import CONTEXT_SIZE, context_thumbnail, resize, to_float, to_uint8, uint8_steps
from pocketgan.manifest import read_manifest, sha256_file, verify_artifact
from pocketgan.runtime.base import IMAGE_DTYPE, Backend, PixelIO, TensorSpec, choose_backend, format_of
from pocketgan.runtime.grain import GrainModel, add_grain, rows_adder
from pocketgan.runtime.working import SizePolicy, guided_upsample, working_size

log = logging.getLogger(__name__)

DEFAULT_RANGE = (-1.0, 1.0)
PIXEL_RANGE = (0.0, 255.0)
# Long side of the working size for artifacts that run at any size: above it, guided upsampling. Chosen by
# measurement (README, "Full resolution"): a 12 MP JPEG through the int8 TFLite student end to end in
# about a second at 2 threads, with bounded memory.
DEFAULT_MAX_SIDE = 1536
# A photo shrunk to its working size by more than ~4x is box-averaged by an integer factor first (Pillow's
# reducing_gap), leaving a shrink of at least 1.9x to the bicubic filter: a 12 MP photo to 1024x768 in 59
# against 121 ms, 55.6 dB from the bicubic filter alone (max 5 levels). Below 3.8x, the bicubic filter alone
# (a 1280 px photo, the full-size eval, and video frames are unchanged).
WORKING_REDUCING_GAP = 1.9
SIZE_MODES = ("full", "model")
CONTEXT_NAME = "context"


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
        self,
        path: Path,
        engine: Backend,
        manifest: dict[str, Any] | None,
        sha256: str | None = None,
        max_side: int | None = DEFAULT_MAX_SIDE,
        size_mode: str = "full",
        threads: int | None = None,
        grain: float = 1.0,
    ):
        self.path = path
        self.workers = threads or min(os.cpu_count() or 1, 4)  # threads of the guided upsampling
        self._sha256 = sha256
        self.engine = engine
        self.backend = engine.name
        self.manifest = manifest
        if size_mode not in SIZE_MODES:
            raise UsageError(f"size_mode must be one of {', '.join(SIZE_MODES)}, got {size_mode!r}")
        if max_side is not None and max_side < 1:
            raise UsageError(f"max_side must be at least 1, got {max_side}")
        self.max_side, self.size_mode = max_side, size_mode
        if grain < 0:
            raise UsageError(f"grain must be >= 0, got {grain}")
        grain_section = (manifest or {}).get("grain")
        # The teacher's grain (runtime.grain), added by `run` at the output's size; strength 0: none.
        self.grain_model = GrainModel.from_json(grain_section) if grain_section else None
        self.grain = grain
        # (H, W) -> file, for exports with one file per working size (TFLite): set by `load`
        self.size_files: dict[tuple[int, int], Path] = {}
        self._size_sessions: dict[tuple[int, int], Session] = {}
        self._load_options: dict[str, Any] = {}
        if not engine.outputs:
            raise ModelLoadError(f"{path}: the model has no outputs")
        image_index, context_index = self._input_roles(engine.inputs)
        self._image_index = image_index
        input_spec, output_spec = engine.inputs[image_index], engine.outputs[0]
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
        self.sizes = SizePolicy.from_manifest(input_meta.get("sizes"), (height, width))
        self._context = None
        if context_index is not None:
            context_spec = engine.inputs[context_index]
            context_meta = (manifest or {}).get("context_input") or {}
            context_layout = self._layout(context_spec, context_meta, fallback="NHWC")
            context_range = tuple(context_meta.get("range", DEFAULT_RANGE))
            self._context = (context_index, _TensorCodec(context_spec, context_layout, context_range))
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
    def _input_roles(self, inputs: Sequence[TensorSpec]) -> tuple[int, int | None]:
        """(index of the image input, index of the context input or None) of a one- or two-input model."""
        if len(inputs) == 1:
            return 0, None
        names = [spec.name for spec in inputs]
        context_name = ((self.manifest or {}).get("context_input") or {}).get("name", CONTEXT_NAME)
        if len(inputs) == 2 and context_name in names:
            context_index = names.index(context_name)
            return 1 - context_index, context_index
        raise ModelLoadError(
            f"{self.path}: expected an image input and at most a {context_name!r} input, "
            f"the model has {len(inputs)} ({', '.join(names) or 'none'})"
        )

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

    def native_inputs(self, image: np.ndarray) -> list[np.ndarray]:
        """Every artifact-native input for `image` (the image, and its context thumbnail where there is one),
        in the model's input order, for `run_arrays`."""
        arrays = [np.empty(0)] * len(self.engine.inputs)
        arrays[self._image_index] = self.native_input(image)
        if self._context is not None:
            index, codec = self._context
            arrays[index] = self._context_array(codec, context_thumbnail(np.asarray(image)))
        return arrays

    def run_arrays(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """The raw model on every native input (`native_inputs`): its first output, no processing."""
        return self.engine.run_inputs(arrays)

    def run_array(self, array: np.ndarray) -> np.ndarray:
        """The raw model: artifact-native input (layout, dtype) -> its first output, no processing."""
        return self.engine.run(array)

    @property
    def has_context(self) -> bool:
        """True when the artifact takes a thumbnail of the whole image as a second ("context") input."""
        return self._context is not None

    def thumbnail(self, image: np.ndarray, source: Image.Image | None = None) -> np.ndarray | None:
        """The uint8 (CONTEXT_SIZE, CONTEXT_SIZE, 3) context `run` would feed for `image`; None without one.
        source: `image` as a PIL image, if the caller has one (pocketgan.images.resize)."""
        return context_thumbnail(np.asarray(image), source) if self.has_context else None

    def working_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The (H, W) the model runs at for a photo of `size` (module docstring), among this file's sizes and
        those of its per-size siblings (`size_files`)."""
        if self.size_mode == "model":
            return self.size or working_size(self.sizes, size, self.max_side)
        if self.size_files and not self.sizes.dynamic:
            return working_size(SizePolicy(fixed=tuple(self.size_files)), size, self.max_side)
        return working_size(self.sizes, size, self.max_side)

    def session_for(self, size: tuple[int, int]) -> Session:
        """The session that runs working size `size`: this one, or that of the per-size file for it (loaded
        once, with this session's options)."""
        if size == self.size or size not in self.size_files:
            return self
        if size not in self._size_sessions:
            self._size_sessions[size] = load(self.size_files[size], **self._load_options)
        return self._size_sessions[size]

    def run(
        self,
        image: np.ndarray,
        *,
        thumbnail: np.ndarray | None = None,
        grain: float | None = None,
        source: Image.Image | None = None,
    ) -> np.ndarray:
        """uint8 (H, W, 3) RGB -> uint8 (H, W, 3) RGB at the same size (pixels as pocketgan.images.to_uint8).

        thumbnail: the context to feed instead of the image's own (uint8, or float in pixel units 0..255,
        (CONTEXT_SIZE, CONTEXT_SIZE, 3)), e.g. a temporally smoothed one for video; ignored by artifacts
        without a context input. grain: strength of the teacher's grain for this call (default: the
        session's; 0 for video frames). source: the same pixels as a PIL RGB image, if the caller has one
        (`read_photo(..., keep_image=True).image`): saves converting a 12 MP photo (20-50 ms).
        """
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise UsageError(f"Session.run takes uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}")
        if min(image.shape[:2]) < 1:
            raise UsageError(f"Session.run takes a non-empty image, got {image.shape[:2]}")
        size = image.shape[:2]
        if source is not None and (source.mode != "RGB" or source.size != (size[1], size[0])):
            raise UsageError(
                f"Session.run: source is {source.mode} {source.size}, not the image's RGB pixels"
            )
        work_size = self.working_size(size)
        if work_size != self.size and work_size in self.size_files:  # the export's file for that size
            return self.session_for(work_size).run(image, thumbnail=thumbnail, grain=grain, source=source)
        # One PIL image of the photo for both of its resizes (working size, thumbnail).
        if size != tuple(work_size) and source is None:
            source = Image.fromarray(image)
        work = resize(image, work_size, source, reducing_gap=WORKING_REDUCING_GAP)
        result = self.run_working(work, thumbnail if thumbnail is not None else self.thumbnail(image, source))
        strength = self.grain if grain is None else grain
        with_grain = self.grain_model is not None and strength != 0
        if result.shape[:2] != size:
            if self.size_mode == "model":
                result = resize(result, size)
            else:  # the grain goes onto each strip as it is written: one pass over the photo, same bytes
                grain_rows = rows_adder(self.grain_model, strength) if with_grain else None
                return guided_upsample(image, work, result, workers=self.workers, then=grain_rows)
        if not with_grain:
            return result
        return add_grain(result, self.grain_model, strength, workers=self.workers, in_place=True)

    def run_working(self, work: np.ndarray, thumbnail: np.ndarray | None) -> np.ndarray:
        """The model alone: uint8 (h, w, 3) at a size this file takes (a working size) -> its uint8 output.

        thumbnail: the context (as in `run`; default: `work`'s own), ignored by artifacts without a context input.
        """
        if self._context is not None:
            thumbnail = self.thumbnail(work) if thumbnail is None else thumbnail
            index, codec = self._context
            arrays: list[np.ndarray] = [np.empty(0), np.empty(0)]
            arrays[self._image_index] = self._prepare(np.ascontiguousarray(work))
            arrays[index] = self._context_array(codec, thumbnail)
            return self._to_image(self.engine.run_inputs(arrays)[0])
        if self._pixel_runner is not None and work.shape[:2] == self.size:
            return self._pixel_runner(np.ascontiguousarray(work))
        return self.engine.run_with(
            lambda buffer: self._prepare(work, buffer), lambda output: self._to_image(output[0])
        )

    def _context_array(self, codec: _TensorCodec, thumbnail: np.ndarray | None) -> np.ndarray:
        """A (CONTEXT_SIZE, CONTEXT_SIZE, 3) thumbnail (uint8 or float pixels) -> the context input."""
        pixels = np.asarray(thumbnail)
        if pixels.shape != (CONTEXT_SIZE, CONTEXT_SIZE, 3):
            raise UsageError(f"thumbnail must be ({CONTEXT_SIZE}, {CONTEXT_SIZE}, 3), got {pixels.shape}")
        if codec.is_image:
            values = np.clip(np.rint(pixels), 0, 255).astype(np.float32)
        else:
            low, high = codec.range
            values = pixels.astype(np.float32) * np.float32((high - low) / 255.0) + np.float32(low)
        if codec.layout == "NCHW":
            values = values.transpose(2, 0, 1)
        return codec.encode(np.ascontiguousarray(values[None]))

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

    def predict(self, x: np.ndarray, context: np.ndarray | None = None) -> np.ndarray:
        """float32 (N, 3, H, W) in [-1, 1] at a size the model takes -> float32 (N, 3, H, W) in [-1, 1].

        Handles NHWC, integer I/O (de)quantization and Core ML image inputs; parity checks use this.
        context: float32 (N, 3, CONTEXT_SIZE, CONTEXT_SIZE) in [-1, 1] for artifacts with a context input
        (default: each image's context_thumbnail); ignored by the others.
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
        if self._context is not None:
            contexts = self._context_batch(x, context)
            raws = [
                self._run_with_context(prepared[i : i + step], contexts[i : i + step])
                for i in range(0, len(prepared), step)
            ]
        else:
            raws = [self.engine.run(prepared[i : i + step]) for i in range(0, len(prepared), step)]
        output = self._output.decode(raws[0] if len(raws) == 1 else np.concatenate(raws, axis=0))
        if self._output.layout == "NHWC":
            output = output.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(
            _convert_range(output, self._output.range, DEFAULT_RANGE), dtype=np.float32
        )

    def _context_batch(self, x: np.ndarray, context: np.ndarray | None) -> np.ndarray:
        """float32 (N, 3, CONTEXT_SIZE, CONTEXT_SIZE) in [-1, 1]: `context`, or each image's thumbnail."""
        if context is None:
            thumbs = [context_thumbnail(to_uint8(image.transpose(1, 2, 0))) for image in x]
            return np.stack([to_float(thumb).transpose(2, 0, 1) for thumb in thumbs])
        context = np.asarray(context, np.float32)
        if context.shape != (len(x), 3, CONTEXT_SIZE, CONTEXT_SIZE):
            raise UsageError(
                f"context must be (N, 3, {CONTEXT_SIZE}, {CONTEXT_SIZE}) like the images, got {context.shape}"
            )
        return context

    def _run_with_context(self, prepared: np.ndarray, contexts: np.ndarray) -> np.ndarray:
        index, codec = self._context
        values = _convert_range(contexts, DEFAULT_RANGE, codec.range)
        if codec.layout == "NHWC":
            values = values.transpose(0, 2, 3, 1)
        arrays: list[np.ndarray] = [np.empty(0), np.empty(0)]
        arrays[self._image_index], arrays[index] = prepared, codec.encode(np.ascontiguousarray(values))
        return self.engine.run_inputs(arrays)

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Session({str(self.path)!r}, backend={self.backend!r}, size={self.size}, layout={self.layout!r}, "
            f"context={self.has_context})"
        )


def load(
    path: str | os.PathLike,
    backend: str | None = None,
    threads: int | None = None,
    providers: Sequence[str] | None = None,
    verify: bool = True,
    max_side: int | None = DEFAULT_MAX_SIDE,
    size_mode: str = "full",
    grain: float = 1.0,
) -> Session:
    """Load an artifact (.onnx, .tflite, .mlpackage/.mlmodel) in the named or best available backend.

    With `verify`, a sidecar manifest's size_bytes and sha256 must match the file before any backend parses
    it (IntegrityError otherwise); callers that verified the artifact already pass False. max_side and
    size_mode: how `Session.run` picks the working size (module docstring; None: no cap). grain: strength
    of the teacher's grain `Session.run` adds when the manifest carries one (runtime.grain; 0: none).
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
    session = Session(path, engine, manifest, sha256, max_side, size_mode, threads, grain)
    session.size_files = size_files(path, manifest)
    session._load_options = {
        "backend": backend,
        "threads": threads,
        "providers": providers,
        "verify": verify,
        "max_side": max_side,
        "size_mode": size_mode,
        "grain": grain,
    }
    return session


SIZE_TAG = re.compile(r"\.\d+x\d+$")  # NAME.PRECISION.WxH.EXT: one file of a per-size export


def size_files(path: Path, manifest: dict[str, Any] | None) -> dict[tuple[int, int], Path]:
    """(H, W) -> file for every file of the same per-size export beside `path` (NAME.PRECISION.EXT,
    NAME.PRECISION.WxH.EXT with fixed-size manifests from the same checkpoint, precision and format), itself
    included; {} for an artifact that is not one of those."""
    source = ((manifest or {}).get("source") or {}).get("checkpoint_sha256")
    if not source or not _fixed_sizes(manifest) or not path.is_file():
        return {}
    base = SIZE_TAG.sub("", path.name[: -len(path.suffix)])
    files = {}
    for candidate in sorted(path.parent.glob(f"{glob_escape(base)}*{path.suffix}")):
        if SIZE_TAG.sub("", candidate.name[: -len(candidate.suffix)]) != base:
            continue
        other = candidate if candidate == path else None
        other_manifest = manifest if other else read_manifest(candidate)
        if not other_manifest or ((other_manifest.get("source") or {}).get("checkpoint_sha256")) != source:
            continue
        if other_manifest.get("precision") != manifest.get("precision"):
            continue
        for size in _fixed_sizes(other_manifest):
            files.setdefault(size, candidate)
    return files if len(files) > 1 else {}


def _fixed_sizes(manifest: dict[str, Any] | None) -> list[tuple[int, int]]:
    sizes = ((manifest or {}).get("input") or {}).get("sizes") or {}
    if sizes.get("dynamic"):
        return []
    return [(int(h), int(w)) for h, w in sizes.get("fixed") or ()]
