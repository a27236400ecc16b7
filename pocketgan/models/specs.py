"""Resolve a model spec string to a torch module: the forms `--teacher` and `inspect` accept.

| spec | meaning |
| `vintage` | the pretrained CycleGAN ResNet-9 modern->vintage teacher |
| `NAME` or `student:NAME` | a registered definition, randomly initialised (kwargs e.g. width) |
| `CHECKPOINT.pt` | a PocketGAN student checkpoint |
| `model.pt2` | a torch.export ExportedProgram, loaded only if nothing in it can run code |
| `pkg.module:factory` | the user's factory, with `weights=` a state dict loaded weights_only |
ONNX files are not torch modules; distill/ wraps them as black-box teachers.

Example: python -c "from pocketgan.models.specs import load_torch_model; print(load_torch_model('vintage'))"
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from pocketgan.errors import ModelLoadError, UsageError


def load_torch_model(spec: str, weights: str | None = None, **model_kwargs) -> torch.nn.Module:
    """A torch module in eval mode for `spec` (see the module docstring)."""
    from pocketgan.models import available, build
    from pocketgan.models.zoo import load_vintage
    from pocketgan.torchload import load_exported_program, load_torch_file

    if spec == "vintage":
        return load_vintage()
    path = Path(spec)
    if path.suffix == ".pt" or path.suffix == ".pth":
        if not path.exists():
            raise ModelLoadError(f"{spec}: no such checkpoint")
        from pocketgan.checkpoint import load_student

        return load_student(path)[0]
    if path.suffix == ".pt2":
        if not path.exists():
            raise ModelLoadError(f"{spec}: no such file")
        return load_exported_program(path).module()
    if path.suffix == ".onnx":
        raise UsageError(f"{spec}: an ONNX model is not a torch module (it can be a black-box teacher)")
    name = spec.removeprefix("student:")
    if name in available():
        model = build(name, **model_kwargs)
    elif ":" in spec:
        model = _from_factory(spec, **model_kwargs)
    else:
        raise UsageError(
            f"unknown model spec {spec!r}: use vintage, a registered name ({', '.join(available())}), "
            "a .pt checkpoint, a .pt2 ExportedProgram, an .onnx file or pkg.module:factory"
        )
    if weights:
        state = load_torch_file(weights)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelLoadError(f"{weights}: does not fit {spec}: {str(exc).splitlines()[0]}") from None
    return model.eval()


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
