"""The roles check the site file with the kit's schema (role ood_mt_site, filter ood_mt_site_problems):
the same rule and the same message as `ood-mt validate`, through a real ansible-playbook run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ood_mt.config import site_problem_lines
from tests.roles.ansible_runner import REPO, run, tool

LAB_SITE = REPO / "inventories" / "lab" / "group_vars" / "all" / "multitenant.yml"


def play(tmp_path: Path, multitenant: dict, keys: list[str], role: str = "ood_mt.multitenant.ood_mt_site"):
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Site check under test", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [{"name": "Check", "ansible.builtin.include_role": {"name": role},
                   "vars": {"ood_mt_site_keys": keys, "ood_mt_site_role": "ood_mt_keys"}}]}]))
    return run([tool("ansible-playbook"), "-i", "localhost,", str(playbook), "-e",
                json.dumps({"multitenant": multitenant})])


def lab() -> dict:
    return yaml.safe_load(LAB_SITE.read_text())["multitenant"]


def test_valid_site_passes_with_upper_case_groups(tmp_path: Path) -> None:
    site = lab()
    site["tenant_groups"] = ["Chem101", "mtclass"]  # POSIX allows upper case; the schema too
    result = play(tmp_path, site, [])
    assert result.rc == 0, result.output
    assert result.recap().get("failed", 0) == 0


@pytest.mark.parametrize(("keys", "reported"), [(["tenant_groups"], True), (["paths"], False)])
def test_bad_group_name_is_the_schema_message(tmp_path: Path, keys: list[str], reported: bool) -> None:
    site = lab()
    site["tenant_groups"] = ["mtclass", "bad:name"]
    result = play(tmp_path, site, keys)
    (expected,) = site_problem_lines(site, ("tenant_groups",), "the site file (multitenant)")
    if reported:
        assert result.rc != 0
        assert "ood_mt_keys: 1 problem(s) in the site file" in result.output
        assert expected in " ".join(result.output.split()), result.output
    else:
        assert result.rc == 0, result.output
