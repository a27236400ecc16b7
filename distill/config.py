"""The distillation recipe: one frozen `DistillConfig` <-> TOML (`recipes/vintage.toml`), plus presets.

Precedence, lowest first: dataclass defaults < `--preset` < `--config FILE.toml` < command-line flags.
The resolved config is saved as `config.toml` in the run folder (and `--resume` starts from it).

Example: python -c "from distill.config import resolve_config; print(resolve_config(preset='quick', steps=20))"
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pocketgan.config import DEFAULT_TEACHER, config_from_dict, config_to_dict, dumps_toml
from pocketgan.errors import UsageError
from pocketgan.manifest import atomic_write_bytes

log = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda", "auto")

# Overrides over the dataclass defaults. The quick preset is the demo's live distillation (<= 5 CPU minutes).
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {
        # recipes/vintage.toml on a short schedule: the same student, data, colour start and losses, one
        # pool of 160 crops at 256 px (the teacher's look depends on its input size), 200 steps (batch 4),
        # best.pt by the validation split every 50 steps. Chosen on validation (19 photos, gain over doing
        # nothing at best.pt, evaluated every 25 steps; this one's best was its last step): this +0.74 dB,
        # 6/19 below; two pools of 96 (stop 32) +0.54, 8/19; one pool of 128 +0.55, 6/19. Targets from
        # the fp32 teacher: on this 2-core CPU (no AMX) bf16 autocast ran the teacher slower (0.80-0.84 s
        # a 256 px crop vs 0.56-0.69 s).
        "teacher_precision": "fp32",
        "student": "patch-resnet",
        "width": 48,
        "student_kwargs": {"normalized_colour": False},
        "colour_start": True,
        "size": 256,
        "size_schedule": [],
        "steps": 200,
        "batch": 4,
        "pool_size": 160,
        "lr": 3e-4,
        "warmup_steps": 20,
        "ema_decay": 0.998,
        "eval_every": 50,
        "checkpoint_every": 100,
        "log_every": 25,
        "synthetic_fraction": 0.2,
        "portrait_fraction": 0.5,
        "face_fraction": 0.15,
        "crop_scale": [0.2, 1.0],
        "augment_strength": 0.0,
        "min_crop_contrast": 0.10,
        "pixel_loss": {"l1": 1.0, "ssim": 0.2},
    },
}


@dataclass(frozen=True)
class DistillConfig:
    """Everything a distillation run needs; validated on construction (bad values raise UsageError).

    `size_schedule` lists leading low-resolution phases as [size, fraction_of_steps] or
    [size, fraction_of_steps, batch]; the remaining steps train at `size` with `batch`.
    `pixel_loss` holds the keyword weights of `distill.pixel_losses.PixelLoss` (e.g. l1, ssim, low_pass,
    high_pass). `feature_layers` pairs a teacher module path with a student module path for feature
    distillation through a learned 1x1 adapter. `batch` is the global batch: DDP splits it across ranks.
    `ema_decay` > 0 keeps an exponential moving average of the student's weights; that average is what
    is evaluated and saved as best.pt. `average_every` > 0 also keeps a uniform average of those weights,
    sampled every `average_every` steps from `average_from` x steps on (stochastic weight averaging): it is
    evaluated at the end and saved as average.pt, a student chosen without looking at the validation images.
    """

    # What to distill
    teacher: str = DEFAULT_TEACHER
    teacher_weights: str | None = None
    student: str = "patch-resnet"
    width: int = 48
    student_kwargs: dict[str, Any] = field(default_factory=dict)
    init_checkpoint: str | None = None
    # Start the student's colour transform at the least-squares fit to the teacher on the first pool
    # (distill/colour_start.py) instead of the identity.
    colour_start: bool = False
    # Data: `data` is a folder (recursive) or glob of the user's images (None: the embedded set's train
    # split), `pool_size` training images per phase are drawn from it: multi-scale random crops (side a
    # log-uniform fraction in `crop_scale` of the photo's short side), colour-augmented; the teacher runs
    # on each crop as a whole image. Validation (best.pt) always uses the embedded validation split.
    data: str | None = None
    pool_size: int = 160
    synthetic_fraction: float = 0.25
    # of the synthetic images, the share that are colour portraits instead of dead leaves (embedded set only)
    portrait_fraction: float = 0.0
    # of the other images, the share that are scikit-image's grayscale LFW faces (embedded set only)
    face_fraction: float = 0.5
    crop_scale: tuple[float, float] = (0.5, 1.0)
    augment_strength: float = 1.0
    # crops flatter than this (luminance std, 0-1) are drawn again: see pocketgan.data.augment
    min_crop_contrast: float = 0.0
    # Full-size targets (issue 21): > 0 makes `fullres_fraction` of the batches `size`-pixel crops of the
    # training photos scaled to this long side, against the teacher run on the WHOLE photo at that size, the
    # student given the whole photo's thumbnail and working size (a student with size_input), as the runtime
    # runs it on a photo. The teacher's grade at 1280 px is not its grade at 256 px (README, full resolution).
    fullres_resolution: int = 0
    fullres_fraction: float = 0.5
    fullres_from: float = 0.0  # full-size batches from this fraction of the steps on
    # best.pt by the mean of the validation PSNR at `size` and at fullres_resolution (else at `size` alone)
    fullres_select: bool = False
    # Schedule
    size: int = 256
    size_schedule: tuple[tuple[float, ...], ...] = ()
    steps: int = 2000
    batch: int = 4
    lr: float = 2e-3
    lr_min_ratio: float = 0.02
    warmup_steps: int = 50
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.0
    average_every: int = 0
    average_from: float = 0.5
    seed: int = 0
    # Losses
    pixel_loss: dict[str, float] = field(default_factory=lambda: {"l1": 1.0})
    feature_weight: float = 0.0
    feature_layers: tuple[tuple[str, str], ...] = ()
    adversarial_weight: float = 0.0
    adversarial_from: float = 0.0
    discriminator: str = "patchgan"
    discriminator_width: int = 32
    discriminator_lr: float = 2e-4
    # Bookkeeping
    out: str = "runs/distill"
    checkpoint_every: int = 200
    eval_every: int = 100
    log_every: int = 10
    device: str = "auto"
    threads: int = 0
    bf16: bool = True
    teacher_batch: int = 4
    # "bf16": training targets from the teacher under bf16 autocast (cached apart; validation stays fp32)
    teacher_precision: str = "fp32"
    cache_dir: str | None = None
    nan_patience: int = 3
    max_rollbacks: int = 3
    progress: bool = True

    def __post_init__(self):
        positive = ("width", "pool_size", "size", "steps", "batch", "checkpoint_every", "eval_every")
        positive += ("log_every", "teacher_batch", "nan_patience", "discriminator_width")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"{name} must be a positive integer, got {value!r}")
        for name in ("warmup_steps", "threads", "seed", "max_rollbacks", "average_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise UsageError(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        for name in ("lr", "discriminator_lr"):
            if not getattr(self, name) > 0:
                raise UsageError(f"{name} must be > 0, got {getattr(self, name)!r}")
        fractions = (
            "synthetic_fraction",
            "portrait_fraction",
            "face_fraction",
            "lr_min_ratio",
            "adversarial_from",
            "ema_decay",
            "average_from",
            "fullres_fraction",
            "fullres_from",
        )
        for name in fractions:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UsageError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        for name in (
            "augment_strength",
            "min_crop_contrast",
            "weight_decay",
            "grad_clip",
            "feature_weight",
            "adversarial_weight",
        ):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.ema_decay >= 1:
            raise UsageError(f"ema_decay must be below 1 (0 switches it off), got {self.ema_decay}")
        if self.teacher_precision not in ("fp32", "bf16"):
            raise UsageError(f"teacher_precision must be fp32 or bf16, got {self.teacher_precision!r}")
        if self.device not in DEVICES:
            raise UsageError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.size % 4:
            raise UsageError(f"size must be a multiple of 4, got {self.size}")
        self._check_fullres()
        bad = {k: v for k, v in self.pixel_loss.items() if not isinstance(v, int | float) or v < 0}
        if bad:
            raise UsageError(f"pixel_loss weights must be numbers >= 0, got {bad}")
        if len(self.crop_scale) != 2 or not 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1:
            raise UsageError(
                f"crop_scale must be [low, high] with 0 < low <= high <= 1, got {self.crop_scale}"
            )
        object.__setattr__(self, "crop_scale", tuple(float(v) for v in self.crop_scale))
        self._check_size_schedule()
        for pair in self.feature_layers:
            if len(pair) != 2 or not all(isinstance(name, str) and name for name in pair):
                raise UsageError(
                    f"feature_layers entries are [teacher_layer, student_layer], got {list(pair)}"
                )
        if self.feature_weight > 0 and not self.feature_layers:
            raise UsageError(
                "feature_weight > 0 needs feature_layers = [[teacher_layer, student_layer], ...]"
            )
        object.__setattr__(self, "size_schedule", tuple(tuple(p) for p in self.size_schedule))
        object.__setattr__(self, "feature_layers", tuple(tuple(p) for p in self.feature_layers))

    def _check_fullres(self) -> None:
        if isinstance(self.fullres_resolution, bool) or not isinstance(self.fullres_resolution, int):
            raise UsageError(f"fullres_resolution must be an integer, got {self.fullres_resolution!r}")
        if not self.fullres_resolution:
            if self.fullres_select:
                raise UsageError("fullres_select needs fullres_resolution > 0")
            return
        if self.fullres_resolution < self.size:
            raise UsageError(
                f"fullres_resolution ({self.fullres_resolution}) must be 0 or >= size ({self.size})"
            )
        if not self.student_kwargs.get("size_input"):
            raise UsageError(
                "fullres_resolution needs a student that is told its working size: student_kwargs.size_input = true"
            )
        if self.feature_weight > 0:
            raise UsageError(
                "fullres_resolution does not combine with feature_weight (the teacher's features of a crop are not those of the whole photo)"
            )

    def _check_size_schedule(self) -> None:
        total = 0.0
        for phase in self.size_schedule:
            if len(phase) not in (2, 3):
                raise UsageError(
                    f"size_schedule entries are [size, fraction] or [size, fraction, batch]: {phase}"
                )
            size, fraction = phase[0], phase[1]
            batch = phase[2] if len(phase) == 3 else self.batch
            if int(size) != size or size < 8 or int(size) % 4:
                raise UsageError(f"size_schedule size must be an integer multiple of 4 >= 8, got {size}")
            if int(batch) != batch or batch < 1:
                raise UsageError(f"size_schedule batch must be a positive integer, got {batch}")
            if not 0 < fraction < 1:
                raise UsageError(f"size_schedule fraction must be in (0, 1), got {fraction}")
            total += fraction
        if total >= 1:
            raise UsageError("size_schedule fractions must leave some steps for the final size")

    def student_build_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `pocketgan.models.build(self.student, ...)`."""
        return {"width": self.width, **self.student_kwargs}

    def phases(self) -> list[tuple[int, int, int]]:
        """Training phases as (first_step, size, batch); the last phase runs at `size`."""
        phases, start = [], 0
        for phase in self.size_schedule:
            batch = int(phase[2]) if len(phase) == 3 else self.batch
            phases.append((start, int(phase[0]), batch))
            start += max(1, round(phase[1] * self.steps))
        phases.append((min(start, self.steps), self.size, self.batch))
        return [p for i, p in enumerate(phases) if i == len(phases) - 1 or p[0] < phases[i + 1][0]]

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    def to_toml(self) -> str:
        data = self.to_dict()
        for key in ("size_schedule", "feature_layers"):
            data[key] = [list(p) for p in data[key]]
        data["crop_scale"] = list(data["crop_scale"])
        return dumps_toml(data)


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """A TOML recipe as a dict (UsageError naming the file when missing or invalid)."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML ({exc})") from None


def resolve_config(
    config_file: str | os.PathLike | None = None, preset: str | None = None, **overrides: Any
) -> DistillConfig:
    """Defaults < preset < config file < non-None overrides (the CLI flags).

    A `size` flag without a `size_schedule` one also clears the recipe's schedule (saying so): `--size 64`
    trains every step at 64 px rather than leaving low-resolution phases at another size.
    """
    data: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise UsageError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
        data.update(PRESETS[preset])
    if config_file is not None:
        data.update(read_toml(config_file))
    flags = {k: v for k, v in overrides.items() if v is not None}
    if "size" in flags and "size_schedule" not in flags and data.get("size_schedule"):
        sizes = sorted({int(phase[0]) for phase in data["size_schedule"]})
        log.warning(
            "--size %s wins over the recipe's size schedule (%s px phases): every step trains at %s px",
            flags["size"],
            "/".join(map(str, sizes)),
            flags["size"],
        )
        data["size_schedule"] = []
    data.update(flags)
    return config_from_dict(DistillConfig, data)


def save_resolved_config(config: DistillConfig, path: str | os.PathLike) -> Path:
    """Write the resolved config as TOML, atomically; it reads back to an equal config."""
    atomic_write_bytes(path, config.to_toml().encode())
    return Path(path)


def replace(config: DistillConfig, **changes: Any) -> DistillConfig:
    return dataclasses.replace(config, **changes)
