"""Start a student's colour transform at the least-squares fit to the teacher on the first training pool.

On held-out photos a student trained from the identity colour transform barely beats doing nothing, while one
fixed quadratic colour transform fitted to the teacher on the training crops beats it (issue 20; recipe
comment in recipes/vintage.toml). `colour_start = true` starts training there: the bias of the global
context's last layer (the part that sets the colour transform; its weights start at zero, so every image gets
the same transform) is set to the least-squares fit of the student's output to the teacher's on the pool.
The output is linear in that bias (up to the final clamp), so its columns come from one forward pass per
bias entry and the fit is one small linear solve; only that bias changes.

Example: pocketgan distill --config recipes/vintage.toml --out runs/try   # the recipe sets colour_start = true
"""

from __future__ import annotations

import torch

from pocketgan.errors import UsageError

FIT_IMAGES = 48  # pool images the fit reads (the first ones: the pool is already shuffled)
FIT_SAMPLES = 400_000  # pixel-channel values sampled for the solve
RIDGE = 1e-4
STEP = 1e-2  # finite-difference step of the bias (the output is linear in it: exact up to rounding)


def colour_bias(student: torch.nn.Module) -> tuple[torch.Tensor, slice]:
    """The bias tensor of the context MLP's last layer and the slice of it that sets the colour transform."""
    context = getattr(student, "context", None)
    n_terms = getattr(context, "n_terms", 0)
    if context is None or not n_terms:
        raise UsageError(
            f"colour_start needs a student with a global colour transform (patch-resnet with colour "
            f"quadratic or affine); {type(student).__name__} has none"
        )
    start = 2 * sum(context.film_channels)
    return context.mlp[-1].bias, slice(start, start + 3 * n_terms + 3)


@torch.no_grad()
def _outputs(student: torch.nn.Module, inputs: torch.Tensor, batch: int = 8) -> torch.Tensor:
    return torch.cat([student(inputs[i : i + batch]) for i in range(0, len(inputs), batch)])


@torch.no_grad()
def fit_colour_start(
    student: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, seed: int = 0
) -> tuple[torch.Tensor, dict[str, float]]:
    """The colour-transform bias that best fits `targets` (N, 3, H, W) from `inputs`, and the pool PSNR
    before and after (dB, on the images read). Does not change the student."""
    bias, part = colour_bias(student)
    was_training = student.training
    student.eval()
    x, y = inputs[:FIT_IMAGES], targets[:FIT_IMAGES].to(inputs.dtype)
    base = _outputs(student, x)
    generator = torch.Generator().manual_seed(seed)
    count = min(FIT_SAMPLES, base.numel())
    sample = torch.randperm(base.numel(), generator=generator)[:count]
    original = bias.detach().clone()
    columns = []
    for k in range(part.start, part.stop):
        bias.data[k] += STEP
        columns.append(((_outputs(student, x) - base).reshape(-1)[sample] / STEP).double())
        bias.data.copy_(original)
    jacobian = torch.stack(columns, dim=1)  # (samples, 3T + 3)
    residual = (y - base).reshape(-1)[sample].double()
    normal = jacobian.T @ jacobian + RIDGE * count * torch.eye(jacobian.shape[1], dtype=torch.float64)
    delta = torch.linalg.solve(normal, jacobian.T @ residual).to(bias.dtype)
    fitted = original.clone()
    fitted[part] += delta
    bias.data.copy_(fitted)
    after = _outputs(student, x)
    bias.data.copy_(original)
    student.train(was_training)

    def psnr(output: torch.Tensor) -> float:
        return float(10 * torch.log10(4.0 / torch.mean((output - y) ** 2)))

    return fitted[part], {"images": float(len(x)), "psnr_before_db": psnr(base), "psnr_after_db": psnr(after)}


def set_colour_start(student: torch.nn.Module, values: torch.Tensor) -> None:
    bias, part = colour_bias(student)
    with torch.no_grad():
        bias[part] = values.to(bias.device, bias.dtype)
