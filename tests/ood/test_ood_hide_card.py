"""Hiding a received share from its card, through Open OnDemand's OWN dashboard code.

The receiver presses Delete (or Cancel) on a received share's card: a real request through
OOD's routes to OOD's BatchConnect::SessionsController, with the authenticity token of the
button OOD's own SessionsHelper renders (tests/ood/ood_dashboard.rb `press`), both dashboard
versions. The kit's before_action (src/ood_mt/initializer/ood_multitenant.rb.j2,
Refresher#hide_card) records the publication in ~/.config/ood-mt/hidden.json, removes the
card and answers as OOD's destroy does (redirect back, flash). The share comes from a
discovery spool here (no Slurm needed); the slurm-marked test does the same with a real
publisher's job, which keeps running, and the receiver's own session, which OOD's path cancels.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ood.oodsite import OOD_VERSIONS, OodSite, publish, squeue_field, wait_for
from tests.ood.test_ood_spool import failing_squeue, kit_lines, share_record, site_with_spool, write_spool

RECEIVER = "mtrecv"


def hidden_file(user: str) -> Path:
    return Path(pwd.getpwnam(user).pw_dir) / ".config" / "ood-mt" / "hidden.json"


def clear_hidden(user: str) -> None:
    hidden_file(user).unlink(missing_ok=True)


def cards(page: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return [c for c in page["result"] if c["job_id"] == job]


def specs(page: dict[str, Any]) -> list[str]:
    return list(page["boot"]["multitenant_specs"] or [])


class SpoolSite:
    """A receiver's dashboard fed by a fresh discovery spool holding one card share."""

    def __init__(self, site: OodSite) -> None:
        base = site.base / "params"
        self.site = site
        self.spool = base / f"spool-hide-{secrets.token_hex(3)}"
        self.job = str(970000 + secrets.randbelow(9000))
        self.records = share_record(site, self.job, mode="card", title="Hidden LLM")
        write_spool(self.spool, written=time.time(), groups={"mtclass": self.records})
        self.site_json = site_with_spool(site, self.spool)
        bindir, self.calls = failing_squeue(base)
        self.env = {"OOD_MT_SITE_JSON": str(self.site_json), "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin"}

    def fresh(self) -> None:
        write_spool(self.spool, written=time.time(), groups={"mtclass": self.records})

    def sessions(self, version: str) -> dict[str, Any]:
        self.fresh()
        return self.site.run(RECEIVER, version, "sessions", env=self.env)

    def press(self, version: str, action: str, session_id: str, token: str = "button") -> dict[str, Any]:
        self.fresh()
        return self.site.press(RECEIVER, version, action, session_id, token, env=self.env)


@pytest.mark.parametrize("action", ["destroy", "cancel"])
def test_delete_on_a_received_card_hides_the_share(ood_site: OodSite, ood_version: str, action: str) -> None:
    clear_hidden(RECEIVER)
    spool = SpoolSite(ood_site)
    before = spool.sessions(ood_version)
    (card,) = cards(before, spool.job)
    assert spool.job in specs(before)
    db = ood_site.dataroot(RECEIVER) / "batch_connect" / "db" / card["id"]
    (output,) = (ood_site.dataroot(RECEIVER) / "batch_connect").glob(f"sys/mt_delivery_debug/output/{card['id']}")
    assert db.is_file() and output.is_dir()
    # The card says what Delete does: a kit-written field of connection.yml that the deliveries show.
    conn = yaml.safe_load((output / "connection.yml").read_text())
    assert conn["mt_hide_note"] == ("Delete (or Cancel) on this card hides this share for you; it does not stop "
                                    f"mtpub's service. Undo: ood-mt hide --undo {spool.job}")

    pressed = spool.press(ood_version, action, card["id"])
    result = pressed["result"]
    assert f'action="/batch_connect/sessions/{card["id"]}' in result["button"], result["button"]
    assert "authenticity_token" in result["button"], "OOD's own button carries the CSRF token"
    assert result.get("exception") is None, result
    assert result["status"] == 302, result
    assert result["location"] == "http://ondemand.example/batch_connect/sessions", result
    notice = result["flash"].get("notice", "")
    assert notice.startswith(f"Hid Hidden LLM from mtpub (job {spool.job}): its card and form entries are gone"), result
    assert f"Undo: ood-mt hide --undo {spool.job}" in notice and "service keeps running" in notice
    assert kit_lines(pressed["log"])[-1].startswith(f"ood-mt: job {spool.job}: hidden from its card {card['id']}")

    path = hidden_file(RECEIVER)
    data = json.loads(path.read_text())
    (entry,) = data["hidden"]
    assert (entry["jobid"], entry["app"], entry["title"], entry["publisher"]) == (spool.job, "llm", "Hidden LLM",
                                                                                   "mtpub")
    assert isinstance(entry["created"], int) and abs(entry["hidden_at"] - time.time()) < 120
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.stat().st_uid == pwd.getpwnam(RECEIVER).pw_uid
    assert not db.exists() and not output.exists(), "the card is gone at once"

    after = spool.sessions(ood_version)
    assert cards(after, spool.job) == [], "the card does not come back at the next refresh"
    assert spool.job not in specs(after), "nor in client forms"
    assert spool.calls.read_text() == "", "no squeue, no scancel: the kit never touched the publisher's job"

    # The CLI reads what the dashboard wrote.
    from ood_mt import hidden

    assert hidden.load(path.parents[2]).hides(spool.job, entry["created"])
    clear_hidden(RECEIVER)
    shown = spool.sessions(ood_version)
    assert len(cards(shown, spool.job)) == 1, "`ood-mt hide --undo` (the file without the entry) shows it again"


def test_csrf_protection_stays_in_force(ood_site: OodSite, ood_version: str) -> None:
    clear_hidden(RECEIVER)
    spool = SpoolSite(ood_site)
    (card,) = cards(spool.sessions(ood_version), spool.job)
    for token in ("none", "forged"):
        result = spool.press(ood_version, "destroy", card["id"], token)["result"]
        assert result["exception"] == "ActionController::InvalidAuthenticityToken", (token, result)
        assert not hidden_file(RECEIVER).exists(), token
        assert (ood_site.dataroot(RECEIVER) / "batch_connect" / "db" / card["id"]).is_file(), token


def test_a_damaged_hidden_file_is_left_alone_and_said(ood_site: OodSite) -> None:
    version = OOD_VERSIONS[0]
    spool = SpoolSite(ood_site)
    path = hidden_file(RECEIVER)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chown(path.parent, pwd.getpwnam(RECEIVER).pw_uid, pwd.getpwnam(RECEIVER).pw_gid)
    path.write_text('{"format": 1, "hidden": [')
    os.chown(path, pwd.getpwnam(RECEIVER).pw_uid, -1)
    try:
        (card,) = cards(spool.sessions(version), spool.job)
        pressed = spool.press(version, "destroy", card["id"])
        result = pressed["result"]
        assert result["status"] == 302 and "notice" not in result["flash"], result
        alert = result["flash"]["alert"]
        assert alert.startswith(f"Could not hide Hidden LLM from mtpub (job {spool.job}): hidden shares file {path}: "
                                "not valid JSON"), alert
        assert alert.endswith(f"Nothing was changed; the share's job was not touched. From a terminal: ood-mt hide "
                              f"{spool.job}"), alert
        assert any(line.startswith(f"ood-mt: job {spool.job}: not hidden from its card: hidden shares file {path}")
                   for line in kit_lines(pressed["log"])), pressed["log"]
        assert path.read_text() == '{"format": 1, "hidden": [', "a damaged file is never overwritten"
        assert (ood_site.dataroot(RECEIVER) / "batch_connect" / "db" / card["id"]).is_file()
    finally:
        clear_hidden(RECEIVER)


@pytest.mark.parametrize("forged", ["mt-1-000000000000", "../../../../etc/passwd", "mt-1-0000000000000000%2e%2e"])
def test_an_unknown_or_forged_id_is_left_to_ood(ood_site: OodSite, forged: str) -> None:
    """Not a card the kit wrote, with a valid authenticity token: the kit does nothing; OOD's
    own path answers (no such session: Session.find raises, an error page in production; a
    path no route matches: 404). Nothing hidden, the kit's card untouched."""
    clear_hidden(RECEIVER)
    spool = SpoolSite(ood_site)
    (card,) = cards(spool.sessions(OOD_VERSIONS[0]), spool.job)
    pressed = spool.press(OOD_VERSIONS[0], "destroy", forged, "session")
    result = pressed["result"]
    assert result.get("exception") == "Errno::ENOENT" or result["status"] == 404, result
    assert "notice" not in result["flash"] and "alert" not in result["flash"], result
    assert not hidden_file(RECEIVER).exists()
    assert (ood_site.dataroot(RECEIVER) / "batch_connect" / "db" / card["id"]).is_file()
    assert not any("hidden from its card" in line for line in kit_lines(pressed["log"]))


@pytest.mark.slurm
def test_a_real_share_is_hidden_and_the_own_session_is_cancelled(
    ood_site: OodSite, ood_version: str, host_slurm: dict[str, str]
) -> None:
    """A real publisher's job: the receiver's Delete hides it and the job keeps running; the
    receiver's OWN session (launched through OOD) goes OOD's way: scancel, db file removed."""
    clear_hidden(RECEIVER)
    job = publish(ood_site, "mtpub", app="llm", conn={"host": "node-real", "port": "4713"}, title="Real LLM",
                  mode="card")
    own: dict[str, Any] = {}
    try:
        page = ood_site.run(RECEIVER, ood_version, "sessions")
        (card,) = cards(page, job)
        result = ood_site.press(RECEIVER, ood_version, "destroy", card["id"])["result"]
        assert result["status"] == 302 and "Hid Real LLM" in result["flash"].get("notice", ""), result
        assert squeue_field(job, "%T") == "RUNNING", "the publisher's job keeps running"
        assert cards(ood_site.run(RECEIVER, ood_version, "sessions"), job) == []
        assert squeue_field(job, "%T") == "RUNNING"

        own = ood_site.launch(RECEIVER, ood_version, "mt_jupyter", {"bc_num_hours": "1"})
        own_db = ood_site.dataroot(RECEIVER) / "batch_connect" / "db" / own["session_id"]
        assert own_db.is_file()
        ours = ood_site.press(RECEIVER, ood_version, "destroy", own["session_id"])
        assert ours["result"]["status"] == 302, ours
        assert ours["result"]["flash"].get("notice") == "Session was successfully deleted.", ours["result"]
        assert not any("hidden from its card" in line for line in kit_lines(ours["log"]))
        assert not own_db.exists()
        wait_for(lambda: squeue_field(own["job_id"], "%T") in ("", "CANCELLED", "COMPLETING"), 30,
                 f"OOD's scancel of the receiver's own job {own['job_id']}")
        assert json.loads(hidden_file(RECEIVER).read_text())["hidden"][0]["jobid"] == job, "only the share was hidden"
    finally:
        clear_hidden(RECEIVER)
        for victim in (job, own.get("job_id")):
            if victim:
                subprocess.run(["scancel", victim], capture_output=True, check=False)


@pytest.mark.parametrize("delivery", ["mt_delivery_default", "mt_delivery_readfile", "mt_delivery_debug"])
def test_every_delivery_says_what_delete_does(ood_site: OodSite, ood_version: str, delivery: str) -> None:
    """The kit's mt_hide_note (connection.yml) in each delivery's card body as OOD renders it;
    the publisher's own card has no such key and says nothing of it."""
    note = "Delete (or Cancel) on this card hides this share for you; it does not stop mtpub's service. " \
           "Undo: ood-mt hide --undo 4711"
    conn = {"host": "n1", "port": "1", "mt_preset": "api", "api_url": "http://n1:1", "model": "m", "models": "m",
            "filename": "a.txt", "content": "aGk=", "content_type": "text/plain", "mt_hide_note": note}
    body = ood_site.view(RECEIVER, ood_version, delivery, conn)
    assert "Delete (or Cancel) on this card hides this share for you; it does not stop mtpub" in body, body
    assert "Undo: ood-mt hide --undo 4711" in body, body
    without = ood_site.view(RECEIVER, ood_version, delivery, {k: v for k, v in conn.items() if k != "mt_hide_note"})
    assert "hides this share" not in without, without
