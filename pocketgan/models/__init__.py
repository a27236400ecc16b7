"""Generator and discriminator definitions and pretrained models, registered by name.

`registry` holds the names; importing this package imports every module that registers one. A spec string
(`vintage`, `student:NAME`, a checkpoint, an ExportedProgram, an ONNX file, `pkg.module:factory`) becomes a
model through `pocketgan.models.resolve.resolve`, and a teacher through `pocketgan.models.teacher`.

Example: python -c "from pocketgan.models import build; print(build('cyclegan-resnet9'))"
"""

from pocketgan.models import cyclegan, discriminator, students, zoo  # noqa: F401  (importing registers them)
from pocketgan.models.registry import (
    available,
    available_pretrained,
    build,
    pretrained,
    register_model,
    register_pretrained,
)

__all__ = [
    "available",
    "available_pretrained",
    "build",
    "pretrained",
    "register_model",
    "register_pretrained",
]
