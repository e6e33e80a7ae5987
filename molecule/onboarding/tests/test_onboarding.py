"""Verify of the `onboarding` scenario: mtrecv2 (no Slurm association before; primary group
mtclass) was onboarded with the WCKey AND a default wckey; offboarding refuses while a job of
theirs carries the WCKey (slurmdbd would put it back), takes it away with
`ood_mt_onboarding_active_jobs=cancel`, and a second offboard is a no-op."""

from __future__ import annotations

import json
import os
import re
import subprocess

from labhosts import REPO, WCKEY, as_user, host, wait_for


def wckey_users() -> set[str]:
    out = host("slurm").check_output(f"sacctmgr --noheader --parsable2 list wckey {WCKEY} format=user")
    return {u for u in out.split() if u}


def job_ended(job_id: str) -> bool:
    """slurmdbd has recorded the end of the job (sacct shows a final state)."""
    out = host("slurm").check_output(f"sacct --noheader --parsable2 --allocations --jobs={job_id} --format=State")
    return bool(out.strip()) and out.split()[0] not in ("PENDING", "RUNNING", "REQUEUED", "SUSPENDED")


def submit(user: str, options: str) -> str:
    done = host("ood").run(as_user(user, f"sbatch --parsable -o /dev/null {options}"))
    assert done.rc == 0, f"{user} could not submit ({options}): {done.stderr}"
    return done.stdout.strip().split(";")[0]


def playbook(name: str, users: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    assert inventory, "MOLECULE_INVENTORY_FILE not set: run this through `molecule verify`"
    # JSON results keep a long failure message on one line for the assertions below.
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}
    argv = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", inventory, str(REPO / "playbooks" / name),
            "-e", json.dumps({"ood_mt_onboarding_users": users, "ood_mt_onboarding_group": "", **extra})]
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=False)


def changed_count(out: str) -> int:
    return sum(int(n) for n in re.findall(r"changed=(\d+)", out))


def test_new_user_onboarded_with_default_wckey() -> None:
    assert "mtrecv2" in wckey_users()
    plain = submit("mtrecv2", "--wrap true")  # no --wckey: needs the empty default WCKey
    shared = submit("mtrecv2", f"--wckey={WCKEY} --wrap true")
    for job in (plain, shared):
        wait_for(f"job {job} to end in sacct", lambda job=job: job_ended(job), timeout=120, every=1)


def test_offboard_refused_under_a_live_job_then_cancel_then_noop() -> None:
    held = submit("mtrecv2", f"--hold --wckey={WCKEY} --wrap true")
    refused = playbook("offboard.yml", ["mtrecv2"])
    assert refused.returncode != 0, "offboarding went ahead although a held job carries the WCKey"
    assert f"{held} (mtrecv2, PENDING)" in refused.stdout and "nothing was changed" in refused.stdout
    assert "mtrecv2" in wckey_users()

    first = playbook("offboard.yml", ["mtrecv2"], ood_mt_onboarding_active_jobs="cancel")
    assert first.returncode == 0, first.stdout[-3000:]
    assert changed_count(first.stdout) >= 1
    assert f"cancelled jobs {held}" in first.stdout
    assert job_ended(held)
    assert "mtrecv2" not in wckey_users()
    refused = host("ood").run(as_user("mtrecv2", f"sbatch --wckey={WCKEY} --wrap true"))
    assert refused.rc != 0 and "Invalid wckey specification" in refused.stderr
    again = playbook("offboard.yml", ["mtrecv2"])
    assert again.returncode == 0, again.stdout[-3000:]
    assert changed_count(again.stdout) == 0, "second offboard was not a no-op"
    assert "mtrecv2" not in wckey_users()
    # Leave the lab as the other scenarios expect it.
    back = playbook("onboard.yml", ["mtrecv2"])
    assert back.returncode == 0, back.stdout[-3000:]
