"""How far a student can follow the teacher: two references beside doing nothing, per photo.

- `mirrored`: the teacher itself run on the left-right mirrored photo, mirrored back. A model that knew
  everything the teacher knows, except which way round the photo was, scores this. The `vintage` teacher
  is far from mirror-symmetric (its grade follows the layout), so this is a practical ceiling for any
  student that has to learn the look from a few dozen photos, not an exact one.
- `affine_oracle`: the best single affine colour map (3x3 + shift, 12 numbers) from the photo to the
  teacher's output, fitted by least squares on that photo's own teacher output. It says how much of the
  teacher's change is one global grade; a student predicts those numbers from the photo and cannot see the
  answer, so it is an upper bound for the grade alone (local tone and grain come on top).
- `student` (with `--student`): the checkpoint in torch, for comparison.

With `--resolution N` the photos are taken whole at N px long side against the teacher run at that size
(cached by evals.fullres), and the references are the affine oracle and `teacher_at_256` / `teacher_at_512`:
the teacher's own result at that long side, its change upsampled and added to the full-size photo (what a
perfect student of the teacher at that size is worth at full size); the student runs at N with its
thumbnail, as the runtime runs it.

Each reference gets PSNR, SSIM, grade and texture against the teacher (`evals.splits.split_fidelity`), its
gain over doing nothing and the count of photos below doing nothing. Defaults to the validation split (what recipes are tuned on); `--split test` reads the test
photos, for reporting only. `--black-and-white` scores every photo made black and white (luma in all three
channels, `pocketgan.data.black_and_white`), the teacher run on that too: how a student does on B&W photos.

Example: python -m pocketgan.evals.ceiling --split validation --size 256 \
             --student pocketgan/zoo/vintage-mobile/student.pt --json build/ceiling.json
         python -m pocketgan.evals.ceiling --split validation --resolution 1280 \
             --student pocketgan/zoo/vintage-mobile/student.pt
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from pocketgan.config import DEFAULT_TEACHER
from pocketgan.images import to_float
from pocketgan.metrics import json_ready

Model = Callable[[np.ndarray], np.ndarray]  # float HxWx3 in [-1, 1] -> the same
CARRIED_SIDES = (256, 512)  # --resolution: the teacher's own result at these long sides, carried up


def affine_oracle(image: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The least-squares affine colour map of `image` onto `target` (both float HxWx3), applied, clipped."""
    pixels = image.reshape(-1, 3).astype(np.float64)
    design = np.concatenate([pixels, np.ones((len(pixels), 1))], axis=1)  # (H*W, 4)
    weights, *_ = np.linalg.lstsq(design, target.reshape(-1, 3).astype(np.float64), rcond=None)  # (4, 3)
    return np.clip(design @ weights, -1.0, 1.0).reshape(image.shape).astype(np.float32)


def mirrored(model: Model, image: np.ndarray) -> np.ndarray:
    """`model` on the left-right mirrored image, mirrored back."""
    return model(np.ascontiguousarray(image[:, ::-1]))[:, ::-1]


def ceiling(
    teacher: Model,
    images: Sequence[np.ndarray],
    names: Sequence[str],
    student: Model | None = None,
) -> dict[str, Any]:
    """Per image and on average, against the teacher: doing nothing, the mirrored teacher, the affine oracle
    (and the student), scored by `split_fidelity` (PSNR, SSIM, grade, texture; each reference's gain over
    doing nothing and how many photos fall below it)."""
    inputs = [to_float(image) if image.dtype == np.uint8 else image for image in images]
    targets = [teacher(x) for x in inputs]
    outputs = {
        "mirrored": [mirrored(teacher, x) for x in inputs],
        "affine_oracle": [affine_oracle(x, target) for x, target in zip(inputs, targets, strict=True)],
    }
    if student is not None:
        outputs["student"] = [student(x) for x in inputs]
    return _summary(inputs, targets, names, outputs)


def carried_up(model: Model, image: np.ndarray, side: int) -> np.ndarray:
    """`model` run on the uint8 `image` scaled to `side` (long side), its change (output - input there)
    upsampled bilinearly and added to the full-size photo: what a result at `side` is worth at full size."""
    from pocketgan.evals.fullres import scaled_size
    from pocketgan.images import resize

    small = to_float(resize(image, scaled_size(image.shape[:2], side)))
    change = model(small) - small
    height, width = image.shape[:2]
    up = [
        Image.fromarray(change[..., c]).resize((width, height), Image.Resampling.BILINEAR) for c in range(3)
    ]
    return np.clip(to_float(image) + np.stack([np.asarray(u) for u in up], axis=-1), -1.0, 1.0)


def full_size_ceiling(
    teacher: Model,
    images: Sequence[np.ndarray],
    names: Sequence[str],
    targets: Sequence[np.ndarray],
    student: Model | None = None,
    sides: Sequence[int] = CARRIED_SIDES,
) -> dict[str, Any]:
    """At full size (uint8 `images`, the teacher's `targets` on each at that size): doing nothing, the
    affine oracle, the teacher's own result at each of `sides` carried up (`teacher_at_N`), and the student
    (a function of the uint8 image, run as the runtime runs it)."""
    inputs = [to_float(image) for image in images]
    outputs = {"affine_oracle": [affine_oracle(x, t) for x, t in zip(inputs, targets, strict=True)]}
    for side in sides:
        outputs[f"teacher_at_{side}"] = [carried_up(teacher, image, side) for image in images]
    if student is not None:
        outputs["student"] = [student(image) for image in images]
    return _summary(inputs, list(targets), names, outputs)


def _summary(inputs, targets, names, outputs: dict[str, list[np.ndarray]]) -> dict[str, Any]:
    from pocketgan.evals.splits import split_fidelity

    split_of = dict.fromkeys(names, "data")
    baseline = split_fidelity(inputs, targets, names, split_of)
    scored = {key: split_fidelity(outs, targets, names, split_of, baseline) for key, outs in outputs.items()}
    summary: dict[str, Any] = {"images": len(names), "identity_psnr_db": baseline["psnr_db"]}
    summary["per_image"] = {
        name: {"identity": _scores(baseline, name)} | {key: _scores(r, name) for key, r in scored.items()}
        for name in names
    }
    for key, result in scored.items():
        summary[key] = dict(result["splits"]["data"])
        del summary[key]["images"]
    return summary


def _scores(result: dict[str, Any], name: str) -> dict[str, float]:
    return {k: v for k, v in result["per_image"][name].items() if k != "split"}


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"{summary['images']} photos; doing nothing {summary['identity_psnr_db']:.2f} dB vs the teacher"]
    keys = ["mirrored", "affine_oracle", *(f"teacher_at_{side}" for side in CARRIED_SIDES), "student"]
    for key in keys:
        if key in summary:
            s = summary[key]
            lines.append(
                f"{key:<14} {s['psnr_db']:6.2f} dB  gain {s['gain_db']:+.2f} dB  "
                f"SSIM {s['ssim']:.3f}  grade dE {s['grade_de2000']:.2f}  "
                f"below doing nothing {s['below_baseline']}/{summary['images']}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; bad input is one line on stderr and exit status 2."""
    from pocketgan.errors import PocketGANError

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", default="validation", help="embedded split(s), e.g. validation,test")
    parser.add_argument("--data", default=None, help="a folder of images instead of the embedded split")
    parser.add_argument("--size", type=int, default=256, help="square side the photos are centre-cropped to")
    parser.add_argument(
        "--resolution",
        type=int,
        default=None,
        help="instead: whole photos at this long side against the teacher run at that size (cached); "
        "references: affine oracle, the teacher at 256 and 512 px carried up, the student at that size",
    )
    parser.add_argument(
        "--black-and-white",
        action="store_true",
        help="score each photo made black and white (luma in all three channels) instead, teacher included",
    )
    parser.add_argument("--teacher", default=DEFAULT_TEACHER)
    parser.add_argument("--student", default=None, help="a student checkpoint to score beside the references")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="write the per-photo numbers here")
    args = parser.parse_args(argv)
    try:
        _run(args)
    except PocketGANError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _run(args: argparse.Namespace) -> None:
    import torch

    from pocketgan.checkpoint import load_student
    from pocketgan.evals.common import eval_images, torch_model
    from pocketgan.manifest import atomic_write_json
    from pocketgan.models.teacher import load_teacher

    torch.set_num_threads(args.threads)
    teacher = torch_model(load_teacher(args.teacher))
    student = load_student(args.student)[0].eval() if args.student else None
    if args.resolution is None:
        named = _maybe_grey(eval_images(args.size, args.data, args.split), args.black_and_white)
        images, names = [image for _, image in named], [name for name, _ in named]
        summary = ceiling(teacher, images, names, torch_model(student) if student is not None else None)
    else:
        summary = _full_size(args, teacher, student)
    summary.update(
        split=args.data or args.split,
        size=args.size if args.resolution is None else None,
        resolution=args.resolution,
        teacher=args.teacher,
        student_checkpoint=args.student,
        black_and_white=args.black_and_white,
    )
    print(format_summary(summary))
    if args.json:
        atomic_write_json(args.json, json_ready(summary))
        print(f"wrote {args.json}")


def _maybe_grey(named: list[tuple[str, np.ndarray]], grey: bool) -> list[tuple[str, np.ndarray]]:
    from pocketgan.data import black_and_white

    return [(name, black_and_white(image)) for name, image in named] if grey else named


def _full_size(args: argparse.Namespace, teacher: Model, student) -> dict[str, Any]:
    from pocketgan.evals.common import torch_full_size
    from pocketgan.evals.fullres import FullResConfig, full_size_images, teacher_outputs

    config = FullResConfig(artifacts=".", resolution=args.resolution, data=args.data, split=args.split)
    named = _maybe_grey(full_size_images(config), args.black_and_white)
    images, names = [image for _, image in named], [name for name, _ in named]
    targets, _ = teacher_outputs(
        images, teacher=args.teacher, resolution=args.resolution, threads=args.threads, progress=True
    )
    run = torch_full_size(student) if student is not None else None
    return full_size_ceiling(teacher, images, names, targets, run)


if __name__ == "__main__":
    sys.exit(main())
