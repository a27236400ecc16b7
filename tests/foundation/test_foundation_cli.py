import json
import subprocess
import sys

import pytest

from pocketgan import __version__
from pocketgan.cli import VERBS


def pocketgan(*args):
    return subprocess.run(
        [sys.executable, "-m", "pocketgan", *args], capture_output=True, text=True, timeout=300
    )


def test_version():
    result = pocketgan("--version")
    assert result.returncode == 0 and __version__ in result.stdout


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_has_help_with_an_example(verb):
    result = pocketgan(verb, "--help")
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout


def test_inspect_json_reports_params_and_macs():
    result = pocketgan("inspect", "vintage", "--size", "64", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["params"] == 11_388_675
    assert info["size"] == 64
    assert info["macs"] == pytest.approx(49.55e9 / 16, rel=0.01)


def test_bad_spec_is_one_line_exit_2():
    result = pocketgan("inspect", "no-such-model")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
