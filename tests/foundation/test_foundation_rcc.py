"""pocketgan.data.rcc and the GCompris photos: files come out of a Qt resource bundle byte for byte."""

from __future__ import annotations

import struct
import zlib

import pytest

from pocketgan.data import photos
from pocketgan.data.rcc import COMPRESSED_ZLIB, DIRECTORY, main, read_rcc
from pocketgan.errors import UsageError


def _bundle(tree: dict, version: int = 3) -> bytes:
    """A Qt resource bundle (format `version`) holding `tree`: {name: bytes | (bytes, "zlib") | subtree}."""
    nodes: list[list] = [[0, DIRECTORY, 0, 0, None]]  # [name offset, flags, count, first, data offset]
    names, data = bytearray(), bytearray()

    def add_name(name: str) -> int:
        offset = len(names)
        encoded = name.encode("utf-16-be")
        names.extend(struct.pack(">HI", len(name), 0) + encoded)
        return offset

    def add_children(parent: int, children: dict) -> None:
        first = len(nodes)
        nodes[parent][2:4] = [len(children), first]
        for name in children:
            nodes.append([add_name(name), 0, 0, 0, None])
        for index, value in enumerate(children.values(), start=first):
            if isinstance(value, dict):
                nodes[index][1] = DIRECTORY
                add_children(index, value)
                continue
            payload, flags = value if isinstance(value, tuple) else (value, None)
            if flags == "zlib":
                payload = struct.pack(">I", len(payload)) + zlib.compress(payload)
                nodes[index][1] = COMPRESSED_ZLIB
            nodes[index][4] = len(data)
            data.extend(struct.pack(">I", len(payload)) + payload)

    add_children(0, tree)
    size = 14 if version == 1 else 22
    packed = bytearray()
    for name_offset, flags, count, first, data_offset in nodes:
        if flags & DIRECTORY:
            packed.extend(struct.pack(">IHII", name_offset, flags, count, first))
        else:
            packed.extend(struct.pack(">IHHHI", name_offset, flags, 0, 0, data_offset))
        packed.extend(bytes(size - 14))
    header = 24 if version >= 3 else 20
    tree_at = header
    data_at = tree_at + len(packed)
    names_at = data_at + len(data)
    head = b"qres" + struct.pack(">4I", version, tree_at, data_at, names_at)
    head += struct.pack(">I", 0) if version >= 3 else b""
    return head + bytes(packed) + bytes(data) + bytes(names)


PHOTO = b"\xff\xd8 not really a jpeg, any bytes will do"
TREE = {"gcompris": {"src": {"activities": {"zoo": {
    "Zoo.qml": (b"import QtQuick 2.12\n" * 20, "zlib"),
    "resource": {"lion.webp": PHOTO, "README": b"Copyright: someone\nLicense: CC0-1.0\nFiles: lion.webp\n"},
}}}}}  # fmt: skip


@pytest.mark.parametrize("version", [1, 2, 3])
def test_read_rcc_returns_every_file_byte_for_byte(tmp_path, version):
    path = tmp_path / "zoo.rcc"
    path.write_bytes(_bundle(TREE, version))
    files = read_rcc(path)
    root = "gcompris/src/activities/zoo/"
    assert set(files) == {root + "Zoo.qml", root + "resource/lion.webp", root + "resource/README"}
    assert files[root + "resource/lion.webp"] == PHOTO
    assert files[root + "Zoo.qml"] == b"import QtQuick 2.12\n" * 20  # zlib-compressed in the bundle


def test_malformed_bundles_are_one_usage_error(tmp_path, capsys):
    good = _bundle(TREE)
    for name, blob in {"empty": b"", "notqres": b"RIFF" + good[4:], "cut": good[: len(good) // 2]}.items():
        path = tmp_path / f"{name}.rcc"
        path.write_bytes(blob)
        with pytest.raises(UsageError):
            read_rcc(path)
        assert main([str(path)]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("error:") and "\n" not in error


def test_a_gcompris_photo_is_unpacked_once_into_the_cache(tmp_path, monkeypatch):
    bundles = tmp_path / "rcc"
    bundles.mkdir()
    (bundles / "zoo.rcc").write_bytes(_bundle(TREE))
    monkeypatch.setattr(photos, "GCOMPRIS_RCC", bundles)
    monkeypatch.setenv("POCKETGAN_CACHE", str(tmp_path / "cache"))
    path = photos.source_path("gcompris:zoo/lion.webp")
    assert path == tmp_path / "cache" / "photos" / "gcompris" / "zoo" / "lion.webp"
    assert path.read_bytes() == PHOTO
    (bundles / "zoo.rcc").unlink()  # later reads use the unpacked copy
    assert photos.source_path("gcompris:zoo/lion.webp").read_bytes() == PHOTO
    # not in the bundle, or no bundle: a path that does not exist (reported as missing like any photo)
    assert not photos.source_path("gcompris:zoo/tiger.webp").exists()
    assert not photos.source_path("gcompris:aquarium/fish.webp").exists()
