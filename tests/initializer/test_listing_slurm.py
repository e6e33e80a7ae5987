"""The squeue listing cannot be forged, on the real Slurm with WCKeys NOT enforced (a
supported site setting, `enforce_wckeys: false`, where users choose any WCKey string).

The attack (finding 2 of the hostile-publisher review): a member of the audience group
(who holds the group key, so can compute a valid tag for any job id and owner) runs a job
whose WCKey holds '|' and a newline and whose name holds a newline followed by a record
of its own: `<forged id> |mtpub|multitenant|mt1:<token for that id and owner>`. A parser
that resynchronises at the next line when a record looks wrong reads that as a share of
mtpub. The contract's fixed-width listing never does: both verifiers see the hostile job
as the one record it is, and nothing else.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from ood_mt import codec, keys, shares
from tests.ood.oodsite import ADMIN_PATH, KEY_VERSION, OOD_VERSIONS, TENANT_GROUP, OodSite, squeue_field, wait_for

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
HOST_SLURM = REPO / "tests" / "lab" / "host_slurm.sh"
FORGED_JOB = "999999"
HOSTILE_WCKEY = "a|b\nc"


def _start_slurm(enforce: str | None) -> None:
    env = {**ADMIN_PATH, **({"OOD_MT_SLURM_ENFORCE": enforce} if enforce else {})}
    done = subprocess.run(["bash", str(HOST_SLURM), "start"], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def wckeys_not_enforced(host_slurm: dict[str, str]) -> Iterator[None]:
    _start_slurm("associations")
    try:
        yield
    finally:
        _start_slurm(None)


@pytest.fixture(scope="module")
def hostile_job(wckeys_not_enforced: None, ood_site: OodSite) -> Iterator[dict[str, Any]]:
    payload = {"v": 1, "app": "database", "title": "Forged share of mtpub", "preset": "connection", "mode": "card",
               "delivery": "sys/mt_delivery_default", "session": "x", "created": int(time.time()),
               "conn": {"host": "evil", "port": "5432"}}
    forged = codec.encode(payload, group_key=keys.derive_group_key(ood_site.master, TENANT_GROUP, KEY_VERSION),
                          aud=TENANT_GROUP, kv=KEY_VERSION, jobid=FORGED_JOB, owner="mtpub")
    name = f"x\n{FORGED_JOB} |mtpub|multitenant|{forged}"[:1024]
    argv = ["runuser", "-u", "mtrecv", "--", "sbatch", "--parsable", f"--wckey={HOSTILE_WCKEY}", "-J", name,
            "--output=/dev/null", "--chdir=/tmp", "--wrap", "exec sleep 600"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=ADMIN_PATH)
    assert done.returncode == 0, f"with WCKeys not enforced, sbatch should take any WCKey: {done.stderr}"
    job = done.stdout.strip().split(";")[0]
    try:
        wait_for(lambda: squeue_field(job, "%T") == "RUNNING", 60, f"hostile job {job} to run")
        yield {"job": job, "forged_token": forged}
    finally:
        subprocess.run(["scancel", job], check=False)
        _forget_hostile_wckey(job)


def _forget_hostile_wckey(job: str) -> None:
    """slurmdbd records a WCKey association for mtrecv from the hostile job; later suites
    (the onboarding module's strict sacctmgr parser) must not see it. Remove it once the
    job's end is recorded, and again if slurmdbd puts it back while settling."""
    def ended() -> bool:
        out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job, "-o", "State"], capture_output=True,
                             text=True, check=False).stdout
        return bool(out.strip()) and not any(s in out for s in ("RUNNING", "PENDING", "REQUEUED"))

    def present() -> bool:
        listing = subprocess.run(["sacctmgr", "-n", "-P", "list", "wckey", "user=mtrecv", "format=WCKey"],
                                 capture_output=True, text=True, check=False).stdout
        return "a|b" in listing

    wait_for(ended, 60, f"sacct to record the end of hostile job {job}")
    for _round in range(5):
        subprocess.run(["sacctmgr", "-i", "delete", "user", "mtrecv", f"wckey={HOSTILE_WCKEY}"],
                       capture_output=True, text=True, check=False)
        time.sleep(3)
        if not present():
            return
    raise AssertionError(f"the WCKey {HOSTILE_WCKEY!r} of mtrecv could not be removed from slurmdbd")


def test_the_bait_is_real_in_the_old_listing_format(hostile_job: dict[str, Any]) -> None:
    """Without fixed widths and checked separators, Slurm really prints a line that reads
    as a record of mtpub (what the old parser resynchronised onto)."""
    old = subprocess.run(["squeue", "--noheader", "--states=RUNNING", "-O",
                          "JobID:|,UserName:|,WCKey:|,Name:1024|,Comment:1024"],
                         capture_output=True, text=True, check=True).stdout
    assert f"\n{FORGED_JOB} |mtpub|multitenant|mt1:" in old


def test_the_python_listing_holds_the_hostile_job_once_and_nothing_forged(hostile_job: dict[str, Any]) -> None:
    listing = subprocess.run(shares.squeue_argv("squeue"), capture_output=True, check=True).stdout
    assert len(listing) % shares.RECORD_BYTES == 0
    jobs = shares.parse_squeue(listing)
    assert FORGED_JOB not in {job.jobid for job in jobs}
    assert not [job for job in jobs if job.jobid == hostile_job["job"]], "the hostile job's name is not a share"


def test_the_initializer_inside_ood_shows_no_forged_card(ood_site: OodSite, hostile_job: dict[str, Any]) -> None:
    for version in OOD_VERSIONS:
        page = ood_site.run("mtrecv2", version, "sessions")
        assert FORGED_JOB not in {card["job_id"] for card in page["result"]}
        # No discovery failure (a misaligned listing would be one); the spool fall-back notice is expected here.
        assert not [line for line in page["log"] if "ood-mt: discovery:" in line], page["log"]
        assert FORGED_JOB not in (page["boot"]["multitenant_specs"] or [])
