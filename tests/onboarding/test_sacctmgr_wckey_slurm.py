"""Integration tests: the sacctmgr_wckey module run by Ansible against the real host Slurm.

Every test works on users and WCKeys with a per-test random suffix and removes them
afterwards, so it neither depends on nor disturbs the lab users (mtpub, mtrecv, ...).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from tests.initializer.test_listing_slurm import HOSTILE_WCKEY, _forget_hostile_wckey, _start_slurm

pytestmark = pytest.mark.slurm

REPO_ROOT = Path(__file__).resolve().parents[2]
# the checkout as the collection ood_mt.multitenant (scripts/collection_link.sh, tests/conftest.py)
COLLECTIONS_PATH = REPO_ROOT / ".ansible" / "collections"
HOST_SLURM_SCRIPT = REPO_ROOT / "tests" / "lab" / "host_slurm.sh"
ANSIBLE = Path(sys.executable).parent / "ansible"
SLURMDBD_PID_FILE = Path("/run/ood-mt-lab/slurm/slurmdbd.pid")


def sacctmgr(*args: str, check: bool = True) -> str:
    done = subprocess.run(["sacctmgr", *args], capture_output=True, text=True, timeout=60, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"sacctmgr {' '.join(args)} failed: {done.stderr}{done.stdout}")
    return done.stdout


def wckey_rows(cluster: str) -> List[Tuple[str, str]]:
    out = sacctmgr("--parsable2", "--noheader", "list", "wckey", f"cluster={cluster}", "format=WCKey,User")
    return [tuple(line.split("|")) for line in out.splitlines() if line]  # type: ignore[misc]


def members(cluster: str, wckey: str) -> List[str]:
    return sorted(user for key, user in wckey_rows(cluster) if key == wckey)


def default_wckey(user: str) -> str:
    out = sacctmgr("--parsable2", "--noheader", "list", "user", f"name={user}", "format=User,DefaultWCKey")
    return out.strip().split("|")[1]


def transactions_mentioning(names: List[str]) -> List[str]:
    """slurmdbd's transaction log lines (its record of every write) naming any of NAMES."""
    out = sacctmgr("--parsable2", "--noheader", "list", "transactions", "format=TimeStamp,Action,Where,Info")
    return [line for line in out.splitlines() if any(f"'{name}'" in line for name in names)]


def run_module(
    workdir: Path, args: Dict[str, object], check_mode: bool = False, diff: bool = False
) -> Tuple[Dict[str, object], subprocess.CompletedProcess[str]]:
    """Run the module through the `ansible` CLI; return (its result dict, the process)."""
    argv = [
        str(ANSIBLE), "localhost", "-i", "localhost,", "-c", "local",
        "-e", f"ansible_python_interpreter={sys.executable}",
        "-m", "ood_mt.multitenant.sacctmgr_wckey", "-a", json.dumps(args),
    ]
    if check_mode:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_NOCOLOR="1", ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_PATH))
    # Run outside the repository so no project ansible.cfg changes the inventory or output.
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=workdir, timeout=180, check=False)
    try:
        report = json.loads(done.stdout)
        result = report["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError) as exc:
        raise AssertionError(
            f"no JSON result from ansible (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
        ) from exc
    return result, done


@pytest.fixture
def cluster(host_slurm: Dict[str, str]) -> str:
    return host_slurm["OOD_MT_SLURM_CLUSTER"]


@pytest.fixture
def names(host_slurm: Dict[str, str], cluster: str) -> Iterator[Dict[str, object]]:
    """Three fresh Slurm users with associations in the lab account, and a fresh WCKey."""
    tag = secrets.token_hex(3)
    users = [f"wkt{tag}{i}" for i in range(3)]
    sacctmgr("-i", "add", "user", ",".join(users), f"account={host_slurm['OOD_MT_SLURM_ACCOUNT']}",
             f"cluster={cluster}")
    yield {"users": users, "wckey": f"wkt{tag}", "tag": tag}
    sacctmgr("-i", "delete", "user", ",".join(users), check=False)


def test_add_then_second_run_is_a_no_op_without_writes(tmp_path: Path, cluster: str, names: Dict) -> None:
    users: List[str] = names["users"]
    result, _ = run_module(tmp_path, {"wckey": names["wckey"], "users": users})
    assert result["changed"] is True
    assert result["added"] == users
    assert result["default_wckey_added"] == users
    assert members(cluster, names["wckey"]) == sorted(users)
    assert all(default_wckey(user) == "" for user in users)

    writes_before = transactions_mentioning(users)
    assert writes_before, "the first run must have left transactions naming the users"
    again, _ = run_module(tmp_path, {"wckey": names["wckey"].upper(), "users": [u.upper() for u in users]})
    assert again["changed"] is False
    assert again["added"] == [] and again["commands"] == []
    assert again["users"] == sorted(users)
    assert transactions_mentioning(users) == writes_before, "the no-op run wrote to slurmdbd"


def test_check_mode_reports_but_writes_nothing(tmp_path: Path, cluster: str, names: Dict) -> None:
    users: List[str] = names["users"]
    writes_before = transactions_mentioning(users)  # the fixture's user associations
    result, _ = run_module(tmp_path, {"wckey": names["wckey"], "users": users}, check_mode=True)
    assert result["changed"] is True
    assert result["added"] == users
    assert len(result["commands"]) == 3  # empty key, its default, then the WCKey itself
    assert members(cluster, names["wckey"]) == []
    assert transactions_mentioning(users) == writes_before, "check mode wrote to slurmdbd"


def test_diff_shows_users_added_and_removed(tmp_path: Path, names: Dict) -> None:
    first, second, third = names["users"]
    run_module(tmp_path, {"wckey": names["wckey"], "users": [first, second]})
    result, _ = run_module(tmp_path, {"wckey": names["wckey"], "users": [second], "state": "absent"}, diff=True)
    assert result["removed"] == [second]
    before = result["diff"]["before"].splitlines()
    after = result["diff"]["after"].splitlines()
    assert before[1:] == [first, second]
    assert after[1:] == [first]
    result, _ = run_module(tmp_path, {"wckey": names["wckey"], "users": [third]}, diff=True)
    assert result["diff"]["after"].splitlines()[1:] == [first, third]


def test_remove_deletes_only_the_listed_users(tmp_path: Path, cluster: str, names: Dict) -> None:
    users: List[str] = names["users"]
    run_module(tmp_path, {"wckey": names["wckey"], "users": users})
    result, _ = run_module(tmp_path, {"wckey": names["wckey"], "users": users[:2], "state": "absent"})
    assert result["changed"] is True
    assert result["removed"] == users[:2]
    assert members(cluster, names["wckey"]) == [users[2]]
    # The empty default WCKey stays: removed users can still run ordinary jobs.
    assert {user for key, user in wckey_rows(cluster) if key == ""} >= set(users)
    again, _ = run_module(tmp_path, {"wckey": names["wckey"], "users": users[:2], "state": "absent"})
    assert again["changed"] is False


def test_unknown_user_is_a_clear_error_and_nothing_is_written(tmp_path: Path, cluster: str, names: Dict) -> None:
    ghost = f"ghost{names['tag']}"
    result, done = run_module(tmp_path, {"wckey": names["wckey"], "users": [names["users"][0], ghost]})
    assert done.returncode != 0
    assert result.get("failed") is True
    assert ghost in result["msg"] and "no Slurm user association" in result["msg"]
    assert f"sacctmgr -i add user {ghost} account=<account> cluster={cluster}" in result["msg"]
    assert members(cluster, names["wckey"]) == []


def test_invalid_wckey_is_refused_before_any_sacctmgr_call(tmp_path: Path, names: Dict) -> None:
    result, done = run_module(tmp_path, {"wckey": "*bad", "users": names["users"]})
    assert done.returncode != 0
    assert "parameter 'wckey'" in result["msg"] and "'*'" in result["msg"]


def _slurmdbd_pid() -> Optional[int]:
    try:
        return int(SLURMDBD_PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None


def test_slurmdbd_down_is_a_clear_error(tmp_path: Path, names: Dict) -> None:
    pid = _slurmdbd_pid()
    assert pid is not None, f"no slurmdbd pid file at {SLURMDBD_PID_FILE}"
    os.kill(pid, 15)
    try:
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        result, done = run_module(tmp_path, {"wckey": names["wckey"], "users": names["users"]})
        assert done.returncode != 0
        assert result["msg"].startswith("sacctmgr could not reach slurmdbd: ")
        assert "is slurmdbd running on localhost (port 6819)?" in result["msg"]
    finally:
        restarted = subprocess.run([str(HOST_SLURM_SCRIPT), "start"], capture_output=True, text=True, check=False)
        assert restarted.returncode == 0, restarted.stderr


@pytest.fixture
def new_unix_user(host_slurm: Dict[str, str], cluster: str) -> Iterator[str]:
    """A brand-new Unix user with a Slurm association and NO WCKey association."""
    name = f"mtnew{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--create-home", "--user-group", name], check=True)
    sacctmgr("-i", "add", "user", name, f"account={host_slurm['OOD_MT_SLURM_ACCOUNT']}", f"cluster={cluster}")
    yield name
    sacctmgr("-i", "delete", "user", name, check=False)
    subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)


def test_new_user_cannot_submit_until_onboarded_then_runs_both_kinds_of_job(
    tmp_path: Path, new_unix_user: str, run_as
) -> None:
    assert pwd.getpwnam(new_unix_user)
    plain = ["srun", "--quiet", "--time=1", "id", "-un"]
    tagged = ["srun", "--quiet", "--time=1", "--wckey=multitenant", "id", "-un"]
    # Under wckey enforcement a user without any WCKey association cannot submit at all.
    refused = run_as(new_unix_user, plain, timeout=60)
    assert refused.returncode != 0 and "Invalid wckey specification" in refused.stderr

    result, _ = run_module(tmp_path, {"wckey": "multitenant", "users": [new_unix_user]})
    assert result["added"] == [new_unix_user]
    assert result["default_wckey_added"] == [new_unix_user]

    for argv in (plain, tagged):
        ran = run_as(new_unix_user, argv, timeout=60)
        assert ran.returncode == 0, f"{argv}: {ran.stderr}"
        assert ran.stdout.strip() == new_unix_user


def test_user_not_onboarded_is_refused_the_wckey(host_slurm: Dict[str, str], run_as) -> None:
    refused = run_as("mtout", ["sbatch", "--wckey=multitenant", "-o", "/dev/null", "--wrap=true"])
    assert refused.returncode != 0
    assert "Invalid wckey specification" in refused.stderr


def _submit(run_as, user: str, wckey: str, seconds: int) -> str:
    done = run_as(user, ["sbatch", "--parsable", f"--wckey={wckey}", "-o", "/dev/null", f"--wrap=sleep {seconds}"])
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(";")[0]


def _wait_for_end_in_sacct(job_id: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"],
                             capture_output=True, text=True, check=False).stdout.strip()
        if out and out.split()[0] not in ("PENDING", "RUNNING"):
            return out
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not end in sacct within {timeout} s")


def test_offboarding_under_a_live_job_is_refused_then_cancel_makes_it_last(
    tmp_path: Path, cluster: str, new_unix_user: str, run_as
) -> None:
    wckey = f"wkj{secrets.token_hex(3)}"
    run_module(tmp_path, {"wckey": wckey, "users": [new_unix_user]})
    job = _submit(run_as, new_unix_user, wckey, 300)
    args = {"wckey": wckey, "users": [new_unix_user], "state": "absent"}

    refused, done = run_module(tmp_path, args)
    assert done.returncode != 0
    assert f"{job} ({new_unix_user}, " in refused["msg"] and "nothing was changed" in refused["msg"]
    assert members(cluster, wckey) == [new_unix_user]

    predicted, _ = run_module(tmp_path, {**args, "active_jobs": "cancel"}, check_mode=True)
    assert predicted["cancelled"] == [job] and predicted["removed"] == [new_unix_user]
    assert members(cluster, wckey) == [new_unix_user], "check mode removed the user"

    result, _ = run_module(tmp_path, {**args, "active_jobs": "cancel"})
    assert result["changed"] is True and result["cancelled"] == [job]
    assert _wait_for_end_in_sacct(job).startswith("CANCELLED")
    time.sleep(3)  # give slurmdbd time to (wrongly) restore the WCKey, as it does under a live job
    assert members(cluster, wckey) == []
    again, _ = run_module(tmp_path, args)
    assert again["changed"] is False and again["cancelled"] == []
    sacctmgr("-i", "delete", "user", new_unix_user, f"wckey={wckey}", check=False)


def test_why_the_check_exists_slurmdbd_restores_a_wckey_removed_under_a_pending_job(
    tmp_path: Path, cluster: str, new_unix_user: str, run_as
) -> None:
    """Documents the Slurm behaviour behind `active_jobs`: with `ignore`, the removal does not last.

    A held job carrying the WCKey survives the removal; when it is released and starts,
    slurmdbd records it and adds the WCKey association back (actor: the slurm user)."""
    wckey = f"wkj{secrets.token_hex(3)}"
    run_module(tmp_path, {"wckey": wckey, "users": [new_unix_user]})
    held = run_as(new_unix_user, ["sbatch", "--parsable", "--hold", f"--wckey={wckey}", "-o", "/dev/null",
                                  "--wrap=true"])
    assert held.returncode == 0, held.stderr
    job = held.stdout.strip().split(";")[0]
    result, _ = run_module(tmp_path, {"wckey": wckey, "users": [new_unix_user], "state": "absent",
                                      "active_jobs": "ignore", "settle_seconds": 0})
    assert result["removed"] == [new_unix_user] and members(cluster, wckey) == []
    subprocess.run(["scontrol", "release", job], check=True, capture_output=True)
    _wait_for_end_in_sacct(job)
    deadline = time.monotonic() + 20
    while members(cluster, wckey) != [new_unix_user] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert members(cluster, wckey) == [new_unix_user], "slurmdbd no longer restores the WCKey: revisit active_jobs"
    sacctmgr("-i", "delete", "user", new_unix_user, f"wckey={wckey}", check=False)


def test_offboarding_right_after_a_job_ended_still_lasts(
    tmp_path: Path, cluster: str, new_unix_user: str, run_as
) -> None:
    """A job that ended a moment ago may still make slurmdbd put the WCKey back; the module
    watches for that and removes again, so the outcome is the same either way."""
    wckey = f"wkj{secrets.token_hex(3)}"
    run_module(tmp_path, {"wckey": wckey, "users": [new_unix_user]})
    job = _submit(run_as, new_unix_user, wckey, 0)
    _wait_for_end_in_sacct(job)
    result, _ = run_module(tmp_path, {"wckey": wckey, "users": [new_unix_user], "state": "absent"})
    assert result["changed"] is True and result["removed"] == [new_unix_user]
    assert result["removed_again"] in ([], [new_unix_user])
    time.sleep(10)
    assert members(cluster, wckey) == [], f"the removal did not last (removed_again={result['removed_again']})"
    sacctmgr("-i", "delete", "user", new_unix_user, f"wckey={wckey}", check=False)


def test_a_hostile_wckey_where_wckeys_are_not_enforced_stops_nobody(
    tmp_path: Path, cluster: str, names: Dict, run_as
) -> None:
    """With `enforce_wckeys: false` a user may run a job under a WCKey holding '|' and a
    newline; slurmdbd records an association for it. The old module read every WCKey of the
    cluster and stopped for everybody; now the members listing holds the site's WCKey only,
    and the one listing with WCKey strings (the users being added) reads it whole."""
    users: List[str] = names["users"]
    wckey = names["wckey"]
    with hostile_wckey_association(run_as):
        every = sacctmgr("--parsable2", "--noheader", "list", "wckey", f"cluster={cluster}",
                         "format=WCKey,Cluster,User")
        # the bait is real: the old unfiltered listing holds a line the strict parser refuses
        assert f"\n{HOSTILE_WCKEY}|{cluster}|mtrecv\n" in f"\n{every}", every
        # onboarding others, and the hostile user itself, works and is exact
        result, done = run_module(tmp_path, {"wckey": wckey, "users": [*users, "mtrecv"]})
        assert done.returncode == 0, result.get("msg")
        assert result["added"] == [*users, "mtrecv"]
        assert result["default_wckey_added"] == users  # mtrecv holds WCKeys (the hostile one among them)
        assert members(cluster, wckey) == sorted([*users, "mtrecv"])
        again, _ = run_module(tmp_path, {"wckey": wckey, "users": [*users, "mtrecv"]})
        assert again["changed"] is False
        gone, done = run_module(tmp_path, {"wckey": wckey, "users": ["mtrecv"], "state": "absent",
                                           "settle_seconds": 0})
        assert done.returncode == 0, gone.get("msg")
        assert gone["removed"] == ["mtrecv"] and members(cluster, wckey) == sorted(users)


@contextlib.contextmanager
def hostile_wckey_association(run_as) -> Iterator[None]:
    """Slurm restarted with WCKeys not enforced; mtrecv's ended job leaves slurmdbd holding a
    WCKey association named HOSTILE_WCKEY; afterwards the association is removed and the
    default enforcement is back (the way tests/initializer/test_listing_slurm.py makes it)."""
    _start_slurm("associations")
    job = ""
    try:
        done = run_as("mtrecv", ["sbatch", "--parsable", f"--wckey={HOSTILE_WCKEY}", "-o", "/dev/null",
                                 "--chdir=/tmp", "--wrap=true"])
        assert done.returncode == 0, f"with WCKeys not enforced, sbatch should take any WCKey: {done.stderr}"
        job = done.stdout.strip().split(";")[0]
        _wait_for_end_in_sacct(job)
        deadline = time.monotonic() + 30
        while HOSTILE_WCKEY not in sacctmgr("-n", "-P", "list", "wckey", "user=mtrecv", "format=WCKey"):
            assert time.monotonic() < deadline, "slurmdbd recorded no association for the hostile WCKey"
            time.sleep(0.5)
        yield
    finally:
        try:
            if job:
                _forget_hostile_wckey(job)
        finally:
            _start_slurm(None)
