import subprocess
import sys
import textwrap

BLOCK_TORCH = textwrap.dedent(
    """
    import sys
    class _BlockTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
    sys.meta_path.insert(0, _BlockTorch())
    """
)


def test_torch_free_modules_import_without_torch():
    code = BLOCK_TORCH + textwrap.dedent(
        """
        import pocketgan, pocketgan.manifest, pocketgan.images, pocketgan.errors, pocketgan.config
        import runtime, runtime.cli, evals.bench, evals._bench_worker, export.parity
        try:
            import torch
        except ImportError:
            pass
        else:
            raise SystemExit("torch was importable")
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
