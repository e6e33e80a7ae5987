"""The dashboard and instruction services, and the lab's site-local web service, as real
Slurm jobs of mtpub.

Dashboard: the publisher's own command (python3 -m http.server) serves HTTP here; the Shiny
branch runs for real (Debian's r-cran-shiny, page and WebSocket through the gate) in
test_run_outsider.py. Instruction: a Markdown file the publisher owns is shared with its
content; files not theirs, and files too large, are refused with a clear status and nothing
is shared."""

from __future__ import annotations

import base64
import os
import pwd
import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest

from ood_mt import codec
from tests.apps import forms
from tests.apps.slurm_jobs import connection, job_name, job_state, job_token, shared_render_dir, submit, wait_for
from tests.ood.oodsite import OodSite

pytestmark = pytest.mark.slurm


def _user_key(user: str) -> bytes:
    return bytes.fromhex((Path(f"~{user}").expanduser() / ".ood-mt" / "user.key").read_text().strip())


def _stop(run_as: Any, job: str) -> None:
    run_as("mtpub", ["scancel", job])
    wait_for(lambda: job_state(run_as, job) == "", 60, f"job {job} to end")


def _assert_only_through_the_gate(run_as: Any, conn: dict[str, str], marker: str) -> None:
    """The receiver gets the page at http://host:port/<gate_secret>/; without the secret: 404."""
    page = run_as("mtrecv", ["curl", "--silent", "--fail", "--max-time", "10",
                             f"http://{conn['host']}:{conn['port']}/{conn['gate_secret']}/"])
    assert page.returncode == 0, page.stderr
    assert marker in page.stdout
    bare = run_as("mtrecv", ["curl", "--silent", "--output", "/dev/null", "--write-out", "%{http_code}",
                             "--max-time", "10", f"http://{conn['host']}:{conn['port']}/"])
    assert bare.stdout == "404", bare


def test_dashboard_command_is_shared_as_a_web_link(
    host_slurm: dict[str, str], run_as: Any, built_apps: Path, ood_site: OodSite
) -> None:
    work = shared_render_dir()
    site_dir = work / "site"
    site_dir.mkdir(mode=0o755)
    marker = f"dashboard page {secrets.token_hex(8)} ü"
    (site_dir / "index.html").write_text(f"<p>{marker}</p>\n", encoding="utf-8")
    (site_dir / "index.html").chmod(0o644)
    command = f'cd {site_dir} && exec python3 -m http.server "$port" --bind 127.0.0.1'
    form = forms.service_form("dashboard", mt_share_audience="user", mt_dashboard_type="command",
                              mt_command=command)
    job, session = submit(ood_site, "mtpub", built_apps / "mt_dashboard", form)
    try:
        wait_for(lambda: job_name(run_as, job).startswith("mt1:"), 60, f"job {job} to publish")
        share = codec.decode(job_token(run_as, job), group_key=_user_key("mtpub"), jobid=job, owner="mtpub")
        conn, mine = share["conn"], connection(session)
        assert (share["app"], share["preset"], share["delivery"]) == ("dashboard", "weblink", "sys/mt_delivery_default")
        assert (conn["host"], conn["port"]) == (mine["host"], mine["port"])
        assert "url" not in conn and mine["mt_gate_secret"] == conn["gate_secret"]
        _assert_only_through_the_gate(run_as, conn, marker)
    finally:
        _stop(run_as, job)
        shutil.rmtree(work, ignore_errors=True)


def test_local_app_is_shared_as_a_web_link(
    host_slurm: dict[str, str], run_as: Any, built_apps: Path, ood_site: OodSite
) -> None:
    """The lab's site-local service (inventories/lab/apps/mt_http_demo, `ood-mt new-app`'s
    generic web service), as `ood-mt build` ships it, launched by OOD's own code on real Slurm:
    it publishes a web link to a page the receiver can fetch."""
    work = shared_render_dir()
    site_dir = work / "site"
    site_dir.mkdir(mode=0o755)
    marker = f"local app page {secrets.token_hex(8)}"
    (site_dir / "index.html").write_text(f"<p>{marker}</p>\n", encoding="utf-8")
    (site_dir / "index.html").chmod(0o644)
    form = {**forms.COMMON, **forms.SHARING, "mt_share_audience": "user", "mt_share_preset": "weblink",
            "mt_command": f'cd {site_dir} && exec python3 -m http.server "$port" --bind 127.0.0.1'}
    job, session = submit(ood_site, "mtpub", built_apps / "mt_http_demo", form)
    try:
        wait_for(lambda: job_name(run_as, job).startswith("mt1:"), 60, f"job {job} to publish")
        share = codec.decode(job_token(run_as, job), group_key=_user_key("mtpub"), jobid=job, owner="mtpub")
        conn, mine = share["conn"], connection(session)
        assert (share["app"], share["preset"], share["delivery"]) == ("mt_http_demo", "weblink",
                                                                      "sys/mt_delivery_default")
        assert (conn["host"], conn["port"]) == (mine["host"], mine["port"])
        _assert_only_through_the_gate(run_as, conn, marker)
    finally:
        _stop(run_as, job)
        shutil.rmtree(work, ignore_errors=True)


def _publisher_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    entry = pwd.getpwnam("mtpub")
    os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o644)
    return path


def test_instruction_shares_the_publishers_markdown(
    host_slurm: dict[str, str], run_as: Any, built_apps: Path, ood_site: OodSite
) -> None:
    work = shared_render_dir()
    text = "# Übung 1\n\n- read `notes`\n- <b>escaped</b> later by the card\n"
    doc = _publisher_file(work / "lesson.md", text.encode())
    form = forms.service_form("instruction", mt_share_audience="user", mt_file_path=str(doc))
    job, session = submit(ood_site, "mtpub", built_apps / "mt_instruction", form)
    try:
        wait_for(lambda: job_name(run_as, job).startswith("mt1:"), 60, f"job {job} to publish")
        share = codec.decode(job_token(run_as, job), group_key=_user_key("mtpub"), jobid=job, owner="mtpub")
        conn = share["conn"]
        assert (share["app"], share["delivery"]) == ("instruction", "sys/mt_delivery_readfile")
        assert conn["filename"] == "lesson.md" and conn["content_type"] == "text/markdown"
        assert base64.b64decode(conn["content"]).decode() == text
        assert connection(session)["mt_share_status"] == "shared with you only"
    finally:
        _stop(run_as, job)
        shutil.rmtree(work, ignore_errors=True)


def _refusal_cases(work: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path given in the form, expected words in the status)."""
    root_owned = work / "root-owned.md"
    root_owned.write_text("# root's file\n")
    root_owned.chmod(0o644)
    link = work / "passwd-link.md"
    link.symlink_to("/etc/passwd")
    os.lchown(link, pwd.getpwnam("mtpub").pw_uid, -1)
    over_site_limit = _publisher_file(work / "big.md", b"x" * (257 * 1024))
    # Under the site limit but random (incompressible): the token would not fit in Slurm.
    over_token = _publisher_file(work / "random.md", base64.b64encode(secrets.token_bytes(3000)))
    return {
        "root-owned file": (root_owned, "is not owned by you; only your own files can be shared"),
        "symlink to /etc/passwd": (link, "is not owned by you; only your own files can be shared"),
        "over the site limit": (over_site_limit, "more than the site limit of 256 KiB"),
        "too large for a share": (over_token, "Slurm's JobName + Comment hold 2042"),
    }


def test_instruction_refuses_foreign_and_oversize_files(
    host_slurm: dict[str, str], run_as: Any, built_apps: Path, ood_site: OodSite
) -> None:
    work = shared_render_dir()
    cases = _refusal_cases(work)
    jobs: dict[str, tuple[str, Path]] = {}
    try:
        for name, (path, _why) in cases.items():
            form = forms.service_form("instruction", mt_share_audience="user", mt_file_path=str(path))
            jobs[name] = submit(ood_site, "mtpub", built_apps / "mt_instruction", form)
        for name, (job, session) in jobs.items():
            wait_for(lambda s=session: "mt_share_status" in connection(s), 60, f"{name}: job {job}'s status")
            status = connection(session)["mt_share_status"]
            assert status.startswith("not shared"), f"{name}: {status}"
            assert cases[name][1] in status, f"{name}: status does not say why: {status}"
            assert cases[name][1] in (session / "output.log").read_text(), f"{name}: job output does not say why"
            assert not job_name(run_as, job).startswith("mt1:"), f"{name}: job {job} published anyway"
            assert "root:x:0:0" not in (session / "output.log").read_text() + (session / "connection.yml").read_text()
    finally:
        for job, _session in jobs.values():
            _stop(run_as, job)
        shutil.rmtree(work, ignore_errors=True)
