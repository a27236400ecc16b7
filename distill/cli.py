"""`pocketgan distill`: parse flags into a DistillConfig, call `distill()`, print where the student is.

Example: pocketgan distill --preset quick --steps 20 --size 64 --out runs/smoke
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from pocketgan import console
from pocketgan.distill.config import PRESETS, resolve_config
from pocketgan.distill.trainer import distill

EPILOG = """\b
Examples:
  pocketgan distill --preset quick --out runs/quick
  pocketgan distill --config recipes/vintage.toml --out runs/vintage-student
  pocketgan distill --out runs/vintage-student --resume          # continue after a crash or Ctrl-C
  pocketgan distill --teacher my_pkg.nets:make_generator --teacher-weights gen.pt --data photos/ --width 24
  pocketgan distill --teacher teacher.onnx --data photos/ --steps 2000 --device cuda
  torchrun --nproc_per_node=2 -m pocketgan distill --preset quick --out runs/ddp
"""


@click.command(name="distill", epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--teacher", help="vintage (default) | pkg.module:factory | model.pt2 | model.onnx | student .pt"
)
@click.option(
    "--teacher-weights", type=click.Path(dir_okay=False), help="State dict for a module:factory teacher."
)
@click.option(
    "--data", type=click.Path(file_okay=False), help="Folder of training photos (default: embedded set)."
)
@click.option(
    "--student", help="Registered student name (default patch-resnet; also mobile-resnet, tiny-unet)."
)
@click.option("--width", type=int, help="Student width multiplier (channels of the first layer).")
@click.option("--size", type=int, help="Final training and evaluation size in pixels (default 256).")
@click.option("--steps", type=int, help="Optimisation steps in total.")
@click.option("--batch", type=int, help="Global batch size (split across DDP processes).")
@click.option("--checkpoint-every", type=int, help="Write last.pt every N steps (and at the end).")
@click.option("--eval-every", type=int, help="Held-out PSNR, sample grid and best.pt every N steps.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Run folder (default runs/distill); locked while a run writes it, so a second run is refused.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --out from its last.pt at the exact step (exit 2 when --out holds no run).",
)
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), help="auto: CUDA when present (bf16).")
@click.option(
    "--config", "config_file", type=click.Path(dir_okay=False), help="TOML recipe, e.g. recipes/vintage.toml."
)
@click.option("--preset", type=click.Choice(sorted(PRESETS)), help="A built-in recipe (quick: the demo's).")
@click.option("--seed", type=int, help="Seed of the initialisation, the data pool and the batch order.")
@click.option("--threads", type=int, help="torch CPU threads per process (0: torch's default).")
@click.option(
    "--cache-dir", type=click.Path(file_okay=False), help="Teacher-output cache (default ~/.cache/pocketgan)."
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bars (metrics.jsonl is always written)."
)
@console.json_option("the result summary", dest="json_file")
@console.json_verb("json_file")
def distill_command(resume, config_file, preset, json_file, **flags):
    """Distill a GAN teacher into a small student generator.

    Writes OUT/config.toml (the resolved recipe), metrics.jsonl, last.pt (resumable training state),
    best.pt (the student with the best validation-split PSNR; export it with `pocketgan export OUT/best.pt`),
    average.pt when the recipe sets average_every (the mean of the weights over the later steps, chosen
    without looking at the validation images) and samples/step_NNNNNN.png (input | teacher | student |
    amplified difference).
    """
    overrides = {key: value for key, value in flags.items() if value is not None}
    config = resolve_config(config_file, preset, **overrides)
    saved = Path(config.out) / "config.toml"
    if resume and saved.is_file():
        # The run's own resolved recipe wins over presets and files; flags still override it.
        config = resolve_config(saved, None, **overrides)
    result = distill(config, resume=resume)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    summary = {
        "out": str(result.out),
        "steps": result.steps,
        "best_checkpoint": str(result.best_checkpoint) if result.best_checkpoint else None,
        "best_validation_psnr_db": result.best_psnr_db,
        "final_metrics": result.final_metrics,
        "average_checkpoint": str(result.average_checkpoint) if result.average_checkpoint else None,
        "average_metrics": result.average_metrics,
        "validation_identity_psnr_db": result.final_metrics.get("validation_identity_psnr_db"),
        "wall_s": round(result.wall_s, 2),
        "resumed_from_step": result.resumed_from_step,
        "skipped_steps": result.skipped_steps,
        "rollbacks": result.rollbacks,
    }
    console.emit_json(json_file, summary)
    psnr = result.final_metrics.get("validation_psnr_db")
    baseline = result.final_metrics.get("validation_identity_psnr_db")
    click.echo(f"distilled {result.steps} steps in {result.wall_s:.0f} s -> {result.out}")
    if psnr is not None:
        below = result.final_metrics.get("validation_below_baseline")
        click.echo(
            f"validation PSNR vs teacher: {psnr:.2f} dB (do-nothing baseline {baseline:.2f} dB, "
            f"{below} image(s) below it); test-split numbers: pocketgan eval"
        )
    if result.best_checkpoint:
        click.echo(f"best student: {result.best_checkpoint} ({result.best_psnr_db:.2f} dB)")
    if result.average_checkpoint:
        average = result.average_metrics
        click.echo(
            f"averaged student: {result.average_checkpoint} ({average['validation_psnr_db']:.2f} dB, SSIM "
            f"{average['validation_ssim']:.3f}; mean of {average['averaged_checkpoints']} checkpoints)"
        )
    shipped = result.average_checkpoint or result.best_checkpoint
    if shipped:
        click.echo(f"next: pocketgan export {shipped}")
    if result.skipped_steps or result.rollbacks:
        click.echo(f"non-finite steps skipped: {result.skipped_steps}, rollbacks: {result.rollbacks}")
