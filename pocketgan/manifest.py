"""The artifact manifest written beside every exported model, and atomic file writes (torch-free).

Example: python -c "from pocketgan.manifest import read_manifest; print(read_manifest('dist/student.onnx'))"
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pocketgan
from pocketgan.errors import IntegrityError, ModelLoadError
from pocketgan.metrics import json_ready

MANIFEST_SUFFIX = ".manifest.json"
TEMP_PREFIX = ".tmp-"  # atomic_path's temporary entries: `.tmp-PID-NAME-RANDOM`
_TEMP_OWNER = re.compile(re.escape(TEMP_PREFIX) + r"(\d{1,10})-")
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP}
EMBEDDED_MANIFEST_KEY = "pocketgan_manifest"  # the manifest's name inside a model file's metadata
REQUIRED_KEYS = (
    "format",
    "precision",
    "sha256",
    "size_bytes",
    "input",
    "output",
    "source",
    "parity",
    "versions",
    "created",
)
TENSOR_KEYS = ("shape", "layout", "dtype", "range", "color")
PARITY_KEYS = ("reference", "images", "psnr_db", "max_abs", "passed", "verified_by")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, or of every file under a directory (e.g. an .mlpackage) in sorted order.

    For a directory each file contributes its path relative to the directory, then its bytes: the digest
    is the same before and after the atomic rename from `.tmp-*/NAME` to NAME, and changes when any file
    inside is added, removed, renamed or edited. `size_bytes` sums the same files.
    """
    digest = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
    return digest.hexdigest()


def size_bytes(path: str | os.PathLike) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `final`; move it into place only if the block succeeds.

    Works for files and directories (an .mlpackage is a directory). A crash leaves at most a
    `.tmp-PID-*` entry, never a half-written file under the final name; `remove_stale_temps` clears
    those of dead writers. With `replace=False` (files only) the final name is created exclusively:
    FileExistsError when it exists, also when another process created it since the check.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    # The writer's pid in the name tells a later writer whether this entry's owner is still alive.
    tmp_dir = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-{final.name}-", dir=final.parent))
    tmp = tmp_dir / final.name
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp}")
        if replace:
            if final.is_dir() and not final.is_symlink():
                shutil.rmtree(final)
            os.replace(tmp, final)
        else:
            _link_exclusively(tmp, final)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _link_exclusively(tmp: Path, final: Path) -> None:
    """Give the finished file `tmp` the name `final` unless that name exists (FileExistsError)."""
    try:
        os.link(tmp, final)  # atomic, and never replaces: the O_EXCL of a finished file
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # No hard links on this file system (FAT, some shares): claim the name with O_EXCL, then move the
        # finished file onto our own claim.
        os.close(os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        os.replace(tmp, final)


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the `.tmp-PID-*` entries that `atomic_path` writers which have since died left in `folder`.

    Entries of live processes (or of another user's) are kept, so a concurrent writer is never disturbed.
    A writer on another machine (or container) sharing the folder is not seen: its pid means nothing here.
    """
    removed = []
    for entry in sorted(Path(folder).glob(f"{TEMP_PREFIX}*")):
        match = _TEMP_OWNER.match(entry.name)
        if match is None or _process_alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _process_alive(pid: int) -> bool:
    """Whether `pid` may still be writing: true for this process and wherever we cannot tell."""
    if pid == os.getpid() or os.name != "posix":  # on Windows os.kill(pid, 0) is no harmless probe
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process (or no pid we would have written): leave it alone
    return True


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, replace: bool = True) -> None:
    """Write `data` to `path` atomically; with `replace=False` FileExistsError if `path` exists."""
    with atomic_path(path, replace=replace) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as JSON (non-finite numbers as "inf"/"-inf"/"nan": pocketgan.metrics.json_ready)."""
    text = json.dumps(json_ready(obj), indent=2, sort_keys=False, default=str)
    atomic_write_bytes(path, (text + "\n").encode())


def library_versions(names: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Installed versions of the named distributions ('not installed' where missing)."""
    versions = {"pocketgan": pocketgan.__version__}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def manifest_path(artifact: str | os.PathLike) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + MANIFEST_SUFFIX)


def validate_manifest(manifest: dict[str, Any]) -> None:
    """Raise ModelLoadError naming the first missing key."""
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    for side in ("input", "output"):
        if isinstance(manifest.get(side), dict):
            missing += [f"{side}.{k}" for k in TENSOR_KEYS if k not in manifest[side]]
    if isinstance(manifest.get("parity"), dict):
        missing += [f"parity.{k}" for k in PARITY_KEYS if k not in manifest["parity"]]
    if missing:
        raise ModelLoadError(f"manifest is missing keys: {', '.join(missing)}")


def write_manifest(artifact: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    validate_manifest(manifest)
    path = manifest_path(artifact)
    atomic_write_json(path, manifest)
    return path


def read_manifest(artifact: str | os.PathLike) -> dict[str, Any] | None:
    """The sidecar manifest of an artifact, or None when there is none."""
    path = manifest_path(artifact)
    if not path.exists():
        return None
    return parse_manifest(path.read_bytes(), str(path))


def verify_artifact(
    artifact: str | os.PathLike, manifest: dict[str, Any] | None = None, required: bool = False
) -> str | None:
    """Check an artifact against the `size_bytes` and `sha256` of its manifest (default: its sidecar).

    Returns the sha256 it computed (hashed once, after the cheap size check), or None when no manifest
    declares one. Raises IntegrityError on a missing file or a mismatch, and, when `required`, on a manifest
    that declares no sha256 or size_bytes.
    """
    path = Path(artifact)
    manifest = read_manifest(path) if manifest is None else manifest
    declared_size, declared_sha256 = (manifest or {}).get("size_bytes"), (manifest or {}).get("sha256")
    if required and (declared_size is None or declared_sha256 is None):
        raise IntegrityError(f"{path}: its manifest declares no sha256 and size_bytes to check it against")
    if declared_size is None and declared_sha256 is None:
        return None
    if not path.exists():
        raise IntegrityError(f"{path}: missing: its manifest describes a file that is not there")
    changed = "changed after export: re-export it or restore the file its manifest describes"
    actual_size = size_bytes(path)
    if declared_size is not None and actual_size != declared_size:
        raise IntegrityError(
            f"{path}: {actual_size} bytes where its manifest says {declared_size}: the artifact {changed}"
        )
    if declared_sha256 is None:
        return None
    digest = sha256_file(path)
    if digest != declared_sha256:
        raise IntegrityError(
            f"{path}: sha256 {digest[:12]}... where its manifest says {str(declared_sha256)[:12]}...: "
            f"the artifact {changed}"
        )
    return digest


def verify_artifacts(artifacts: list[str | os.PathLike], required: bool = False) -> None:
    """`verify_artifact` on each; one IntegrityError naming every artifact that fails."""
    problems = []
    for artifact in artifacts:
        try:
            verify_artifact(artifact, required=required)
        except IntegrityError as exc:
            problems.append(str(exc))
    if problems:
        raise IntegrityError("; ".join(problems))


def parse_manifest(text: str | bytes, where: str) -> dict[str, Any]:
    """A manifest's JSON (text, or UTF-8 bytes as written) -> dict; ModelLoadError naming `where` when it is
    not UTF-8 or not a JSON object."""
    try:
        manifest = json.loads(text.decode() if isinstance(text, bytes) else text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{where}: not a valid manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise ModelLoadError(f"{where}: not a valid manifest (not a JSON object)")
    return manifest
