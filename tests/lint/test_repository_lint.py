"""Static checks of the repository's own files (rendered files are checked in tests/apps)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lint
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _tracked(*patterns: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", *patterns],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if (REPO / line).is_file()]


def test_yamllint_clean():
    files = [f for f in _tracked("*.yml", "*.yaml") if "{{cookiecutter" not in f]
    assert files, "no YAML files found"
    result = subprocess.run([str(BIN / "yamllint"), "-s", *files], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_clean_on_repository_scripts():
    files = [f for f in _tracked("*.sh", ".ci/run") if "{{cookiecutter" not in f and not f.endswith(".erb")]
    assert files, "no shell scripts found"
    result = subprocess.run(["shellcheck", "-x", *files], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_clean():
    paths = ["src", "tests", "bench", "plugins", "molecule"]
    result = subprocess.run([str(BIN / "ruff"), "check", "--output-format", "concise", *paths],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
