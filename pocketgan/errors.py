"""Typed user-facing errors: each prints as one line and maps to a CLI exit code (torch-free)."""


class PocketGANError(Exception):
    """Base class; `exit_code` is what the CLI exits with."""

    exit_code = 2


class UsageError(PocketGANError):
    """Bad arguments or bad input files."""


class ModelLoadError(PocketGANError):
    """A model or checkpoint could not be loaded."""


class IntegrityError(ModelLoadError):
    """An artifact does not match its manifest (sha256 or size), or its manifest cannot say."""


class ImageLoadError(PocketGANError):
    """An image file could not be decoded."""


class UnsupportedOpError(PocketGANError):
    """A model contains an op that a target format cannot take."""


class BackendUnavailable(PocketGANError):
    """A runtime backend or exporter cannot run on this machine; the message says why."""


class CheckFailed(PocketGANError):
    """A numeric check (parity, fidelity) fell below its threshold."""

    exit_code = 1


class ParityError(CheckFailed):
    """An exported artifact differs from its reference by more than the tolerance."""
