"""The export stage's one interface: config, result types, the exporter registry and each format's facts.

An exporter class carries every fact about its format as class data: `name` (the format), `suffix`,
`precisions` and `unsupported_precisions` (with the reason), `unsupported_ops`, and `unverified_reason`
(why its artifacts may not be runnable for parity on some machines). The CLI, the parity matrix, inspect and
demo read these facts from the registry; nothing else lists formats.

Example: python -c "from pocketgan.export import available_formats; print(available_formats())"
"""

from __future__ import annotations

import abc
import contextlib
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pocketgan.errors import UsageError
from pocketgan.status import OK, Status, unavailable

PRECISIONS = ("fp32", "fp16", "int8", "w8", "p6", "int8-full")
PRECISION_MEANING = {
    "fp32": "float32 weights and activations",
    "fp16": "float16 weights (and activations where the format computes in fp16), float32 image I/O",
    "int8": "int8 weights and activations (static, calibrated), float32 image I/O where the format allows",
    "w8": "int8 weights, float activations (weight-only)",
    "p6": "6-bit palettized weights (k-means, 64 values per tensor)",
    "int8-full": "every op integer, no float fallbacks (NPU delegates); TFLite int8 image I/O, ONNX QDQ",
}

_EXPORTERS: dict[str, type[Exporter]] = {}
# A context model's image sizes in dynamic artifacts: H and W multiples of SIDE_MULTIPLE (the students'
# patch and strides) in [MIN_SIDE, MAX_SIDE]; its context input is CONTEXT_SIZE x CONTEXT_SIZE.
SIDE_MULTIPLE, MIN_SIDE, MAX_SIDE, CONTEXT_SIZE = 4, 16, 4096, 256
# 256², 1024x768 and 1920x1080 (W x H), as (H, W): where every artifact's parity is reported.
PARITY_SIZES = ((256, 256), (768, 1024), (1080, 1920))
# ... plus the working sizes a format with fixed sizes (TFLite, one file each) needs most: 1024x576 for 16:9
# video (720p and 1080p frames at the default --max-side; 1024x768 would stretch them and cost 40 % more),
# 768x1024 for portrait photos (selfies: a landscape file would squeeze them 1.8x), and 512x512, 768x512 and
# 512x768 for photos below 1024 px (which never run at a larger size: with only the sizes above, a 640x428
# photo ran at 256²). Chosen on validation at 1280 px (stop 39, README "Full resolution"): +0.06 dB mean.
DEFAULT_SIZES = PARITY_SIZES + ((576, 1024), (1024, 768), (512, 512), (512, 768), (768, 512))


@dataclass(frozen=True)
class ExportConfig:
    """What to export and how; validated on construction and written into every manifest."""

    formats: tuple[str, ...] = field(default_factory=lambda: tuple(_EXPORTERS))  # every registered format
    precisions: tuple[str, ...] = PRECISIONS
    size: int = 256
    out: str = "dist"
    calibration: str | None = None  # a folder of images; default: the embedded training images
    # More images bring int8 closer to fp32; past 128 it stops paying (README, "Measurements behind the defaults").
    calibration_count: int = 128
    validate: bool = True
    name: str | None = None
    keep_float: tuple[str, ...] = ()  # int8: layers (module names) left in float
    keep_float_budget_db: float | None = None  # int8: keep the fewest layers in float that reach this PSNR
    # (H, W) image sizes where a context model's artifacts are checked against torch (each must pass), and
    # where a format without dynamic shapes (TFLite) gets one artifact each.
    sizes: tuple[tuple[int, int], ...] = DEFAULT_SIZES
    # The teacher's grain statistics for the runtime (pocketgan.runtime.grain): "auto" takes grain.json
    # beside the checkpoint when there is one, "none" ships none, anything else is a grain JSON file.
    grain: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "formats", tuple(self.formats))
        object.__setattr__(self, "precisions", tuple(self.precisions))
        unknown = [f for f in self.formats if f not in _EXPORTERS]
        if unknown or not self.formats:
            raise UsageError(
                f"unknown format {', '.join(unknown) or '(none)'}: choose from {', '.join(_EXPORTERS)}"
            )
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad or not self.precisions:
            raise UsageError(
                f"unknown precision {', '.join(bad) or '(none)'}: choose from {', '.join(PRECISIONS)}"
            )
        if not 16 <= int(self.size) <= 4096 or int(self.size) % 8:
            raise UsageError(f"size must be a multiple of 8 between 16 and 4096, got {self.size}")
        if self.calibration is not None and not Path(self.calibration).is_dir():
            raise UsageError(f"--calibration {self.calibration}: not a folder")
        if self.calibration_count < 1:
            raise UsageError("calibration_count must be >= 1")
        object.__setattr__(self, "keep_float", tuple(self.keep_float))
        object.__setattr__(self, "sizes", tuple((int(h), int(w)) for h, w in self.sizes))
        odd = [
            f"{w}x{h}"
            for h, w in self.sizes
            if h % SIDE_MULTIPLE or w % SIDE_MULTIPLE or not MIN_SIDE <= min(h, w) <= max(h, w) <= MAX_SIDE
        ]
        if odd or not self.sizes:
            raise UsageError(
                f"sizes must be W x H multiples of {SIDE_MULTIPLE} between {MIN_SIDE} and {MAX_SIDE}, "
                f"got {', '.join(odd) or 'none'}"
            )
        if (self.keep_float or self.keep_float_budget_db is not None) and "int8" not in self.precisions:
            raise UsageError("--keep-float applies to --precision int8")
        if self.grain not in ("auto", "none") and not Path(self.grain).is_file():
            raise UsageError(f"--grain {self.grain}: not a file (give auto, none or a grain JSON)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "formats": list(self.formats),
            "precisions": list(self.precisions),
            "size": self.size,
            "calibration": self.calibration or "embedded training images",
            "calibration_count": self.calibration_count,
            "validate": self.validate,
            "sizes": [list(size) for size in self.sizes],
            "grain": self.grain,
            **({"keep_float": list(self.keep_float)} if self.keep_float else {}),
            **(
                {"keep_float_budget_db": self.keep_float_budget_db}
                if self.keep_float_budget_db is not None
                else {}
            ),
        }


@dataclass
class ArtifactResult:
    """One (format, precision) outcome: ok, unavailable (why) or failed (the error, kept in status.error)."""

    path: Path | None
    format: str
    precision: str
    status: Status
    manifest: dict[str, Any] | None = None
    seconds: float = 0.0

    @property
    def parity_passed(self) -> bool | None:
        return ((self.manifest or {}).get("parity") or {}).get("passed")


@dataclass
class ExportResult:
    source: str
    name: str
    out: Path
    artifacts: list[ArtifactResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[ArtifactResult]:
        return [a for a in self.artifacts if a.status.is_failed]

    @property
    def parity_failures(self) -> list[ArtifactResult]:
        return [a for a in self.artifacts if a.status.is_ok and a.parity_passed is False]


@dataclass
class Prepared:
    """What every exporter receives: the prepared torch model and what it needs to convert it."""

    model: Any  # torch.nn.Module, eval mode, BatchNorm folded
    size: int
    calibration: Any  # callable ((H, W) or None: the export size) -> float32 (N, 3, H, W) batches in [-1, 1]
    metadata: dict[str, Any]  # the manifest minus file-dependent keys, embedded where the format allows
    keep_float: tuple[str, ...] = ()  # int8: module names (of `model`) whose ops stay float
    # A context model (prepare.has_context): a second "context" input (the 256² thumbnail), and a dynamic
    # image size where the format allows it.
    context: bool = False
    # (H, W) a fixed-size artifact of a context model is converted at (formats without dynamic shapes);
    # None: dynamic, or (size, size) for a model without context.
    fixed: tuple[int, int] | None = None
    # Work the artifacts of one `export` call share, by key (the pipeline passes one dict to all of them).
    shared: dict[Any, Any] = field(default_factory=dict)

    @property
    def trace_size(self) -> tuple[int, int]:
        """The (H, W) of the sample image the model is traced with."""
        return tuple(self.fixed) if self.fixed else (self.size, self.size)

    def fp32_base(self, fmt: str, path: Path, convert: Callable[[Path], None]) -> None:
        """Write `fmt`'s fp32 graph of the model to `path`: `convert(path)` the first time in an export (per
        trace size and context), a copy of those bytes afterwards. fp16, int8 and w8 start from it, so one
        conversion serves every precision (an ONNX export of the default student takes ~6 s each time)."""
        key = ("fp32-base", fmt, self.context, self.trace_size)
        if key in self.shared:
            path.write_bytes(self.shared[key])
        else:
            convert(path)
            self.shared[key] = path.read_bytes()


@dataclass(frozen=True)
class UnsupportedOp:
    """A layer a format's converter cannot take: `matches(module)` is true for it; `why` says so."""

    matches: Callable[[Any], bool]
    why: str


def _is_recurrent(module: Any) -> bool:
    from torch import nn  # only called on torch modules; this module stays torch-free

    return isinstance(module, nn.RNNBase)


def _is_3d_convolution(module: Any) -> bool:
    from torch import nn

    return isinstance(module, (nn.Conv3d, nn.ConvTranspose3d))


# Layers no format takes. Layers that an exporter rewrites itself (padded ConvTranspose2d for TFLite) are
# not listed.
ANY_FORMAT_UNSUPPORTED_OPS = (
    UnsupportedOp(_is_recurrent, "recurrent layers are not exported (a generator runs per frame)"),
    UnsupportedOp(_is_3d_convolution, "3-D convolutions are not supported"),
)


class Exporter(abc.ABC):
    """Converts a prepared model to one format at one precision; `availability()` says if it can run here.

    The class data below are the format's facts; `tests/export/test_export_registry.py` fails when a
    registered exporter leaves one out.
    """

    name: ClassVar[str] = ""  # the format name, set by register_exporter
    suffix: ClassVar[str] = ""  # the artifact's file suffix, with the dot
    libraries: ClassVar[tuple[str, ...]] = ()  # distributions whose versions go into the manifest
    precisions: ClassVar[tuple[str, ...]] = ()  # the PRECISIONS this format can produce
    unsupported_precisions: ClassVar[dict[str, str]] = {}  # every other precision -> why not
    unsupported_ops: ClassVar[tuple[UnsupportedOp, ...]] = ANY_FORMAT_UNSUPPORTED_OPS
    # Why an artifact may not run for parity on some machines (it is then written "unverified: <why>");
    # None: an artifact that does not run is a failed export.
    unverified_reason: ClassVar[str | None] = None
    # True: a context model's artifact takes any image size (manifest sizes "dynamic"); False: one artifact
    # per working size (ExportConfig.sizes), each converted at its own size.
    dynamic_sizes: ClassVar[bool] = True
    # Bumped when the files this exporter writes change for the same checkpoint and options, so that an
    # export cached by `pocketgan run/eval MODEL.pt` (pocketgan.artifacts) is made again.
    revision: ClassVar[int] = 1

    @classmethod
    @abc.abstractmethod
    def availability(cls) -> Status:
        """OK or unavailable(<pip install hint>) (the heavy library is only looked up, not imported)."""

    @classmethod
    def precision_status(cls, precision: str) -> Status:
        """OK when this format can produce `precision`, else unavailable(<why>)."""
        if precision in cls.unsupported_precisions:
            return unavailable(cls.unsupported_precisions[precision])
        return OK

    @classmethod
    def takes_context(cls, precision: str) -> bool:
        """False where a context model's artifact at `precision` keeps one input at the export size (the
        image as its own thumbnail): the format's converter cannot take the context input there."""
        return True

    @classmethod
    def exportability_note(cls, model: Any) -> str | None:
        """What this format will rewrite in `model` (said by `inspect` after "ok"), or None."""
        return None

    @classmethod
    def describe_artifact(cls, path: Path) -> dict[str, Any] | None:
        """What `inspect` says about an artifact of this format, read from the file: {"ops": {op: count},
        "summary": one line, "inputs"/"outputs": [{"name", "shape", "dtype"}], "op_kinds": {kind: count},
        ...more JSON-able keys}; None where the format has nothing to say. pocketgan.artifact_info asks
        this for formats it has no reader of its own for."""
        return None

    @abc.abstractmethod
    def export(self, prepared: Prepared, precision: str, path: Path) -> dict[str, Any]:
        """Write the artifact at `path` (a temporary path); return its manifest "input"/"output" entries.

        Any other entry is a note for the manifest's "export" section (e.g. "int8_method"), except
        "runtime_hints", which goes to the manifest's top level.
        """


# The exporter's io entries that describe the artifact's tensors (manifest top level, embedded in the file).
EMBEDDED_IO = ("input", "output", "context_input")
THUMBNAIL_FUNCTION = "pocketgan.images.context_thumbnail"


def nhwc_io_entries(prepared: Prepared, input_name: str, output_name: str, context_name: str = "context"):
    """Manifest "input"/"output" (and "context_input" for a context model) of NHWC float32 [-1, 1] I/O.

    The image entry's "sizes" says which H x W the artifact takes: dynamic (a context model in a format
    with dynamic shapes), its one fixed size, or the model size."""
    height, width = prepared.trace_size
    tensor = {"layout": "NHWC", "dtype": "float32", "range": [-1, 1], "color": "RGB"}
    image = {"shape": [1, height, width, 3], **tensor}
    io: dict[str, Any] = {
        "input": {"name": input_name, **image, "sizes": image_sizes(prepared)},
        "output": {"name": output_name, **image},
    }
    if prepared.context:
        io["context_input"] = context_entry(
            context_name, {"shape": [1, CONTEXT_SIZE, CONTEXT_SIZE, 3], **tensor}
        )
    return io


def image_sizes(prepared: Prepared) -> dict[str, Any]:
    """The manifest input "sizes" entry (see nhwc_io_entries)."""
    if prepared.context and not prepared.fixed:
        return {"dynamic": True, "multiple": SIDE_MULTIPLE, "min": MIN_SIDE, "max": MAX_SIDE}
    height, width = prepared.trace_size
    return {"dynamic": False, "fixed": [[height, width]]}


def context_entry(name: str, tensor: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, **tensor, "thumbnail": THUMBNAIL_FUNCTION}


def register_exporter(name: str) -> Callable[[type[Exporter]], type[Exporter]]:
    """Class decorator registering an Exporter under `name`; duplicates are refused."""

    def wrap(cls: type[Exporter]) -> type[Exporter]:
        if name in _EXPORTERS:
            raise ValueError(f"exporter {name!r} is already registered")
        cls.name = name
        _EXPORTERS[name] = cls
        return cls

    return wrap


def get_exporter(name: str) -> type[Exporter]:
    if name not in _EXPORTERS:
        raise UsageError(f"unknown format {name!r}: choose from {', '.join(_EXPORTERS)}")
    return _EXPORTERS[name]


def registered_exporters() -> dict[str, type[Exporter]]:
    return dict(_EXPORTERS)


def available_formats() -> dict[str, Status]:
    """{format: "ok" | "unavailable: <pip install hint>"} for every registered exporter."""
    return {name: cls.availability() for name, cls in _EXPORTERS.items()}


def library_missing(*modules: str) -> str | None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return ", ".join(missing) if missing else None


@contextlib.contextmanager
def quiet(logger: logging.Logger) -> Iterator[None]:
    """Capture the progress text converters print (litert-torch, AI Edge Quantizer, coremltools bars).

    The captured text goes to `logger` at debug level, so `pocketgan -v export` still shows it.
    """
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            yield
        finally:
            if buffer.getvalue().strip():
                logger.debug("converter output:\n%s", buffer.getvalue().strip()[-4000:])
