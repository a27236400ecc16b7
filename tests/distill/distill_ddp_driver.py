"""`torchrun ... distill_ddp_driver.py distill ...`: the pocketgan CLI, recording which rank writes which file.

Each rank appends the paths it writes to $WRITES_DIR/rank<RANK>.txt. The recording wraps
pocketgan.manifest.atomic_path (every atomic file write) before the stage modules import it by name.
"""

import contextlib
import os
from pathlib import Path

import pocketgan.manifest as manifest

_real_atomic_path = manifest.atomic_path
_record = Path(os.environ["WRITES_DIR"]) / f"rank{os.environ.get('RANK', '0')}.txt"


def _note(path) -> None:
    with open(_record, "a") as handle:
        handle.write(f"{Path(path).resolve()}\n")


@contextlib.contextmanager
def recording_atomic_path(final, **options):
    _note(final)
    with _real_atomic_path(final, **options) as tmp:
        yield tmp


manifest.atomic_path = recording_atomic_path

import pocketgan.distill.runfolder as runfolder  # noqa: E402  (after the patch, on purpose)

_real_append = runfolder.append_metrics


def recording_append(run_dir, record):
    _note(Path(run_dir) / runfolder.METRICS_FILE)
    _real_append(run_dir, record)


runfolder.append_metrics = recording_append

from pocketgan.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
