"""`export(source, ExportConfig) -> ExportResult`: every requested format x precision, manifest, parity.

Example: pocketgan export runs/quick/best.pt --format all --precision all --out dist/
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan.data import heldout_images, training_images
from pocketgan.errors import UnsupportedOpError, UsageError
from pocketgan.export._runners import predict_traced
from pocketgan.export.base import ArtifactResult, ExportConfig, ExportResult, Prepared, get_exporter, quiet
from pocketgan.export.parity import compare, threshold_text
from pocketgan.images import center_crop_square, context_thumbnail, load_images, resize, to_nchw
from pocketgan.manifest import (
    atomic_path,
    library_versions,
    manifest_path,
    now_iso,
    remove_stale_temps,
    sha256_file,
    size_bytes,
    write_manifest,
)
from pocketgan.status import OK, failed

log = logging.getLogger(__name__)


def _load_source(source: str) -> tuple[Any, dict[str, Any], str]:
    """(torch module, manifest "source" entry, default artifact name) for a checkpoint or model spec."""
    from pocketgan.models.resolve import resolve  # imports torch

    resolved = resolve(source)
    model = resolved.torch_module()
    if resolved.source == "checkpoint":
        entry = {
            "kind": "student",
            "checkpoint": str(resolved.path),
            "checkpoint_sha256": resolved.hash,
            "student": resolved.payload["student"],
            "student_kwargs": resolved.payload.get("student_kwargs", {}),
            "config": resolved.payload.get("config"),
        }
        return model, entry, "student"
    entry = {
        "kind": resolved.kind,
        "checkpoint": None,
        "checkpoint_sha256": None,
        "spec": source,
        "student": resolved.name if resolved.kind == "student" else None,
        "student_kwargs": {},
        "config": None,
    }
    return model, entry, resolved.kind


def grain_section(config: ExportConfig, source_entry: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest's "grain" section (pocketgan.runtime.grain.GrainModel as JSON), or None for none."""
    from pocketgan.runtime.grain import GrainModel

    if config.grain == "none":
        return None
    if config.grain == "auto":
        checkpoint = source_entry.get("checkpoint")
        path = Path(checkpoint).parent / "grain.json" if checkpoint else None
        if path is None or not path.is_file():
            return None
    else:
        path = Path(config.grain)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"--grain {path}: unreadable ({exc})") from None
    return GrainModel.from_json(data).to_json() | {"file": str(path)}


FIXED_SIZE_CALIBRATION_IMAGES = 16


def calibration_images(config: ExportConfig, size: tuple[int, int] | None = None) -> np.ndarray:
    """float32 (N, 3, H, W) in [-1, 1]: --calibration images (center-cropped) or the embedded set, at the
    export size; at another `size` (H, W) (a fixed-size artifact), FIXED_SIZE_CALIBRATION_IMAGES of them
    at that size: --calibration images resized whole, or embedded crops taken at that size (real detail,
    not 256² crops blown up: those calibrate activation ranges too narrow for photos)."""
    if config.calibration:
        loaded = load_images(config.calibration)
        if not loaded.images:
            raise UsageError(f"--calibration {config.calibration}: no readable images")
        if size is not None:
            return to_nchw([resize(img, size) for img in loaded.images[:FIXED_SIZE_CALIBRATION_IMAGES]])
        images = [
            resize(center_crop_square(img), config.size) for img in loaded.images[: config.calibration_count]
        ]
    elif size is not None:
        height, width = size
        crops = training_images(FIXED_SIZE_CALIBRATION_IMAGES, max(size), seed=20261128)
        top, left = (max(size) - height) // 2, (max(size) - width) // 2
        images = [crop[top : top + height, left : left + width] for crop in crops]
    else:
        images = training_images(config.calibration_count, config.size, seed=20261128)
    return to_nchw(images)


def size_key(size: tuple[int, int]) -> str:
    """(H, W) -> "WxH", how manifests and the README name an image size ("1920x1080")."""
    return f"{size[1]}x{size[0]}"


def _reference(model, size: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    import torch

    named = heldout_images(size)
    x = to_nchw([image for _, image in named])
    with torch.no_grad():
        y = np.concatenate([model(torch.from_numpy(x[i : i + 1])).numpy() for i in range(len(x))])
    return [name for name, _ in named], x, y


def _references(model, config: ExportConfig, context: bool) -> dict[tuple[int, int], tuple]:
    """{(H, W): (names, x, contexts, torch outputs)}: the test portraits at each size parity is checked at.

    A model without context: at the export size, contexts None. A context model: the whole portraits
    resized to each of `config.sizes` (aspect not kept, as a photo of that size), each with its
    context_thumbnail, through the torch model with that thumbnail, as the artifacts get them.
    """
    if not context:
        names, x, y = _reference(model, config.size)
        return {(config.size, config.size): (names, x, None, y)}
    import torch

    named = heldout_images(None)
    references = {}
    for height, width in config.sizes:
        images = [resize(image, (height, width)) for _, image in named]
        x, contexts = to_nchw(images), to_nchw([context_thumbnail(image) for image in images])
        with torch.no_grad():
            y = [
                model(torch.from_numpy(x[i : i + 1]), torch.from_numpy(contexts[i : i + 1]))
                for i in range(len(x))
            ]
        references[(height, width)] = ([name for name, _ in named], x, contexts, torch.cat(y).numpy())
    return references


def export(source: str, config: ExportConfig | None = None) -> ExportResult:
    """Export `source` (a student checkpoint .pt or a model spec such as "vintage") per `config`."""
    from pocketgan.export.prepare import check_ops, has_context, prepare_model  # imports torch

    config = config or ExportConfig()
    started = time.perf_counter()
    model, source_entry, default_name = _load_source(source)
    name = config.name or default_name
    out = Path(config.out)
    for stale in remove_stale_temps(out):  # what an export killed mid-write left behind
        log.info("removed %s, left by an interrupted export", stale)
    context = has_context(model)
    prepared_model, notes = prepare_model(model, config.size)
    source_entry = {**source_entry, **_cost(model, config.size)}
    grain = grain_section(config, source_entry)
    if config.keep_float:
        from pocketgan.export.keep_float import check_layers

        check_layers(prepared_model, config.keep_float)
    if config.keep_float_budget_db is not None and not config.validate:
        raise UsageError("--keep-float auto measures parity: drop --no-validate")
    calibration = functools.cache(lambda size=None: calibration_images(config, size))
    # Parity references: of the model with its context input, or (an artifact without it) with thumb = image.
    reference = functools.cache(lambda with_context: _references(model, config, with_context))
    result = ExportResult(source=source, name=name, out=out)
    progress = _progress(config)
    shared: dict = {}  # work the artifacts share (Prepared.fp32_base)
    for fmt, precision in progress:
        progress.set_postfix_str(f"{fmt} {precision}")
        exporter_class = get_exporter(fmt)
        artifact = out / f"{name}.{precision}{exporter_class.suffix}"
        status = exporter_class.availability()
        if status.is_ok:
            status = exporter_class.precision_status(precision)
        if not status.is_ok:
            result.artifacts.append(ArtifactResult(None, fmt, precision, status))
            continue
        try:
            check_ops(model, fmt)
        except UnsupportedOpError as exc:
            result.artifacts.append(ArtifactResult(None, fmt, precision, failed(str(exc), exc)))
            continue
        metadata = {
            "name": name,
            "format": fmt,
            "precision": precision,
            "source": source_entry,
            "export": {**config.to_dict(), **notes},
            "versions": library_versions(exporter_class.libraries),
            "created": now_iso(),
            **({"grain": grain} if grain else {}),
        }
        keep = config.keep_float if precision == "int8" else ()
        with_context = context and exporter_class.takes_context(precision)
        for fixed in _fixed_sizes(exporter_class, with_context, config):
            prepared = Prepared(
                prepared_model,
                config.size,
                calibration,
                metadata,
                keep,
                context=with_context,
                fixed=fixed,
                shared=shared,
            )
            export_one = functools.partial(
                _export_one,
                exporter_class(),
                precision=precision,
                artifact=_sized_name(artifact, fixed, config.size),
                reference=_for_sizes(reference(with_context) if config.validate else None, fixed),
            )
            if precision == "int8" and config.keep_float_budget_db is not None:
                result.artifacts.append(_budgeted(export_one, prepared, fmt, config.keep_float_budget_db))
            else:
                result.artifacts.append(export_one(prepared))
    progress.close()
    result.seconds = time.perf_counter() - started
    return result


def _fixed_sizes(exporter_class, context: bool, config: ExportConfig) -> list[tuple[int, int] | None]:
    """None (one artifact: dynamic sizes, or a model without context at the export size), or one fixed
    (H, W) per working size for a context model in a format without dynamic shapes (TFLite)."""
    return list(config.sizes) if context and not exporter_class.dynamic_sizes else [None]


def _sized_name(artifact: Path, fixed: tuple[int, int] | None, size: int) -> Path:
    """NAME.PRECISION.SUFFIX, or NAME.PRECISION.WxH.SUFFIX for a fixed size other than size x size."""
    if fixed is None or tuple(fixed) == (size, size):
        return artifact
    return artifact.with_name(f"{artifact.stem}.{size_key(fixed)}{artifact.suffix}")


def _for_sizes(reference, fixed: tuple[int, int] | None):
    """The references a fixed-size artifact is checked at: its own size only; others: every size."""
    if reference is None or fixed is None:
        return reference
    return {size: entry for size, entry in reference.items() if size == tuple(fixed)}


def _cost(model, size: int) -> dict[str, Any]:
    """The source model's MACs at the export size, counted the one way (pocketgan.flops), for inspect."""
    from pocketgan.flops import MAC_METHOD, count_macs

    return {"macs": count_macs(model, size), "mac_method": MAC_METHOD}


def _progress(config: ExportConfig):
    """The format x precision pairs, with a progress bar on stderr (shown on a terminal only)."""
    from tqdm import tqdm

    pairs = list(itertools.product(config.formats, config.precisions))
    return tqdm(pairs, desc="pocketgan export", unit="artifact", file=sys.stderr, disable=None)


def _budgeted(export_one, prepared: Prepared, fmt: str, budget_db: float) -> ArtifactResult:
    """int8 with the fewest layers in float that reach `budget_db` (export/keep_float.py); logged in the manifest."""
    from pocketgan.export.keep_float import search

    outcome, summary = search(export_one, prepared, fmt, budget_db)
    if outcome.status.is_ok and outcome.manifest is not None:
        outcome.manifest["keep_float_search"] = summary
        write_manifest(outcome.path, outcome.manifest)
    return outcome


def _export_one(exporter, prepared: Prepared, precision: str, artifact: Path, reference) -> ArtifactResult:
    started = time.perf_counter()
    for stale in (artifact, manifest_path(artifact)):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    try:
        # The manifest is written while the artifact still has its temporary name: an interruption leaves
        # either nothing or a manifest without a model, never a model that looks finished.
        with atomic_path(artifact) as tmp:
            with quiet(log):
                io = exporter.export(prepared, precision, tmp)
            manifest = {
                **prepared.metadata,
                "sha256": sha256_file(tmp),
                "size_bytes": size_bytes(tmp),
                "input": io["input"],
                "output": io["output"],
                "parity": _parity(exporter, tmp, precision, reference),
            }
            top_level = ("input", "output", "runtime_hints", "context_input")
            notes = {key: value for key, value in io.items() if key not in top_level}
            manifest["export"] = {**manifest["export"], **notes}
            for key in ("runtime_hints", "context_input"):
                if key in io:
                    manifest[key] = io[key]
            if precision == "int8":
                manifest["keep_float"] = list(prepared.keep_float)
            if tmp.suffix in (".onnx", ".tflite"):
                from pocketgan.export.integer import float_ops

                manifest["npu"] = float_ops(tmp)
            write_manifest(artifact, manifest)
    except KeyboardInterrupt:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(manifest_path(artifact))
        raise
    except Exception as exc:
        log.debug("export of %s failed", artifact, exc_info=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(manifest_path(artifact))
        why = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        return ArtifactResult(None, exporter.name, precision, failed(f"{type(exc).__name__}: {why}", exc))
    return ArtifactResult(artifact, exporter.name, precision, OK, manifest, time.perf_counter() - started)


def _parity(exporter, path: Path, precision: str, reference) -> dict[str, Any]:
    entry: dict[str, Any] = {"reference": "torch", "threshold": threshold_text(precision)}
    if reference is None:
        return {
            **entry,
            "images": [],
            "psnr_db": None,
            "max_abs": None,
            "passed": None,
            "verified_by": "unverified: --no-validate",
        }
    entry["images"] = next(iter(reference.values()))[0]
    try:
        per_size = {
            size_key(size): _parity_at(path, precision, *checked) for size, checked in reference.items()
        }
    except Exception as exc:
        if exporter.unverified_reason is None:
            raise
        log.info("%s parity not run: %s", exporter.name, exc)
        unverified = f"unverified: {exporter.unverified_reason}"
        return {**entry, "psnr_db": None, "max_abs": None, "passed": None, "verified_by": unverified}
    worst = min(per_size.values(), key=lambda checked: checked["psnr_db"])
    first_nonfinite = next(
        (c["first_nonfinite_op"] for c in per_size.values() if "first_nonfinite_op" in c), None
    )
    result = {
        **entry,
        "psnr_db": worst["psnr_db"],
        "max_abs": max(checked["max_abs"] for checked in per_size.values()),
        "passed": all(checked["passed"] for checked in per_size.values()),
        "verified_by": worst["verified_by"],
        "per_image": worst["per_image"],
        **({"first_nonfinite_op": first_nonfinite} if first_nonfinite else {}),
    }
    for checked in per_size.values():
        del checked["verified_by"]
    if len(per_size) > 1 or next(iter(reference.values()))[2] is not None:
        result["sizes"] = per_size  # "WxH" -> that size's numbers; passed only if every size passed
    return result


def _parity_at(path: Path, precision: str, names, x, contexts, y_ref) -> dict[str, Any]:
    """The artifact against torch on the reference images at one size."""
    y, verified_by, first_nonfinite = predict_traced(path, x, contexts)
    overall = compare(y, y_ref, precision)
    return {
        "psnr_db": overall["psnr_db"],
        "max_abs": overall["max_abs"],
        "passed": overall["passed"],
        "verified_by": verified_by,
        "per_image": {name: compare(y[i], y_ref[i], precision) for i, name in enumerate(names)},
        **({"first_nonfinite_op": first_nonfinite} if first_nonfinite else {}),
    }
