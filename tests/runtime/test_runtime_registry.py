"""Every registered runtime backend carries its facts; file-type dispatch and format lookup follow them."""

import pytest

from pocketgan.runtime import backends
from pocketgan.runtime.base import backends_for, format_of, registered_backends
from pocketgan.status import Status

BACKENDS = registered_backends()


@pytest.mark.parametrize("name", list(BACKENDS))
def test_backend_declares_every_fact(name):
    cls = BACKENDS[name]
    assert cls.name == name
    assert cls.format, "format: the exporter's name for the files it runs"
    assert cls.suffixes and all(s.startswith(".") and s == s.lower() for s in cls.suffixes)
    status = cls.availability()
    assert isinstance(status, Status) and not status.is_failed, "availability(): OK or unavailable(why)"


@pytest.mark.parametrize("name", list(BACKENDS))
def test_dispatch_and_format_follow_the_suffixes(name):
    cls = BACKENDS[name]
    for suffix in cls.suffixes:
        assert cls in backends_for(f"model{suffix}")
        assert format_of(f"MODEL{suffix.upper()}") == cls.format


def test_every_listed_module_registered_something():
    modules = {cls.__module__ for cls in BACKENDS.values()}
    for module in backends.BACKEND_MODULES:
        assert module in modules, f"{module} is listed but registers no backend"
    assert format_of("photo.jpg") is None
    assert format_of("student.fp16.mlmodel") == "coreml"
