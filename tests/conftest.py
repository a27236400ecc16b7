"""Fixtures shared by every test folder."""

import signal
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest


def blocking_imports(package: str) -> str:
    """Python source that makes any import of `package` fail in the process that runs it, as where it is not
    installed. Put it at the top of a `python -c` script (or in a sitecustomize.py)."""
    return textwrap.dedent(
        f"""
        import sys
        class _Block:
            def find_spec(self, name, path=None, target=None):
                if name == {package!r} or name.startswith({package + "."!r}):
                    raise ImportError("{package} is blocked in this test")
        sys.meta_path.insert(0, _Block())
        """
    )


@pytest.fixture(scope="session")
def block_imports():
    """blocking_imports(package) -> Python source that makes any import of `package` fail."""
    return blocking_imports


@pytest.fixture(scope="session")
def block_torch() -> str:
    """Python source that makes `import torch` fail in the process that runs it (a device-side rig)."""
    return blocking_imports("torch")


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz_tag(xyz) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in xyz)


def display_p3_icc() -> bytes:
    """An ICC v2 display profile for Display P3: DCI-P3 primaries, D65 white, the sRGB tone curve.

    Built by hand because Pillow's ImageCms creates only sRGB, Lab and XYZ profiles. Colourants are
    Bradford-adapted to the D50 connection space, as the ICC requires.
    """
    white = np.array([0.95047, 1.0, 1.08883])  # D65
    primaries = np.array([[0.680, 0.320], [0.265, 0.690], [0.150, 0.060]])
    xyz = np.stack([[x / y, 1.0, (1 - x - y) / y] for x, y in primaries], axis=1)  # columns: R, G, B
    rgb_to_xyz = xyz * np.linalg.solve(xyz, white)
    bradford = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
    d50 = np.array([0.9642, 1.0, 0.8249])
    adapt = np.linalg.inv(bradford) @ np.diag((bradford @ d50) / (bradford @ white)) @ bradford
    colourants = adapt @ rgb_to_xyz
    signal = np.linspace(0, 1, 1024)
    linear = np.where(signal <= 0.04045, signal / 12.92, ((signal + 0.055) / 1.055) ** 2.4)
    curve = b"curv\0\0\0\0" + struct.pack(">I", 1024) + np.round(linear * 65535).astype(">u2").tobytes()
    name = b"Display P3 (PocketGAN test)\0"
    description = b"desc\0\0\0\0" + struct.pack(">I", len(name)) + name + bytes(12) + bytes(67)
    tags = [
        (b"desc", description),
        (b"cprt", b"text\0\0\0\0no copyright, test data\0"),
        (b"wtpt", _xyz_tag(d50)),
        (b"rXYZ", _xyz_tag(colourants[:, 0])),
        (b"gXYZ", _xyz_tag(colourants[:, 1])),
        (b"bXYZ", _xyz_tag(colourants[:, 2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        data += bytes(-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + bytes(4)
        + bytes([2, 0x10, 0, 0])
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + bytes(24)
        + bytes(4)  # rendering intent: perceptual
        + b"".join(_s15(v) for v in d50)
        + bytes(48)
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


@pytest.fixture(scope="session")
def display_p3_profile() -> bytes:
    """The bytes of a Display P3 ICC profile (`display_p3_icc`)."""
    return display_p3_icc()


def _kill_inside_atomic_path(target) -> None:
    script = (
        "import os, signal\n"
        "from pocketgan.manifest import atomic_path\n"
        f"with atomic_path({str(target)!r}) as tmp:\n"
        "    tmp.write_bytes(b'half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    assert subprocess.run([sys.executable, "-c", script]).returncode == -signal.SIGKILL


@pytest.fixture(scope="session")
def killed_mid_write():
    """A function(target): a process writing `target` with atomic_path dies by SIGKILL, leaving its temp."""
    return _kill_inside_atomic_path
