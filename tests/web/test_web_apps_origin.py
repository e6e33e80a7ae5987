"""Shared web apps open on their own origin, so a publisher's page cannot act as the receiver.

Proven with a real browser (Debian's headless Chromium) on the real path: a publisher
launches the dashboard service through Open OnDemand's own code on the real Slurm, serving
a hostile page; the receiver's card, rendered by OOD's code from the kit's delivery app,
links it on the site's web-apps origin; the real Apache serves that origin with the
virtual host the OOD role installs (its own tasks, run by Ansible).
The receiver's dashboard origin is tests/web/receiver_dashboard_double.py (a named test
double: OOD's per-user nginx cannot run here).

The control case opens the same page the way OOD's own /rnode does, on the dashboard's
origin: there the page reads the receiver's file and submits a job as them, which is
what the separate origin prevents (and shows this test can fail).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.apps import forms
from tests.apps.slurm_jobs import connection, shared_render_dir
from tests.ood.oodsite import OodSite, make_site, missing_source_reason, wait_for
from tests.roles.ansible_runner import run, tool
from tests.web.receiver_dashboard_double import DashboardDouble

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
HOSTILE_PAGE = Path(__file__).with_name("hostile_page.html")
APACHE_MODULES = Path("/usr/lib/apache2/modules")
# Two registrable domains: the web-apps origin must not even be same-site with the dashboard.
DASHBOARD_HOST = "dashboard.ood-site.test"
APPS_HOST = "apps.ood-usercontent.test"
OOD_VERSION = "4.2.3"
SECRET = "receiver-secret-" + os.urandom(6).hex()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def install_vhost(work: Path, origin: str, listen: str, host_regex: str, auth: list[str]) -> str:
    """The OOD role's own tasks (tasks_from: web_apps), run by Ansible as on an OOD host,
    installing the virtual host into WORK; return the file's text."""
    conf = work / "ood-mt-web-apps.conf"
    play = work / "web-apps.yml"
    play.write_text(yaml.safe_dump([{
        "name": "The shared-web-apps origin of role ood_mt_ood", "hosts": "localhost", "connection": "local",
        "gather_facts": False,
        "tasks": [{"name": "Install it", "ansible.builtin.include_role": {"name": "ood_mt.multitenant.ood_mt_ood",
                                                                           "tasks_from": "web_apps"}}]}]))
    extra = {"multitenant": {"site": "t", "web_apps_origin": origin, "paths": {}},
             "ood_mt_ood_web_apps_conf": str(conf), "ood_mt_ood_web_apps_listen": listen,
             "ood_mt_ood_web_apps_host_regex": host_regex, "ood_mt_ood_web_apps_auth_directives": auth,
             "ood_mt_ood_web_apps_reload": False}
    done = run([tool("ansible-playbook"), "-i", "localhost,", str(play), "-e", json.dumps(extra)])
    assert done.rc == 0, done.output
    return conf.read_text()


class Apache:
    """Debian's apache2 with the kit's web-apps virtual host and nothing else."""

    def __init__(self, work: Path, port: int, vhost: str) -> None:
        self.work, self.port = work, port
        (work / "vhost.conf").write_text(vhost)
        modules = ["mpm_event", "authz_core", "authz_host", "headers", "rewrite", "proxy", "proxy_http",
                   "proxy_wstunnel"]
        lines = [f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so" for m in modules]
        lines += [f"Listen 127.0.0.1:{port}", f"PidFile {work}/httpd.pid", f"ErrorLog {work}/error.log",
                  "LogLevel warn", f"DefaultRuntimeDir {work}", f"Mutex file:{work} default", "ServerName localhost",
                  "User www-data", "Group www-data", f"Include {work}/vhost.conf"]
        (work / "httpd.conf").write_text("\n".join(lines) + "\n")

    def check(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["apache2", "-f", str(self.work / "httpd.conf"), "-t"], capture_output=True, text=True,
                              check=False)

    def start(self) -> None:
        self.proc = subprocess.Popen(["apache2", "-f", str(self.work / "httpd.conf"), "-DFOREGROUND"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: self._answers(), 20, "Apache to listen", self.log)

    def _answers(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def get(self, path: str) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers={"Host": APPS_HOST})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def log(self) -> str:
        path = self.work / "error.log"
        return path.read_text(errors="replace") if path.exists() else "(no Apache error log)"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


def open_in_browser(url: str, profile: Path) -> dict[str, Any]:
    """Load URL in headless Chromium (names of both origins resolve to this host) and
    return what the hostile page reported."""
    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: scripts/bootstrap.sh installs Debian's chromium"
    rules = f"MAP {DASHBOARD_HOST} 127.0.0.1, MAP {APPS_HOST} 127.0.0.1"
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                           f"--host-resolver-rules={rules}", "--virtual-time-budget=20000", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r"HOSTILE-RESULT (\{.*?\})</pre>", done.stdout)
    assert found, f"the hostile page did not run at {url}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(found.group(1).replace("&amp;", "&").replace("&quot;", '"'))
    return result


@pytest.fixture
def receiver_dashboard() -> Iterator[DashboardDouble]:
    home = pwd.getpwnam("mtrecv").pw_dir
    double = DashboardDouble(files={f"{home}/secret.txt": SECRET}).start()
    yield double
    double.stop()


@pytest.fixture
def web_apps_site(host_slurm: dict[str, str]) -> Iterator[tuple[OodSite, int]]:
    reason = missing_source_reason()
    if reason:
        pytest.skip(reason)
    port = _free_port()
    base = Path(tempfile.mkdtemp(prefix="ood-mt-web-"))
    base.chmod(0o755)
    try:
        yield make_site(base / "site", {"web_apps_origin": f"http://{APPS_HOST}:{port}"}), port
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_shared_page_cannot_act_as_the_receiver(web_apps_site: tuple[OodSite, int],
                                                  receiver_dashboard: DashboardDouble) -> None:
    site, apps_port = web_apps_site
    work = shared_render_dir()
    publisher = pwd.getpwnam("mtpub")
    page_dir = work / "page"
    page_dir.mkdir()
    dashboard_origin = f"http://{DASHBOARD_HOST}:{receiver_dashboard.port}"
    page = (HOSTILE_PAGE.read_text().replace("@DASHBOARD@", dashboard_origin)
            .replace("@RECEIVER_HOME@", pwd.getpwnam("mtrecv").pw_dir))
    (page_dir / "index.html").write_text(page)
    for path in (page_dir, page_dir / "index.html"):
        os.chown(path, publisher.pw_uid, publisher.pw_gid)
    form = forms.service_form("dashboard", mt_share_audience="group", mt_share_group="mtclass", mt_share_mode="card",
                              mt_dashboard_type="command",
                              mt_command=f'cd {page_dir} && exec python3 -m http.server "$port" --bind 127.0.0.1')
    launched = site.launch("mtpub", OOD_VERSION, "mt_dashboard", form)
    job = str(launched["job_id"])
    apache = None
    try:
        wait_for(lambda: "mt_share_status" in connection(launched["staged_root"]), 240,
                 f"job {job} to publish", lambda: (launched["staged_root"] / "output.log").read_text(errors="replace")
                 if (launched["staged_root"] / "output.log").exists() else "(no output yet)")
        shared = connection(launched["staged_root"])
        assert shared["mt_share_status"] == "shared with group mtclass", shared

        # The receiver's card, rendered by OOD's code, opens the app on the web-apps origin.
        cards = {s["job_id"]: s for s in site.sessions("mtrecv", OOD_VERSION)}
        assert job in cards, f"mtrecv has no card for job {job}: {sorted(cards)}"
        body = cards[job]["body"]
        link = re.search(r'href="(http://[^"]+/rnode/[^"]+)"', body)
        assert link, f"the card links no shared web app:\n{body}"
        url = link.group(1)
        # Through the share gate: its secret is the first path segment (docs/gate.md).
        assert url == (f"http://{APPS_HOST}:{apps_port}/rnode/{shared['host']}/{shared['port']}/"
                       f"{shared['mt_gate_secret']}/"), url
        assert 'href="/rnode/' not in body and 'action="/rnode/' not in body, body

        # The real Apache, configured from the OOD role's template, serves that origin.
        vhost = install_vhost(work, f"http://{APPS_HOST}:{apps_port}", f"127.0.0.1:{apps_port}",
                              re.escape(shared["host"]), ["Require ip 127.0.0.1"])
        apache = Apache(work, apps_port, vhost)
        checked = apache.check()
        assert checked.returncode == 0, checked.stderr
        apache.start()
        # Nothing of the dashboard, and no host the site did not allow, behind that name.
        assert apache.get("/pun/sys/dashboard/") == 404
        assert apache.get(f"/rnode/localhost/{receiver_dashboard.port}/login") == 404
        gated = f"/rnode/{shared['host']}/{shared['port']}/{shared['mt_gate_secret']}/"
        assert apache.get(gated) == 200, apache.log()
        assert apache.get("/rnode/" + shared["host"] + "/" + shared["port"] + "/") == 404, "past the gate"

        # Isolated: signed in to the dashboard, the receiver opens the card's link.
        isolated = open_in_browser(f"{dashboard_origin}/login?next={url}", work / "browser-isolated")
        assert isolated["origin"] == f"http://{APPS_HOST}:{apps_port}", isolated
        assert SECRET not in json.dumps(isolated), isolated
        assert str(isolated["files"]).startswith("blocked"), isolated
        assert not str(isolated["submit"]).startswith("200"), isolated
        assert receiver_dashboard.file_reads == [] and receiver_dashboard.submissions == [], receiver_dashboard
        # The requests did leave the browser; they arrived without the receiver's session.
        assert any(r.startswith("files ") and "no session" in r for r in receiver_dashboard.refused), receiver_dashboard

        # Control: the same page opened as OOD's own /rnode opens it, on the dashboard's origin.
        same_origin = open_in_browser(f"{dashboard_origin}/login?next={gated}",
                                      work / "browser-same-origin")
        assert same_origin["files"] == f"200:{SECRET}", same_origin
        assert str(same_origin["submit"]).startswith("200"), same_origin
        assert receiver_dashboard.submissions, receiver_dashboard
    finally:
        if apache is not None:
            apache.stop()
        subprocess.run(["scancel", job], check=False)
        shutil.rmtree(work, ignore_errors=True)
