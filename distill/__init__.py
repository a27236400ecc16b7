"""Distillation: teacher loading, teacher-output cache, losses, trainer, checkpoints."""
