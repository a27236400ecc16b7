"""Every registered exporter carries its format's facts, and a runtime backend opens what it writes."""

import pytest

from pocketgan.export import PRECISIONS, registered_exporters
from pocketgan.export.base import ExportConfig, UnsupportedOp
from pocketgan.runtime.base import registered_backends
from pocketgan.status import Status

EXPORTERS = registered_exporters()


@pytest.mark.parametrize("fmt", list(EXPORTERS))
def test_exporter_declares_every_fact(fmt):
    cls = EXPORTERS[fmt]
    assert cls.name == fmt
    assert cls.suffix.startswith(".") and cls.suffix == cls.suffix.lower(), "suffix: '.ext'"
    assert cls.libraries, "libraries: the distributions whose versions go into the manifest"
    assert cls.precisions, "precisions: what this format can produce"
    assert set(cls.precisions) <= set(PRECISIONS)
    assert not set(cls.precisions) & set(cls.unsupported_precisions)
    assert set(cls.precisions) | set(cls.unsupported_precisions) == set(PRECISIONS), (
        "every precision is either produced or refused with a reason (unsupported_precisions)"
    )
    assert all(why.strip() for why in cls.unsupported_precisions.values())
    assert all(isinstance(op, UnsupportedOp) and op.why for op in cls.unsupported_ops)
    assert cls.unverified_reason is None or cls.unverified_reason.strip()
    for precision, why in cls.unsupported_precisions.items():
        status = cls.precision_status(precision)
        assert status.is_unavailable and status.reason == why
    availability = cls.availability()
    assert isinstance(availability, Status) and not availability.is_failed


@pytest.mark.parametrize("fmt", list(EXPORTERS))
def test_a_runtime_backend_opens_each_format(fmt):
    cls = EXPORTERS[fmt]
    openers = [b for b in registered_backends().values() if cls.suffix in b.suffixes]
    assert openers, f"no runtime backend opens {cls.suffix}: parity could not run a {fmt} artifact"
    assert {b.format for b in openers} == {fmt}


def test_cli_choices_follow_the_registry():
    from pocketgan.export.cli import FORMATS, HELP
    from pocketgan.export.parity import thresholds_summary

    assert FORMATS == tuple(EXPORTERS) == ExportConfig().formats
    summary = thresholds_summary()
    assert summary == "fp32: max-abs <= 1e-3; fp16: PSNR >= 45 dB; int8/w8: >= 35 dB; p6/int8-full: >= 30 dB"
    assert f"compared with torch ({summary})" in HELP


def test_unknown_format_and_precision_are_refused():
    from pocketgan.errors import UsageError

    with pytest.raises(UsageError, match=f"unknown format mlir: choose from {', '.join(EXPORTERS)}"):
        ExportConfig(formats=("mlir",))
    with pytest.raises(UsageError, match="unknown precision int4"):
        ExportConfig(precisions=("int4",))
