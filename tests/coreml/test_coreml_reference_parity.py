"""The export parity stage runs Core ML packages through coreml-reference and names fp16 overflow."""

import pytest
from coreml_nets import Overflow, seeded

from pocketgan.export import ExportConfig, export

pytestmark = pytest.mark.coreml


def overflow_factory():
    return seeded(Overflow())


def test_fp16_overflow_fails_parity_naming_the_first_nonfinite_op(tmp_path):
    config = ExportConfig(formats=("coreml",), precisions=("fp32", "fp16"), size=32, out=str(tmp_path))
    result = export(f"{__name__}:overflow_factory", config)
    parity = {a.precision: a.manifest["parity"] for a in result.artifacts}
    assert parity["fp32"]["passed"] is True, parity["fp32"]
    assert parity["fp32"]["verified_by"].startswith("coreml-reference")
    assert "first_nonfinite_op" not in parity["fp32"]
    assert parity["fp16"]["passed"] is False, parity["fp16"]
    assert parity["fp16"]["first_nonfinite_op"], parity["fp16"]
    assert [a.precision for a in result.parity_failures] == ["fp16"]


def test_parity_gate_names_the_first_nonfinite_op(tmp_path):
    from pocketgan.evals.parity import ParityConfig, check_parity

    config = ExportConfig(formats=("coreml",), precisions=("fp16",), size=32, out=str(tmp_path))
    export(f"{__name__}:overflow_factory", config)
    gate = check_parity(ParityConfig(artifacts=str(tmp_path), reference="student"))
    rows = [row for row in gate.rows if row["backend"] == "coreml-reference"]
    assert rows and rows[0]["status"] == "failed", rows
    assert "first non-finite op" in rows[0]["message"], rows[0]["message"]
