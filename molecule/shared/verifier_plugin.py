"""Verifier setup every scenario uses: OOD's own code and its runner copied into the OOD
container, and the lab's Slurm/journal logs attached to any failing test's report.

Each scenario's tests/conftest.py imports these two names; pytest registers a fixture or
hook found in a conftest module whether it was defined or imported there.
"""

from __future__ import annotations

from typing import Any

import labhosts
import pytest


@pytest.fixture(scope="session", autouse=True)
def _ood_runner_in_ood_container() -> None:
    labhosts.install_ood_runner()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        report.sections.append(("lab logs (slurmctld/slurmdbd/slurmd, journal)", labhosts.slurm_logs()))
