"""The outcome of one step as a value: ok, unavailable (with the reason) or failed (with the error).

`Status` is a str, so it is written to JSON as the text every PocketGAN file uses -- "ok",
"unavailable: <why>", "failed: <error>" -- and compares equal to it; code asks `.is_ok`,
`.is_unavailable`, `.is_failed` and reads `.reason` / `.error` instead of parsing the text.

Example: python -c "from pocketgan.status import unavailable; s = unavailable('needs macOS'); print(s, s.reason)"
"""

from __future__ import annotations

KINDS = ("ok", "unavailable", "failed")


class Status(str):
    """ "ok" | "unavailable: <reason>" | "failed: <reason>", with `kind`, `reason` and the `error` if any."""

    kind: str
    reason: str
    error: BaseException | None

    def __new__(cls, kind: str, reason: str = "", error: BaseException | None = None) -> Status:
        if kind not in KINDS:
            raise ValueError(f"status kind must be one of {', '.join(KINDS)}, got {kind!r}")
        status = super().__new__(cls, "ok" if kind == "ok" else f"{kind}: {reason}")
        status.kind, status.reason, status.error = kind, reason, error
        return status

    def __reduce__(self):  # pickles as kind and reason (the error object stays in its process)
        return (Status, (self.kind, self.reason))

    @property
    def is_ok(self) -> bool:
        return self.kind == "ok"

    @property
    def is_unavailable(self) -> bool:
        return self.kind == "unavailable"

    @property
    def is_failed(self) -> bool:
        return self.kind == "failed"

    @classmethod
    def parse(cls, text: str) -> Status | None:
        """The Status a text from a file spells, or None when it spells none."""
        if isinstance(text, Status):
            return text
        if text == "ok":
            return OK
        kind, separator, reason = str(text).partition(": ")
        return cls(kind, reason) if separator and kind in KINDS[1:] else None


OK = Status("ok")


def unavailable(reason: str) -> Status:
    return Status("unavailable", reason)


def failed(reason: str, error: BaseException | None = None) -> Status:
    return Status("failed", reason, error)
