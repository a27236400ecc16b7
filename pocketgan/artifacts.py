"""Model arguments that are not artifacts yet: zoo names and student checkpoints, exported on first use.

`run`, `bench`, `eval`, `parity` and `inspect` take an artifact (.onnx, .tflite, .mlpackage), a zoo name
(`vintage-mobile`: pocketgan/zoo/NAME/student.pt) or a student checkpoint (.pt). A checkpoint is exported
once into a cache keyed by its content (sha256, with that of the grain.json beside it), the format, the
precision and the exporter's revision (a newer exporter writes a new entry): `$POCKETGAN_CACHE`, else
~/.cache/pocketgan/artifacts; an entry is exported into a temporary folder and renamed into place, so a
cache entry is always whole. Where the exporter cannot run (a runtime-only install without torch), the
user is told the exact `pocketgan export` command instead (exit 2). Importing this module imports neither
torch nor the exporters.

Example: python -c "from pocketgan.artifacts import resolve_model; print(resolve_model('vintage-mobile'))"
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shlex
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import click

from pocketgan.errors import PocketGANError, UsageError
from pocketgan.manifest import sha256_file
from pocketgan.status import unavailable

ZOO = Path(__file__).with_name("zoo")
ZOO_CHECKPOINT = "student.pt"
CHECKPOINT_SUFFIXES = (".pt", ".pth")
# What a checkpoint becomes when no format is named: fp32 ONNX is the quickest export (seconds, where
# int8 TFLite calibrates and converts for tens of seconds), equals torch within 1e-3, and onnxruntime
# runs it on every desktop platform.
DEFAULT_FORMAT = "onnx"
DEFAULT_PRECISION = "fp32"
CACHE_VARIABLE = "POCKETGAN_CACHE"

Note = Callable[[str], None]


def _stderr_note(text: str) -> None:
    click.echo(f"note: {text}", err=True)


def zoo_names() -> list[str]:
    """Names of the students shipped in pocketgan/zoo."""
    return sorted(p.parent.name for p in ZOO.glob(f"*/{ZOO_CHECKPOINT}"))


def checkpoint_of(model: str | os.PathLike) -> Path | None:
    """The student checkpoint a model argument names (zoo name or .pt file), or None for anything else."""
    text = str(model)
    if text in zoo_names() and not Path(text).exists():
        return ZOO / text / ZOO_CHECKPOINT
    path = Path(text)
    return path if path.suffix.lower() in CHECKPOINT_SUFFIXES else None


def cache_home(configured: str | os.PathLike | None = None) -> Path:
    """The folder every pocketgan cache lives in: `configured`, else $POCKETGAN_CACHE, else ~/.cache/pocketgan.

    The teacher outputs (distill.cache), the full-size teacher outputs (evals.fullres) and the unpacked
    photos (pocketgan.data.photos) are subfolders of it."""
    return Path(configured or os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "pocketgan")


def cache_root() -> Path:
    """Where exported checkpoints are kept: $POCKETGAN_CACHE, else ~/.cache/pocketgan/artifacts."""
    return cache_home() if os.environ.get(CACHE_VARIABLE) else cache_home() / "artifacts"


def export_command(checkpoint: Path, fmt: str, precision: str) -> str:
    """The `pocketgan export` command that makes this artifact by hand."""
    words = [
        "pocketgan",
        "export",
        str(checkpoint),
        "--format",
        fmt,
        "--precision",
        precision,
        "--out",
        "dist/",
    ]
    return " ".join(shlex.quote(word) for word in words)


def _exporter(fmt: str):
    """The registered exporter class of `fmt` (importing the registry imports no torch)."""
    from pocketgan.export import registered_exporters

    exporters = registered_exporters()
    if fmt not in exporters:
        raise UsageError(f"unknown artifact format {fmt!r}: choose from {', '.join(exporters)}")
    return exporters[fmt]


def resolve_folder(model: str | os.PathLike, fmt: str | None = None, precision: str | None = None) -> Path:
    """An artifacts folder: as given; for a zoo name or checkpoint, the cache folder of its export."""
    return resolve_model(model, fmt, precision).parent if checkpoint_of(model) else Path(model)


def resolve_model(
    model: str | os.PathLike,
    fmt: str | None = None,
    precision: str | None = None,
    note: Note = _stderr_note,
) -> Path:
    """An artifact path for `model`: an artifact as given; a zoo name or checkpoint exported into the cache."""
    checkpoint = checkpoint_of(model)
    if checkpoint is None:
        return Path(model)
    if not checkpoint.is_file():
        raise UsageError(f"{checkpoint}: no such checkpoint")
    fmt, precision = fmt or DEFAULT_FORMAT, precision or DEFAULT_PRECISION
    exporter = _exporter(fmt)
    revision = f"-r{exporter.revision}" if exporter.revision > 1 else ""  # a newer exporter: a new entry
    entry = cache_root() / f"{_content_key(checkpoint)}-{fmt}-{precision}{revision}"
    artifact = entry / f"student.{precision}{exporter.suffix}"
    if artifact.exists():
        return artifact
    _check_exporter(model, checkpoint, fmt, precision)
    note(
        f"{model}: exporting {fmt} {precision} once into {entry} (choose with --artifact-format/--precision)"
    )
    _export_into(entry, checkpoint, fmt, precision)
    return artifact


def _content_key(checkpoint: Path) -> str:
    """The checkpoint's sha256 (16 hex), with that of the grain.json beside it (which export puts into the
    manifest) mixed in when there is one: a changed grain fit is a new cache entry."""
    key = sha256_file(checkpoint)
    grain = checkpoint.parent / "grain.json"
    if grain.is_file():
        key = hashlib.sha256(f"{key}|{sha256_file(grain)}".encode()).hexdigest()
    return key[:16]


def torch_installed() -> bool:
    """Whether torch can be imported here (looked up, not imported)."""
    try:
        return importlib.util.find_spec("torch") is not None
    except ImportError:  # an import hook that refuses it
        return False


def _check_exporter(model, checkpoint: Path, fmt: str, precision: str) -> None:
    exporter = _exporter(fmt)
    status = exporter.availability() if torch_installed() else unavailable("torch is not installed")
    if status.is_ok:
        status = exporter.precision_status(precision)
    if not status.is_ok:
        raise UsageError(
            f"{model} is a student checkpoint and this install cannot export it ({status}); "
            f"export it where the exporters are installed: {export_command(checkpoint, fmt, precision)}"
        )


def _export_into(entry: Path, checkpoint: Path, fmt: str, precision: str) -> None:
    """Export into a temporary folder beside `entry`, then rename it into place (another process may win)."""
    from pocketgan.export import ExportConfig, export  # imports torch when it runs

    entry.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        result = export(
            str(checkpoint), ExportConfig(formats=(fmt,), precisions=(precision,), out=str(temporary))
        )
        # TFLite: one artifact per working size, the export size's first (a context model's).
        for artifact in result.artifacts:
            if not artifact.status.is_ok:
                raise PocketGANError(f"{checkpoint}: export to {fmt} {precision} {artifact.status}")
            if artifact.parity_passed is False:
                raise PocketGANError(f"{checkpoint}: the {fmt} {precision} export failed its parity check")
        try:
            os.rename(temporary, entry)
        except OSError:
            if not entry.is_dir():
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def artifact_options(command):
    """`--artifact-format` and `--precision`: what a zoo name or checkpoint argument is exported to."""
    command = click.option(
        "--precision",
        "artifact_precision",
        default=None,
        help=f"Precision a zoo name or .pt checkpoint is exported to [{DEFAULT_PRECISION}].",
    )(command)
    return click.option(
        "--artifact-format",
        default=None,
        help=f"Format a zoo name or .pt checkpoint is exported to (an export --format) [{DEFAULT_FORMAT}].",
    )(command)
