"""Every teacher as one `Teacher`: `teacher(x)` maps [-1, 1] NCHW to [-1, 1] NCHW, whatever it is underneath.

A teacher is any spec `pocketgan.models.resolve` takes: torch modules (feature taps available) and ONNX
black boxes run by onnxruntime (outputs only). `teacher.hash` identifies the weights, for the cache.
Distillation trains against it; eval and parity compare artifacts with it.

Example: python -c "from pocketgan.models.teacher import load_teacher; t = load_teacher('vintage'); print(t.hash[:12])"
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import numpy as np
import torch

from pocketgan.config import DEFAULT_TEACHER
from pocketgan.errors import ModelLoadError, UsageError
from pocketgan.models.resolve import Resolved, resolve

log = logging.getLogger(__name__)


class Teacher:
    """A frozen teacher. `module` is the torch module (None for ONNX black boxes)."""

    def __init__(self, spec: str, hash: str, module: torch.nn.Module | None = None, onnx_session=None):
        self.spec = spec
        self.hash = hash
        self.module = module
        self._onnx_session = onnx_session
        self.device = torch.device("cpu")
        if module is not None:
            with contextlib.suppress(
                NotImplementedError
            ):  # a .pt2 module refuses eval(); it is frozen anyway
                module.eval()
            module.requires_grad_(False)

    @property
    def has_features(self) -> bool:
        return self.module is not None

    def to(self, device: torch.device | str) -> Teacher:
        self.device = torch.device(device)
        if self.module is not None:
            self.module.to(self.device)
        return self

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [-1, 1] -> (N, 3, H, W) float32 in [-1, 1] on x's device."""
        if self.module is not None:
            return self.module(x.to(self.device, torch.float32)).float().clamp(-1, 1).to(x.device)
        return self._run_onnx(x)

    def _run_onnx(self, x: torch.Tensor) -> torch.Tensor:
        session = self._onnx_session
        feed = {session.get_inputs()[0].name: x.detach().cpu().float().numpy()}
        try:
            output = session.run(None, feed)[0]
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:200]
            raise ModelLoadError(f"{self.spec}: onnxruntime could not run the teacher ({first})") from None
        output = np.asarray(output, dtype=np.float32)
        if output.shape != tuple(x.shape):
            raise ModelLoadError(f"{self.spec}: output shape {output.shape} != input shape {tuple(x.shape)}")
        return torch.from_numpy(np.clip(output, -1, 1)).to(x.device)

    @contextlib.contextmanager
    def feature_taps(self, layers: list[str]) -> Iterator[dict[str, torch.Tensor]]:
        """Within the block, each call fills the yielded dict with the outputs of the named submodules."""
        if self.module is None:
            raise UsageError(f"{self.spec}: feature distillation needs a torch teacher (ONNX is a black box)")
        features: dict[str, torch.Tensor] = {}
        handles = [
            find_module(self.module, name, "teacher").register_forward_hook(_store_output(features, name))
            for name in layers
        ]
        try:
            yield features
        finally:
            for handle in handles:
                handle.remove()


def _store_output(store: dict[str, torch.Tensor], name: str):
    def hook(module, inputs, output):
        store[name] = output

    return hook


def find_module(model: torch.nn.Module, name: str, role: str) -> torch.nn.Module:
    """The submodule at dotted path `name`, or a UsageError listing a few valid names."""
    modules = dict(model.named_modules())
    if name not in modules:
        sample = ", ".join(n for n in list(modules)[1:12])
        raise UsageError(f"{role} has no layer {name!r}; some layers: {sample}, ...")
    return modules[name]


def load_teacher(spec: str = DEFAULT_TEACHER, weights: str | None = None) -> Teacher:
    """Resolve a `--teacher` spec (and `--teacher-weights`) into a `Teacher` on the CPU."""
    resolved = resolve(spec, weights, role="teacher")
    if resolved.is_black_box:
        return Teacher(spec, resolved.hash, onnx_session=_onnx_session(resolved))
    return Teacher(spec, resolved.hash, module=resolved.module)


def _onnx_session(resolved: Resolved):
    try:
        import onnxruntime
    except ImportError:
        raise ModelLoadError("an ONNX teacher needs onnxruntime: pip install onnxruntime") from None
    try:
        return onnxruntime.InferenceSession(str(resolved.path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise ModelLoadError(f"{resolved.path}: onnxruntime cannot load it ({first})") from None
