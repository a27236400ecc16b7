import json
import re

import pytest

from pocketgan import runtime
from pocketgan.cli import main
from pocketgan.data import photos
from pocketgan.errors import BackendUnavailable
from pocketgan.evals.schema import missing_keys
from pocketgan.manifest import write_manifest

# ARCHITECTURE.md's eval.json contract, written out independently of evals/schema.py.
CONTRACT_TOP = ["size", "images", "identity_baseline_psnr_db", "teacher", "artifacts", "mac_method"]
CONTRACT_TEACHER = ["params", "macs", "latency_ms"]
CONTRACT_ARTIFACT = [
    "path", "format", "precision", "student", "backend", "threads", "size_bytes", "macs",
    "latency_ms", "peak_rss_mb", "fidelity_vs_teacher", "fidelity_vs_student", "status",
]  # fmt: skip
CONTRACT_NESTED = {
    "latency_ms": ["p50", "p90", "p99", "load"],
    "fidelity_vs_teacher": ["psnr_db", "ssim", "grade_de2000", "texture_swd", "below_baseline", "splits"],
    "fidelity_vs_student": ["psnr_db"],
}


def run_cli(args):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return exit_info.value.code


@pytest.fixture(scope="module")
def eval_report(tmp_path_factory, tiny_export, make_dir, make_manifest):
    """One eval run (32px) over two ONNX artifacts and an .mlpackage whose backend cannot run here."""
    checkpoint, _ = tiny_export
    directory = make_dir(tmp_path_factory.mktemp("eval") / "dist")
    package = directory / "student.fp16.mlpackage"
    (package / "Data").mkdir(parents=True)
    (package / "Manifest.json").write_text("{}")
    write_manifest(package, make_manifest(package, checkpoint, precision="fp16") | {"format": "coreml"})
    real_load = runtime.load

    def load(path, *args, **kwargs):
        if str(path).endswith(".mlpackage"):
            raise BackendUnavailable(
                "no backend can run .mlpackage here (coreml: Core ML prediction needs macOS)"
            )
        return real_load(path, *args, **kwargs)

    out = directory.parent / "report"
    args = ["eval", "--artifacts", str(directory), "--size", "32", "--out", str(out), "--no-progress"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runtime, "load", load)
        assert run_cli(args + ["--iterations", "3", "--warmup", "1", "--teacher-iterations", "1"]) == 0
    return out


def test_eval_json_has_every_contract_key(eval_report):
    report = json.loads((eval_report / "eval.json").read_text())
    assert missing_keys(report) == []
    for key in CONTRACT_TOP:
        assert key in report, key
    for key in CONTRACT_TEACHER:
        assert key in report["teacher"], f"teacher.{key}"
    assert {"p50", "p90", "p99"} <= set(report["teacher"]["latency_ms"])
    assert len(report["artifacts"]) == 4
    for row in report["artifacts"]:
        for key in CONTRACT_ARTIFACT:
            assert key in row, f"artifacts[].{key}"
        for key, subkeys in CONTRACT_NESTED.items():
            assert set(subkeys) <= set(row[key]), f"artifacts[].{key}"
    assert "FlopCounterMode" in report["mac_method"]
    assert report["size"] == 32
    assert report["images"] == [p.name for p in photos.split_photos("test")]  # the test split by default
    assert set(report["split_of"].values()) == {"test"}


def test_eval_numbers_are_sane(eval_report):
    report = json.loads((eval_report / "eval.json").read_text())
    ok = [r for r in report["artifacts"] if r["status"] == "ok"]
    assert len(ok) == 3
    for row in ok:
        assert row["backend"] == "onnxruntime" and row["student"] == "evals-tiny"
        assert row["fidelity_vs_student"]["psnr_db"] > (60 if row["precision"] == "fp32" else 40)
        fidelity = row["fidelity_vs_teacher"]
        assert 0 < fidelity["ssim"] <= 1 and fidelity["grade_de2000"] >= 0 and fidelity["texture_swd"] >= 0
        test = fidelity["splits"]["test"]
        assert test["images"] == len(report["images"])
        gains = [image["gain_db"] for image in fidelity["per_image"].values()]
        assert test["gain_db"] == pytest.approx(sum(gains) / len(gains))
        assert test["below_baseline"] == fidelity["below_baseline"] == sum(g < 0 for g in gains)
        assert row["macs"] > 0 and row["latency_ms"]["p50"] > 0 and row["peak_rss_mb"] > 0
    assert report["teacher"]["params"] == 11_388_675
    assert 5 < report["identity_baseline_psnr_db"] < 40
    assert report["identity_baseline"]["splits"]["test"]["grade_de2000"] > 0
    assert report["lpips"].startswith("unavailable: needs local weights")


def test_unavailable_backend_is_listed_not_dropped(eval_report):
    report = json.loads((eval_report / "eval.json").read_text())
    (row,) = [r for r in report["artifacts"] if r["path"].endswith(".mlpackage")]
    assert row["status"].startswith("unavailable: ") and "macOS" in row["status"]
    assert row["format"] == "coreml" and row["latency_ms"]["p50"] is None
    assert "unavailable" in (eval_report / "report.md").read_text()


def test_report_html_is_self_contained_with_images_and_charts(eval_report):
    html = (eval_report / "report.html").read_text()
    pictures = re.findall(r'src="data:image/jpeg;base64,[A-Za-z0-9+/=]{100,}"', html)
    charts = re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]{100,}"', html)
    # every test image x (input, teacher, torch student, 3 artifacts + 5 difference maps), and 2 charts
    images = json.loads((eval_report / "eval.json").read_text())["images"]
    assert len(pictures) == len(images) * (6 + 5) and len(charts) == 2
    assert "Fidelity per split" in html and "grace_hopper" in html and "below do-nothing" in html
    assert not re.search(r'(src|href)="https?://', html)
    assert "student.fp16.mlpackage" in html and "speed / quality" in html


def test_eval_bad_input_exits_2(tmp_path):
    assert run_cli(["eval", "--artifacts", str(tmp_path / "missing")]) == 2
    (tmp_path / "empty").mkdir()
    assert run_cli(["eval", "--artifacts", str(tmp_path / "empty")]) == 2


def test_schema_names_a_missing_key(eval_report):
    report = json.loads((eval_report / "eval.json").read_text())
    del report["artifacts"][0]["fidelity_vs_teacher"]["ssim"]
    del report["teacher"]["macs"]
    assert missing_keys(report) == ["teacher.macs", "artifacts[0].fidelity_vs_teacher.ssim"]


def test_an_mlpackage_row_gets_a_sibling_row_for_core_ml_when_it_cannot_run_here(eval_report):
    from pocketgan.evals.evaluate import _other_backend_rows
    from pocketgan.status import OK

    report = json.loads((eval_report / "eval.json").read_text())
    row = dict(
        report["artifacts"][0], path="dist/student.fp16.mlpackage", backend="coreml-reference", status=OK
    )
    statuses = {r["backend"]: r["status"] for r in _other_backend_rows(row)}
    if runtime.available_backends().get("coreml") == "ok":
        assert "coreml" not in statuses
    else:
        assert statuses["coreml"].is_unavailable
    assert missing_keys({**report, "artifacts": _other_backend_rows(row)}) == []


def test_eval_on_a_user_folder_crops_and_resizes(artifacts_dir, tmp_path):
    from PIL import Image

    data = tmp_path / "photos"
    data.mkdir()
    Image.new("RGB", (64, 40), (200, 120, 40)).save(data / "wide.png")
    Image.new("RGB", (30, 50), (20, 90, 200)).save(data / "tall.jpg")
    out = tmp_path / "report"
    args = ["eval", "--artifacts", str(artifacts_dir), "--data", str(data), "--size", "32", "--out", str(out)]
    assert (
        run_cli(
            args
            + [
                "--iterations",
                "2",
                "--warmup",
                "0",
                "--teacher-iterations",
                "1",
                "--no-progress",
                "--no-video",
            ]
        )
        == 0
    )
    report = json.loads((out / "eval.json").read_text())
    assert report["images"] == ["tall", "wide"] and missing_keys(report) == []


def test_eval_has_a_video_section_with_flicker_and_a_preview(eval_report):
    report = json.loads((eval_report / "eval.json").read_text())
    video = report["video"]
    assert [clip["name"].split()[0] for clip in video["clips"]] == ["kite", "evening_glow"]  # test photos
    ran = [row for row in video["artifacts"] if row["status"] == "ok"]
    assert ran and all(row["has_context"] is False for row in ran)
    for row in ran:
        assert 0 < row["flicker_ratio"] < 10 and row["fps"] > 0
        assert row["flicker_ratio_stabilised"] == row["flicker_ratio"]  # no context input: nothing to smooth
    html = (eval_report / "report.html").read_text()
    assert "<h2>Video</h2>" in html and "data:image/webp;base64," in html
