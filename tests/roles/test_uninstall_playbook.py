"""Real runs of the OOD stage of playbooks/uninstall.yml on this machine, against a
temporary OOD tree (apps dir, dashboard config dir, installed-apps record)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.roles.ansible_runner import REPO, Run, run, tool


@pytest.fixture()
def ood_tree(tmp_path: Path) -> dict[str, Path]:
    apps, dashboard = tmp_path / "apps", tmp_path / "dashboard"
    for name in ("mt_database", "mt_jupyter", "someone_elses_app"):
        (apps / name / "template").mkdir(parents=True)
        (apps / name / "manifest.yml").write_text(f"name: {name}\n")
    (dashboard / "initializers").mkdir(parents=True)
    initializer = dashboard / "initializers" / "ood_multitenant.rb"
    initializer.write_text("# kit\n")
    (dashboard / "initializers" / "site_own.rb").write_text("# not ours\n")
    (dashboard / "env").write_text("OOD_DASHBOARD_TITLE=HPC\nMULTITENANT_ENABLE=true\n")
    record = tmp_path / "installed-apps.json"
    record.write_text(json.dumps({"format": 1, "site": "t", "initializer": str(initializer), "apps": [
        {"name": name, "dest": str(apps / name)} for name in ("mt_database", "mt_jupyter")]}))
    return {"root": tmp_path, "apps": apps, "dashboard": dashboard, "record": record, "initializer": initializer}


def uninstall_ood(tree: dict[str, Path], *options: str) -> Run:
    inventory = tree["root"] / "hosts.yml"
    inventory.write_text("all:\n  children:\n    ood_servers:\n      hosts:\n        localhost:\n"
                         "          ansible_connection: local\n")
    extra = {"multitenant": {"paths": {"ood_apps_dir": str(tree["apps"]),
                                       "dashboard_config_dir": str(tree["dashboard"])}},
             "ood_mt_uninstall_record": str(tree["record"]), "ansible_become": False}
    return run([tool("ansible-playbook"), "-i", str(inventory), str(REPO / "playbooks/uninstall.yml"),
                "--tags", "ood", "-e", json.dumps(extra), *options])


def test_check_mode_changes_nothing_then_real_run_removes_only_the_kit_then_no_op(ood_tree: dict[str, Path]) -> None:
    check = uninstall_ood(ood_tree, "--check", "--diff")
    assert check.rc == 0, check.output
    assert check.recap()["changed"] >= 4
    assert (ood_tree["apps"] / "mt_database").is_dir() and ood_tree["record"].exists()
    assert "MULTITENANT_ENABLE=true" in (ood_tree["dashboard"] / "env").read_text()

    first = uninstall_ood(ood_tree)
    assert first.rc == 0, first.output
    assert sorted(p.name for p in ood_tree["apps"].iterdir()) == ["someone_elses_app"]
    assert sorted(p.name for p in (ood_tree["dashboard"] / "initializers").iterdir()) == ["site_own.rb"]
    assert (ood_tree["dashboard"] / "env").read_text() == "OOD_DASHBOARD_TITLE=HPC\n"
    assert not ood_tree["record"].exists()

    again = uninstall_ood(ood_tree)
    assert again.rc == 0, again.output
    assert again.recap()["changed"] == 0, again.stdout


@pytest.mark.parametrize("bad_app", [{"name": "etc", "dest": "/etc"},
                                     {"name": "mt_x", "dest": "/home/mt_x"},
                                     {"name": "..", "dest": "APPS/.."}])
def test_a_record_naming_other_paths_is_refused_and_nothing_changes(
        ood_tree: dict[str, Path], bad_app: dict[str, str]) -> None:
    record = json.loads(ood_tree["record"].read_text())
    record["apps"].append({k: v.replace("APPS", str(ood_tree["apps"])) for k, v in bad_app.items()})
    ood_tree["record"].write_text(json.dumps(record))
    result = uninstall_ood(ood_tree)
    assert result.rc != 0
    assert f"uninstall: {ood_tree['record']} on localhost names paths this playbook will not delete" in result.stdout
    assert "Nothing was changed" in result.stdout
    assert (ood_tree["apps"] / "mt_database").is_dir() and ood_tree["initializer"].exists()
    assert "MULTITENANT_ENABLE=true" in (ood_tree["dashboard"] / "env").read_text()
