"""`pocketgan inspect ARTIFACT --json -` on every format the matrix made, and an export whose stderr holds no
third-party warning line (only our notes and progress)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pocketgan.cli import main

REPO = Path(__file__).resolve().parents[2]
# What third-party noise looks like: Python warnings, glog/absl lines (W1205 ..., I0000 ...), LiteRT's INFO
# line, logging's "WARNING name:" records, torch's training-mode notice.
NOISE = re.compile(
    r"warning|deprecat|^[WIE]\d{4} |^INFO:|absl|XNNPACK|training mode|Traceback", re.IGNORECASE | re.MULTILINE
)
INSPECTED = [("onnx", "fp32"), ("onnx", "int8"), ("tflite", "fp32"), ("tflite", "int8"), ("coreml", "fp16")]


def inspect_json(capsys, path) -> dict:
    with pytest.raises(SystemExit) as info:
        main(["inspect", str(path), "--json", "-"])
    captured = capsys.readouterr()
    assert info.value.code == 0, captured.err
    return json.loads(captured.out)


@pytest.mark.parametrize(("fmt", "precision"), INSPECTED, ids=[f"{f}-{p}" for f, p in INSPECTED])
def test_inspect_reads_every_format(artifact_of, capsys, fmt, precision):
    artifact = artifact_of(fmt, precision)
    if artifact.status != "ok":
        pytest.skip(f"{fmt} {precision}: {artifact.status}")
    data = inspect_json(capsys, artifact.path)
    manifest = artifact.manifest
    assert data["format"] == fmt and data["precision"] == precision
    assert data["size_bytes"] == manifest["size_bytes"]
    (tensor, *_) = data["inputs"]
    for key in ("layout", "range", "color"):
        assert tensor[key] == manifest["input"][key], key
    assert len(tensor["shape"]) == 4 and tensor["dtype"]
    assert data["outputs"][0]["range"] == manifest["output"]["range"]
    assert data["macs"] == manifest["source"]["macs"] > 0
    assert data["parity"] == manifest["parity"]
    quantized = data["op_kinds"]["quantized"]
    assert (quantized > 0) == (precision == "int8"), data["op_kinds"]
    assert sum(data["ops"].values()) == sum(data["op_kinds"].values())


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_inspect_reads_executorch_through_its_exporter(artifact_of, capsys, precision):
    """A format without a reader in artifact_info (.pte) is read by its exporter: I/O specs, precision, ops."""
    artifact = artifact_of("executorch", precision)
    if artifact.status != "ok":
        pytest.skip(f"executorch {precision}: {artifact.status}")
    data = inspect_json(capsys, artifact.path)
    assert (data["format"], data["precision"]) == ("executorch", precision)
    (tensor,) = data["inputs"]
    assert tensor["shape"] == artifact.manifest["input"]["shape"] and tensor["dtype"] == "float32"
    assert tensor["layout"] == "NHWC" and data["outputs"][0]["range"] == artifact.manifest["output"]["range"]
    assert data["op_kinds"]["delegated"] > 0 and sum(data["ops"].values()) == sum(data["op_kinds"].values())
    assert data["parity"] == artifact.manifest["parity"]


def test_graph_macs_match_the_torch_count_without_a_manifest(artifact_of, tmp_path):
    """An artifact without its manifest still gets MACs, counted on its graph (ONNX and TFLite)."""
    from pocketgan.artifact_info import GRAPH_MAC_METHOD, describe_artifact

    for fmt in ("onnx", "tflite"):
        artifact = artifact_of(fmt, "fp32")
        if artifact.status != "ok":
            continue
        alone = tmp_path / artifact.path.name
        alone.write_bytes(artifact.path.read_bytes())
        data = describe_artifact(alone)
        assert data["mac_method"] == GRAPH_MAC_METHOD
        assert abs(data["macs"] - artifact.manifest["source"]["macs"]) <= 0.02 * data["macs"], fmt


def test_export_stderr_holds_no_third_party_warning_line(tmp_path):
    """A small export (tiny seeded student; ONNX and TFLite; fp32 and int8) in its own process: stdout is
    the JSON, stderr only our lines."""
    pytest.importorskip("litert_torch")
    torch = pytest.importorskip("torch")
    from pocketgan.checkpoint import save_checkpoint
    from pocketgan.models import build

    torch.manual_seed(0)
    model = build("tiny-unet", width=4).eval()
    checkpoint = tmp_path / "tiny.pt"
    payload = {"student": "tiny-unet", "student_kwargs": {"width": 4}, "state_dict": model.state_dict()}
    save_checkpoint(checkpoint, payload | {"config": {}})
    command = [sys.executable, "-m", "pocketgan", "export", str(checkpoint), "--format", "onnx,tflite"]
    command += ["--precision", "fp32,int8", "--size", "32", "--calibration-count", "4"]
    command += ["--out", str(tmp_path / "dist"), "--json", "-"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    assert [a["status"] for a in results["artifacts"]] == ["ok"] * 4
    noise = [line for line in done.stderr.splitlines() if NOISE.search(line)]
    assert not noise, "third-party lines on stderr:\n" + "\n".join(noise)
