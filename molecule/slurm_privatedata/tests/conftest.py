"""Verifier setup shared by the scenarios (molecule/shared/verifier_plugin.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from verifier_plugin import _ood_runner_in_ood_container, pytest_runtest_makereport

__all__ = ["_ood_runner_in_ood_container", "pytest_runtest_makereport"]
