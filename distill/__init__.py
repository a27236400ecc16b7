"""Distillation: teacher loading, teacher-output cache, losses, trainer (single process and DDP), checkpoints.

Public API: `distill(config) -> DistillResult`, `DistillConfig`, `resolve_config`, `load_teacher`, `Teacher`.

Example: pocketgan distill --preset quick --out runs/quick
"""

from pocketgan.distill.config import DistillConfig, resolve_config
from pocketgan.distill.trainer import DistillResult, distill
from pocketgan.models.teacher import Teacher, load_teacher

__all__ = ["DistillConfig", "DistillResult", "Teacher", "distill", "load_teacher", "resolve_config"]
