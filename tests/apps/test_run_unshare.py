"""`ood-mt unshare` on the real Slurm (issue 13): jobs of mtpub launched by OOD's own code, the
publisher's command and the receivers' views run as the lab users.

- a gated service (the dashboard, a publisher's http.server) shared with mtclass as a card: after
  `ood-mt unshare` as mtpub the old gate secret is refused (404), mtrecv's card and `ood-mt list`
  entry are gone at the next refresh, the service keeps running for mtpub (the new secret, on
  mtpub's card), and the publisher's card says "not shared: you unshared it";
- another user cannot drive the agent: mtrecv's `ood-mt unshare` is refused and mtrecv cannot
  write a request into mtpub's session directory;
- the database: after unshare the password mtrecv had is refused, the job no longer carries a share."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.apps import forms
from tests.apps.slurm_jobs import connection, job_name, job_state, submit, wait_for
from tests.apps.test_run_database_credentials import _new_instance, _shared_password, login
from tests.ood.oodsite import OOD_VERSIONS, TENANT_GROUP, OodSite

pytestmark = pytest.mark.slurm


def cli(run_as: Any, ood_site: OodSite, user: str, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`ood-mt COMMAND ARGS` as USER, with the copy of the kit's package the test site made for its
    gate (Debian's Python: click, no jinja2, so the command's module, not the whole CLI)."""
    module = "publisher_cli" if command in ("share", "unshare") else "shares_cli"
    code = (f"import sys; from ood_mt import {module}; "
            f"{module}.{command}_command(sys.argv[1:], prog_name='ood-mt {command}')")
    return run_as(user, [str(ood_site.base / "gate-python" / "python"), "-c", code, *args], timeout=120)


def listed(run_as: Any, ood_site: OodSite, user: str) -> list[str]:
    done = cli(run_as, ood_site, user, "list", "--json", "--site-json", str(ood_site.site_json), "--squeue", "squeue")
    assert done.returncode == 0, done.stderr
    return [row["jobid"] for row in json.loads(done.stdout)]


def cards(ood_site: OodSite, user: str) -> list[str]:
    return [str(s["job_id"]) for s in ood_site.sessions(user, OOD_VERSIONS[0])]


def status(run_as: Any, url: str) -> str:
    done = run_as("mtrecv", ["curl", "--silent", "--output", "/dev/null", "--write-out", "%{http_code}",
                             "--max-time", "10", url])
    return str(done.stdout)


def _stop(run_as: Any, job: str) -> None:
    run_as("root", ["scancel", job])
    wait_for(lambda: job_state(run_as, job) == "", 90, f"job {job} to end")


def shared_page_form(site_dir: Path) -> dict[str, Any]:
    """The dashboard's form for a page in SITE_DIR (made here, readable by all) served by
    http.server behind the gate, shared with mtclass as a card."""
    site_dir.mkdir(mode=0o755)
    (site_dir / "index.html").write_text("<p>a shared page</p>\n")
    (site_dir / "index.html").chmod(0o644)
    command = f'cd {site_dir} && exec python3 -m http.server "$port" --bind 127.0.0.1'
    return forms.service_form("dashboard", mt_share_audience="group", mt_share_group=TENANT_GROUP,
                              mt_share_mode="card", mt_dashboard_type="command", mt_command=command)


def test_unshare_a_gated_service(host_slurm: dict[str, str], run_as: Any, ood_site: OodSite, tmp_path: Path) -> None:
    form = shared_page_form(ood_site.base / f"www-{tmp_path.name}")
    job, session = submit(ood_site, "mtpub", ood_site.apps / "mt_dashboard", form)
    try:
        wait_for(lambda: job_name(run_as, job).startswith("mt1:") and (session / "mt_agent").is_dir(), 120,
                 f"job {job} to publish and start its share agent", session)
        mine = connection(session)
        old_url = f"http://{mine['host']}:{mine['port']}/{mine['mt_gate_secret']}/"
        assert status(run_as, old_url) == "200"
        assert job in cards(ood_site, "mtrecv") and job in listed(run_as, ood_site, "mtrecv")

        # Another user cannot drive the agent.
        refused = cli(run_as, ood_site, "mtrecv", "unshare", job)
        assert refused.returncode == 2 and f"job {job} belongs to mtpub" in refused.stderr, refused
        forged = run_as("mtrecv", ["sh", "-c", f"echo unshare > {session}/mt_agent/request"])
        assert forged.returncode != 0 and "Permission denied" in forged.stderr
        assert job_name(run_as, job).startswith("mt1:"), "still shared after the other user's attempts"

        started = time.monotonic()
        done = cli(run_as, ood_site, "mtpub", "unshare", job)
        assert done.returncode == 0 and f"job {job}: unshared at" in done.stdout, done
        assert "the gate's secret was rotated" in done.stdout
        wait_for(lambda: status(run_as, old_url) == "404", 15, "the old secret to be refused")
        refused_after = time.monotonic() - started
        assert job not in cards(ood_site, "mtrecv"), "the receiver's card is gone at the next refresh"
        cards_after = time.monotonic() - started
        assert job not in listed(run_as, ood_site, "mtrecv") and job not in listed(run_as, ood_site, "mtpub")
        assert refused_after <= 15 and cards_after <= 30, (refused_after, cards_after)

        assert job_state(run_as, job) == "RUNNING" and job_name(run_as, job) == "mt-unshared"
        wait_for(lambda: "you unshared it" in connection(session).get("mt_share_status", ""), 15,
                 "the publisher's card to say so")
        now = connection(session)
        assert now["mt_gate_secret"] != mine["mt_gate_secret"]
        assert status(run_as, f"http://{now['host']}:{now['port']}/{now['mt_gate_secret']}/") == "200"
        again = cli(run_as, ood_site, "mtpub", "unshare", job)
        assert again.returncode == 0 and "already unshared" in again.stdout
    finally:
        _stop(run_as, job)


@dataclass
class SharedDatabase:
    """A PostgreSQL job of mtpub shared with mtclass as a card, with the password mtrecv logs in with."""
    name: str
    inst_dir: Path
    job: str
    session: Path
    host: str
    port: str
    user: str
    old: str


def start_shared_database(run_as: Any, ood_site: OodSite) -> SharedDatabase:
    name, instance, inst_dir = _new_instance("postgresql:15")
    form = forms.service_form("database", mt_engine="postgresql:15", mt_db_instance=instance,
                              mt_share_audience="group", mt_share_group=TENANT_GROUP, mt_share_mode="card",
                              mt_share_preset="connection")
    job, session = submit(ood_site, "mtpub", ood_site.apps / "mt_database", form)
    db = SharedDatabase(name, inst_dir, job, session, "", "", "", "")
    try:
        wait_for(lambda: (session / "mt_agent").is_dir() and job_name(run_as, job).startswith("mt1:"), 240,
                 f"job {job} to publish and start its share agent", session)
        conn = connection(session)
        db.host, db.port, db.user = conn["host"], conn["port"], conn["db_user"]
        db.old = _shared_password(ood_site, run_as, job)
        assert login(run_as, "mtrecv", name, db.host, db.port, db.user, db.old)
    except BaseException:
        stop_shared_database(run_as, db)
        raise
    return db


def rotated_password(run_as: Any, db: SharedDatabase) -> str:
    """Waits for the job's password rotation; checks the old password is refused and the new one works."""
    status_file = db.session / "mt_db_rotate.status"
    wait_for(lambda: status_file.is_file() and status_file.read_text().startswith("rotated"), 90, "the new password")
    assert not login(run_as, "mtrecv", db.name, db.host, db.port, db.user, db.old), "the old password is refused"
    new = (db.inst_dir / "password").read_text().strip()
    assert new != db.old and login(run_as, "mtpub", db.name, db.host, db.port, db.user, new)
    return new


def stop_shared_database(run_as: Any, db: SharedDatabase) -> None:
    _stop(run_as, db.job)
    subprocess.run(["rm", "-rf", str(db.inst_dir)], check=False)


def test_unshare_a_database_changes_its_password(host_slurm: dict[str, str], run_as: Any, ood_site: OodSite) -> None:
    db = start_shared_database(run_as, ood_site)
    try:
        done = cli(run_as, ood_site, "mtpub", "unshare", db.job)
        assert done.returncode == 0 and "the database password is being changed" in done.stdout, done
        rotated_password(run_as, db)
        assert job_name(run_as, db.job) == "mt-unshared", "the rotation did not publish the share again"
        assert db.job not in cards(ood_site, "mtrecv")
        assert "you unshared it" in connection(db.session)["mt_share_status"]
    finally:
        stop_shared_database(run_as, db)
