import subprocess
import sys
import textwrap


def test_torch_free_modules_import_without_torch(block_torch):
    code = block_torch + textwrap.dedent(
        """
        import pocketgan, pocketgan.manifest, pocketgan.images, pocketgan.errors, pocketgan.config
        import pocketgan.runtime, pocketgan.runtime.cli, pocketgan.runtime.batch, pocketgan.runtime.provenance
        import pocketgan.evals.bench, pocketgan.evals._bench_worker
        import pocketgan.export.parity
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
