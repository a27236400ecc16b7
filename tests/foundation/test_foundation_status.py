"""Typed results: a Status is its file text ("ok", "unavailable: ...", "failed: ..."), read by kind, not prefix."""

import json
import pickle

import pytest

from pocketgan.errors import UnsupportedOpError
from pocketgan.status import OK, Status, failed, unavailable


def test_status_serialises_to_the_file_text():
    why = unavailable("needs macOS")
    error = UnsupportedOpError("onnx: op LSTM in layer 'rnn' is not exportable: recurrent")
    broken = failed(str(error), error)
    assert json.dumps([OK, why, broken]) == json.dumps(["ok", "unavailable: needs macOS", f"failed: {error}"])
    assert (OK.is_ok, why.is_unavailable, broken.is_failed) == (True, True, True)
    assert (why.reason, broken.error) == ("needs macOS", error)
    assert why == "unavailable: needs macOS" and OK == "ok"


def test_parse_reads_file_text_back_and_refuses_other_text():
    assert Status.parse("ok").is_ok
    assert Status.parse("unavailable: pip install x: y").reason == "pip install x: y"
    assert Status.parse("failed: boom").is_failed
    assert Status.parse("fine") is None and Status.parse("unavailable") is None
    with pytest.raises(ValueError, match="status kind"):
        Status("maybe", "x")


def test_status_pickles_by_kind_and_reason():
    restored = pickle.loads(pickle.dumps(unavailable("no engine")))
    assert isinstance(restored, Status) and restored.is_unavailable and restored.reason == "no engine"
