"""The version lives in src/ood_mt/__init__.py; everything that shows one agrees with it."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

import ood_mt
from ood_mt.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_version_is_a_release_number() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", ood_mt.__version__), ood_mt.__version__


def test_cli_prints_it() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"ood-mt, version {ood_mt.__version__}"


def test_pyproject_reads_it_from_the_package() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]$', text, re.M)
    assert 'version = { attr = "ood_mt.__version__" }' in text
    assert not re.search(r'^version = "', text, re.M), "a second version in pyproject.toml"


def test_changelog_has_a_section_for_it() -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(ood_mt.__version__)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", text, re.M), (
        f"CHANGELOG.md has no '## [{ood_mt.__version__}] - YYYY-MM-DD' section")
    assert "## [Unreleased]" in text
