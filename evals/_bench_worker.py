"""Time one artifact in this (fresh) process and print one JSON line; `evals.bench` runs it (torch-free).

Example: python -m pocketgan.evals._bench_worker dist/student.fp32.onnx --threads 2 --warmup 5 --iterations 50
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from pocketgan import runtime
from pocketgan.errors import BackendUnavailable

# Packages that only convert models. coremltools imports every one of them it finds installed (torch,
# executorch, torchao, scikit-learn: 8-10 s and ~400 MB here), though running a Core ML artifact needs none;
# the worker hides them from a Core ML artifact's process, so its row times what a torch-free install loads.
CONVERTER_PACKAGES = ("torch", "torchao", "torchvision", "executorch", "sklearn", "tensorflow", "xgboost")


def _hide_converters(model: str) -> None:
    """Make `import torch` (and the rest of CONVERTER_PACKAGES) fail fast when `model` runs on Core ML."""
    from pocketgan.runtime.base import backends_for

    backends = backends_for(model)
    if backends and all(b.format == "coreml" for b in backends) and "coremltools" not in sys.modules:
        for name in CONVERTER_PACKAGES:
            sys.modules.setdefault(name, None)  # None in sys.modules: the import raises ImportError


def _rss_mb(key: str) -> float | None:
    """VmRSS / VmHWM of this process from /proc (Linux), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _peak_rss_mb() -> float:
    high_water = _rss_mb("VmHWM")
    if high_water is not None:
        return high_water
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def measure(path: str, threads: int, warmup: int, iterations: int, backend: str | None, size: int) -> dict:
    """Load time, first run, then `iterations` timed runs after `warmup` untimed ones.

    A run is the engine on the artifact-native inputs (`Session.run_arrays`: the image, and the context
    thumbnail of a two-input artifact), as on-device benchmarks time an invoke: image pre/post-processing
    is not the artifact's cost (tests/runtime/runtime_overhead_bench.py measures that).
    """
    rss_before = _rss_mb("VmRSS")
    start = time.perf_counter()
    session = runtime.load(path, backend=backend, threads=threads, verify=False)  # the parent verified it
    load_ms = (time.perf_counter() - start) * 1e3
    height, width = session.size or (size, size)
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    arrays = session.native_inputs(image)
    start = time.perf_counter()
    session.run_arrays(arrays)
    first_run_ms = (time.perf_counter() - start) * 1e3
    for _ in range(warmup):
        session.run_arrays(arrays)
    times = np.empty(iterations)
    for i in range(iterations):
        start = time.perf_counter()
        session.run_arrays(arrays)
        times[i] = (time.perf_counter() - start) * 1e3
    return {
        "backend": session.backend,
        "input_size": [height, width],
        "load_ms": load_ms,
        "first_run_ms": first_run_ms,
        "times_ms": times.tolist(),
        "rss_before_load_mb": rss_before,
        "peak_rss_mb": _peak_rss_mb(),
    }


def measure_photo(
    path: str, threads: int, warmup: int, iterations: int, backend: str | None, options: dict
) -> dict:
    """One photo size, as `pocketgan run` sees it: the engine alone at the working size the session picks
    ("engine"), or decode of the JPEG `options["jpeg"]` -> Session.run -> JPEG encode ("end-to-end")."""
    from pocketgan.images import read_photo
    from pocketgan.runtime.provenance import ProvenanceLabel, encode_image

    rss_before = _rss_mb("VmRSS")
    start = time.perf_counter()
    session = runtime.load(path, backend=backend, threads=threads, verify=False, max_side=options["max_side"])
    load_ms = (time.perf_counter() - start) * 1e3
    photo_size = tuple(options["photo"])
    working = session.working_size(photo_size)
    if options["mode"] == "engine":
        image = np.random.default_rng(0).integers(0, 256, (*working, 3), dtype=np.uint8)
        engine = session.session_for(working)  # a per-size export's file for that size
        arrays = engine.native_inputs(image)

        def once():
            engine.run_arrays(arrays)
    else:
        label = ProvenanceLabel(session.sha256, Path(path).name)

        def once():
            photo = read_photo(options["jpeg"], keep_image=True)
            encode_image(session.run(photo.pixels, source=photo.image), "jpg", label, exif=photo.exif)

    start = time.perf_counter()
    once()
    first_run_ms = (time.perf_counter() - start) * 1e3
    for _ in range(warmup):
        once()
    times = np.empty(iterations)
    for i in range(iterations):
        start = time.perf_counter()
        once()
        times[i] = (time.perf_counter() - start) * 1e3
    return {
        "backend": session.backend,
        "mode": options["mode"],
        "photo_size": list(photo_size),
        "input_size": list(working),
        "load_ms": load_ms,
        "first_run_ms": first_run_ms,
        "times_ms": times.tolist(),
        "rss_before_load_mb": rss_before,
        "peak_rss_mb": _peak_rss_mb(),
    }


def measure_video(
    path: str, threads: int, warmup: int, iterations: int, backend: str | None, options: dict
) -> dict:
    """One clip, as `pocketgan run` sees it (runtime/video.py): per frame, the engine alone at the working
    size ("video-engine"), ClipModel.run_frame on decoded frames ("video-frame"), or decode -> run -> encode of
    the whole clip into a temporary file ("video-e2e", times between frames; VmRSS every 30 frames)."""
    import tempfile

    from pocketgan.images import resize
    from pocketgan.runtime.video import SMOOTHING, ClipModel, VideoOptions, run_video

    start = time.perf_counter()
    session = runtime.load(path, backend=backend, threads=threads, verify=False, max_side=options["max_side"])
    load_ms = (time.perf_counter() - start) * 1e3
    clip = Path(options["clip"])
    height, width = options["video"]
    model = ClipModel(session, smoothing=SMOOTHING if options.get("stabilised") else 0.0)
    stamps, rss = [time.perf_counter()], []

    def tick(index: int) -> None:
        stamps.append(time.perf_counter())
        if index % 30 == 0:
            rss.append(round(_rss_mb("VmRSS") or 0.0, 1))

    if options["mode"] == "video-e2e":
        with tempfile.TemporaryDirectory(prefix="pocketgan-bench-video-") as folder:
            run_video(model, clip, Path(folder) / clip.name, VideoOptions(), on_frame=tick)
        times = np.diff(stamps)[warmup:] * 1e3
    else:
        frames = _decoded_frames(clip)
        if options["mode"] == "video-engine":
            working = session.working_size((height, width))
            engine = session.session_for(working)  # a per-size export's file for that size
            arrays = engine.native_inputs(resize(frames[0].to_ndarray(format="rgb24"), working))
            once = lambda index: engine.run_arrays(arrays)  # noqa: E731
        else:
            once = lambda index: model.run_frame(frames[index % len(frames)])  # noqa: E731
        for index in range(warmup + iterations):
            once(index)
            tick(index)
        times = np.diff(stamps)[warmup:] * 1e3
    return {
        "backend": session.backend,
        "mode": options["mode"],
        "photo_size": [height, width],
        "input_size": list(session.working_size((height, width))),
        "load_ms": load_ms,
        "first_run_ms": float(np.diff(stamps)[0] * 1e3),
        "times_ms": times.tolist(),
        "fps": 1e3 / float(times.mean()),
        "rss_trace_mb": rss,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _decoded_frames(clip: Path, limit: int = 30) -> list:
    """The first `limit` decoded frames (av.VideoFrame) of a clip (the frame-level modes reuse them)."""
    import av

    with av.open(str(clip)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame)
            if len(frames) == limit:
                break
    return frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pocketgan.evals._bench_worker")
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--backend", default=None)
    parser.add_argument("--size", type=int, default=256, help="input size when the model's is dynamic")
    parser.add_argument("--photo", default=None, help="JSON: {photo: [H, W], mode, jpeg, max_side}")
    parser.add_argument(
        "--video", default=None, help="JSON: {video: [H, W], mode, clip, max_side, stabilised}"
    )
    args = parser.parse_args(argv)

    try:
        _hide_converters(args.model)
        if args.video:
            options = json.loads(args.video)
            row = measure_video(args.model, args.threads, args.warmup, args.iterations, args.backend, options)
        elif args.photo:
            options = json.loads(args.photo)
            row = measure_photo(args.model, args.threads, args.warmup, args.iterations, args.backend, options)
        else:
            row = measure(args.model, args.threads, args.warmup, args.iterations, args.backend, args.size)
        row["status"] = "ok"
    except BackendUnavailable as exc:
        row = {"status": f"unavailable: {exc}"}
    except Exception as exc:  # reported as a row; the parent decides what to do with it
        row = {"status": f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    row["torch_loaded"] = sys.modules.get("torch") is not None  # None: hidden (_hide_converters)
    sys.stdout.write(json.dumps(row) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: some runtimes are slow or noisy to destroy


if __name__ == "__main__":
    main()
