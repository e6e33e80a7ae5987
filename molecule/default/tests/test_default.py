"""Verify of the `default` scenario: site.yml deployed the kit, Slurm enforces the WCKey, and
a real share travels from mtpub's service job to mtrecv's dashboard (and not to mtout)."""

from __future__ import annotations

import base64
import hashlib
import json
import shlex

import pytest
from labhosts import BUILD, REPO, WCKEY, WHEELHOUSE, as_user, dashboard, host, manifest, wait_for
from share_flow import (
    LOCAL_HTTP_APP,
    LOCAL_HTTP_TEXT,
    SHINY_SERVER_TEXT,
    SHINY_UI_TEXT,
    cancel,
    http_get_as,
    job_state,
    psql_as,
    running_cards,
    submit_database,
    submit_local_http,
    submit_shiny,
    wait_published,
)


def test_app_files_match_manifest() -> None:
    ood = host("ood")
    man = manifest()
    for app in man["apps"]:
        d = ood.file(app["dest"])
        assert d.is_directory, app["dest"]
        assert (d.user, d.group, f"{d.mode:04o}") == ("root", app["group"], app["dir_mode"]), app["dest"]
    for entry in [*man["files"], man["initializer"]]:
        f = ood.file(entry["dest"])
        assert f.is_file, entry["dest"]
        assert (f.user, f.group, f"{f.mode:04o}") == (entry["owner"], entry["group"], entry["mode"]), entry["dest"]
        want = hashlib.sha256((BUILD / entry["src"]).read_bytes()).hexdigest()
        assert entry["sha256"] == want, f"manifest sha256 of {entry['src']} is stale"
        assert f.sha256sum == want, f"{entry['dest']} differs from the build"


def test_dashboard_env_enables_the_kit() -> None:
    env = host("ood").file("/etc/ood/config/apps/dashboard/env").content_string
    assert "MULTITENANT_ENABLE=true" in env.splitlines()


@pytest.mark.parametrize(("node", "conf"), [("slurm", "slurm.conf"), ("slurm", "slurmdbd.conf"),
                                            ("compute", "slurm.conf")])
def test_wckeys_tracked_and_enforced(node: str, conf: str) -> None:
    text = host(node).file(f"/etc/slurm/{conf}").content_string
    settings = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    assert settings.get("TrackWCKey", "").lower() == "yes", f"{node}:{conf}"
    # AccountingStorageEnforce is a slurm.conf parameter only (slurmdbd.conf has no such key).
    if conf == "slurm.conf":
        assert "wckeys" in settings.get("AccountingStorageEnforce", "").split(","), f"{node}:{conf}"


@pytest.mark.parametrize(("node", "units"), [("slurm", ["mariadb", "slurmdbd", "slurmctld", "munge"]),
                                             ("compute", ["slurmd", "munge"]), ("ood", ["munge"])])
def test_daemons_up(node: str, units: list[str]) -> None:
    for unit in units:
        assert host(node).service(unit).is_running, f"{unit} not running on {node}"
    if node == "ood":
        assert "UP" in host("ood").check_output("scontrol ping"), "slurmctld not answering from the OOD host"


def test_onboarded_users_have_the_wckey() -> None:
    out = host("slurm").check_output(f"sacctmgr --noheader --parsable2 list wckey {WCKEY} format=user")
    users = {u for u in out.split() if u}
    assert "mtpub" in users, f"publisher mtpub not onboarded (wckey users: {sorted(users)})"
    assert "mtout" not in users


def test_outsider_cannot_submit_with_the_wckey() -> None:
    out = host("ood").run(as_user("mtout", f"sbatch --wckey={WCKEY} --wrap true"))
    assert out.rc != 0
    assert "Invalid wckey specification" in out.stderr


def test_outsider_cannot_read_group_keys() -> None:
    out = host("ood").run(as_user("mtout", "cat /etc/ood-mt/keys/mtclass/v1.key"))
    assert out.rc != 0 and "Permission denied" in out.stderr


def listed_jobs(node: str, user: str) -> list[str]:
    """Job ids of the shares USER's `ood-mt list --json` shows on NODE (a login shell: the
    command must be on the ordinary PATH). Where the discovery service runs (the OOD host and
    the login node) the list comes from its spool, not from a squeue of the user's own."""
    out = host(node).run(as_user(user, "ood-mt list --json"))
    assert out.rc == 0, f"ood-mt list as {user} on {node}: {out.stderr}"
    if node in DISCOVERY_NODES:
        assert "discovery spool not used" not in out.stderr, f"{node}: {out.stderr}"
    return [row["jobid"] for row in json.loads(out.stdout)]


# Where role ood_mt_discovery runs the discovery service (ood_servers and login_nodes).
DISCOVERY_NODES = ("ood", "slurm")
SPOOL = "/var/lib/ood-mt/spool"


@pytest.mark.parametrize("node", DISCOVERY_NODES)
def test_the_discovery_service_keeps_the_spool_fresh(node: str) -> None:
    lab = host(node)
    active = lab.run("systemctl is-active ood-mt-discovery.service")
    assert active.stdout.strip() == "active", (active.stdout, lab.run("journalctl -u ood-mt-discovery -n 20").stdout)
    status = wait_for(f"a fresh spool on {node}", lambda: (lambda r: r if r.rc == 0 else None)(
        lab.run(as_user("mtrecv", "ood-mt discovery status"))), timeout=60)
    assert "fresh" in status.stdout, status.stdout
    spool_dir = lab.file(SPOOL)
    assert (spool_dir.user, spool_dir.group, f"{spool_dir.mode:04o}") == ("root", "root", "0755")


def _spool_holds(node: str, job_id: str) -> bool:
    listing = host(node).file(f"{SPOOL}/group/mtclass.listing")
    if not listing.exists:
        return False
    assert (listing.user, listing.group, f"{listing.mode:04o}") == ("root", "mtclass", "0640")
    return job_id in listing.content_string


def wait_card_gone(user: str, job_id: str) -> None:
    """The card of JOB_ID leaves USER's dashboard once the discovery spool no longer lists the
    ended job: at most one interval (10 s) after the job left the queue, plus the page load."""
    wait_for(f"{user}'s card of job {job_id} to go", lambda: not [
        c for c in dashboard(user)["cards"] if c["job_id"] == job_id], timeout=45)


def outsider_scan(job_id: str, node_name: str, markers: list[str]) -> dict:
    """mtout, on the login node, scans every port of the compute node running JOB_ID and tries
    each open one (tests/outsider_scanner.py, the script the real-Slurm outsider test runs)."""
    script = base64.b64encode((REPO / "tests" / "outsider_scanner.py").read_bytes()).decode()
    spec = base64.b64encode(json.dumps({"targets": [[node_name, [[1024, 65535]]]],
                                        "markers": markers, "model": "none"}).encode()).decode()
    login = host("slurm")
    assert login.run(f"echo {script} | base64 -d > /tmp/ood-mt-outsider-scan.py && "
                     "chmod 0644 /tmp/ood-mt-outsider-scan.py").rc == 0
    out = login.run(as_user("mtout", f"echo {spec} | base64 -d | python3 /tmp/ood-mt-outsider-scan.py"))
    assert out.rc == 0, f"the scan of {node_name} for job {job_id} failed: {out.stderr}"
    return json.loads(out.stdout)


@pytest.mark.parametrize("node", ["ood", "slurm", "compute"])
def test_the_command_is_installed_for_users(node: str) -> None:
    link = host(node).file("/usr/local/bin/ood-mt")
    assert link.is_symlink and link.linked_to == "/opt/ood-mt/venv/bin/ood-mt"
    version = host(node).run(as_user("mtrecv", "ood-mt --version"))
    assert version.rc == 0, version.stderr
    wheel = sorted(WHEELHOUSE.glob("ood_multitenant-*.whl"))
    assert len(wheel) == 1 and wheel[0].name.split("-")[1] in version.stdout, (wheel, version.stdout)
    # The gate's library is in the virtualenv too (jobs on compute nodes run it).
    gate = host(node).run("/opt/ood-mt/venv/bin/python -c 'import ood_mt.gate, aiohttp'")
    assert gate.rc == 0, gate.stderr
    # The wheelhouse copy is root's and read-only to users.
    wheelhouse = host(node).file("/opt/ood-mt/wheelhouse")
    assert (wheelhouse.user, f"{wheelhouse.mode:04o}") == ("root", "0755")


def _published_card(job_id: str) -> dict:
    """Once JOB_ID (mtpub's) has published: mtrecv's Running card, rendered, showing the host;
    mtpub's own card (OOD's create_yml) says the share went to mtclass."""
    wait_published(job_id)
    # The receiver's next dashboard boot shows a Running card with a usable connection.
    card = wait_for("mtrecv's Running card", lambda: running_cards(dashboard("mtrecv"), job_id), timeout=90)[0]
    assert card["token"].startswith("sys/mt_delivery_")
    assert "render error" not in card["body"] and "OOD renders" not in card["body"], card["body"]
    assert card["connect"]["host"] in card["body"], card["body"]
    mine = [c for c in dashboard("mtpub")["cards"] if c["job_id"] == job_id]
    assert mine and mine[0]["connect"]["mt_share_status"] == "shared with group mtclass", mine
    return card


def test_end_to_end_database_card() -> None:
    job_id = submit_database("mtpub")
    try:
        card = _published_card(job_id)
        conn_path = card["connection_path"]
        query = psql_as("mtrecv", conn_path, "SELECT 6 * 7")
        assert query.rc == 0, f"psql as mtrecv failed: {query.stderr}"
        assert query.stdout.strip() == "42"
        # The discovery service put the share in mtclass's spool file, which mtout cannot read.
        for node in DISCOVERY_NODES:
            wait_for(f"job {job_id} in the mtclass spool on {node}", lambda n=node: _spool_holds(n, job_id), timeout=60)
            denied = host(node).run(as_user("mtout", f"cat {SPOOL}/group/mtclass.listing"))
            assert denied.rc != 0 and "Permission denied" in denied.stderr, denied.stderr
        # The discovery service stopped: dashboards fall back to their own squeue (logged) and
        # still show the share; started again, they go back to the spool.
        ood = host("ood")
        assert ood.run("systemctl stop ood-mt-discovery.service").rc == 0
        try:
            wait_for("the OOD host's spool to go stale", lambda: ood.run(
                as_user("mtrecv", "ood-mt discovery status")).rc == 1, timeout=90)
            page = dashboard("mtrecv")
            assert running_cards(page, job_id), f"no card while the spool is stale: {page['cards']}"
            assert any("querying Slurm directly" in line for line in page["log"]), page["log"]
        finally:
            assert ood.run("systemctl start ood-mt-discovery.service").rc == 0
        wait_for("the OOD host's spool to be fresh again", lambda: ood.run(
            as_user("mtrecv", "ood-mt discovery status")).rc == 0, timeout=60)
        # mtrecv2 is in mtclass by PRIMARY group only: it must see the share too.
        assert running_cards(dashboard("mtrecv2"), job_id), "mtrecv2 (primary group mtclass) sees no card"
        # The outsider sees nothing.
        out = dashboard("mtout")
        assert not [c for c in out["cards"] if c["job_id"] == job_id]
        # From the terminal: the ood-mt command the role put on the login node (the lab's
        # slurm head node) and on the compute node (where the Jupyter client runs).
        for node in ("slurm", "compute"):
            assert listed_jobs(node, "mtrecv") == [job_id], f"mtrecv's ood-mt list on {node}"
            assert job_id not in listed_jobs(node, "mtout"), f"mtout's ood-mt list on {node}"
        _unshare_keeps_the_service(job_id, conn_path)
    finally:
        cancel("mtpub", job_id)
    # Within one discovery interval plus a refresh the card and its connection.yml are gone.
    wait_card_gone("mtrecv", job_id)
    assert not host("ood").file(conn_path).exists, f"{conn_path} left behind"


def _unshare_keeps_the_service(job_id: str, conn_path: str) -> None:
    """Issue 13 across nodes: mtpub runs `ood-mt unshare` on the login node; the share agent in
    the job on the compute node stops sharing. mtrecv's card goes, the password mtrecv had is
    refused, the job keeps running and mtpub's card says it was unshared."""
    old_conn = "/home/mtrecv/.ood-mt-test-old-connection.yml"
    kept = host("ood").run(as_user("mtrecv", f"umask 077; cp {conn_path} {old_conn}"))
    assert kept.rc == 0, kept.stderr
    try:
        done = host("slurm").run(as_user("mtpub", f"ood-mt unshare {job_id}"))
        assert done.rc == 0 and f"job {job_id}: unshared at" in done.stdout, f"{done.stdout} {done.stderr}"
        wait_card_gone("mtrecv", job_id)
        wait_for("the password mtrecv had to be refused",
                 lambda: psql_as("mtrecv", old_conn, "SELECT 1").rc != 0, timeout=60)
        assert job_state(job_id)[0] == "RUNNING", "unshare stopped the service"
        mine = wait_for("mtpub's card to say it was unshared", lambda: [
            c for c in dashboard("mtpub")["cards"]
            if c["job_id"] == job_id and "you unshared it" in c["connect"].get("mt_share_status", "")], timeout=30)
        assert mine, "mtpub's card is gone"
        # The login node's `ood-mt list` reads that node's own discovery spool, which catches up
        # within one discovery interval (10 s) of the dashboard node's.
        wait_for("mtrecv's ood-mt list on the login node to drop the share",
                 lambda: job_id not in listed_jobs("slurm", "mtrecv"), timeout=40)
    finally:
        host("ood").run(as_user("mtrecv", f"rm -f {old_conn}"))


def test_end_to_end_shiny_dashboard() -> None:
    """Issue 16: the dashboard service runs a real R Shiny app (the lab generation's
    r-cran-shiny), launched through OOD and shared with mtclass. Through the gate, mtrecv gets
    the app's page and a working WebSocket (the server function's output arrives over it);
    mtout, without the card's secret, gets a 404."""
    job_id, app_dir = submit_shiny("mtpub")
    try:
        conn = _published_card(job_id)["connect"]
        assert (conn["mt_app"], conn["mt_preset"]) == ("dashboard", "weblink"), conn
        page = http_get_as("mtrecv", conn["host"], conn["port"], f"/{conn['gate_secret']}/")
        assert page.rc == 0 and page.stdout.startswith("200\n") and SHINY_UI_TEXT in page.stdout, \
            f"GET as mtrecv: {page.stdout[:2000]} {page.stderr}"
        script = base64.b64encode((REPO / "tests" / "shiny_ws_client.py").read_bytes()).decode()
        ood_node = host("ood")
        assert ood_node.run(f"echo {script} | base64 -d > /tmp/ood-mt-shiny-ws.py && "
                            "chmod 0644 /tmp/ood-mt-shiny-ws.py").rc == 0
        url = f"http://{conn['host']}:{conn['port']}/{conn['gate_secret']}/websocket/"
        ws = ood_node.run(as_user("mtrecv", f"/opt/ood-mt/venv/bin/python /tmp/ood-mt-shiny-ws.py "
                                            f"{shlex.quote(url)} {shlex.quote(SHINY_SERVER_TEXT)}"))
        assert ws.rc == 0 and ws.stdout.strip() == f"got {SHINY_SERVER_TEXT}", f"{ws.stdout} {ws.stderr}"
        bare = http_get_as("mtout", conn["host"], conn["port"], "/")
        assert bare.rc == 0 and bare.stdout.startswith("404\n") and SHINY_UI_TEXT not in bare.stdout, bare.stdout
    finally:
        cancel("mtpub", job_id)
        host("ood").run(as_user("mtpub", f"rm -rf {shlex.quote(app_dir)}"))
    wait_card_gone("mtrecv", job_id)


def test_end_to_end_local_app_card() -> None:
    """The lab's site-local service (`ood-mt new-app`, listed in local_apps), installed by the
    roles like the built-in services: gated to the publisher group, and its share reaches
    mtrecv as a web-link card whose service answers."""
    entry = next(a for a in manifest()["apps"] if a["name"] == LOCAL_HTTP_APP)
    assert (entry["role"], entry["group"], entry["dir_mode"]) == ("service", "mtusr", "0750"), entry
    job_id = submit_local_http("mtpub")
    try:
        card = _published_card(job_id)
        assert card["token"] == "sys/mt_delivery_default", card
        conn = card["connect"]
        assert (conn["mt_app"], conn["mt_preset"]) == (LOCAL_HTTP_APP, "weblink"), conn
        # Through the share gate (docs/gate.md): the card holds the secret; without it, 404.
        page = http_get_as("mtrecv", conn["host"], conn["port"], f"/{conn['gate_secret']}/")
        assert page.rc == 0 and page.stdout.startswith("200\n") and LOCAL_HTTP_TEXT in page.stdout, \
            f"GET as mtrecv: {page.stdout} {page.stderr}"
        bare = http_get_as("mtout", conn["host"], conn["port"], "/")
        assert bare.rc == 0 and bare.stdout.startswith("404\n") and LOCAL_HTTP_TEXT not in bare.stdout, bare.stdout
        # The outsider test (issue 12) across nodes: mtout scans every port of the service's
        # node and tries each one; the gate's port is found, nothing answers with the service.
        scan = outsider_scan(job_id, conn["host"], [LOCAL_HTTP_TEXT])
        assert int(conn["port"]) in scan["open"][conn["host"]], scan["open"]
        successes = [a for a in scan["answers"] if 200 <= a["status"] < 300 or a["marker"]]
        assert successes == [], successes
        out = dashboard("mtout")
        assert not [c for c in out["cards"] if c["job_id"] == job_id]
        # mtout is not in the publisher group: the app is not readable for it
        listing = host("ood").run(as_user("mtout", f"ls {entry['dest']}"))
        assert listing.rc != 0 and "Permission denied" in listing.stderr
    finally:
        cancel("mtpub", job_id)
    wait_card_gone("mtrecv", job_id)
