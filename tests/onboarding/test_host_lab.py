"""The host Slurm lab itself: the daemons, users and WCKey onboarding the suites rely on."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

HOST_SLURM_SCRIPT = Path(__file__).resolve().parents[1] / "lab" / "host_slurm.sh"

pytestmark = pytest.mark.slurm


def test_second_start_is_a_no_op(host_slurm: dict) -> None:
    again = subprocess.run([str(HOST_SLURM_SCRIPT), "start"], capture_output=True, text=True, check=True)
    assert "already running with this configuration" in again.stderr
    status = subprocess.run([str(HOST_SLURM_SCRIPT), "status"], capture_output=True, text=True, check=False)
    assert status.returncode == 0, status.stdout


def test_env_names_the_cluster(host_slurm: dict) -> None:
    assert host_slurm["OOD_MT_SLURM_CLUSTER"] == "hostlab"
    shown = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True)
    assert f"ClusterName             = {host_slurm['OOD_MT_SLURM_CLUSTER']}" in shown.stdout


def test_groups_of_the_lab_users(host_slurm: dict, run_as) -> None:
    assert set(run_as("mtpub", ["id", "-Gn"]).stdout.split()) == {"mtpub", "mtusr", "mtclass"}
    assert set(run_as("mtrecv", ["id", "-Gn"]).stdout.split()) == {"mtrecv", "mtclass"}
    # mtrecv2 is in mtclass through its PRIMARY group only (the case getent's member list misses).
    assert run_as("mtrecv2", ["id", "-gn"]).stdout.strip() == "mtclass"
    assert run_as("mtrecv2", ["id", "-Gn"]).stdout.split() == ["mtclass"]
    assert not {"mtusr", "mtclass"} & set(run_as("mtout", ["id", "-Gn"]).stdout.split())


@pytest.mark.parametrize("user", ["mtpub", "mtrecv", "mtrecv2", "mtout"])
def test_every_lab_user_can_run_a_plain_job(host_slurm: dict, run_as, user: str) -> None:
    done = run_as(user, ["srun", "--quiet", "--time=1", "id", "-un"], timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == user


@pytest.mark.parametrize("user", ["mtpub", "mtrecv", "mtrecv2"])
def test_onboarded_users_can_submit_with_the_site_wckey(host_slurm: dict, run_as, user: str) -> None:
    done = run_as(user, ["srun", "--quiet", "--time=1", "--wckey=multitenant", "true"], timeout=60)
    assert done.returncode == 0, done.stderr


def test_outsider_is_refused_the_site_wckey(host_slurm: dict, run_as) -> None:
    refused = run_as("mtout", ["sbatch", "--wckey=multitenant", "--wrap=true", "-o", "/dev/null"])
    assert refused.returncode != 0
    assert "Invalid wckey specification" in refused.stderr
