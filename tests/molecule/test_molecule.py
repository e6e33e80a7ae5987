"""Runs the Molecule scenarios against the podman lab of one lab generation and asserts they pass.

`molecule test --all` runs check, default, onboarding, rotation, slurm_privatedata, uninstall in
that order on ONE lab (shared_state: the default scenario's create/destroy run once).
OOD_MT_MOLECULE_SCENARIO="<name> [<name> ...]" narrows the run to those scenarios (scripts/test.sh
does, per generation; `default` must be among them, as it deploys the site).
The lab is the generation's own (OOD_MT_LAB_GENERATION; `lab/lab_ctl.sh --molecule`), and so
is Molecule's state (MOLECULE_EPHEMERAL_DIRECTORY=.lab/molecule-<generation>/state), so two
generations can run at once. On failure the Molecule output tail and the lab's logs (failed
units, slurmctld/slurmdbd/slurmd logs, journal) are printed. Needs root, podman and the lab
images (built on first use by lab/build_images.sh).

Run: .venv/bin/pytest -m molecule tests/molecule -s
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOGS = REPO / ".lab" / "logs"
SCENARIOS = {"check", "default", "onboarding", "rotation", "slurm_privatedata", "uninstall"}

pytestmark = pytest.mark.molecule


GENERATION = os.environ.get("OOD_MT_LAB_GENERATION") or "bookworm"
STATE = REPO / ".lab" / f"molecule-{GENERATION}" / "state"
# Narrow the run to some scenarios (scripts/test.sh does, per generation).
ONLY = os.environ.get("OOD_MT_MOLECULE_SCENARIO", "").split()


def _lab_ctl(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / "lab" / "lab_ctl.sh"), command, "--molecule"], env=env,
                          capture_output=True, text=True, check=False)


def _reset_molecule_state(env: dict[str, str]) -> None:
    subprocess.run([str(REPO / ".venv" / "bin" / "molecule"), "reset", "--all"], cwd=REPO, env=env,
                   capture_output=True, check=False)
    shutil.rmtree(STATE, ignore_errors=True)


def _run_molecule(args: list[str], log_name: str, expect: set[str]) -> None:
    if os.geteuid() != 0 or shutil.which("podman") is None:
        pytest.skip("the Molecule lab needs root and podman (see docs/testing.md)")
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / log_name
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}", "NO_COLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0", "PY_COLORS": "0", "OOD_MT_LAB_GENERATION": GENERATION,
           "MOLECULE_EPHEMERAL_DIRECTORY": str(STATE)}
    # --destroy=never keeps the containers so their logs can be collected on failure; the lab
    # is removed below either way. Before the run, the lab and Molecule's own state are removed
    # too: a run killed with its session (CI runs on the same machine afterwards) leaves
    # containers podman still records as running, with their processes gone, and Molecule
    # state "created", which would make Molecule skip create.
    _lab_ctl("down", env)
    _reset_molecule_state(env)
    try:
        with log.open("w") as fh:
            proc = subprocess.run([str(REPO / ".venv" / "bin" / "molecule"), "test", *args, "--destroy=never"],
                                  cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False,
                                  timeout=3600)
        text = log.read_text(errors="replace")
        lab_logs = _lab_ctl("logs", env).stdout[-30000:] if proc.returncode != 0 else ""
    finally:
        _lab_ctl("down", env)
        _reset_molecule_state(env)
    if proc.returncode != 0:
        pytest.fail(f"molecule test {' '.join(args)} failed (exit {proc.returncode}); full log: {log}\n"
                    f"--- molecule output (tail) ---\n{text[-15000:]}\n--- lab logs ---\n{lab_logs}")
    recap = re.findall(r"^(\w+)\s+: actions=\d+\s+successful=\d+.*failed=(\d+)", text, flags=re.M)
    assert {name for name, _ in recap} >= expect, f"scenarios missing from the recap: {recap}"
    assert all(failed == "0" for _, failed in recap), recap


def test_scenarios_pass() -> None:
    """The scenarios asked for (all six by default) pass on one lab of the generation."""
    if ONLY:
        unknown = set(ONLY) - SCENARIOS
        assert not unknown, f"OOD_MT_MOLECULE_SCENARIO names {sorted(unknown)}: choose from {sorted(SCENARIOS)}"
        args = [arg for name in ONLY for arg in ("-s", name)]
        _run_molecule(args, f"molecule-{GENERATION}-{'-'.join(ONLY)}.log", set(ONLY))
    else:
        _run_molecule(["--all"], f"molecule-{GENERATION}-all.log", SCENARIOS)
