"""`pocketgan run` never loses or clobbers: distinct names, exclusive creation, inputs kept, temps cleaned."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from runtime_testkit import jpeg_bytes

from pocketgan import runtime
from pocketgan.cli import main
from pocketgan.images import load_image
from pocketgan.runtime.batch import EXISTS, Inputs, Job, WriteOptions, collect_jobs, process, unique_outputs


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(["run", *map(str, args)])
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def distinct_photos(count: int, size: int = 48) -> list[np.ndarray]:
    """Seeded colour photos, different from each other, so an output tells which input it came from."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(0, 255, size)[None, :, None]
    return [
        np.clip(ramp * rng.uniform(0.3, 1.0, 3) + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
        for _ in range(count)
    ]


def hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_named_inputs_from_three_folders_give_three_outputs(tiny_onnx, tmp_path, capsys):
    photos = distinct_photos(3)
    for folder, photo in zip("abc", photos, strict=True):
        (tmp_path / folder).mkdir()
        Image.fromarray(photo).save(tmp_path / folder / "x.jpg", quality=95)
    files = [tmp_path / folder / "x.jpg" for folder in "abc"]
    session = runtime.load(tiny_onnx)
    for name, arguments in {
        "files": files,
        "folders": [tmp_path / folder for folder in "abc"],
    }.items():
        out = tmp_path / f"out_{name}"
        code, stdout, _ = run_cli(capsys, tiny_onnx, *arguments, "-o", out, "--format", "png")  # exact pixels
        assert code == 0 and "3 written" in stdout, stdout
        assert sorted(p.name for p in out.iterdir()) == ["x-2.png", "x-3.png", "x.png"]
        for output, source in zip(["x.png", "x-2.png", "x-3.png"], files, strict=True):
            expected = session.run(load_image(source))  # argument order decides the numbers
            np.testing.assert_array_equal(np.asarray(Image.open(out / output)), expected, err_msg=output)
    # A glob mirrors the paths below its folder, so nothing collides.
    out = tmp_path / "out_glob"
    code, stdout, _ = run_cli(capsys, tiny_onnx, str(tmp_path / "*" / "x.jpg"), "-o", out)
    assert code == 0 and "3 written" in stdout
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.jpg")) == ["a/x.jpg", "b/x.jpg", "c/x.jpg"]


def test_unique_outputs_numbers_collisions_without_taking_another_inputs_name():
    jobs = [
        Job(Path("d/a.jpg"), Path("a.png")),
        Job(Path("d/a.png"), Path("a.png")),
        Job(Path("d/a-2.jpg"), Path("a-2.png")),
        Job(Path("e/A.jpg"), Path("A.png")),  # differs only in case: a different file on Linux, not on macOS
        Job(Path("d/a.jpg"), Path("a.png")),  # the same source again
        Job(Path("f/sub/a.jpg"), Path("sub/a.png")),
    ]
    outputs = [str(job.output) for job in unique_outputs(jobs)]
    assert outputs == ["a.png", "a-3.png", "a-2.png", "A-4.png", "sub/a.png"]


class OtherWriterSession:
    """A session whose run lets 'another process' create the output first, as a concurrent run can."""

    def __init__(self, destination: Path):
        self.destination = destination

    def run(self, pixels, source=None):
        self.destination.parent.mkdir(parents=True, exist_ok=True)
        self.destination.write_bytes(b"the other run's output")
        return pixels


@pytest.mark.parametrize("overwrite", [False, True])
def test_an_output_made_by_another_run_meanwhile_is_not_replaced(tmp_path, overwrite):
    source = tmp_path / "x.png"
    Image.fromarray(distinct_photos(1)[0]).save(source)
    out = tmp_path / "out"
    inputs = Inputs(jobs=[Job(source, Path("x.png"))])
    report = process(OtherWriterSession(out / "x.png"), inputs, out, WriteOptions(overwrite=overwrite))
    if overwrite:
        assert report.written == [out / "x.png"] and Image.open(out / "x.png").size == (48, 48)
    else:
        assert report.written == [] and report.skipped == [(source, EXISTS)]
        assert (out / "x.png").read_bytes() == b"the other run's output"
    assert sorted(p.name for p in out.iterdir()) == ["x.png"]  # no temporary file left


def test_two_concurrent_runs_into_one_folder_lose_nothing(tiny_onnx, tmp_path):
    """Two processes, same output names, different photos: each name holds one complete output, written by
    the run that reports it written; the other run says it skipped that name."""
    count = 40
    photos = distinct_photos(2 * count, size=96)
    for run_name, offset in (("A", 0), ("B", count)):
        (tmp_path / run_name).mkdir()
        for i in range(count):
            Image.fromarray(photos[offset + i]).save(tmp_path / run_name / f"x{i:02d}.png")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pocketgan", "run", str(tiny_onnx), "-o", str(out), "--threads", "1"]
    processes = {
        run_name: subprocess.Popen(
            [*command, str(tmp_path / run_name)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for run_name in "AB"
    }
    results = {run_name: process.communicate(timeout=300) for run_name, process in processes.items()}
    session = runtime.load(tiny_onnx)
    written_by = {}
    for run_name, (stdout, stderr) in results.items():
        assert processes[run_name].returncode == 0, stderr
        skipped = {line.split()[1].rstrip(":") for line in stderr.splitlines() if line.startswith("skipped ")}
        assert f"{count - len(skipped)} written" in stdout and f"{len(skipped)} skipped" in stdout, stdout
        for i in range(count):
            if str(tmp_path / run_name / f"x{i:02d}.png") not in skipped:
                assert f"x{i:02d}.png" not in written_by, "two runs both claim to have written one name"
                written_by[f"x{i:02d}.png"] = run_name
    assert sorted(written_by) == sorted(p.name for p in out.iterdir())  # every name written once, no temps
    for name, run_name in written_by.items():
        expected = session.run(load_image(tmp_path / run_name / name))
        np.testing.assert_array_equal(np.asarray(Image.open(out / name)), expected, err_msg=name)


def test_output_folder_equal_to_input_folder_changes_no_input_byte(tiny_onnx, tmp_path, capsys):
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    first, second, third = distinct_photos(3)
    Image.fromarray(first).save(folder / "a.png")
    (folder / "b.jpg").write_bytes(jpeg_bytes(second))
    Image.fromarray(third).save(folder / "nested" / "c.png")
    before = hashes(folder)
    for arguments in ([folder], [folder / "a.png", folder / "nested" / "c.png"], [str(folder / "*.png")]):
        code, stdout, stderr = run_cli(
            capsys, tiny_onnx, *arguments, "-o", folder, "--overwrite", "--format", "png"
        )
        assert code == 0
        assert {name: digest for name, digest in hashes(folder).items() if name in before} == before
        assert "is its input file (use --in-place" in stderr
    assert (folder / "b.png").exists()  # b.jpg's output does not replace an input: it is written
    session = runtime.load(tiny_onnx)
    code, stdout, _ = run_cli(capsys, tiny_onnx, folder / "a.png", "-o", folder, "--in-place")
    assert code == 0 and "1 written" in stdout
    np.testing.assert_array_equal(np.asarray(Image.open(folder / "a.png")), session.run(first))


def test_in_place_never_replaces_another_input(tiny_onnx, tmp_path, capsys):
    """a.jpg's output would be a.png, another input: skipped even with --in-place; a.png's goes to a-2.png."""
    folder = tmp_path / "photos"
    folder.mkdir()
    first, second = distinct_photos(2)
    (folder / "a.jpg").write_bytes(jpeg_bytes(first))
    Image.fromarray(second).save(folder / "a.png")
    before = hashes(folder)
    code, stdout, stderr = run_cli(
        capsys, tiny_onnx, folder, "-o", folder, "--in-place", "--overwrite", "--format", "png"
    )
    assert code == 0 and "1 written" in stdout and "1 skipped (1 input file)" in stdout
    assert "a.png is another input file of this run" in stderr
    assert {name: digest for name, digest in hashes(folder).items() if name in before} == before
    np.testing.assert_array_equal(
        np.asarray(Image.open(folder / "a-2.png")), runtime.load(tiny_onnx).run(second)
    )


def test_a_hard_link_to_an_input_is_not_replaced(tiny_onnx, tmp_path, capsys):
    source = tmp_path / "photo.png"
    Image.fromarray(distinct_photos(1)[0]).save(source)
    out = tmp_path / "out"
    out.mkdir()
    os.link(source, out / "photo.png")
    before = source.read_bytes()
    code, stdout, stderr = run_cli(capsys, tiny_onnx, source, "-o", out, "--overwrite")
    assert code == 0 and "1 skipped (1 input file)" in stdout and "is its input file" in stderr
    assert source.read_bytes() == before


def test_an_output_name_held_by_a_folder_is_an_error_and_the_folder_stays(tiny_onnx, tmp_path, capsys):
    source = tmp_path / "photo.png"
    Image.fromarray(distinct_photos(1)[0]).save(source)
    (tmp_path / "out" / "photo.png").mkdir(parents=True)
    (tmp_path / "out" / "photo.png" / "keep.txt").write_text("mine")
    code, _, stderr = run_cli(capsys, tiny_onnx, source, "-o", tmp_path / "out", "--overwrite")
    assert code == 2 and "is a folder" in stderr
    assert (tmp_path / "out" / "photo.png" / "keep.txt").read_text() == "mine"


def test_run_removes_temps_of_dead_writers_and_keeps_live_ones(
    tiny_onnx, photo_folder, tmp_path, capsys, killed_mid_write
):
    out = tmp_path / "out"
    killed_mid_write(out / "nested" / "alpha.png")  # a run killed while writing this output
    (stale,) = (out / "nested").iterdir()
    live = out / f".tmp-{os.getppid()}-good.png-a8f1"  # our parent process is alive
    live.mkdir()
    run_cli(capsys, tiny_onnx, photo_folder, "-o", out)
    assert not stale.exists() and live.exists()
    assert sorted(p.name for p in (out / "nested").iterdir()) == ["alpha.png"]


def test_collect_jobs_lists_files_that_are_not_images(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(distinct_photos(1)[0]).save(folder / "a.png")
    for name in ("notes.txt", "clip.mkv", "clip.mp4", ".DS_Store"):
        (folder / name).write_bytes(b"x")
    (folder / ".tmp-12-a.png-xyz").mkdir()
    (folder / ".tmp-12-a.png-xyz" / "a.png").write_bytes(b"half")
    found = collect_jobs((str(folder),), tmp_path / "out", "png")
    assert [job.output for job in found.jobs] == [
        Path("a.png"),
        Path("clip.mp4"),
    ]  # a video keeps its container
    assert [p.name for p in found.unsupported] == ["clip.mkv", "notes.txt"]


@pytest.mark.parametrize("suffix", ["webp", "png"])  # an animated GIF is a video (test_runtime_video.py)
def test_animated_input_gives_its_first_frame_with_a_notice(tiny_onnx, tmp_path, capsys, suffix):
    folder = tmp_path / "in"
    folder.mkdir()
    frames = [Image.fromarray(photo) for photo in distinct_photos(3)]
    frames[0].save(folder / f"anim.{suffix}", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(folder / f"anim.{suffix}").n_frames == 3
    (folder / "readme.txt").write_text("not an image")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, tiny_onnx, folder, "-o", out)
    assert code == 0
    assert f"notice: {folder / f'anim.{suffix}'}: animated; only the first frame of 3 was run" in stderr
    assert "note: 1 files are not images and were not run: " + str(folder / "readme.txt") in stderr
    assert "1 written" in stdout and "1 animated (first frame only)" in stdout and "1 not images" in stdout
    with Image.open(folder / f"anim.{suffix}") as animation:
        first = np.asarray(animation.convert("RGB"))
    expected = runtime.load(tiny_onnx).run(first)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "anim.png")), expected)
