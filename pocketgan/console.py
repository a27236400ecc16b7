"""What the CLI shows: our notes and progress on stderr, numbers as JSON, third-party noise nowhere (torch-free).

Quiet by default: records of other libraries' loggers below ERROR (torch's `W1205 ...` lines, coremltools'
and torchao's warnings), Python warnings (deprecations) and what native code writes to file descriptor 2
(absl's "All log messages before absl::InitializeLog()", LiteRT's "Created TensorFlow Lite XNNPACK
delegate") go nowhere, or to `--log-file`; `-v` shows them all. Our own loggers (`pocketgan.*`), click's
messages, progress bars and tracebacks still reach the terminal: in a real process the terminal's stderr
is kept on a duplicate descriptor that `sys.stderr` writes to, while descriptor 2 points at the log.

Example: pocketgan bench dist/student.fp32.onnx --json - | python -m json.tool
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from pocketgan.manifest import atomic_write_json
from pocketgan.metrics import json_ready

OURS = "pocketgan"
# Environment switches that quiet native loggers before their libraries load (TensorFlow Lite, absl, glog).
NATIVE_QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "GLOG_minloglevel": "2"}


def _shown(record: logging.LogRecord) -> bool:
    """Whether a record reaches the terminal: ours, errors, or anything with -v."""
    return _QuietLogger.verbose or record.name.split(".")[0] == OURS or record.levelno >= logging.ERROR


class _QuietLogger(logging.Logger):
    """The class of loggers created from now on: another library's record below ERROR goes to the log file
    (or nowhere) even when its logger has handlers of its own (torch's do)."""

    verbose = False
    log_handler: logging.Handler | None = None

    def handle(self, record: logging.LogRecord) -> None:
        if _shown(record):
            super().handle(record)
        elif _QuietLogger.log_handler is not None and record.levelno >= logging.INFO:
            _QuietLogger.log_handler.handle(record)


class _CurrentStderr(logging.StreamHandler):
    """A handler writing to whatever `sys.stderr` is when a record arrives (tests swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure(verbose: bool, log_file: str | None = None, native: bool = False) -> None:
    """Set up logging for one CLI run; `native` also moves descriptor 2 (only in a process of its own)."""
    for key, value in NATIVE_QUIET_ENV.items():
        if not verbose:
            os.environ.setdefault(key, value)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _CurrentStderr)]:
        root.removeHandler(handler)
    handler = _CurrentStderr()
    handler.addFilter(_shown)  # records logged on the root logger itself (logging.warning(...))
    handler.setFormatter(
        logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbose else "%(levelname)s: %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger(OURS).setLevel(logging.DEBUG if verbose else logging.INFO)
    handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    _QuietLogger.verbose = verbose
    _QuietLogger.log_handler = None
    if log_file:
        file_handler = logging.FileHandler(log_file)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        _QuietLogger.log_handler = file_handler
        root.addHandler(file_handler)
    logging.setLoggerClass(_QuietLogger)
    logging.captureWarnings(True)  # warnings go to the "py.warnings" logger, dropped unless verbose
    if native and not verbose:
        _move_native_stderr(log_file)


_moved: dict[str, Any] = {}  # while descriptor 2 is moved: the saved descriptor and the stderr object


def _move_native_stderr(log_file: str | None) -> None:
    """Descriptor 2 -> the log file (or nowhere); `sys.stderr` keeps writing to the terminal.

    Only when `sys.stderr` is the process's own stderr (not one a test harness put in its place).
    """
    if _moved or sys.stderr is not sys.__stderr__ or sys.stderr.fileno() != 2:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    target = os.open(log_file or os.devnull, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(target, 2)
    os.close(target)
    _moved.update(saved=saved, stderr=sys.stderr)
    encoding, errors = sys.stderr.encoding, "backslashreplace"
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=encoding, errors=errors)


def restore_native_stderr() -> None:
    """Undo `configure(native=True)`: descriptor 2 and `sys.stderr` as they were."""
    if not _moved:
        return
    sys.stderr.flush()
    sys.stderr.close()
    os.dup2(_moved["saved"], 2)
    os.close(_moved["saved"])
    sys.stderr = _moved["stderr"]
    _moved.clear()


_json_stdout: list[Any] = []  # the real stdout while a json_verb runs with `--json -`


def json_verb(target_name: str = "json_target"):
    """Decorate a command whose `--json -` owns stdout: everything else it echoes goes to stderr."""

    def wrap(command):
        @functools.wraps(command)
        def run(*args, **kwargs):
            if kwargs.get(target_name) != "-":
                return command(*args, **kwargs)
            _json_stdout.append(sys.stdout)
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    return command(*args, **kwargs)
            finally:
                _json_stdout.pop()

        return run

    return wrap


def to_stdout(json_target: str | None) -> bool:
    """Whether the human-readable output may use stdout (not when the JSON goes there)."""
    return json_target != "-"


def say(text: str, json_target: str | None = None) -> None:
    """A human-readable line: stdout, or stderr when `--json -` owns stdout."""
    click.echo(text, err=not to_stdout(json_target))


def emit_json(json_target: str | None, payload: Any) -> None:
    """`--json -`: the payload on stdout (nothing else goes there); `--json FILE`: written atomically."""
    if not json_target:
        return
    payload = json_ready(payload)  # strict JSON: non-finite numbers as strings
    if json_target == "-":
        click.echo(
            json.dumps(payload, indent=2, default=str), file=_json_stdout[-1] if _json_stdout else None
        )
        return
    Path(json_target).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(json_target, payload)
    click.echo(f"wrote {json_target}", err=True)


def json_option(what: str = "the results", dest: str = "json_target"):
    """The `--json FILE|-` option every verb that produces numbers takes."""
    return click.option(
        "--json",
        dest,
        metavar="FILE|-",
        default=None,
        is_flag=False,
        flag_value="-",
        help=f"Write {what} as JSON to FILE, or to stdout with '-' or no value (other output then goes to stderr).",
    )
