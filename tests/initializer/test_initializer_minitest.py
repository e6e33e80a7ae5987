"""Runs the initializer's minitest files (tests/initializer/*_test.rb) with Debian's Ruby.

No test there skips: a missing library fails the load (test_helper.rb requires every file
of ood_mt.render.INITIALIZER_LIBS), and the verification policy runs with an injected user
directory, so a fresh machine runs every test. A skip is therefore a failure here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ood_mt import render

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MINITEST_FILES = sorted(HERE.glob("*_test.rb"))


@pytest.mark.parametrize("test_file", MINITEST_FILES, ids=[p.stem for p in MINITEST_FILES])
def test_minitest_file(test_file: Path) -> None:
    env = {**os.environ, "OOD_MT_PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        ["ruby", "-W0", f"-I{HERE}", str(test_file)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert_minitest_passed(test_file.name, proc)


def assert_minitest_passed(name: str, proc: subprocess.CompletedProcess[str]) -> None:
    """A minitest run passed: a summary line, no failure, error or skip, and something ran."""
    summary = re.search(r"(\d+) runs, (\d+) assertions, (\d+) failures, (\d+) errors, (\d+) skips", proc.stdout)
    assert summary, f"no minitest summary from {name}:\n{proc.stdout}\n{proc.stderr}"
    runs, assertions, failures, errors, skips = (int(x) for x in summary.groups())
    assert proc.returncode == 0 and failures == 0 and errors == 0, f"{name}:\n{proc.stdout}\n{proc.stderr}"
    assert skips == 0, f"{name}: {skips} of {runs} tests skipped (none may):\n{proc.stdout[-2000:]}"
    assert runs > 0 and assertions > 0, f"{name}: {runs} runs, {assertions} assertions"


def test_every_library_is_inlined_and_loaded() -> None:
    """INITIALIZER_LIBS (the template's and test_helper.rb's list) names every file of
    src/ood_mt/initializer/lib once, so a new library cannot be left out of the initializer."""
    on_disk = sorted(p.name for p in (REPO / "src/ood_mt/initializer" / "lib").glob("*.rb"))
    assert sorted(render.INITIALIZER_LIBS) == on_disk
    assert len(set(render.INITIALIZER_LIBS)) == len(render.INITIALIZER_LIBS)
