"""runtime.keep_freed_memory: freed heap memory stays in the process, so a loop of big allocations stops
page-faulting; each case runs in a fresh interpreter, since the setting is process-wide."""

import os
import subprocess
import sys
import textwrap

import pytest
from runtime_testkit import REPO

# A 20 MB block, freed, raises glibc's own thresholds to mmap 20 MB / trim 40 MB; then each round puts
# 3 x 15 MB on the heap and frees it: 45 MB free at the heap top is over 40 MB, so glibc trims it and the
# next round faults it back in (11,520 faults a round measured), unless the trim threshold is 64 MiB.
_PATTERN = textwrap.dedent(
    """
    import resource, sys
    from pocketgan.runtime.allocator import keep_freed_memory

    kept = keep_freed_memory() if sys.argv[1] == "keep" else None
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    warm = b"x" * (20 << 20)
    del warm
    counts = []
    for _ in range(4):
        start = faults()
        blocks = [b"x" * (15 << 20) for _ in range(3)]
        del blocks
        counts.append(faults() - start)
    print(kept, min(counts[1:]))
    """
)


def _run(mode: str, **env: str) -> tuple[str, int]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    result = subprocess.run(
        [sys.executable, "-c", _PATTERN, mode],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**environment, **env},
    )
    assert result.returncode == 0, result.stderr
    kept, faults = result.stdout.split()
    return kept, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc: Linux only")
def test_keep_freed_memory_stops_the_heap_trim_faults():
    kept, faults = _run("keep")
    assert kept == "True"
    assert faults < 100, faults  # 45 MB reused: no page comes back from the OS
    kept, faults = _run("default")
    assert faults > 5000, faults  # the pattern does fault under glibc's own thresholds


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc: Linux only")
def test_keep_freed_memory_leaves_a_users_malloc_settings_alone():
    kept, faults = _run("keep", MALLOC_TRIM_THRESHOLD_="1000")
    assert kept == "False"
    assert faults > 5000, faults
    kept, _ = _run("keep", GLIBC_TUNABLES="glibc.malloc.trim_threshold=1000")
    assert kept == "False"
