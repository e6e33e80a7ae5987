"""Verify of the `uninstall` scenario: playbooks/uninstall.yml removed every file the kit
installed (per the build manifest the default scenario deployed), switched the dashboard
off, and stopped WCKey enforcement with Slurm still healthy; the rest of OOD is untouched."""

from __future__ import annotations

import re

import pytest
from labhosts import REPO, WCKEY, as_user, host, manifest


def test_apps_and_initializer_are_gone_rest_of_ood_kept() -> None:
    ood = host("ood")
    man = manifest()
    assert man["apps"], "the manifest lists no apps: nothing was tested"
    left = [app["dest"] for app in man["apps"] if ood.file(app["dest"]).exists]
    assert left == [], f"apps still installed: {left}"
    assert not ood.file(man["initializer"]["dest"]).exists
    assert not ood.file("/var/lib/ood-mt/ood-apps-bundle.tar").exists
    # the kit's cluster entry (slurm_privatedata wrote it) goes; the site's own cluster file stays
    assert not ood.file("/etc/ood/config/clusters.d/lab_mt.yml").exists
    assert ood.file("/etc/ood/config/clusters.d/lab.yml").exists
    assert ood.file("/var/www/ood/apps/sys").is_directory
    assert ood.file("/etc/ood/config/apps/dashboard/initializers").is_directory


@pytest.mark.parametrize("node", ["ood", "slurm"])
def test_the_discovery_service_and_its_spool_are_gone(node: str) -> None:
    assert not host(node).file("/etc/systemd/system/ood-mt-discovery.service").exists
    assert host(node).run("systemctl is-active ood-mt-discovery.service").stdout.strip() != "active"
    assert not host(node).file("/var/lib/ood-mt/spool").exists


def test_dashboard_env_no_longer_enables_the_kit() -> None:
    env = host("ood").file("/etc/ood/config/apps/dashboard/env")
    assert env.exists, "the dashboard env file itself must stay"
    settings = [line for line in env.content_string.splitlines()
                if re.match(r"\s*(export\s+)?MULTITENANT_ENABLE\s*=", line)]
    assert settings == []


@pytest.mark.parametrize("node", ["ood", "slurm", "compute"])
def test_keys_and_site_summary_are_gone(node: str) -> None:
    assert not host(node).file("/etc/ood-mt").exists


@pytest.mark.parametrize("node", ["ood", "slurm", "compute"])
def test_the_command_and_its_virtualenv_are_gone(node: str) -> None:
    assert not host(node).file("/usr/local/bin/ood-mt").exists
    assert not host(node).file("/opt/ood-mt").exists


def conf_settings(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


@pytest.mark.parametrize("node", ["slurm", "compute"])
def test_enforcement_is_back_to_the_labs_own_setting(node: str) -> None:
    # The role removes only `wckeys`; the lab's own slurm.conf has no AccountingStorageEnforce
    # line, so the line must be gone again (Slurm's default), not left empty or with other values.
    original = conf_settings((REPO / "lab" / "templates" / "slurm.conf").read_text()).get("AccountingStorageEnforce")
    now = conf_settings(host(node).file("/etc/slurm/slurm.conf").content_string).get("AccountingStorageEnforce")
    assert now == original


def test_slurm_accepts_the_wckey_from_anyone_again() -> None:
    # Proves the daemons were restarted on the new setting, not just the file edited.
    out = host("ood").run(as_user("mtout", f"sbatch --parsable -o /dev/null --wckey={WCKEY} --wrap true"))
    assert out.rc == 0, f"mtout still refused after uninstall: {out.stderr}"
    for unit in ("slurmdbd", "slurmctld"):
        assert host("slurm").service(unit).is_running
    assert host("compute").service("slurmd").is_running
