"""`run` as a mobile engineer meets it: outputs follow the input's format, a JSON summary on stdout, zoo
names and checkpoints exported once into the cache, or the exact export command where torch is missing."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from pocketgan.artifacts import cache_root, checkpoint_of, export_command, zoo_names
from pocketgan.cli import main
from pocketgan.runtime.batch import collect_jobs, output_name

REPO = Path(__file__).resolve().parents[2]


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(["run", *map(str, args)])
    captured = capsys.readouterr()
    return info.value.code, captured.out, captured.err


def test_output_format_follows_the_input_unless_chosen():
    assert output_name(Path("a/photo.JPG"), None) == Path("a/photo.jpg")
    assert output_name(Path("photo.jpeg"), None) == Path("photo.jpeg")
    assert output_name(Path("scan.png"), None) == Path("scan.png")
    assert output_name(Path("frame.webp"), None) == Path("frame.png")
    assert output_name(Path("photo.jpg"), "png") == Path("photo.png")


def test_a_folder_of_jpeg_and_png_gives_jpeg_and_png(tiny_onnx, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (40, 30), (200, 120, 40)).save(photos / "a.jpg", quality=90)
    Image.new("RGB", (40, 30), (20, 120, 240)).save(photos / "b.png")
    assert sorted(str(j.output) for j in collect_jobs((str(photos),), tmp_path / "out").jobs) == [
        "a.jpg",
        "b.png",
    ]
    code, out, err = run_cli(capsys, tiny_onnx, photos, "-o", tmp_path / "out", "--json", "-")
    assert code == 0, err
    summary = json.loads(out)  # nothing but the JSON on stdout
    assert sorted(Path(p).name for p in summary["written"]) == ["a.jpg", "b.png"]
    assert summary["failed"] == [] and summary["backend"] == "onnxruntime" and summary["seconds"] > 0
    assert Image.open(tmp_path / "out" / "a.jpg").format == "JPEG"
    assert Image.open(tmp_path / "out" / "b.png").format == "PNG"
    assert "2 written" in err  # the human summary moved to stderr


def test_run_json_to_a_file_keeps_the_summary_line_on_stdout(tiny_onnx, tmp_path, capsys):
    source = tmp_path / "p.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(source)
    code, out, _ = run_cli(capsys, tiny_onnx, source, "-o", tmp_path / "out", "--json", tmp_path / "run.json")
    assert code == 0 and "1 written" in out
    assert json.loads((tmp_path / "run.json").read_text())["written"] == [str(tmp_path / "out" / "p.png")]


def test_zoo_names_are_known_checkpoints():
    assert "vintage-mobile" in zoo_names()
    assert checkpoint_of("vintage-mobile") == REPO / "pocketgan" / "zoo" / "vintage-mobile" / "student.pt"
    assert checkpoint_of("runs/x/best.pt") == Path("runs/x/best.pt")
    assert checkpoint_of("dist/student.fp32.onnx") is None


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("POCKETGAN_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("POCKETGAN_CACHE")
    assert cache_root() == Path.home() / ".cache" / "pocketgan" / "artifacts"


def test_without_torch_a_zoo_name_prints_the_export_command_and_exits_2(block_torch, tmp_path):
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (32, 24), (90, 60, 30)).save(photo)
    code = block_torch + textwrap.dedent(
        f"""
        import sys
        from pocketgan.cli import main
        sys.argv = ["pocketgan", "run", "vintage-mobile", {str(photo)!r}, "-o", {str(tmp_path / "out")!r}]
        main()
        """
    )
    env = {"POCKETGAN_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    command = export_command(checkpoint_of("vintage-mobile"), "onnx", "fp32")
    assert command in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


def test_a_checkpoint_is_exported_once_into_the_cache(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("POCKETGAN_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "p.png"
    Image.new("RGB", (24, 20), (120, 80, 40)).save(source)
    code, _, err = run_cli(capsys, tiny_checkpoint, source, "-o", tmp_path / "out")
    assert code == 0, err
    assert "note:" in err and "exporting onnx fp32 once" in err
    (entry,) = (tmp_path / "cache").iterdir()
    assert sorted(p.name for p in entry.iterdir()) == ["student.fp32.onnx", "student.fp32.onnx.manifest.json"]
    code, _, err = run_cli(capsys, tiny_checkpoint, source, "-o", tmp_path / "again")
    assert code == 0 and "note:" not in err  # the second run finds it in the cache
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [entry.name]  # no temporary folder left
    assert entry.name.endswith("-onnx-fp32-r2")  # the ONNX exporter's revision 2 (7-bit int8 weights)
    from pocketgan.export import registered_exporters

    monkeypatch.setattr(registered_exporters()["onnx"], "revision", 3)  # a newer exporter: exported again
    code, _, err = run_cli(capsys, tiny_checkpoint, source, "-o", tmp_path / "newer")
    assert code == 0 and "exporting onnx fp32 once" in err
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [entry.name, entry.name[:-1] + "3"]


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """A seeded checkpoint of a registered student (tiny-unet, smallest width)."""
    torch = pytest.importorskip("torch")
    from pocketgan.checkpoint import save_checkpoint
    from pocketgan.models import build

    torch.manual_seed(0)
    model = build("tiny-unet", width=4).eval()
    path = tmp_path / "tiny.pt"
    save_checkpoint(
        path,
        {
            "student": "tiny-unet",
            "student_kwargs": {"width": 4},
            "state_dict": model.state_dict(),
            "config": {},
        },
    )
    return path
