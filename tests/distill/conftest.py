import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
REPO = HERE.parent.parent
TEACHER = "distill_nets:tiny_teacher"


TINY_RECIPE = """
teacher = "distill_nets:tiny_teacher"
student = "mobile-resnet"
width = 4
size = 32
steps = 8
batch = 4
pool_size = 8
lr = 0.005
warmup_steps = 2
eval_every = 4
checkpoint_every = 4
log_every = 2
threads = 1
progress = false

[student_kwargs]
n_blocks = 1

[pixel_loss]
l1 = 1.0
"""


@pytest.fixture
def recipe(tmp_path):
    """A TOML recipe for an 8-step tiny run, its cache in tmp."""
    path = tmp_path / "tiny.toml"
    path.write_text(f'cache_dir = "{tmp_path / "cache"}"\n' + TINY_RECIPE)
    return path


@pytest.fixture
def tiny_config(tmp_path):
    """A DistillConfig for seconds-long runs: 32 px, tiny student and teacher, cache in tmp."""
    from pocketgan.distill.config import DistillConfig

    def make(**changes):
        values = dict(
            teacher=TEACHER,
            student="mobile-resnet",
            width=4,
            student_kwargs={"n_blocks": 1},
            size=32,
            steps=24,
            batch=4,
            pool_size=8,
            lr=5e-3,
            warmup_steps=2,
            eval_every=8,
            checkpoint_every=8,
            log_every=4,
            device="cpu",
            threads=1,
            out=str(tmp_path / "run"),
            cache_dir=str(tmp_path / "cache"),
            progress=False,
            pixel_loss={"l1": 1.0},
        )
        values.update(changes)
        return DistillConfig(**values)

    return make


@pytest.fixture
def subprocess_env():
    """Environment for child processes: the repo and the test nets importable, one thread each."""
    env = dict(os.environ)
    paths = [str(REPO), str(HERE), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture
def python():
    return sys.executable


class _RunsCodeWhenUnpickled:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # creating the marker file proves code ran


@pytest.fixture
def malicious_checkpoint():
    """Write a torch checkpoint whose unpickling would execute code; returns the marker it would create."""
    import torch

    def write(path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        marker = path.parent / "code-ran"
        payload = {
            "format": "pocketgan-student/1",
            "kind": "pocketgan-training-state/1",
            "student": "mobile-resnet",
            "student_kwargs": {},
            "state_dict": {},
            "step": 3,
            "hook": _RunsCodeWhenUnpickled(marker),
        }
        torch.save(payload, path)
        return marker

    return write
