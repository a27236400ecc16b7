"""Runtime overhead benchmark (not a test): Session.run vs the raw engine call on the same prepared tensor.

Exports a student-like net (depthwise-separable residual, width 16, 256²) to ONNX and TFLite, then times,
interleaved in blocks of `--block` calls: the raw engine call (InferenceSession.run /
set_tensor+invoke+get_tensor), Session.run on a 256² image (no resize), and Session.run on a 512x384 photo
against raw + the two resizes it needs: timed apart and summed ("ratio_run_photo_vs_raw_plus_resize"), and
as one sequence resize -> raw -> resize ("ratio_run_photo_vs_raw_photo"), which sees the same cache effects
as Session.run does.

Blocks, not call-by-call alternation: for onnxruntime, Session.run runs a second InferenceSession (the model
with the pixel steps spliced in, see OnnxRuntimeBackend.pixel_runner) beside the raw one, and two sessions
called in turn fight over the 2 cores with their spinning thread pools (measured call by call: the raw call
6.2 -> 8.0 ms, Session.run 1.5x raw). The fight outlasts the switch: at 2 threads, on the shipped student,
the first 5-6 calls after a switch from the other session ran 1.3-2x slower than the steady state. So each
block starts with `--warmup` untimed calls (default 8), enough for either session to settle, whatever
block ran before it, and the blocks run in a new random order each round.

The process keeps its freed memory (`runtime.keep_freed_memory()`, as `pocketgan run` does) unless
`--allocator default`: with glibc's own thresholds, the photo's resize buffers came back from the OS with
250-530 page faults per Session.run (0.5-0.9 ms), and the hand-written sequence with 0-500, depending on
the process's earlier allocations, not on the code timed.

`--models` times given artifacts instead (e.g. the shipped student's fp32 ONNX and TFLite).

Example: nice -n 10 .venv/bin/python tests/runtime/runtime_overhead_bench.py --iterations 300 --threads 1
Example: .venv/bin/python tests/runtime/runtime_overhead_bench.py --threads 2 --models dist/student.fp32.onnx dist/student.fp32.tflite
"""

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, when run as a script


def student_like(width: int = 16):
    import torch
    from torch import nn

    def separable(channels_in, channels_out, stride=1):
        return nn.Sequential(
            nn.Conv2d(channels_in, channels_in, 3, stride, 1, groups=channels_in),
            nn.Conv2d(channels_in, channels_out, 1),
            nn.ReLU(),
        )

    class Block(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.body = nn.Sequential(separable(channels, channels), separable(channels, channels))

        def forward(self, x):
            return x + self.body(x)

    class Student(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1), nn.ReLU())
            self.down = nn.Sequential(separable(width, 2 * width, 2), separable(2 * width, 4 * width, 2))
            self.blocks = nn.Sequential(*[Block(4 * width) for _ in range(4)])
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2),
                separable(4 * width, 2 * width),
                nn.Upsample(scale_factor=2),
                separable(2 * width, width),
            )
            self.head = nn.Conv2d(width, 3, 3, 1, 1)

        def forward(self, x):
            return torch.tanh(x + self.head(self.up(self.blocks(self.down(self.stem(x))))))

    torch.manual_seed(0)
    return Student().eval()


def export(directory: Path, size: int) -> tuple[Path, Path]:
    import litert_torch
    import torch

    model = student_like()
    onnx_path, tflite_path = directory / "student.fp32.onnx", directory / "student.fp32.tflite"
    torch.onnx.export(
        model, (torch.zeros(1, 3, size, size),), str(onnx_path), dynamo=True, external_data=False
    )
    channel_last = litert_torch.to_channel_last_io(model, args=[0], outputs=[0])
    litert_torch.convert(channel_last.eval(), (torch.zeros(1, size, size, 3),)).export(str(tflite_path))
    return onnx_path, tflite_path


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return (time.perf_counter() - start) * 1000.0


def measure(path: Path, threads: int, iterations: int, size: int, block: int = 20, warmup: int = 8) -> dict:
    from pocketgan import runtime
    from pocketgan.data import heldout_images
    from pocketgan.images import resize

    session = runtime.load(path, threads=threads)
    image = heldout_images(size)[0][1]
    photo = resize(heldout_images(None)[0][1], (384, 512))
    if session.layout == "NCHW":
        prepared = (image.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None].copy()
    else:
        prepared = (image.astype(np.float32) / 127.5 - 1.0)[None].copy()

    if session.backend == "onnxruntime":
        engine = session.engine.session
        feed, outputs = {session.input_spec.name: prepared}, [session.output_spec.name]

        def raw():
            engine.run(outputs, feed)

        def invoke_only():
            engine.run(outputs, feed)
    else:
        interpreter = session.engine.interpreter
        input_index = interpreter.get_input_details()[0]["index"]
        output_index = interpreter.get_output_details()[0]["index"]

        def raw():
            interpreter.set_tensor(input_index, prepared)
            interpreter.invoke()
            interpreter.get_tensor(output_index)

        def invoke_only():
            interpreter.invoke()

    small_output = session.run(image)

    def resizes():
        resize(photo, size)
        resize(small_output, photo.shape[:2])

    def raw_photo():  # what Session.run(photo) does minus the runtime's own work, in one sequence
        resize(photo, size)
        raw()
        resize(small_output, photo.shape[:2])

    for _ in range(10):  # warm-up
        raw(), session.run(image), session.run(photo)
    timed = {
        "raw": raw,
        "session_run": lambda: session.run(image),
        "invoke_only": invoke_only,
        "session_run_photo": lambda: session.run(photo),
        "resizes": resizes,
        "raw_photo": raw_photo,
    }
    times: dict[str, list[float]] = {key: [] for key in timed}
    order = random.Random(0)
    for _ in range(max(1, iterations // block)):  # interleaved in blocks, so drift hits all alike
        keys = list(timed)
        order.shuffle(keys)  # no block always follows the same one (another session, or none)
        for key in keys:
            function = timed[key]
            for _ in range(warmup):  # untimed: the previous block's thread pool winds down
                function()
            times[key] += [_timed(function) for _ in range(block)]
    median = {key: statistics.median(values) for key, values in times.items()}
    paired = [run / base for run, base in zip(times["session_run"], times["raw"], strict=True)]
    paired_photo = [
        run / (base + extra)
        for run, base, extra in zip(times["session_run_photo"], times["raw"], times["resizes"], strict=True)
    ]
    return {
        "model": path.name,
        "backend": session.backend,
        "threads": threads,
        "iterations": len(times["raw"]),
        "block": block,
        "warmup": warmup,
        "median_ms": {key: round(value, 3) for key, value in median.items()},
        "ratio_run_vs_raw": round(median["session_run"] / median["raw"], 4),
        "ratio_run_photo_vs_raw_plus_resize": round(
            median["session_run_photo"] / (median["raw"] + median["resizes"]), 4
        ),
        "ratio_run_photo_vs_raw_photo": round(median["session_run_photo"] / median["raw_photo"], 4),
        "median_paired_ratio_run_vs_raw": round(statistics.median(paired), 4),
        "median_paired_ratio_photo_vs_raw_plus_resize": round(statistics.median(paired_photo), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--block", type=int, default=20, help="Calls per timed block (default 20).")
    parser.add_argument("--warmup", type=int, default=8, help="Untimed calls before each block (default 8).")
    parser.add_argument("--models", nargs="*", type=Path, help="Artifacts to time (default: export a net).")
    parser.add_argument(
        "--allocator",
        choices=["kept", "default"],
        default="kept",
        help="kept: runtime.keep_freed_memory(), as `pocketgan run` (default); default: glibc's own.",
    )
    args = parser.parse_args()
    from pocketgan import runtime

    allocator = args.allocator
    if allocator == "kept" and not runtime.keep_freed_memory():
        allocator = "not kept: no glibc, or MALLOC_* / GLIBC_TUNABLES set"
    with tempfile.TemporaryDirectory() as directory:
        paths = args.models or export(Path(directory), args.size)
        results = [
            measure(path, args.threads, args.iterations, args.size, args.block, args.warmup) for path in paths
        ]
    print(json.dumps([{**result, "allocator": allocator} for result in results], indent=2))


if __name__ == "__main__":
    main()
