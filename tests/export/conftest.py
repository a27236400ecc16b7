"""Export fixtures: one all-formats x all-precisions export of a tiny seeded student, shared by the matrix."""

import pytest
from export_nets import tiny_student  # noqa: F401  (makes the factory importable as export_nets:tiny_student)

TINY_SPEC = "export_nets:tiny_student"
TINY_SIZE = 32


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """ExportResult of every registered format and precision on the tiny student at 32 px."""
    pytest.importorskip("torch")
    from pocketgan.export import PRECISIONS, ExportConfig, export, registered_exporters

    out = tmp_path_factory.mktemp("export_matrix")
    config = ExportConfig(
        formats=tuple(registered_exporters()),
        precisions=PRECISIONS,
        size=TINY_SIZE,
        out=str(out),
        calibration_count=8,
        name="tiny",
    )
    return export(TINY_SPEC, config)


@pytest.fixture(scope="session")
def artifact_of(tiny_export):
    def find(fmt, precision):
        for artifact in tiny_export.artifacts:
            if artifact.format == fmt and artifact.precision == precision:
                return artifact
        raise LookupError(f"{fmt}-{precision} was not attempted")

    return find
