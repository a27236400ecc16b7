"""Loading torch files without running code: checkpoints (`.pt`) and torch.export archives (`.pt2`).

`torch.load(weights_only=True)` rebuilds plain data only (tensors, numbers, strings, containers) and refuses a
pickle that calls anything else. A `.pt2` archive holds torch.save pickles too, and `torch.export.load` retries
a pickle that the safe unpickler refused with the unrestricted one, which runs whatever the pickle calls. So an
archive is checked before torch sees it, with torch's own archive reader (the records torch will read):
every record torch unpickles must load with `weights_only=True`; records only code can rebuild (custom or
opaque Python objects, compiled AOTInductor libraries) and records of unknown kinds are refused; and the
symbolic shape expressions in the graph, which torch hands to sympy's eval-based parser, must be sympy
arithmetic over symbols. The checked bytes are the bytes loaded (read once, no second open).

Example: python -c "from pocketgan.torchload import load_exported_program; print(load_exported_program('t.pt2'))"
"""

from __future__ import annotations

import functools
import io
import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from pocketgan.errors import ModelLoadError

NOTHING_RUNS = "PocketGAN loads only plain data (tensors, numbers, strings) from torch files"
# Records torch reads as text or raw bytes (never unpickled), relative to the archive's root folder.
TEXT_RECORDS = ("archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id")
PAYLOAD_DIRS = ("data/weights/", "data/constants/")
SAMPLE_INPUTS_DIR = "data/sample_inputs/"
CODE_OBJECT_PREFIXES = ("custom_obj_", "opaque_obj_")  # torch rebuilds these with unrestricted picklers
SYMPY_ASSUMPTIONS = frozenset(
    "positive negative nonnegative nonpositive integer real finite infinite zero nonzero commutative "
    "rational irrational prime composite even odd extended_real extended_positive extended_negative "
    "extended_nonnegative extended_nonpositive extended_nonzero".split()
)
_EXPRESSION_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z_]\w*)"
    r"|(?P<string>'[^'\\]*'|\"[^\"\\]*\")|(?P<op>\*\*|//|==|!=|<=|>=|[-+*/%<>(),=&|~]))"
)
_SYMBOL_NAME = re.compile(r"[A-Za-z_]\w*")
_FLOAT_TEXT = re.compile(r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def load_torch_file(path: str | os.PathLike) -> Any:
    """`torch.load` with `weights_only=True`, mapped to the CPU; a pickle that would run code is refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: no such file") from None
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise ModelLoadError(f"{path}: refused: the file {_refusal(exc)}") from None


def load_exported_program(path: str | os.PathLike) -> torch.export.ExportedProgram:
    """A `.pt2` ExportedProgram, after `check_exported_program` found nothing in it that could run code."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: no such file") from None
    check_exported_program(data, str(path))
    try:
        return torch.export.load(io.BytesIO(data))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{path}: not a loadable ExportedProgram ({first})") from None


def check_exported_program(data: bytes, where: str) -> None:
    """Raise ModelLoadError, in one line, unless every record of the `.pt2` archive `data` is safe to load."""
    try:
        reader = torch._C.PyTorchFileReader(io.BytesIO(data))
        records = list(reader.get_all_records())
    except Exception:
        raise ModelLoadError(f"{where}: not a torch.export archive (not a readable zip file)") from None
    if len(set(records)) != len(records):
        raise ModelLoadError(f"{where}: refused: the archive names a record twice")
    if "archive_format" not in records or reader.get_record("archive_format") != b"pt2":
        raise ModelLoadError(
            f"{where}: not a torch.export archive of the current format; re-save it with torch.export.save"
        )
    raw = _raw_payloads(reader, records, where)
    for record in records:
        reason = _record_refusal(reader, record, raw)
        if reason:
            raise ModelLoadError(f"{where}: refused: {record} {reason}")


def _record_refusal(reader, record: str, raw: set[str]) -> str | None:
    """Why `record` cannot be loaded without running code, or None when it is safe."""
    if record in TEXT_RECORDS or record.startswith("extra/"):
        return None
    if record.startswith("models/") and record.endswith(".json"):
        return _graph_refusal(reader.get_record(record))
    if record.startswith(PAYLOAD_DIRS) or record.startswith(SAMPLE_INPUTS_DIR):
        name = record.rsplit("/", 1)[-1]
        if record.startswith(PAYLOAD_DIRS) and name.endswith("_config.json"):
            return None  # parsed as JSON by _raw_payloads
        if name.startswith(CODE_OBJECT_PREFIXES):
            return "holds a custom Python object, which only running its code could rebuild"
        if record in raw:
            return None
        return _pickle_refusal(reader.get_record(record))
    return "is not a kind of record PocketGAN loads (compiled code or unknown): export the program alone"


def _raw_payloads(reader, records: list[str], where: str) -> set[str]:
    """Weight and constant records that torch reads as raw tensor bytes (`use_pickle: false` everywhere)."""
    raw, pickled = set(), set()
    for record in records:
        if not (record.startswith(PAYLOAD_DIRS) and record.endswith("_config.json")):
            continue
        folder = record.rsplit("/", 1)[0] + "/"
        try:
            entries = json.loads(reader.get_record(record))["config"].values()
            for entry in entries:
                (pickled if entry["use_pickle"] else raw).add(folder + entry["path_name"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ModelLoadError(f"{where}: refused: {record} is not a valid payload table") from None
    return raw - pickled


def _pickle_refusal(data: bytes) -> str | None:
    try:
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        return _refusal(exc)
    return None


def _refusal(exc: Exception) -> str:
    """Why torch's safe loader said no, in our words (torch's own message suggests the unsafe load)."""
    first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in first or "TorchScript" in first:
        called = _GLOBAL.search(str(exc))
        what = f" (it calls {called.group(1)})" if called else ""
        return f"would run code when loaded{what}; {NOTHING_RUNS}"
    return f"is not readable as torch data ({first})"


def _graph_refusal(data: bytes) -> str | None:
    """The graph's symbolic shape expressions go to `sympy.sympify` (an eval): only sympy arithmetic passes."""
    try:
        graph = json.loads(data)
    except ValueError:
        return "is not valid JSON"
    for expression in _expression_strings(graph):
        if not _is_sympy_arithmetic(expression):
            return f"holds a shape expression that is not plain sympy arithmetic: {expression[:80]!r}"
    return None


def _expression_strings(value: Any):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "expr_str" and isinstance(item, str):
                yield item
            else:
                yield from _expression_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _expression_strings(item)


def _is_sympy_arithmetic(expression: str) -> bool:
    """True for text like "Mul(Integer(2), Symbol('s1', positive=True, integer=True))" or "2*s1 + 1".

    Names must be sympy expression classes (or torch's sympy functions), symbol assumptions or constants;
    a quoted string may only name a symbol (`Symbol('s1')`) or spell a number (`Float('1.5')`): no
    attribute access, no subscripts, no builtins, so the parser's eval can only build expressions.
    """
    position, previous = 0, []
    expression = expression.rstrip()
    while position < len(expression):
        match = _EXPRESSION_TOKEN.match(expression, position)
        if not match:
            return False
        position = match.end()
        kind, text = match.lastgroup, match.group(match.lastgroup)
        if kind == "name" and text not in _sympy_names() and not re.fullmatch(r"[a-z]+\d+", text):
            return False
        if kind == "string" and not _allowed_string(text[1:-1], previous[-2:]):
            return False
        previous.append(text)
    return True


def _allowed_string(text: str, before: list[str]) -> bool:
    if before in (["Symbol", "("], ["Dummy", "("]):
        return bool(_SYMBOL_NAME.fullmatch(text))
    return before == ["Float", "("] and bool(_FLOAT_TEXT.fullmatch(text))


@functools.cache
def _sympy_names() -> frozenset[str]:
    import sympy
    from torch.utils._sympy import functions, numbers

    classes = {
        name
        for module in (sympy, functions, numbers)
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, sympy.Basic)
    }
    constants = {"oo", "zoo", "nan", "pi", "E", "I", "true", "false", "True", "False", "None", "precision"}
    return frozenset(classes | constants | SYMPY_ASSUMPTIONS)
