"""Latency and memory of exported artifacts, each measured in a fresh subprocess (torch-free).

Each model runs in its own `python -m pocketgan.evals._bench_worker` so memory, thread pools and caches never
leak from one model into the next: load time, first run, then p50/p90/p99/mean over the iterations
after a warmup, the process's peak RSS and the model's size on disk. A run is the engine on the model's
native input (`Session.run_array`, like an on-device invoke), without the image pre/post-processing.

Example: pocketgan bench dist/student.fp32.onnx dist/student.int8.tflite --threads 2 --json bench.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pocketgan.errors import UsageError
from pocketgan.evals.common import artifact_format
from pocketgan.manifest import read_manifest, size_bytes, verify_artifacts
from pocketgan.runtime.session import DEFAULT_MAX_SIDE
from pocketgan.status import Status, failed

PHOTO_MODES = ("engine", "end-to-end")
VIDEO_MODES = ("video-engine", "video-frame", "video-e2e")
VIDEO_FPS = 30
BENCH_PHOTO = "kleiber.jpg"  # the embedded set's largest photo (6028 x 3391, test split): real JPEG content

# A percentile is printed only when there are enough samples for it to be more than the maximum: pN needs
# at least 100 / (100 - N) samples (p90: 10, p99: 100); with fewer it is None (JSON null, "-" in the table).
PERCENTILES = {"p50": 50, "p90": 90, "p99": 99}
WIDE_SPREAD_RATIO = 1.3  # p90 / p50 above this gets a note: the numbers are noisy
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


@dataclass(frozen=True)
class BenchConfig:
    threads: int = 2
    warmup: int = 5
    iterations: int = 100  # enough for p99 (PERCENTILES)
    backend: str | None = None
    size: int = 256  # input size for models whose shape is dynamic (without photo_sizes)
    # Photo sizes (H, W): per size an "engine" row (the engine at the working size Session.run picks) and an
    # "end-to-end" row (decode a JPEG of that size, Session.run, encode a JPEG); empty: the model size only.
    photo_sizes: tuple[tuple[int, int], ...] = ()
    max_side: int | None = DEFAULT_MAX_SIDE
    # Video sizes (H, W): per size the engine at the working size, Session.run per decoded frame, and
    # decode -> run -> encode of a clip of warmup + iterations frames (pocketgan.data.clips, 30 fps).
    video_sizes: tuple[tuple[int, int], ...] = ()
    stabilised: bool = True  # video rows use the smoothed context (run's default) where the model has one
    timeout_s: float = 600.0
    every_percentile: bool = False  # True: p90/p99 even from too few samples (eval.json's fixed keys)

    def __post_init__(self):
        if self.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {self.threads}")
        if self.warmup < 0:
            raise UsageError(f"--warmup must be 0 or more, got {self.warmup}")
        if self.iterations < 1:
            raise UsageError(f"--iterations must be at least 1, got {self.iterations}")


@dataclass
class BenchResult:
    config: BenchConfig
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Rows of models that could not be loaded or run (an unavailable backend is not a failure)."""
        return [
            row for row in self.rows if (status := Status.parse(row.get("status", ""))) and status.is_failed
        ]

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"config": asdict(self.config), "rows": self.rows}


def min_samples(percentile: float) -> int:
    """Fewest samples for which the `percentile`-th is not just the largest one: 100 / (100 - percentile)."""
    return int(np.ceil(100 / (100 - percentile) - 1e-9))


def latency_summary(
    times_ms: list[float] | np.ndarray, every_percentile: bool = False
) -> dict[str, float | None]:
    """p50/p90/p99 (None where the sample is too small for it, see PERCENTILES, unless `every_percentile`),
    mean, min, max, std."""
    times = np.asarray(times_ms, dtype=np.float64)
    percentiles = {
        key: float(np.percentile(times, q)) if every_percentile or len(times) >= min_samples(q) else None
        for key, q in PERCENTILES.items()
    }
    return {
        **percentiles,
        "mean": float(times.mean()),
        "min": float(times.min()),
        "max": float(times.max()),
        "std": float(times.std()),
    }


def spread_note(latency: dict[str, float]) -> str | None:
    """A warning when p90/p50 is wide: the machine was busy or the iterations too few."""
    if latency["p90"] is None:
        return None
    ratio = latency["p90"] / latency["p50"] if latency["p50"] > 0 else float("inf")
    if ratio > WIDE_SPREAD_RATIO:
        return f"wide spread: p90/p50 = {ratio:.2f} (> {WIDE_SPREAD_RATIO}); machine busy? rerun or add iterations"
    return None


def parse_sizes(text: str) -> tuple[tuple[int, int], ...]:
    """ "1024,1920x1080,4032x3024" -> ((1024, 1024), (1080, 1920), (3024, 4032)): W x H in, (H, W) out."""
    sizes = []
    for part in filter(None, (p.strip().lower() for p in text.split(","))):
        try:
            width, height = (int(v) for v in part.split("x")) if "x" in part else (int(part), int(part))
        except ValueError:
            raise UsageError(
                f"--size takes N or WxH, comma-separated (e.g. 1024,1920x1080); got {part!r}"
            ) from None
        if min(width, height) < 1:
            raise UsageError(f"--size {part}: sides must be positive")
        sizes.append((height, width))
    if not sizes:
        raise UsageError("--size: give at least one size")
    return tuple(sizes)


def bench_one(model: str | os.PathLike, config: BenchConfig, photo: dict | None = None) -> dict[str, Any]:
    """One row: the worker's measurements plus file size and manifest facts (`photo`: a photo-size row)."""
    path = Path(model)
    if not path.exists():
        raise UsageError(f"{path}: no such model file")
    manifest = read_manifest(path)
    row: dict[str, Any] = {
        "model": str(path),
        "format": artifact_format(path, manifest),
        "precision": (manifest or {}).get("precision"),
        "backend": config.backend,
        "threads": config.threads,
        "warmup": config.warmup,
        "iterations": config.iterations,
        "size_bytes": size_bytes(path),
    }
    row.update(_run_worker(path, config, photo))
    return row


def _run_worker(path: Path, config: BenchConfig, photo: dict | None = None) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "pocketgan.evals._bench_worker",
        str(path),
        "--threads",
        str(config.threads),
    ]
    command += [
        "--warmup",
        str(config.warmup),
        "--iterations",
        str(config.iterations),
        "--size",
        str(config.size),
    ]
    if config.backend:
        command += ["--backend", config.backend]
    if photo and "clip" in photo:
        command += [
            "--video",
            json.dumps(photo | {"max_side": config.max_side, "stabilised": config.stabilised}),
        ]
    elif photo:
        command += ["--photo", json.dumps(photo | {"max_side": config.max_side})]
    env = dict(os.environ, **{name: str(config.threads) for name in THREAD_VARIABLES})
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).parent.parent), env.get("PYTHONPATH")])
    )
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=config.timeout_s)
    except subprocess.TimeoutExpired:
        return {"status": failed(f"timed out after {config.timeout_s:.0f} s")}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": failed(f"worker exited {done.returncode}: {tail[:200]}")}
    measured = json.loads(lines[-1])
    if measured.get("status") != "ok":
        return {"status": measured["status"]}
    times = measured.pop("times_ms")
    latency = latency_summary(times, config.every_percentile)
    measured["latency_ms"] = latency
    measured["note"] = spread_note(latency)
    return measured


def bench(models: list[str | os.PathLike], config: BenchConfig | None = None) -> BenchResult:
    """Measure every model, one fresh process each, in the order given.

    Models with a manifest must match its sha256 and size (IntegrityError before anything is timed); the
    workers then load without hashing again, so `load_ms` times only what an app's load does.
    """
    config = config or BenchConfig()
    if not models:
        raise UsageError("give at least one model file to bench")
    missing = [str(m) for m in models if not Path(m).exists()]
    if missing:
        raise UsageError(f"no such model file: {', '.join(missing)}")
    verify_artifacts(models)
    result = BenchResult(config)
    with tempfile.TemporaryDirectory(prefix="pocketgan-bench-") as folder:
        runs = _photo_jobs(config, Path(folder)) + _video_jobs(config, Path(folder))
        runs = [run for run in runs if run is not None] or [None]
        jobs = [(model, photo) for model in models for photo in runs]
        with tqdm(jobs, desc="pocketgan bench", unit="run", file=sys.stderr, disable=None) as progress:
            for model, photo in progress:
                progress.set_postfix_str(Path(model).name)
                result.rows.append(bench_one(model, config, photo))
    return result


def _photo_jobs(config: BenchConfig, folder: Path) -> list[dict | None]:
    """Per photo size an engine and an end-to-end job (with a real photo saved as a JPEG of that size)."""
    if not config.photo_sizes:
        return [None]
    jobs: list[dict | None] = []
    for height, width in config.photo_sizes:
        jpeg = folder / f"photo-{width}x{height}.jpg"
        _write_test_jpeg(jpeg, (height, width))
        jobs += [{"photo": [height, width], "mode": mode, "jpeg": str(jpeg)} for mode in PHOTO_MODES]
    return jobs


def _video_jobs(config: BenchConfig, folder: Path) -> list[dict]:
    """Per video size a job for each of VIDEO_MODES, on one test clip of warmup + iterations frames."""
    from pocketgan.data.clips import ClipSpec, write_clip

    jobs = []
    for height, width in config.video_sizes:
        spec = ClipSpec(
            width=width, height=height, frames=max(2, config.warmup + config.iterations), fps=VIDEO_FPS
        )
        clip = write_clip(spec, folder / f"clip-{width}x{height}.mp4")
        jobs += [{"video": [height, width], "mode": mode, "clip": str(clip)} for mode in VIDEO_MODES]
    return jobs


def _write_test_jpeg(path: Path, size: tuple[int, int]) -> None:
    """The largest photo of the embedded set, resized to `size`, as a quality-95 JPEG (a camera's file)."""
    from PIL import Image

    from pocketgan.data.photos import PHOTOS_DIR
    from pocketgan.images import load_image, resize

    Image.fromarray(resize(load_image(PHOTOS_DIR / BENCH_PHOTO), size)).save(path, quality=95)


def _photo_cell(row: dict[str, Any]) -> str:
    """ "4032x3024 e2e@1536x1152" for a photo-size row, the model's input size ("256x256") otherwise."""
    size = row.get("photo_size")
    working = row.get("input_size")
    if not size:
        return f"{working[1]}x{working[0]}" if working else "-"
    mode = {"end-to-end": "e2e"}.get(row.get("mode"), row.get("mode") or "engine")
    return f"{size[1]}x{size[0]} {mode}" + (f"@{working[1]}x{working[0]}" if working else "")


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of bench rows, with notes below it."""
    header = [
        "model",
        "photo",
        "backend",
        "thr",
        "size MB",
        "load ms",
        "first ms",
        "p50",
        "p90",
        "p99",
        "mean",
        "fps",
        "RSS MB",
    ]
    lines = [header]
    notes = []
    for row in rows:
        name = Path(row["model"]).name
        photo = _photo_cell(row)
        if row.get("status") != "ok":
            lines.append(
                [
                    name,
                    photo,
                    str(row.get("backend") or "-"),
                    str(row["threads"]),
                    f"{row['size_bytes'] / 1e6:.2f}",
                ]
            )
            notes.append(f"{name}: {row['status']}")
            continue
        lat = row["latency_ms"]
        lines.append(
            [
                name,
                photo,
                row["backend"],
                str(row["threads"]),
                f"{row['size_bytes'] / 1e6:.2f}",
                f"{row['load_ms']:.1f}",
            ]
            + [f"{row['first_run_ms']:.1f}"]
            + ["-" if lat[k] is None else f"{lat[k]:.2f}" for k in ("p50", "p90", "p99", "mean")]
            + [f"{1e3 / lat['mean']:.1f}" if lat["mean"] > 0 else "-", f"{row['peak_rss_mb']:.0f}"]
        )
        if row.get("note"):
            notes.append(f"{name}: {row['note']}")
    thin = {key for row in rows for key, value in (row.get("latency_ms") or {}).items() if value is None}
    notes += [
        f"{key}: not shown, needs at least {min_samples(PERCENTILES[key])} iterations"
        for key in PERCENTILES
        if key in thin
    ]
    widths = [max(len(line[i]) for line in lines if i < len(line)) for i in range(len(header))]
    text = "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in lines
    )
    return text + ("\n" + "\n".join(notes) if notes else "")
