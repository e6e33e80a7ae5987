"""Runs the initializer's minitest files (tests/initializer/*_test.rb) with Debian's Ruby."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
MINITEST_FILES = sorted(HERE.glob("*_test.rb"))


@pytest.mark.parametrize("test_file", MINITEST_FILES, ids=[p.stem for p in MINITEST_FILES])
def test_minitest_file(test_file: Path) -> None:
    proc = subprocess.run(
        ["ruby", "-W0", f"-I{HERE}", str(test_file)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    summary = re.search(r"(\d+) runs, (\d+) assertions, (\d+) failures, (\d+) errors, (\d+) skips", proc.stdout)
    assert summary, f"no minitest summary from {test_file.name}:\n{proc.stdout}\n{proc.stderr}"
    runs, assertions, failures, errors, skips = (int(x) for x in summary.groups())
    assert proc.returncode == 0 and failures == 0 and errors == 0, f"{test_file.name}:\n{proc.stdout}\n{proc.stderr}"
    if skips == runs:
        pytest.skip(f"{test_file.name}: every test skipped:\n{proc.stdout[-2000:]}")
    assert assertions > 0
