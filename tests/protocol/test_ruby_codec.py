"""Runs the Ruby codec's minitest suite (tests/protocol/codec_test.rb) under the real Ruby."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_ruby_codec_passes_vectors() -> None:
    if shutil.which("ruby") is None:
        pytest.fail("ruby is not installed; run scripts/bootstrap.sh")
    proc = subprocess.run(
        ["ruby", "-I", str(REPO / "src/ood_mt/initializer/lib"), str(REPO / "tests/protocol/codec_test.rb")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = re.search(r"(\d+) runs, (\d+) assertions, 0 failures, 0 errors", proc.stdout)
    assert summary, proc.stdout
    assert int(summary.group(1)) >= 40  # every vector became a test
