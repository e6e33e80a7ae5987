"""The discovery spool through Open OnDemand's OWN dashboard code (docs/discovery.md).

The test writes a spool directory the way the root discovery service does (heartbeat
root:root 0644, ``group/<g>.listing`` root:<g> 0640, ``user/<u>.listing`` owned by the user
0400, each file records of the share contract's listing), puts an ``squeue`` that fails first
on PATH (the kit's site.json names ``squeue``), and runs the RENDERED initializer inside
OOD's dashboard as the lab users (tests/ood/oodsite.py). The receiver's card and form
entries then come from the spool alone; with the heartbeat stale they are gone (the kit
fell back to the failing squeue). The slurm-marked test stops slurmctld (SIGSTOP, always
SIGCONT) and proves a request with a stale spool does not wait on Slurm.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from ood_mt import codec, keys, shares
from tests.ood.oodsite import KEY_VERSION, OOD_VERSIONS, TENANT_GROUP, OodSite, publish, squeue_field, wait_for

RUNNER_WAIT_S = 60


def listing_record(jobid: str, user: str, name: str, wckey: str = "multitenant", start: str = "N/A") -> bytes:
    """One record exactly as squeue prints the share contract's listing."""
    values = [jobid, user, wckey, start, name, "(null)"]
    return b"".join(v.encode()[:width].ljust(width) + b"|"
                    for v, (_field, width) in zip(values, shares.LISTING_FIELDS)) + b"\n"


def share_record(site: OodSite, jobid: str, *, mode: str, title: str, owner: str = "mtpub") -> bytes:
    payload = {"v": 1, "app": "llm", "title": title, "preset": "debug", "mode": mode,
               "delivery": "sys/mt_delivery_debug", "session": "spool", "created": int(time.time()),
               "conn": {"host": "node-from-spool", "port": "4711"}}
    token = codec.encode(payload, group_key=keys.derive_group_key(site.master, TENANT_GROUP, KEY_VERSION),
                         aud=TENANT_GROUP, kv=KEY_VERSION, jobid=jobid, owner=owner)
    return listing_record(jobid, owner, token)


def _place(path: Path, data: bytes, uid: int, gid: int, mode: int) -> None:
    """Written to a temporary file and renamed in, as the discovery service does."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(data)
    os.chown(tmp, uid, gid)
    tmp.chmod(mode)
    tmp.rename(path)


def write_spool(spool: Path, *, written: float, interval: int = 60, groups: Optional[dict[str, bytes]] = None,
                users: Optional[dict[str, tuple[bytes, str]]] = None) -> None:
    """SPOOL as the discovery service leaves it: GROUPS {group: records}, USERS {user:
    (records, owning user)} (the owner is the user itself unless a test says otherwise)."""
    for sub in ("", "group", "user"):
        (spool / sub).mkdir(parents=True, exist_ok=True)
        os.chown(spool / sub, 0, 0)
        (spool / sub).chmod(0o755)
    for group, data in (groups or {}).items():
        _place(spool / "group" / f"{group}.listing", data, 0, grp.getgrnam(group).gr_gid, 0o640)
    for user, (data, owner) in (users or {}).items():
        entry = pwd.getpwnam(owner)
        _place(spool / "user" / f"{user}.listing", data, entry.pw_uid, entry.pw_gid, 0o400)
    beat = {"format": 1, "written": written, "interval": interval}
    _place(spool / "heartbeat", json.dumps(beat).encode(), 0, 0, 0o644)


def site_with_spool(site: OodSite, spool: Path, **changes: Any) -> Path:
    """A copy of the site's site.json naming SPOOL (and CHANGES), readable by the lab users."""
    summary = {**json.loads(site.site_json.read_text()), "spool_dir": str(spool), **changes}
    path = spool.parent / f"site-{spool.name}.json"
    path.write_text(json.dumps(summary))
    path.chmod(0o644)
    return path


def failing_squeue(base: Path) -> tuple[Path, Path]:
    """A directory holding an `squeue` that records each call and fails, and the call log."""
    bindir = base / f"failing-bin-{secrets.token_hex(3)}"
    bindir.mkdir()
    bindir.chmod(0o755)
    calls = bindir / "calls"
    calls.write_text("")
    calls.chmod(0o666)
    script = bindir / "squeue"
    script.write_text("#!/bin/sh\n# TEST DOUBLE of squeue: Slurm unreachable.\n"
                      f"echo \"$*\" >>'{calls}'\n"
                      "echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2\nexit 1\n")
    script.chmod(0o755)
    return bindir, calls


def kit_lines(log: list[str]) -> list[str]:
    return [line.split(": ", 1)[1] for line in log if ": ood-mt: " in line]


def run(site: OodSite, user: str, command: tuple[str, ...], site_json: Path, path: str,
        settle: bool = True) -> dict[str, Any]:
    env = {"OOD_MT_SITE_JSON": str(site_json), "PATH": path}
    if not settle:
        env["OOD_MT_RUNNER_SETTLE"] = "0"
    return site.run(user, OOD_VERSIONS[0], *command, env=env, timeout=RUNNER_WAIT_S + 60)


def share_options(form: dict[str, Any]) -> list[str]:
    attrs = {a["id"]: a for a in form["result"]["attributes"]}
    return [value for _label, value in attrs["mt_llm_share"]["options"] if value]


def test_cards_and_forms_come_from_the_spool(ood_site: OodSite) -> None:
    base = ood_site.base / "params"
    spool = base / f"spool-{secrets.token_hex(3)}"
    card_job, form_job = str(990000 + secrets.randbelow(9000)), str(980000 + secrets.randbelow(9000))
    records = (share_record(ood_site, card_job, mode="card", title="Spooled LLM")
               + share_record(ood_site, form_job, mode="form", title="Spooled form share"))
    # mtrecv's own file, made unreadable to mtrecv (owned by mtpub): logged, nothing else lost.
    # mtusr's file: not a group of mtrecv's, never read (a read would log it).
    write_spool(spool, written=time.time(), groups={TENANT_GROUP: records, "mtusr": b"garbage\n"},
                users={"mtrecv": (b"", "mtpub")})
    site_json = site_with_spool(ood_site, spool)
    bindir, calls = failing_squeue(base)
    path = f"{bindir}:/usr/local/bin:/usr/bin:/bin"

    page = run(ood_site, "mtrecv", ("sessions",), site_json, path)
    mine = [c for c in page["result"] if c["job_id"] == card_job]
    assert len(mine) == 1, page["result"]
    card = mine[0]
    assert card["title"] == f"Spooled LLM from mtpub (job {card_job})"
    assert card["token"] == "sys/mt_delivery_debug"
    db = ood_site.dataroot("mtrecv") / "batch_connect" / "db" / card["id"]
    assert json.loads(db.read_text())["job_id"] == card_job
    conn = next((ood_site.dataroot("mtrecv") / "batch_connect").glob(f"sys/mt_delivery_debug/output/{card['id']}"))
    assert "node-from-spool" in (conn / "connection.yml").read_text()
    assert sorted(page["boot"]["multitenant_specs"]) == sorted([card_job, form_job])
    own = spool / "user" / "mtrecv.listing"
    assert kit_lines(page["log"]) == [f"ood-mt: discovery spool file {own}: unreadable (Permission denied); "
                                      "no shares from it"], page["log"]
    assert len(page["boot"]["request_seconds"]) == 1, "nothing in flight: no second request needed"

    form = run(ood_site, "mtrecv", ("form", "mt_jupyter"), site_json, path)
    assert sorted(share_options(form)) == sorted([card_job, form_job])
    assert calls.read_text() == "", "the kit ran no squeue: everything came from the spool"

    # The same spool, stale: the kit falls back to its squeue (failing here) and offers nothing.
    write_spool(spool, written=time.time() - 600, groups={TENANT_GROUP: records})
    stale = run(ood_site, "mtrecv", ("form", "mt_jupyter"), site_json, path)
    assert share_options(stale) == []
    lines = kit_lines(stale["log"])
    assert lines[0].startswith(f"ood-mt: discovery spool {spool} stale (age 6"), lines
    assert lines[0].endswith("or missing; querying Slurm directly (heartbeat interval 60 s)"), lines
    assert any(line.startswith("ood-mt: discovery: squeue failed (1): slurm_load_jobs error") for line in lines)
    assert calls.read_text() != ""

    # Fresh and empty: the spool's cards are removed.
    write_spool(spool, written=time.time(), groups={TENANT_GROUP: b""})
    run(ood_site, "mtrecv", ("sessions",), site_json, path)
    assert not db.exists()


def _slurmctld_pid() -> int:
    """The host Slurm's slurmctld: pgrep also lists the slurmctld of every Molecule lab running
    beside this part (containers are other pid namespaces), so keep ours only."""
    found = subprocess.run(["pgrep", "-x", "slurmctld"], capture_output=True, text=True, check=False).stdout.split()
    mine = os.readlink("/proc/self/ns/pid")
    ours = [int(pid) for pid in found if _pid_namespace(pid) == mine]
    assert len(ours) == 1, f"not one host slurmctld ({ours}; tests/lab/host_slurm.sh start)"
    return ours[0]


def _pid_namespace(pid: str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:  # gone meanwhile
        return ""


@pytest.mark.slurm
def test_a_stale_spool_never_makes_a_request_wait_on_a_stopped_slurmctld(
    ood_site: OodSite, host_slurm: dict[str, str]
) -> None:
    """A real share job; the spool's heartbeat stale; slurmctld stopped (SIGSTOP): the kit's
    request hook answers within 100 ms while its own squeue waits in the background. After
    SIGCONT a later request gets the share from Slurm; with the spool fresh, from the spool."""
    base = ood_site.base / "params"
    spool = base / f"spool-{secrets.token_hex(3)}"
    job = publish(ood_site, "mtpub", app="llm", conn={"host": "node-from-slurm", "port": "4712"},
                  title="Slurm share", mode="form")
    try:
        record = subprocess.run(["squeue", "--noheader", "--states=RUNNING", "-j", job, "-O",
                                 ",".join(f"{f}:{w}|" for f, w in shares.LISTING_FIELDS)],
                                capture_output=True, check=True).stdout
        write_spool(spool, written=time.time() - 3600, groups={TENANT_GROUP: record})
        site_json = site_with_spool(ood_site, spool, squeue_timeout_seconds=3, refresh_seconds=0)
        path = "/usr/local/bin:/usr/bin:/bin"
        pid = _slurmctld_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            stopped = run(ood_site, "mtrecv", ("form", "mt_jupyter"), site_json, path, settle=False)
        finally:
            os.kill(pid, signal.SIGCONT)
        (took,) = stopped["boot"]["request_seconds"]
        assert took < 0.1, f"the request hook took {took:.3f} s with slurmctld stopped"
        assert job not in share_options(stopped)
        assert any(f"ood-mt: discovery spool {spool} stale" in line for line in kit_lines(stopped["log"]))

        wait_for(lambda: squeue_field(job, "%T") == "RUNNING", 60, "slurmctld to answer again")
        later = run(ood_site, "mtrecv", ("form", "mt_jupyter"), site_json, path)
        assert len(later["boot"]["request_seconds"]) == 2 and max(later["boot"]["request_seconds"]) < 0.1
        assert job in share_options(later), later["log"]

        write_spool(spool, written=time.time(), groups={TENANT_GROUP: record})
        fresh = run(ood_site, "mtrecv", ("form", "mt_jupyter"), site_json, "/nonexistent")
        assert job in share_options(fresh), fresh["log"]
        assert fresh["boot"]["request_seconds"][0] < 0.1
    finally:
        subprocess.run(["scancel", job], check=False, capture_output=True)
