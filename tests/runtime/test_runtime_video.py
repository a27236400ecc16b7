"""`pocketgan run` on videos: what is kept (frames, rate, size, rotation, audio, label), broken clips, atomic
writes, the stabilised context. Clips are made here (pocketgan.data.clips) at 64x48, a few frames each."""

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from pocketgan import runtime
from pocketgan.cli import main
from pocketgan.data.clips import ClipSpec, corrupt_copy, truncated_copy, write_clip
from pocketgan.runtime.video import ClipModel, probe

av = pytest.importorskip("av")

SPEC = ClipSpec(width=64, height=48, frames=8, fps=12)
AI_GENERATED = "trainedAlgorithmicMedia"


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(["run", *map(str, args)])
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def pocketgan_run(model, clip, out, *more):
    """`python -m pocketgan run MODEL CLIP -o OUT MORE...` as a subprocess command line."""
    return [sys.executable, "-m", "pocketgan", "run", *map(str, (model, clip, "-o", out, *more))]


def first_frame(path):
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


@pytest.mark.parametrize(
    ("suffix", "audio", "rotation"),
    [(".mp4", True, 90), (".mov", True, 0), (".webm", True, 270), (".gif", False, 0)],
)
def test_video_keeps_frames_rate_size_rotation_audio_and_gets_the_label(
    tiny_onnx, tmp_path, capsys, suffix, audio, rotation
):
    clip = write_clip(SPEC, tmp_path / f"in/clip{suffix}", audio=audio, rotation=rotation)
    code, stdout, stderr = run_cli(capsys, tiny_onnx, clip, "-o", tmp_path / "out", "--threads", 1)
    assert code == 0, stderr
    out = tmp_path / "out" / f"clip{suffix}"
    before, after = probe(clip, count=True), probe(out, count=True)
    assert after.frames == before.frames == SPEC.frames
    assert (after.width, after.height) == (SPEC.width, SPEC.height)
    assert after.fps == before.fps and after.fps is not None
    assert after.rotation % 360 == rotation and after.display_matrix == before.display_matrix
    assert after.has_audio == audio
    comment = next(value for key, value in after.metadata.items() if key.lower() == "comment")
    assert AI_GENERATED in comment and runtime.load(tiny_onnx).sha256 in comment
    expected = runtime.load(tiny_onnx).run(first_frame(clip)).astype(float)
    error = np.abs(first_frame(out).astype(float) - expected).mean()
    assert error < (10 if suffix == ".gif" else 4), error  # the model ran (codec loss only) ...
    assert np.abs(first_frame(out).astype(float) - first_frame(clip)).mean() > error + 5  # ... and changed it


def test_no_label_and_strip_metadata(tiny_onnx, tmp_path, capsys):
    clip = tmp_path / "clip.mp4"
    with av.open(str(write_clip(SPEC, tmp_path / "raw.mp4"))) as source, av.open(str(clip), "w") as output:
        stream = output.add_stream_from_template(source.streams.video[0])
        output.metadata["title"] = "holiday"
        for packet in source.demux(video=0):
            if packet.dts is not None:
                packet.stream = stream
                output.mux(packet)
    run_cli(capsys, tiny_onnx, clip, "-o", tmp_path / "kept")
    run_cli(capsys, tiny_onnx, clip, "-o", tmp_path / "bare", "--no-label", "--strip-metadata")
    assert probe(tmp_path / "kept/clip.mp4").metadata["title"] == "holiday"
    bare = probe(tmp_path / "bare/clip.mp4").metadata
    assert "title" not in bare and "comment" not in bare


def test_broken_videos_give_one_line_each_and_the_batch_goes_on(tiny_onnx, tmp_path, capsys):
    folder = tmp_path / "in"
    good = write_clip(SPEC, folder / "good.mp4")
    write_clip(ClipSpec(width=64, height=48, frames=24, fps=12), tmp_path / "long.webm")
    corrupt_copy(good, folder / "corrupt.mp4")
    truncated_copy(good, folder / "truncated.mp4")
    truncated_copy(tmp_path / "long.webm", folder / "truncated.webm")  # header intact, frames cut
    (folder / "empty.mov").write_bytes(b"")
    Image.fromarray(np.full((40, 56, 3), 120, np.uint8)).save(folder / "photo.png")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, tiny_onnx, folder, "-o", out)
    assert code == 2
    assert "Traceback" not in stdout + stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    broken = ("corrupt.mp4", "truncated.mp4", "truncated.webm", "empty.mov")
    assert len(errors) == len(broken), errors
    for name in broken:
        assert sum(name in line for line in errors) == 1, (name, errors)
    assert sorted(p.name for p in out.iterdir()) == [
        "good.mp4",
        "photo.png",
    ]  # no temp left, nothing half-written
    assert probe(out / "good.mp4", count=True).frames == SPEC.frames


def test_killed_run_leaves_no_complete_looking_output_and_a_rerun_finishes(tiny_onnx, tmp_path, capsys):
    clip = write_clip(ClipSpec(width=320, height=240, frames=240, fps=24), tmp_path / "clip.mp4")
    out = tmp_path / "out"
    command = pocketgan_run(tiny_onnx, clip, out, "--threads", "1")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any(out.glob(".tmp-*/clip.mp4")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # some frames into the encode
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (out / "clip.mp4").exists()
    assert [p.name.startswith(".tmp-") for p in out.iterdir()] == [True]
    code, _, stderr = run_cli(capsys, tiny_onnx, clip, "-o", out)
    assert code == 0, stderr
    assert [p.name for p in out.iterdir()] == ["clip.mp4"]  # the dead run's temp is cleared
    assert probe(out / "clip.mp4", count=True).frames == 240


def test_animated_gif_is_a_video_and_a_still_gif_an_image(tiny_onnx, tmp_path, capsys):
    folder = tmp_path / "in"
    write_clip(SPEC, folder / "moving.gif")
    Image.fromarray(np.full((40, 56, 3), 90, np.uint8)).save(folder / "still.gif")
    code, _, stderr = run_cli(capsys, tiny_onnx, folder, "-o", tmp_path / "out")
    assert code == 0, stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["moving.gif", "still.png"]
    assert Image.open(tmp_path / "out/moving.gif").n_frames == SPEC.frames


def test_stabilised_context_smooths_the_thumbnail_and_restarts_at_a_cut(context_onnx):
    session = runtime.load(context_onnx, threads=1)
    frame = np.full((48, 64, 3), 100, np.uint8)
    brighter = np.full((48, 64, 3), 120, np.uint8)
    other_scene = np.full((48, 64, 3), 230, np.uint8)
    model = ClipModel(session, smoothing=0.75)
    model(frame)
    smoothed_output = model(brighter)
    np.testing.assert_allclose(model.context, 105.0, atol=0.01)  # 0.75 * 100 + 0.25 * 120
    assert np.array_equal(smoothed_output, session.run(brighter, thumbnail=np.full((256, 256, 3), 105.0)))
    assert not np.array_equal(smoothed_output, session.run(brighter))  # the context changed the grade
    model(other_scene)
    assert model.cuts == 1 and np.allclose(model.context, 230.0)
    with pytest.raises(ValueError):
        ClipModel(session, smoothing=1.0)


def test_clip_model_runs_decoded_frames_like_their_pixels(context_onnx, tiny_onnx, tmp_path):
    """run_frame (FFmpeg scales the decoded frame to the working size) gives what run gives on the frame's
    RGB pixels to within resampling rounding, and exactly where the frame is run at its own size."""
    clip = write_clip(ClipSpec(width=128, height=72, frames=3, fps=12), tmp_path / "clip.mp4")
    with av.open(str(clip)) as container:
        frames = list(container.decode(video=0))
    for model, max_side, exact in (
        (context_onnx, 64, False),
        (context_onnx, None, True),
        (tiny_onnx, 64, False),
    ):
        session = runtime.load(model, threads=1, max_side=max_side)
        for frame in frames:
            pixels = frame.to_ndarray(format="rgb24")
            fast = ClipModel(session, smoothing=0.0).run_frame(frame)
            reference = session.run(pixels)
            assert fast.shape == pixels.shape
            difference = np.abs(fast.astype(int) - reference)
            assert difference.max() == 0 if exact else difference.mean() < 2.0, (model, max_side)


def test_stabilised_mode_changes_only_context_artifacts(tiny_onnx, context_onnx, tmp_path, capsys):
    frames = ClipSpec(width=64, height=48, frames=6, fps=12)
    clip = write_clip(frames, tmp_path / "clip.mp4")
    for model, name in ((tiny_onnx, "plain"), (context_onnx, "context")):
        for mode in ("smoothed", "per-frame"):
            code, _, stderr = run_cli(
                capsys, model, clip, "-o", tmp_path / name / mode, "--video-context", mode
            )
            assert code == 0, stderr

    def last_frame(path):
        with av.open(str(path)) as container:
            return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)][-1]

    def differ(name):
        a, b = (last_frame(tmp_path / name / mode / "clip.mp4") for mode in ("smoothed", "per-frame"))
        return np.abs(a.astype(float) - b).mean()

    assert differ("plain") == 0
    assert differ("context") > 0  # the exposure ramp moved the per-frame context away from the average
    assert probe(tmp_path / "context/smoothed/clip.mp4").fps == Fraction(12)


def test_video_runs_without_torch(tiny_onnx, tmp_path, block_torch):
    from runtime_testkit import REPO

    clip = write_clip(SPEC, tmp_path / "clip.webm", audio=True)
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(block_torch)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)])}
    command = pocketgan_run(tiny_onnx, clip, tmp_path / "out")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr
    assert probe(tmp_path / "out/clip.webm", count=True).frames == SPEC.frames
    check = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True, env=env)
    assert check.returncode != 0 and "torch is blocked" in check.stderr
