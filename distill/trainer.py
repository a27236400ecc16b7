"""`distill(config) -> DistillResult`: train a student to reproduce a teacher, resumably, on 1..N processes.

Per step: the student sees a batch of whole training images and matches the teacher's cached outputs
(PixelLoss), optionally its intermediate features (1x1 adapters; live torch teacher) and a PatchGAN's
judgement. A non-finite loss or gradient skips the step; `nan_patience` in a row roll back to the last good
checkpoint with half the learning rate. Rank 0 alone writes the run folder.

Example: python -c "from distill import DistillConfig, distill; print(distill(DistillConfig(steps=20, size=64, pool_size=8, out='runs/try')))"
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pocketgan.checkpoint import save_checkpoint
from pocketgan.data import split_images
from pocketgan.data.photos import provenance
from pocketgan.distill import runfolder
from pocketgan.distill.cache import TeacherOutputCache
from pocketgan.distill.colour_start import fit_colour_start, set_colour_start
from pocketgan.distill.config import DistillConfig, save_resolved_config
from pocketgan.distill.data import (
    FullSizeTargets,
    epoch_order,
    full_size_targets,
    pool_seed,
    shard,
    training_pool,
)
from pocketgan.distill.distributed import DistributedContext, context_from_env
from pocketgan.distill.losses import (
    build_pixel_loss,
    discriminator_input,
    discriminator_loss,
    generator_adversarial_loss,
)
from pocketgan.distill.parts import (
    build_adapters,
    build_discriminator,
    build_student,
    load_student_weights,
    student_forward,
    teacher_features,
)
from pocketgan.distill.validation import baseline_scores, evaluate_student, student_checkpoint
from pocketgan.errors import CheckFailed, UsageError
from pocketgan.flops import MAC_METHOD, count_macs, count_params
from pocketgan.images import to_float, to_nchw
from pocketgan.manifest import atomic_write_json
from pocketgan.metrics import psnr
from pocketgan.models import build
from pocketgan.models.teacher import Teacher, load_teacher

log = logging.getLogger(__name__)
VALIDATION_SEED = 0  # cache key of the validation photos (they are never augmented)
SUMMARY_KEYS = tuple(
    f"validation_{key}"
    for key in (
        "psnr_db",
        "ssim",
        "grade_de2000",
        "texture_swd",
        "detail_energy_db",
        "identity_psnr_db",
        "identity_ssim",
        "identity_grade_de2000",
        "identity_texture_swd",
        "identity_detail_energy_db",
        "gain_db",
        "below_baseline",
        "per_image",
        "fullres_psnr_db",
        "fullres_gain_db",
        "fullres_below_baseline",
        "fullres_per_image",
    )
)
AVERAGE_LOG_KEYS = ("averaged_checkpoints", *SUMMARY_KEYS)  # final line: average_*


@dataclass
class DistillResult:
    out: Path
    steps: int
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    best_psnr_db: float | None
    final_metrics: dict[str, Any] = field(default_factory=dict)
    average_checkpoint: Path | None = None
    average_metrics: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    resumed_from_step: int | None = None
    skipped_steps: int = 0
    rollbacks: int = 0


def learning_rate(config: DistillConfig, step: int) -> float:
    """Linear warm-up, then cosine decay from `lr` to `lr * lr_min_ratio` at the last step."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * (config.lr_min_ratio + (1.0 - config.lr_min_ratio) * cosine)


def distill(
    config: DistillConfig, resume: bool = False, callback: Callable[[int, dict], None] | None = None
) -> DistillResult:
    """Run (or with `resume`, continue) a distillation; `callback(step, record)` follows every step."""
    context = context_from_env(config.device)
    try:
        with _claimed_run_folder(config.out, resume, context):
            return _Run(config, context, callback).train(resume)
    finally:
        context.close()


@contextlib.contextmanager
def _claimed_run_folder(out: str, resume: bool, context: DistributedContext):
    """Rank 0 (the only writer) locks the run folder before anything is written; every rank learns if it did."""
    lock, refusal = None, None
    if context.is_main:
        try:
            lock = runfolder.claim_run_folder(out, resume)
        except UsageError as exc:
            refusal = exc
    if not context.all_true(refusal is None):
        raise refusal or UsageError(f"{out}: rank 0 could not claim the run folder (its error says why)")
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _copy_state(module: torch.nn.Module | None) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a state dict (the live one aliases the parameters); {} for no module."""
    if module is None:
        return {}
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _accumulate(target: torch.nn.Module, source: torch.nn.Module, update) -> None:
    """`update(target_tensor, source_tensor)` in place for each floating-point entry of `target`'s state
    dict (a running average of `source`'s weights); integer entries (e.g. BatchNorm counters) are copied."""
    live = source.state_dict()
    for name, average in target.state_dict().items():
        if average.is_floating_point():
            update(average, live[name].detach())
        else:
            average.copy_(live[name])


def _autocast_bf16(teacher: Teacher, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """The teacher under bf16 autocast: on CPUs with AMX/AVX-512 BF16 about 1.9x faster at 256 px, and
    56-62 dB PSNR from the float32 teacher on the validation photos (far above what students reach)."""

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return teacher(x).float()

    return run


class _Run:
    def __init__(self, config: DistillConfig, context: DistributedContext, callback):
        self.config, self.context, self.callback = config, context, callback
        self.out = Path(config.out)
        self.device = context.device
        if config.threads:
            torch.set_num_threads(config.threads)
        world = context.world_size
        for _, _, batch in config.phases():
            if batch % world:
                raise UsageError(f"batch {batch} must be divisible by the number of processes ({world})")
        torch.manual_seed(config.seed)
        self.teacher: Teacher = load_teacher(config.teacher, config.teacher_weights).to(self.device)
        self.cache = TeacherOutputCache(config.cache_dir, self.teacher.hash)
        # Training targets may come from the teacher under bf16 autocast (its own cache folder); validation
        # targets always come from the float32 teacher that eval compares against.
        bf16_targets = config.teacher_precision == "bf16" and self.teacher.module is not None
        self.pool_cache = (
            TeacherOutputCache(config.cache_dir, "bf16-" + self.teacher.hash) if bf16_targets else self.cache
        )
        self.pool_teacher = _autocast_bf16(self.teacher, self.device) if bf16_targets else self.teacher
        self.student = build_student(config, self.device)
        # An exponential moving average of the weights: evaluated and shipped instead of the raw student.
        self.ema = copy.deepcopy(self.student).requires_grad_(False) if config.ema_decay > 0 else None
        # A uniform average of the evaluated weights over the later steps (config.average_every > 0).
        self.average = copy.deepcopy(self.student).requires_grad_(False) if config.average_every else None
        self.average_count = 0
        self.pixel_loss = build_pixel_loss(config.pixel_loss).to(self.device)
        self.adapters = build_adapters(config, self.teacher, self.student, self.device)
        trainable = list(self.student.parameters())
        if self.adapters is not None:
            trainable += list(self.adapters.parameters())
        self.trainable = [p for p in trainable if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.trainable, lr=config.lr, weight_decay=config.weight_decay)
        self.discriminator, self.discriminator_optimizer = build_discriminator(config, self.device)
        self.step, self.lr_scale, self.skipped, self.rollbacks = 0, 1.0, 0, 0
        self.best_psnr: float | None = None
        self.last_eval: dict[str, Any] = {}
        self.good_state: dict[str, Any] | None = None
        self.validation: tuple[list[str], torch.Tensor, torch.Tensor, dict] | None = None
        self.macs: int | None = None
        self.phase_data: tuple[int, torch.Tensor, torch.Tensor] | None = None
        self.full_size: FullSizeTargets | None = None  # config.fullres_resolution > 0: loaded in train()
        # names, photos, teacher outputs, doing nothing's PSNR: the validation split at fullres_resolution
        self.full_validation: tuple[list[str], list[np.ndarray], list[np.ndarray], list[float]] | None = None
        self.last_speed: float | None = None
        self.bad_streak = 0

    # ---- state ---------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            **student_checkpoint(self.config, self.student, dict(self.last_eval)),
            "step": self.step,
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "adapters": _copy_state(self.adapters),
            "ema": _copy_state(self.ema),
            "average": _copy_state(self.average),
            "average_count": self.average_count,
            "discriminator": _copy_state(self.discriminator),
            "discriminator_optimizer": (
                copy.deepcopy(self.discriminator_optimizer.state_dict())
                if self.discriminator is not None
                else {}
            ),
            "schedule": {"lr_scale": self.lr_scale, "skipped": self.skipped, "rollbacks": self.rollbacks},
            "best_psnr_db": self.best_psnr if self.best_psnr is not None else float("nan"),
            "rng": runfolder.rng_state(),
        }

    def _restore(self, state: dict[str, Any], source: str) -> None:
        load_student_weights(self.student, state, source, self.config)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        self.average_count = int(state.get("average_count", 0))
        if self.average is not None and state.get("average"):
            self.average.load_state_dict(state["average"])
        if self.adapters is not None and state["adapters"]:
            self.adapters.load_state_dict(state["adapters"])
        if self.discriminator is not None and state["discriminator"]:
            self.discriminator.load_state_dict(state["discriminator"])
            self.discriminator_optimizer.load_state_dict(state["discriminator_optimizer"])
        self.step = int(state["step"])
        self.lr_scale = float(state["schedule"]["lr_scale"])
        self.skipped = int(state["schedule"]["skipped"])
        self.rollbacks = int(state["schedule"]["rollbacks"])
        best = float(state["best_psnr_db"])
        self.best_psnr = best if math.isfinite(best) else None
        self.last_eval = dict(state.get("metrics") or {})
        runfolder.set_rng_state(state["rng"])

    def _checkpoint(self) -> None:
        self.good_state = self._state()
        if self.context.is_main:
            runfolder.save_training_state(self.out / runfolder.LAST_CHECKPOINT, self.good_state)

    def _prepare_run_folder(self, resume: bool) -> int | None:
        """Restore last.pt when resuming (claim_run_folder saw it), then write the resolved config (rank 0)."""
        last = self.out / runfolder.LAST_CHECKPOINT
        resumed_from = None
        if resume:
            self._restore(runfolder.load_training_state(last), str(last))
            self.good_state = self._state()
            resumed_from = self.step
            log.info("resuming %s at step %d", self.out, self.step)
        if self.context.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_resolved_config(self.config, self.out / runfolder.CONFIG_FILE)
            atomic_write_json(self.out / runfolder.DATA_FILE, provenance(self.config.data))
            if resumed_from is not None:
                runfolder.truncate_metrics(self.out, resumed_from)
            elif (self.out / runfolder.METRICS_FILE).exists():
                (self.out / runfolder.METRICS_FILE).unlink()
        return resumed_from

    # ---- data ----------------------------------------------------------------------------------------
    def _phase_data(self, phase_index: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        pool = training_pool(self.config, size, phase_index)
        mine = [pool[i] for i in shard(len(pool), self.context.rank, self.context.world_size)]
        seed = pool_seed(self.config, phase_index)
        targets = self._teacher_outputs(mine, size, seed, f"teacher {size}px", training=True)
        return torch.from_numpy(to_nchw(mine)), torch.from_numpy(targets)

    def _teacher_outputs(
        self, images: list[np.ndarray], size: int, seed: int, label: str, training: bool = False
    ) -> np.ndarray:
        from tqdm import tqdm

        show = self.context.is_main and self.config.progress
        with tqdm(total=len(images), desc=label, disable=not show, leave=False) as bar:
            cache, teacher = (self.pool_cache, self.pool_teacher) if training else (self.cache, self.teacher)
            return cache.outputs(teacher, images, size, seed, self.config.teacher_batch, bar.update)

    def _validation(self):
        """The validation split at the training size, and the teacher's outputs on it (never the test split)."""
        if self.validation is None:
            named = split_images("validation", self.config.size)
            images = [image for _, image in named]
            targets = self._teacher_outputs(images, self.config.size, VALIDATION_SEED, "teacher validation")
            names, inputs = [n for n, _ in named], to_nchw(images)
            baseline = baseline_scores(names, inputs, targets)  # doing nothing, scored once
            self.validation = (names, torch.from_numpy(inputs), torch.from_numpy(targets), baseline)
        return self.validation

    # ---- training ------------------------------------------------------------------------------------
    def train(self, resume: bool) -> DistillResult:
        from tqdm import tqdm

        self.started = time.perf_counter()
        resumed_from = self._prepare_run_folder(resume)
        if self.config.colour_start and self.step == 0:
            self._colour_start()
        if self.config.fullres_resolution:
            self.full_size = full_size_targets(
                self.config, torch.get_num_threads(), self.context.is_main and self.config.progress
            )
        if self.good_state is None:
            self._checkpoint_in_memory()
        config = self.config
        show = self.context.is_main and config.progress
        self.bar = tqdm(
            total=config.steps, initial=self.step, desc="distill", disable=not show, dynamic_ncols=True
        )
        phases = config.phases()
        with self.bar:
            while self.step < config.steps:  # a rollback may return to an earlier phase
                index = max(i for i, phase in enumerate(phases) if phase[0] <= self.step)
                first, size, batch = phases[index]
                end = phases[index + 1][0] if index + 1 < len(phases) else config.steps
                self._train_phase(index, first, end, size, batch // self.context.world_size)
            if self.last_eval.get("step") != self.step:
                self._evaluate()
            self._checkpoint()
            average_metrics = self._save_average()
            averaged = {f"average_{k}": average_metrics[k] for k in AVERAGE_LOG_KEYS if k in average_metrics}
            self._log(
                {
                    "step": self.step,
                    "final": True,
                    "elapsed_s": self._elapsed(),
                    **self._eval_summary(),
                    **averaged,
                }
            )
        best = self.out / runfolder.BEST_CHECKPOINT
        return DistillResult(
            out=self.out,
            steps=self.step,
            best_checkpoint=best if best.exists() else None,
            last_checkpoint=self.out / runfolder.LAST_CHECKPOINT,
            best_psnr_db=self.best_psnr,
            final_metrics=dict(self.last_eval),
            average_checkpoint=self.out / runfolder.AVERAGE_CHECKPOINT if average_metrics else None,
            average_metrics=average_metrics,
            wall_s=time.perf_counter() - self.started,
            resumed_from_step=resumed_from,
            skipped_steps=self.skipped,
            rollbacks=self.rollbacks,
        )

    def _colour_start(self) -> None:
        """The colour transform's start fitted on the first pool (each rank's shard; the fits averaged)."""
        _, size, _ = self.config.phases()[0]
        self.phase_data = (0, *self._phase_data(0, size))
        values, scores = fit_colour_start(
            self.student, self.phase_data[1].to(self.device), self.phase_data[2].to(self.device)
        )
        values = torch.tensor(
            list(self.context.average_scalars({f"{i:04d}": float(v) for i, v in enumerate(values)}).values())
        )
        for module in (self.student, self.ema, self.average):
            if module is not None:
                set_colour_start(module, values)
        log.info(
            "colour start: least-squares fit on %d pool images, their PSNR %.2f -> %.2f dB",
            scores["images"],
            scores["psnr_before_db"],
            scores["psnr_after_db"],
        )
        self._log({"step": 0, **{f"colour_start_{k}": v for k, v in scores.items()}})

    def _checkpoint_in_memory(self) -> None:
        self.good_state = self._state()

    def _train_phase(self, index: int, first: int, end: int, size: int, batch: int) -> None:
        """Train from self.step up to `end` (or until a rollback lands before `first`)."""
        if self.phase_data is None or self.phase_data[0] != index:
            self.phase_data = (index, *self._phase_data(index, size))
        _, inputs, targets = self.phase_data
        if len(inputs) < batch:
            raise UsageError(
                f"pool_size {self.config.pool_size} gives each of {self.context.world_size} process(es) "
                f"{len(inputs)} images, fewer than a batch of {batch}"
            )
        indices = list(range(len(inputs)))
        per_epoch = len(inputs) // batch
        window_seconds, window_images, running = 0.0, 0, {}
        while first <= self.step < end:
            epoch, position = divmod(self.step - first, per_epoch)
            order = epoch_order(indices, self.config.seed, index * 1_000_003 + epoch)
            chosen = torch.tensor(order[position * batch : (position + 1) * batch])
            context: dict[str, torch.Tensor] = {}
            draw = np.random.default_rng([self.config.seed, 21, self.context.rank, self.step])
            full_size = (
                self.full_size is not None and self.step >= self.config.fullres_from * self.config.steps
            )
            if full_size and draw.random() < self.config.fullres_fraction:
                x, y, thumb, sizes = self.full_size.batch(draw, batch, size)
                context = {"thumb": thumb.to(self.device), "size": sizes.to(self.device)}
            else:
                x, y = inputs[chosen], targets[chosen]
            x = x.to(self.device, non_blocking=True)
            y = y.to(self.device, non_blocking=True)
            step_started = time.perf_counter()
            terms = self._train_step(x, y, context)
            window_seconds += time.perf_counter() - step_started
            if terms is None:
                continue  # skipped or rolled back; self.step says where we are
            window_images += batch * self.context.world_size
            for name, value in terms.items():
                running[name] = running.get(name, 0.0) + value
            running["_count"] = running.get("_count", 0) + 1
            record: dict[str, Any] = {"step": self.step}
            if self.step % self.config.log_every == 0 or self.step % self.config.eval_every == 0:
                count = running.pop("_count")
                means = {name: value / count for name, value in running.items()}
                record.update(self.context.average_scalars(means))
                speed = window_images / max(window_seconds, 1e-9)
                record.update(size=size, lr=self._lr(), images_per_s=speed, elapsed_s=self._elapsed())
                window_seconds, window_images, running = 0.0, 0, {}
            if self.step % self.config.eval_every == 0 and self.step < self.config.steps:
                record.update(self._evaluate())
            if len(record) > 1:
                self._log(record)
            if self.step % self.config.checkpoint_every == 0 and self.step < self.config.steps:
                self._checkpoint()
            self.bar.update(1)
            self.bar.set_postfix(self._postfix(terms, record), refresh=False)
            if self.callback is not None:
                self.callback(self.step, record)

    def _elapsed(self) -> float:
        return round(time.perf_counter() - self.started, 2)

    def _lr(self) -> float:
        return learning_rate(self.config, self.step) * self.lr_scale

    def _autocast(self):
        if self.device.type == "cuda" and self.config.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _train_step(
        self, x: torch.Tensor, y: torch.Tensor, context: dict[str, torch.Tensor] | None = None
    ) -> dict[str, float] | None:
        """One optimisation step; None when it was skipped (non-finite) or rolled back. `context`: the
        student's thumb and size inputs for a full-size batch (none: the crop is its own thumbnail)."""
        config = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr()
        self.context.broadcast_buffers(self.student)
        adversarial = self.discriminator is not None and self.step >= config.adversarial_from * config.steps
        with self._autocast():
            student_layers = [s for _, s in config.feature_layers] if self.adapters is not None else []
            output, student_features = student_forward(self.student, x, student_layers, inputs=context)
            loss, terms = self.pixel_loss(output.float(), y)
            terms = {name: float(value) for name, value in terms.items()}
            if self.adapters is not None:
                teacher_taps = teacher_features(self.teacher, x, [t for t, _ in config.feature_layers])
                feature_loss = self.adapters(student_features, teacher_taps)
                loss = loss + config.feature_weight * feature_loss
                terms["feature"] = float(feature_loss.detach())
            if adversarial:
                fake_scores = self.discriminator(discriminator_input(x, output, conditional=True))
                adversarial_loss = generator_adversarial_loss(fake_scores)
                loss = loss + config.adversarial_weight * adversarial_loss
                terms["adversarial"] = float(adversarial_loss.detach())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.context.average_gradients(self.trainable)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable, config.grad_clip or float("inf"))
        finite = self.context.all_true(bool(torch.isfinite(loss).item() and torch.isfinite(grad_norm).item()))
        if not finite:
            self._non_finite(float(loss.detach()), float(grad_norm))
            return None
        self.optimizer.step()
        self._update_ema()
        if adversarial:
            terms["discriminator"] = self._discriminator_step(x, y, output.detach())
        self.step += 1
        self._update_average()
        self.bad_streak = 0
        terms["loss"] = float(loss.detach())
        return terms

    @torch.no_grad()
    def _update_ema(self) -> None:
        if self.ema is None:
            return
        decay = min(self.config.ema_decay, (1.0 + self.step) / (10.0 + self.step))  # short memory early on
        _accumulate(
            self.ema, self.student, lambda average, live: average.mul_(decay).add_(live, alpha=1.0 - decay)
        )

    @torch.no_grad()
    def _update_average(self) -> None:
        config = self.config
        if (
            self.average is None
            or self.step % config.average_every
            or self.step < config.average_from * config.steps
        ):
            return
        self.average_count += 1
        weight = 1.0 / self.average_count
        _accumulate(
            self.average, self._eval_model(), lambda average, live: average.add_(live - average, alpha=weight)
        )

    def _eval_model(self) -> torch.nn.Module:
        return self.ema if self.ema is not None else self.student

    def _discriminator_step(self, x: torch.Tensor, y: torch.Tensor, output: torch.Tensor) -> float:
        self.discriminator_optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            real = self.discriminator(discriminator_input(x, y, conditional=True))
            fake = self.discriminator(discriminator_input(x, output, conditional=True))
            loss = discriminator_loss(real, fake)
        loss.backward()
        parameters = list(self.discriminator.parameters())
        self.context.average_gradients(parameters)
        if self.context.all_true(bool(torch.isfinite(loss).item())):
            self.discriminator_optimizer.step()
        else:
            self.discriminator_optimizer.zero_grad(set_to_none=True)
            log.warning("step %d: non-finite discriminator loss, discriminator step skipped", self.step)
        return float(loss.detach())

    def _non_finite(self, loss: float, grad_norm: float) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.skipped += 1
        self.bad_streak += 1
        log.warning("step %d: non-finite loss %s / grad norm %s, step skipped", self.step, loss, grad_norm)
        self._log({"step": self.step, "event": "non-finite", "loss": loss, "grad_norm": grad_norm})
        if self.bad_streak < self.config.nan_patience:
            return
        if self.rollbacks >= self.config.max_rollbacks:
            raise CheckFailed(
                f"training diverged: non-finite loss after {self.rollbacks} rollbacks at step {self.step} "
                f"(try a lower lr than {self.config.lr})"
            )
        from_step = self.step
        skipped, rollbacks, lr_scale = self.skipped, self.rollbacks + 1, self.lr_scale * 0.5
        self._restore(copy.deepcopy(self.good_state), "last good checkpoint")
        self.skipped, self.rollbacks, self.lr_scale, self.bad_streak = skipped, rollbacks, lr_scale, 0
        message = f"rolled back from step {from_step} to step {self.step}, learning rate x{lr_scale:g}"
        log.warning(message)
        self._log({"step": self.step, "event": "rollback", "from_step": from_step, "lr_scale": lr_scale})
        self.bar.n = self.step
        self.bar.refresh()

    # ---- evaluation and logging ----------------------------------------------------------------------
    def _evaluate(self) -> dict[str, Any]:
        """Validation PSNR/SSIM vs the teacher (rank 0), a sample grid and best.pt when the mean validation
        PSNR improved."""
        if not self.context.is_main:
            return {}
        names, inputs, targets, baseline = self._validation()
        metrics, outputs = evaluate_student(self._eval_model(), names, inputs, targets, self.device, baseline)
        if self.config.fullres_resolution:
            metrics.update(self._evaluate_full_size())
        self.last_eval = {"step": self.step, **metrics}
        rows = list(zip(inputs.numpy(), targets.numpy(), outputs, strict=True))
        runfolder.save_sample_grid(self.out / runfolder.SAMPLES_DIR / f"step_{self.step:06d}.png", rows)
        psnr = metrics["validation_psnr_db"]
        if self.config.fullres_select:  # both sizes count: the mean of the two splits' mean PSNR
            psnr = (psnr + metrics["validation_fullres_psnr_db"]) / 2
        if math.isfinite(psnr) and (self.best_psnr is None or psnr > self.best_psnr):
            self.best_psnr = psnr
            self._save_best()
        return self._eval_summary()

    def _full_size_validation(self) -> tuple[list[str], list[np.ndarray], list[np.ndarray], list[float]]:
        """The validation photos at fullres_resolution (long side), the fp32 teacher's outputs on them
        (cached by evals.fullres, the cache `pocketgan eval --resolution` reads) and doing nothing's PSNR."""
        if self.full_validation is None:
            from pocketgan.evals.fullres import split_full_size, teacher_outputs

            named = split_full_size("validation", self.config.fullres_resolution)
            images = [image for _, image in named]
            targets, _ = teacher_outputs(
                images,
                teacher=self.config.teacher,
                resolution=self.config.fullres_resolution,
                weights=self.config.teacher_weights,
                threads=torch.get_num_threads(),
                cache=self.config.cache_dir,
                progress=self.context.is_main and self.config.progress,
            )
            baseline = [psnr(to_float(image), target) for image, target in zip(images, targets, strict=True)]
            self.full_validation = ([name for name, _ in named], images, targets, baseline)
        return self.full_validation

    def _evaluate_full_size(self) -> dict[str, Any]:
        """Gain over doing nothing on the validation photos at fullres_resolution, the student run at the
        photo's size with its thumbnail (as the runtime runs it). Reported beside the training-size figures;
        best.pt is chosen on both with config.fullres_select, else on the training size alone."""
        from pocketgan.evals.common import torch_full_size

        names, images, targets, baseline = self._full_size_validation()
        model = self._eval_model()
        was_training = model.training
        model.eval()
        run = torch_full_size(model, self.device)
        scores = [psnr(run(image), target) for image, target in zip(images, targets, strict=True)]
        gains = {name: score - nothing for name, score, nothing in zip(names, scores, baseline, strict=True)}
        model.train(was_training)
        return {
            "validation_fullres_psnr_db": float(np.mean(scores)),
            "validation_fullres_gain_db": float(np.mean(list(gains.values()))),
            "validation_fullres_below_baseline": sum(gain < 0 for gain in gains.values()),
            "validation_fullres_per_image": gains,
        }

    def _eval_summary(self) -> dict[str, Any]:
        return {k: self.last_eval[k] for k in SUMMARY_KEYS if k in self.last_eval}

    def _save_average(self) -> dict[str, Any]:
        """Evaluate the weight average on the validation images and save it as average.pt (rank 0)."""
        if self.average is None or not self.average_count or not self.context.is_main:
            return {}
        names, inputs, targets, baseline = self._validation()
        metrics, _ = evaluate_student(self.average, names, inputs, targets, self.device, baseline)
        metrics = {"step": self.step, "averaged_checkpoints": self.average_count, **metrics}
        self._save_student(self.average, metrics, runfolder.AVERAGE_CHECKPOINT)
        return metrics

    def _save_best(self) -> None:
        self._save_student(self._eval_model(), self.last_eval, runfolder.BEST_CHECKPOINT)

    def _save_student(self, student: torch.nn.Module, metrics: dict[str, Any], name: str) -> None:
        if self.macs is None:
            probe = build(self.config.student, **self.config.student_build_kwargs()).eval()
            self.macs = int(count_macs(probe, self.config.size))
        metrics = {**metrics, "params": count_params(student), "macs": self.macs}
        metrics.update(mac_method=MAC_METHOD, teacher=self.teacher.spec, teacher_sha256=self.teacher.hash)
        save_checkpoint(self.out / name, student_checkpoint(self.config, student, metrics))

    def _log(self, record: dict[str, Any]) -> None:
        if self.context.is_main:
            runfolder.append_metrics(self.out, record)

    def _postfix(self, terms: dict[str, float], record: dict[str, Any]) -> dict[str, str]:
        postfix = {"loss": f"{terms.get('loss', float('nan')):.4f}"}
        self.last_speed = record.get("images_per_s", self.last_speed)
        if self.last_speed:
            postfix["img/s"] = f"{self.last_speed:.1f}"
        if "validation_gain_db" in self.last_eval:
            postfix["val"] = f"{self.last_eval['validation_gain_db']:+.2f}dB"
        return postfix
