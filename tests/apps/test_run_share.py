"""`ood-mt share` on the real Slurm (issue 13): a gated service of mtpub launched by OOD's own code,
on a site whose tenant groups are mtclass (mtpub, mtrecv, mtrecv2) and mtusr (mtpub only), the
lab's two groups.

- `--status` reaches the receiver's card (the delivery view's "Publisher's status");
- a re-share from mtclass to mtusr rotates the gate's secret first: mtrecv (mtclass only) gets 0
  successful uses with the secret it had and loses its card; mtpub, in mtusr, gets the new card
  with the new secret;
- `--until` ~20 s ahead ends the share on time: card gone, secret refused;
- malformed requests are refused with the reason, and nothing changes;
- a database re-shared from mtclass to mtusr gets a new password before the new publication: the
  password mtrecv had is refused."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.apps.slurm_jobs import connection, job_name, submit, wait_for
from tests.apps.test_run_unshare import (
    _stop,
    cli,
    rotated_password,
    shared_page_form,
    start_shared_database,
    stop_shared_database,
)
from tests.ood.oodsite import OOD_VERSIONS, OodSite, make_site, missing_source_reason

pytestmark = pytest.mark.slurm


@pytest.fixture(scope="module")
def two_groups() -> Iterator[OodSite]:
    reason = missing_source_reason()
    if reason:
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="ood-mt-share-", dir="/tmp"))
    try:
        yield make_site(base, {"tenant_groups": ["mtclass", "mtusr"]}, groups=("mtclass", "mtusr"))
    finally:
        shutil.rmtree(base, ignore_errors=True)


def card(site: OodSite, user: str, job: str) -> dict[str, Any] | None:
    return next((s for s in site.sessions(user, OOD_VERSIONS[0]) if str(s["job_id"]) == job), None)


def mine_listed(run_as: Any, site: OodSite, job: str) -> tuple[str, str] | None:
    """(audience, status) of JOB in mtpub's own `ood-mt list --json`, or None."""
    done = cli(run_as, site, "mtpub", "list", "--json", "--site-json", str(site.site_json), "--squeue", "squeue")
    assert done.returncode == 0, done.stderr
    return next(((r["audience"], r["status"]) for r in json.loads(done.stdout) if r["jobid"] == job), None)


def uses(run_as: Any, user: str, url: str, tries: int = 5) -> int:
    """How many of TRIES requests to URL as USER succeed (2xx)."""
    return sum(1 for _ in range(tries) if status_as(run_as, user, url).startswith("2"))


def status_as(run_as: Any, user: str, url: str) -> str:
    done = run_as(user, ["curl", "--silent", "--output", "/dev/null", "--write-out", "%{http_code}",
                         "--max-time", "10", url])
    return str(done.stdout)


def test_reshare_status_and_expiry(host_slurm: dict[str, str], run_as: Any, two_groups: OodSite,
                                   tmp_path: Path) -> None:
    site = two_groups
    form = shared_page_form(site.base / f"www-{tmp_path.name}")
    job, session = submit(site, "mtpub", site.apps / "mt_dashboard", form)
    try:
        wait_for(lambda: job_name(run_as, job).startswith("mt1:mtclass:") and (session / "mt_agent").is_dir()
                 and "mt_gate_secret" in connection(session), 120,
                 f"job {job} to publish and start its share agent", session)
        mine = connection(session)
        old_url = f"http://{mine['host']}:{mine['port']}/{mine['mt_gate_secret']}/"
        assert uses(run_as, "mtrecv", old_url) == 5

        # Malformed requests: refused by the CLI before sending, and by the agent itself.
        refused = cli(run_as, site, "mtpub", "share", "--status", "$(id)", job)
        assert refused.returncode == 2 and "does not match" in refused.stderr, refused
        forged = run_as("mtpub", ["sh", "-c", f"printf 'request=share\\ncommand=id\\n' > {session}/mt_agent/request"])
        assert forged.returncode == 0
        wait_for(lambda: (session / "mt_agent" / "reply").is_file(), 10, "the agent's reply")
        assert (session / "mt_agent" / "reply").read_text().startswith("refused: unknown key 'command'")
        assert job_name(run_as, job).startswith("mt1:mtclass:")
        # Another user cannot drive the agent.
        other = cli(run_as, site, "mtrecv", "share", "--status", "mine now", job)
        assert other.returncode == 2 and "belongs to mtpub" in other.stderr

        done = cli(run_as, site, "mtpub", "share", "--status", "ready for class", job)
        assert done.returncode == 0 and "status: ready for class" in done.stdout, done
        wait_for(lambda: "ready for class" in (card(site, "mtrecv", job) or {}).get("body", ""), 30,
                 "the status on mtrecv's card")
        body = (card(site, "mtrecv", job) or {}).get("body", "")
        assert "Publisher" in body and "status: <strong>ready for class</strong>" in body, body
        assert mine_listed(run_as, site, job) == ("mtclass", "ready for class")

        # How fast the old audience loses it is measured by bench/live.py, not asserted here.
        done = cli(run_as, site, "mtpub", "share", "--audience", "group", "--group", "mtusr", job)
        assert done.returncode == 0 and "shared with group mtusr" in done.stdout, done
        assert "the gate's secret was rotated" in done.stdout
        assert uses(run_as, "mtrecv", old_url) == 0, "a member of the earlier audience: 0 successful uses"
        wait_for(lambda: card(site, "mtrecv", job) is None, 30, "mtrecv's card to go")
        assert job_name(run_as, job).startswith("mt1:mtusr:")
        wait_for(lambda: card(site, "mtpub", job) is not None, 30, "the card of mtusr's member")
        now = connection(session)
        assert now["mt_gate_secret"] != mine["mt_gate_secret"] and "shared with group mtusr" in now["mt_share_status"]
        assert mine_listed(run_as, site, job) == ("mtusr", "ready for class"), "the publisher's own `ood-mt list`"
        assert uses(run_as, "mtpub", f"http://{now['host']}:{now['port']}/{now['mt_gate_secret']}/") == 5

        done = cli(run_as, site, "mtpub", "share", "--audience", "group", "--group", "mtclass", job)
        assert done.returncode == 0, done
        wait_for(lambda: card(site, "mtrecv", job) is not None, 30, "mtrecv's card after sharing with mtclass again")
        url = f"http://{now['host']}:{now['port']}/{connection(session)['mt_gate_secret']}/"
        done = cli(run_as, site, "mtpub", "share", "--until", "1m", job)
        assert done.returncode == 0 and "expires at" in done.stdout, done
        # A minute is the CLI's smallest duration; the agent takes any time in the future.
        until = int(time.time()) + 20
        run_as("mtpub", ["sh", "-c", f"printf 'request=share\\nuntil={until}\\n' > {session}/mt_agent/request"])
        wait_for(lambda: status_as(run_as, "mtrecv", url) == "404", 40, "the expiry to refuse the secret")
        assert time.time() >= until, "the secret was refused before the expiry"  # how soon after: bench/live.py
        wait_for(lambda: card(site, "mtrecv", job) is None, 30, "the card to go after the expiry")
        assert "the share expired at" in connection(session)["mt_share_status"]
    finally:
        _stop(run_as, job)


def test_reshare_a_database_changes_its_password(host_slurm: dict[str, str], run_as: Any,
                                                 two_groups: OodSite) -> None:
    site = two_groups
    db = start_shared_database(run_as, site)
    try:
        done = cli(run_as, site, "mtpub", "share", "--audience", "group", "--group", "mtusr", db.job)
        assert done.returncode == 0 and "the database password is being changed" in done.stdout, done
        rotated_password(run_as, db)
        wait_for(lambda: job_name(run_as, db.job).startswith("mt1:mtusr:"), 30, "the share for mtusr")
        wait_for(lambda: card(site, "mtrecv", db.job) is None, 30, "mtrecv's card to go")
        wait_for(lambda: card(site, "mtpub", db.job) is not None, 30, "the card of mtusr's member")
        assert "shared with group mtusr" in connection(db.session)["mt_share_status"]
    finally:
        stop_shared_database(run_as, db)
