"""Read the files inside a Qt resource bundle (.rcc), the format GCompris ships its activities' photos in.

Layout (Qt's rcc, format versions 1-3): a 20-byte header ("qres", version, then the offsets of the tree,
the data and the names; version 3 adds 4 bytes of flags), a tree of fixed-size nodes (14 bytes, 22 from
version 2), names as length-prefixed UTF-16BE, and each file's data as a 4-byte length and the bytes,
zlib-compressed (behind a 4-byte uncompressed length) when its node says so. Nothing in the bundle is
executed; only the bytes of its files are returned.

Example: python -m pocketgan.data.rcc /usr/share/gcompris-qt/rcc/erase.rcc   # lists the files
"""

from __future__ import annotations

import struct
import sys
import zlib
from functools import lru_cache
from pathlib import Path

from pocketgan.errors import UsageError

COMPRESSED_ZLIB = 0x01
DIRECTORY = 0x02
COMPRESSED_ZSTD = 0x04


@lru_cache(maxsize=4)
def read_rcc(path: str | Path) -> dict[str, bytes]:
    """{path inside the bundle: file bytes} of a .rcc file; a malformed bundle is a UsageError."""
    blob = Path(path).read_bytes()
    try:
        return _files(blob)
    except (struct.error, IndexError, UnicodeDecodeError, zlib.error, RecursionError) as exc:
        raise UsageError(f"{path}: not a readable Qt resource file ({exc})") from None


def _files(blob: bytes) -> dict[str, bytes]:
    if blob[:4] != b"qres":
        raise UsageError("not a Qt resource file (no 'qres' header)")
    version, tree, data, names = struct.unpack_from(">4I", blob, 4)
    if version not in (1, 2, 3):
        raise UsageError(f"Qt resource format version {version} is not supported (1-3 are)")
    node_size = 14 if version == 1 else 22

    def name(offset: int) -> str:
        (length,) = struct.unpack_from(">H", blob, names + offset)
        start = names + offset + 6  # after the length and a 4-byte hash
        return blob[start : start + 2 * length].decode("utf-16-be")

    out: dict[str, bytes] = {}

    def walk(index: int, prefix: str, depth: int) -> None:
        if depth > 64:
            raise UsageError("resource tree deeper than 64 levels")
        node = tree + index * node_size
        name_offset, flags = struct.unpack_from(">IH", blob, node)
        here = f"{prefix}{name(name_offset)}" if index else ""
        if flags & DIRECTORY:
            count, first = struct.unpack_from(">II", blob, node + 6)
            for child in range(first, first + count):
                walk(child, f"{here}/" if index else "", depth + 1)
            return
        (offset,) = struct.unpack_from(">I", blob, node + 10)  # after 2 bytes territory, 2 bytes language
        (length,) = struct.unpack_from(">I", blob, data + offset)
        payload = blob[data + offset + 4 : data + offset + 4 + length]
        if len(payload) != length:
            raise UsageError(f"{here}: data runs past the end of the file")
        if flags & COMPRESSED_ZSTD:
            raise UsageError(f"{here}: zstd-compressed resources are not supported")
        out[here] = zlib.decompress(payload[4:]) if flags & COMPRESSED_ZLIB else payload

    walk(0, "", 0)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pocketgan.data.rcc FILE.rcc", file=sys.stderr)
        return 2
    try:
        files = read_rcc(args[0])
    except (UsageError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for key, payload in files.items():
        print(f"{len(payload):9d}  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
