"""Static checks of the Ansible side: ansible-lint (production profile), yamllint, --syntax-check."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.roles.ansible_runner import REPO, run, tool

PLAYBOOKS = sorted((REPO / "playbooks").glob("*.yml"))
LINT_PATHS = ["roles/ood_mt_site", "roles/ood_mt_keys", "roles/ood_mt_slurm_wckey", "roles/ood_mt_ood",
              "roles/ood_mt_onboarding", "playbooks", "inventories", "galaxy.yml", "meta", "plugins"]


def test_ansible_lint_production_profile() -> None:
    result = run([tool("ansible-lint"), "--profile", "production", "--nocolor", *LINT_PATHS])
    assert result.rc == 0, result.output
    assert "Profile 'production' was required, and it passed" in result.output


def test_yamllint_clean() -> None:
    result = run([tool("yamllint"), "-s", "-c", str(REPO / ".yamllint"), "roles", "playbooks", "inventories"])
    assert result.rc == 0, result.output


def test_the_playbooks_are_found() -> None:
    assert {p.name for p in PLAYBOOKS} >= {"site.yml", "onboard.yml", "offboard.yml", "uninstall.yml"}


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: p.name)
def test_playbook_syntax(playbook: Path) -> None:
    result = run([tool("ansible-playbook"), "--syntax-check", "-i", str(REPO / "inventories/example/hosts.yml"),
                  str(playbook)])
    assert result.rc == 0, result.output
    assert f"playbook: {playbook}" in result.stdout
