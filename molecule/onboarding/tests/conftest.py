"""Verifier setup shared by the scenarios: lab helpers on sys.path, harness installed,
Slurm/journal logs printed when a test fails."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

import labhosts


@pytest.fixture(scope="session", autouse=True)
def _harness_in_ood_container() -> None:
    labhosts.install_harness()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        report.sections.append(("lab logs (slurmctld/slurmdbd/slurmd, journal)", labhosts.slurm_logs()))
