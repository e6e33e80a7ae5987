"""Verify of the `onboarding` scenario: mtrecv2 (no Slurm association before; primary group
mtclass) was onboarded with the WCKey AND a default wckey; offboarding takes it away and a
second offboard is a no-op."""

from __future__ import annotations

import json
import os
import re
import subprocess

from labhosts import REPO, WCKEY, as_user, host


def wckey_users() -> set[str]:
    out = host("slurm").check_output(f"sacctmgr --noheader --parsable2 list wckey {WCKEY} format=user")
    return {u for u in out.split() if u}


def playbook(name: str, users: list[str]) -> subprocess.CompletedProcess[str]:
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    assert inventory, "MOLECULE_INVENTORY_FILE not set: run this through `molecule verify`"
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")}
    argv = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", inventory, str(REPO / "playbooks" / name),
            "-e", json.dumps({"ood_mt_onboarding_users": users, "ood_mt_onboarding_group": ""})]
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False)


def changed_count(out: str) -> int:
    return sum(int(n) for n in re.findall(r"changed=(\d+)", out))


def test_new_user_onboarded_with_default_wckey() -> None:
    assert "mtrecv2" in wckey_users()
    ood = host("ood")
    plain = ood.run(as_user("mtrecv2", "sbatch --wrap true"))
    assert plain.rc == 0, f"mtrecv2 cannot submit without --wckey (no default wckey?): {plain.stderr}"
    shared = ood.run(as_user("mtrecv2", f"sbatch --wckey={WCKEY} --wrap true"))
    assert shared.rc == 0, shared.stderr


def test_offboard_then_noop() -> None:
    first = playbook("offboard.yml", ["mtrecv2"])
    assert first.returncode == 0, first.stdout[-3000:]
    assert changed_count(first.stdout) >= 1
    assert "mtrecv2" not in wckey_users()
    refused = host("ood").run(as_user("mtrecv2", f"sbatch --wckey={WCKEY} --wrap true"))
    assert refused.rc != 0 and "Invalid wckey specification" in refused.stderr
    again = playbook("offboard.yml", ["mtrecv2"])
    assert again.returncode == 0, again.stdout[-3000:]
    assert changed_count(again.stdout) == 0, "second offboard was not a no-op"
    # Leave the lab as the other scenarios expect it.
    back = playbook("onboard.yml", ["mtrecv2"])
    assert back.returncode == 0, back.stdout[-3000:]
