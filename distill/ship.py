"""Ship a finished run into the model zoo: its student as student.pt, config.toml, data.json (the photos it
trained and was selected on, by content hash) and metrics.jsonl.

The student is average.pt when the run averaged weights (its recipe set average_every), else best.pt.

Example: python -m pocketgan.distill.ship runs/vintage-student pocketgan/zoo/vintage-mobile
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from pocketgan.checkpoint import load_student
from pocketgan.distill.runfolder import AVERAGE_CHECKPOINT, BEST_CHECKPOINT
from pocketgan.errors import PocketGANError, UsageError
from pocketgan.manifest import atomic_path

PROVENANCE = {"config.toml": "config.toml", "data.json": "data.json", "metrics.jsonl": "metrics.jsonl"}


def ship(run_dir: str | Path, zoo_dir: str | Path) -> list[Path]:
    """Copy a run's student and its provenance into `zoo_dir`; the checkpoint is verified first."""
    run_dir, zoo_dir = Path(run_dir), Path(zoo_dir)
    student = AVERAGE_CHECKPOINT if (run_dir / AVERAGE_CHECKPOINT).is_file() else BEST_CHECKPOINT
    shipped = {student: "student.pt", **PROVENANCE}
    missing = [name for name in shipped if not (run_dir / name).is_file()]
    if missing:
        raise UsageError(f"{run_dir}: not a finished run (missing {', '.join(missing)})")
    load_student(run_dir / student)  # refuses anything that is not a loadable, weights-only student
    written = []
    for source, target in shipped.items():
        with atomic_path(zoo_dir / target) as tmp:
            shutil.copyfile(run_dir / source, tmp)
        written.append(zoo_dir / target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pocketgan.distill.ship", description=ship.__doc__)
    parser.add_argument("run_dir", help="a finished run folder, e.g. runs/vintage-student")
    parser.add_argument("zoo_dir", help="the zoo folder, e.g. pocketgan/zoo/vintage-mobile")
    args = parser.parse_args(argv)
    try:
        written = ship(args.run_dir, args.zoo_dir)
    except PocketGANError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
