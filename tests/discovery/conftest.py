"""Fixtures of the discovery tests: a directory the lab users can reach, the kit's package for them."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A directory the lab users can reach (pytest's tmp_path is under a root-only 0700 dir)."""
    base = Path(tempfile.mkdtemp(prefix="ood-mt-spool-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def user_python(base: Path) -> dict[str, str]:
    """The kit's package under BASE/py for Debian's /usr/bin/python3 as a lab user (the venv is
    root's): the environment to run it with."""
    shutil.copytree(REPO / "src" / "ood_mt", base / "py" / "ood_mt",
                    symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for path in [base / "py", *(p for p in (base / "py").rglob("*") if not p.is_symlink())]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return {"PYTHONPATH": str(base / "py")}


def shim(base: Path) -> Path:
    """`ood-mt-squeue` as the console script runs it, for the lab users."""
    user_python(base)
    (base / "bin").mkdir(mode=0o755)
    path = base / "bin" / "ood-mt-squeue"
    path.write_text(f'#!/bin/sh\nPYTHONPATH={base / "py"} exec /usr/bin/python3 -m ood_mt.squeue_shim "$@"\n')
    path.chmod(0o755)
    return path
