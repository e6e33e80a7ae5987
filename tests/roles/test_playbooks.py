"""Real runs of playbook stages that are safe on this machine: the build stage of site.yml
(with a temp build dir) and the user collection of ood_mt_onboarding (no sacctmgr call)."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.roles.ansible_runner import REPO, run, tool

LAB_SITE = REPO / "inventories/lab/group_vars/all/multitenant.yml"


@pytest.mark.skipif(not (REPO / ".venv/bin/ood-mt").exists(), reason="ood-mt CLI not installed in .venv")
def test_build_stage_changed_only_when_manifest_changes(tmp_path: Path) -> None:
    out = tmp_path / "build"
    argv = [tool("ansible-playbook"), "-i", str(REPO / "inventories/lab/hosts.yml"), str(REPO / "playbooks/site.yml"),
            "--tags", "build", "-e", f"ood_mt_build_dir={out}"]
    check = run([*argv, "--check"])
    assert check.rc == 0, check.output
    assert not out.exists()
    first = run(argv)
    assert first.rc == 0, first.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["site"] == "lab" and manifest["apps"]
    assert first.recap()["changed"] == 1
    second = run(argv)
    assert second.rc == 0, second.output
    assert second.recap()["changed"] == 0, second.stdout


@pytest.fixture()
def group_with_users() -> Iterator[tuple[str, str, str]]:
    """A group with one listed member and one user whose primary group it is (needs root)."""
    tag = secrets.token_hex(3)
    group, listed, primary = f"oodmtg{tag}", f"oodmtl{tag}", f"oodmtp{tag}"
    try:
        subprocess.run(["groupadd", group], check=True)
        subprocess.run(["useradd", "-M", "-N", "-G", group, listed], check=True)
        subprocess.run(["useradd", "-M", "-N", "-g", group, primary], check=True)
    except (subprocess.CalledProcessError, FileNotFoundError, PermissionError) as exc:
        pytest.skip(f"cannot create test users/groups: {exc}")
    try:
        yield group, listed, primary
    finally:
        subprocess.run(["userdel", listed], check=False)
        subprocess.run(["userdel", primary], check=False)
        subprocess.run(["groupdel", group], check=False)


def test_onboarding_collects_list_file_and_group_including_primary(
        tmp_path: Path, group_with_users: tuple[str, str, str]) -> None:
    group, listed, primary = group_with_users
    users_file = tmp_path / "users.txt"
    users_file.write_text("# class list\ncarol\n\n  dave   # TA\n")
    playbook = tmp_path / "collect.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Collect users only", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [{"name": "Collect", "ansible.builtin.include_role": {
            "name": "ood_mt.multitenant.ood_mt_onboarding", "tasks_from": "users"}}]}]))
    extra = {"multitenant": {"site": "t", "cluster": "t", "wckey": "multitenant"},
             "ood_mt_onboarding_users": ["bob"], "ood_mt_onboarding_users_file": str(users_file),
             "ood_mt_onboarding_group": group}
    result = run([tool("ansible-playbook"), "-i", "localhost,", str(playbook), "-e", json.dumps(extra)])
    assert result.rc == 0, result.output
    expected = ", ".join(sorted(["bob", "carol", "dave", listed, primary]))
    assert f"present: {expected}" in result.stdout
