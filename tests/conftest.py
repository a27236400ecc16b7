"""Fixtures shared by every test folder."""

import textwrap

import pytest

# Put at the top of a `python -c` script (or in a sitecustomize.py): any import of torch then fails, as on a
# device-side rig without it.
_BLOCK_TORCH = textwrap.dedent(
    """
    import sys
    class _BlockTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
    sys.meta_path.insert(0, _BlockTorch())
    """
)


@pytest.fixture(scope="session")
def block_torch() -> str:
    """Python source that makes `import torch` fail in the process that runs it."""
    return _BLOCK_TORCH
