"""One resolver for every model spec: `resolve(spec)` -> the module or black box, its kind, source and hash.

| spec | source | kind |
|---|---|---|
| a pretrained name (`vintage`) | `pretrained` | the entry's (teacher) |
| `NAME` or `student:NAME` | `registry` | the definition's: student, else teacher (randomly initialised) |
| `CHECKPOINT.pt` / `.pth` | `checkpoint` | student (a PocketGAN student checkpoint) |
| `model.pt2` | `exported-program` | teacher (a torch.export ExportedProgram, loaded only if nothing in it can run code) |
| `model.onnx` | `onnx` | teacher, a black box: no torch module, run by onnxruntime |
| `pkg.module:factory` | `factory` | teacher (the user's factory) |
`weights=` is a state dict loaded (weights_only) into a registered or factory model.
`hash` identifies the weights: sha256 of the model or weights file, else of spec + state dict.

Example: python -c "from pocketgan.models.resolve import resolve; r = resolve('vintage'); print(r.kind, r.source, r.hash[:12])"
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from pocketgan.checkpoint import load_student
from pocketgan.errors import ModelLoadError, PocketGANError, UsageError
from pocketgan.manifest import sha256_file
from pocketgan.models.registry import available, available_pretrained, build, kind_of, pretrained
from pocketgan.torchload import load_exported_program, load_torch_file

STUDENT_PREFIX = "student:"
_FILE_SOURCES = {".pt": "checkpoint", ".pth": "checkpoint", ".pt2": "exported-program", ".onnx": "onnx"}


def state_dict_sha256(module: torch.nn.Module) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes, bytes) in a fixed order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


@dataclass
class Resolved:
    """A resolved spec. `module` is None for a black box (an ONNX file at `path`)."""

    spec: str
    kind: str  # "student" | "teacher"
    source: str  # "pretrained" | "registry" | "checkpoint" | "exported-program" | "onnx" | "factory"
    module: torch.nn.Module | None
    path: Path | None = None  # the file behind a file spec, or the pretrained weights file
    weights: str | None = None
    name: str | None = None  # the registered name, for pretrained and registry specs
    payload: dict[str, Any] = field(default_factory=dict)  # a student checkpoint's contents

    @property
    def is_black_box(self) -> bool:
        return self.module is None

    @cached_property
    def hash(self) -> str:
        """sha256 identifying the weights (the teacher-output cache key)."""
        if self.path is not None:
            return sha256_file(self.path)
        if self.weights:
            return hashlib.sha256(f"{self.spec}|{sha256_file(self.weights)}".encode()).hexdigest()
        return hashlib.sha256(f"{self.spec}|{state_dict_sha256(self.module)}".encode()).hexdigest()

    def torch_module(self) -> torch.nn.Module:
        """The torch module; a UsageError for a black box."""
        if self.module is None:
            raise UsageError(
                f"{self.spec}: an ONNX model is not a torch module (it can be a black-box teacher)"
            )
        return self.module


def resolve(spec: str, weights: str | None = None, *, role: str = "model", **model_kwargs) -> Resolved:
    """Resolve `spec` (see the module docstring); `role` ("model" | "teacher") words a missing file."""
    entry = pretrained(spec)
    if entry is not None:
        return Resolved(spec, entry.kind, "pretrained", entry.load(), entry.weights_path(), name=spec)
    suffix = Path(spec).suffix
    if suffix in _FILE_SOURCES:
        return _resolve_file(spec, _FILE_SOURCES[suffix], weights, role)
    name = spec.removeprefix(STUDENT_PREFIX)
    if name in available():
        model, source = build(name, **model_kwargs), "registry"
        kind = "student" if kind_of(name) == "student" else "teacher"
    elif ":" in spec:
        model, source, kind, name = _from_factory(spec, **model_kwargs), "factory", "teacher", None
    else:
        raise UsageError(
            f"unknown model spec {spec!r}: use {', '.join(available_pretrained())}, a registered name "
            f"({', '.join(available())}), a .pt checkpoint, a .pt2 ExportedProgram, an .onnx file or "
            "pkg.module:factory"
        )
    if weights:
        state = load_torch_file(weights)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelLoadError(f"{weights}: does not fit {spec}: {str(exc).splitlines()[0]}") from None
    return Resolved(spec, kind, source, model.eval(), weights=weights, name=name)


def _resolve_file(spec: str, source: str, weights: str | None, role: str) -> Resolved:
    path = Path(spec)
    if source == "onnx" and weights:
        raise UsageError("--teacher-weights does not apply to an ONNX teacher (its weights are inside)")
    if not path.is_file():
        what = "teacher file" if role == "teacher" else "checkpoint" if source == "checkpoint" else "file"
        raise ModelLoadError(f"{spec}: no such {what}")
    if source == "onnx":
        return Resolved(spec, "teacher", source, None, path)
    if source == "exported-program":
        return Resolved(spec, "teacher", source, load_exported_program(path).module(), path)
    try:
        model, payload = load_student(path)
    except PocketGANError:
        raise
    except Exception as exc:  # a truncated or foreign file: say so in one line
        raise ModelLoadError(f"{spec}: not a PocketGAN student checkpoint ({type(exc).__name__})") from None
    return Resolved(spec, "student", source, model, path, payload=payload)


def _from_factory(spec: str, **kwargs) -> torch.nn.Module:
    """Import `pkg.module:factory` (explicitly named by the user) and call it."""
    module_name, _, attribute = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ModelLoadError(f"cannot import factory {spec!r}: {exc}") from None
    model = factory(**kwargs)
    if not isinstance(model, torch.nn.Module):
        raise ModelLoadError(f"factory {spec!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model
