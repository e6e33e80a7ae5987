"""Verify of the `rotation` scenario: a share published under key v1 stays visible after the
rotation to v2 (v1 is kept as previous) and is refused as key-version-retired after the
rotation to v3 (v1 removed)."""

from __future__ import annotations

import os
import subprocess

from labhosts import BUILD, REPO, SITE_FILE, dashboard, host, wait_for
from share_flow import cancel, running_cards, submit_database, wait_published


def rotate_to(version: int) -> None:
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    assert inventory, "MOLECULE_INVENTORY_FILE not set: run this through `molecule verify`"
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    argv = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", inventory,
            str(REPO / "playbooks" / "site.yml"), "--tags", "keys",
            "-e", f"ood_mt_keys_current_version={version}", "-e", f"ood_mt_site_file={SITE_FILE}",
            "-e", f"ood_mt_keys_build_dir={BUILD}"]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, f"rotation to v{version} failed:\n{out.stdout[-4000:]}"
    current = host("ood").file("/etc/ood-mt/keys/mtclass/current").content_string.strip()
    assert current == str(version)


def test_share_survives_one_rotation_not_two() -> None:
    job_id = submit_database("mtpub", mt_db_instance="rotation")
    try:
        token = wait_published(job_id)
        assert token.split(":")[2] == "1", f"share not published under key v1: {token[:40]}"
        wait_for("mtrecv's card under v1", lambda: running_cards(dashboard("mtrecv"), job_id), timeout=90)
        rotate_to(2)
        assert running_cards(dashboard("mtrecv"), job_id), "share under v1 vanished after rotating to v2"
        rotate_to(3)
        after = dashboard("mtrecv")
        assert not running_cards(after, job_id), "share under retired key v1 still shown"
        assert any("key-version-retired" in line and job_id in line for line in after["log"]), after["log"]
    finally:
        cancel("mtpub", job_id)
