"""Reference runtime: run an exported artifact (.onnx, .tflite, .mlpackage, .pte) on images.

Torch-free, but for the "executorch" backend (.pte): ExecuTorch's Python runtime links libtorch, imported only
when a .pte is loaded.

    from pocketgan import runtime
    session = runtime.load("dist/student.fp32.onnx", threads=2)   # backend chosen by file type
    styled = session.run(photo)          # uint8 (H, W, 3) RGB in and out, at the photo's size
    y = session.predict(x)               # float32 (N, 3, H, W) in [-1, 1] at the model size

Images are resized to the model size and back with `pocketgan.images.resize` (Pillow bicubic on uint8
RGB), the one resize filter of every PocketGAN stage, so parity numbers mean the same everywhere.
`runtime.keep_freed_memory()` keeps freed memory in the process (glibc), so a loop over photos does not
page-fault its resize buffers back in each call; process-wide, so opt-in (`pocketgan run` calls it).
Backends register by name (`register_backend`); `available_backends()` says which can run here and why not.

Adding a backend for a new format (e.g. ExecuTorch):
  1. runtime/NAME.py: a class `@register_backend("NAME")` subclassing `base.Backend`, with `format` (the
     exporter's format name) and `suffixes` as class data, `availability()`, `__init__` (fill `inputs` and
     `outputs` with TensorSpec) and `run()`; import the engine library inside the methods, never at the top.
  2. runtime/backends.py: one line, "pocketgan.runtime.NAME", in BACKEND_MODULES.
File-type dispatch (`load`), the manifest's format check and eval's artifact discovery follow from
`suffixes` and `format`; tests/runtime/test_runtime_registry.py fails when a backend lacks a fact.

Example: python -c "from pocketgan import runtime; print(runtime.available_backends())"
"""

from pocketgan.runtime import backends  # noqa: F401  (registers the backends)
from pocketgan.runtime.allocator import keep_freed_memory
from pocketgan.runtime.base import (
    Backend,
    TensorSpec,
    available_backends,
    register_backend,
)
from pocketgan.runtime.session import Session, load

__all__ = [
    "Backend",
    "Session",
    "TensorSpec",
    "available_backends",
    "keep_freed_memory",
    "load",
    "register_backend",
]
