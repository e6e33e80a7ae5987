"""Every built app through Open OnDemand's OWN code, for every supported OOD version.

Forms are built by BatchConnect::App/SessionContext with the kit's initializer loaded;
services and clients are launched by BatchConnect::Session#save through ood_core's Slurm
adapter on the real Slurm, as real users; cards are read by OOD's Session.all (ood_core's
squeue status check) and rendered through connections/_custom.html.erb. See
tests/ood/oodsite.py and docs/testing.md.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.apps import forms
from tests.apps.app_render import lab_doc
from tests.apps.slurm_jobs import connection, shared_render_dir
from tests.ood.oodsite import OodError, OodSite, publish, squeue_field, wait_for

CLIENT_APPS = ("mt_jupyter", "mt_gradio", "mt_cloudbeaver", "mt_codeserver")
SERVICE_KINDS = ("llm", "database", "dashboard", "instruction")
# The lab site's own services (multitenant.local_apps), built and checked like the built-ins.
LOCAL_APPS = tuple(entry["name"] for entry in lab_doc()["multitenant"].get("local_apps", [])
                   if entry.get("enabled", True))


def _owned_by(user: str, path: Path, text: str = "", mode: int = 0o644) -> Path:
    if text:
        path.write_text(text)
    else:
        path.mkdir(parents=True, exist_ok=True)
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(mode if text else 0o755)
    return path


def test_every_form_renders(ood_site: OodSite, ood_version: str) -> None:
    """OOD builds every app's form (services as a publisher, clients as a receiver)."""
    apps = sorted(p.name for p in ood_site.apps.iterdir() if (p / "form.yml.erb").exists())
    assert apps == sorted([f"mt_{k}" for k in SERVICE_KINDS] + list(CLIENT_APPS) + list(LOCAL_APPS)), apps
    for app in apps:
        user = "mtrecv" if app in CLIENT_APPS else "mtpub"
        form = ood_site.form(user, ood_version, app)
        assert form["valid"], f"OOD {ood_version} marks {app} invalid: {form['reason']}"
        ids = {a["id"] for a in form["attributes"]}
        broken = [a for a in form["attributes"] if "error" in a]
        assert not broken, f"{app}: {broken}"
        if app not in CLIENT_APPS:
            assert {"mt_share_audience", "mt_share_group", "mt_share_preset"} <= ids, app
            group = next(a for a in form["attributes"] if a["id"] == "mt_share_group")
            assert ["mtclass", "mtclass"] in group["options"], f"{app}: mtpub's tenant group is not offered"
            audiences = [v for _label, v in next(a for a in form["attributes"]
                                                 if a["id"] == "mt_share_audience")["options"]]
            # A database share carries a password, a gated service's share (LLM, dashboard, the
            # generic local app) the gate's secret: 'selected users' would only look private.
            expected = ["none", "user", "group"] + (["users"] if app == "mt_instruction" else [])
            assert audiences == expected, (app, audiences)


def _service_forms(work: Path) -> dict[str, dict[str, Any]]:
    """A form per service that makes it serve something real, shared as a card with mtclass."""
    models = _owned_by("mtpub", work / "models")
    manifest = models / "manifests" / "registry.ollama.ai" / "library" / "tinymodel"
    for part in (models / "manifests", models / "manifests" / "registry.ollama.ai",
                 models / "manifests" / "registry.ollama.ai" / "library", manifest):
        _owned_by("mtpub", part)
    _owned_by("mtpub", manifest / "latest", "{}")
    site = _owned_by("mtpub", work / "site")
    _owned_by("mtpub", site / "index.html", "<p>served to the class</p>\n")
    notes = _owned_by("mtpub", work / "notes.md", "# Lab 1\n\nRead chapter 2.\n")
    card = {"mt_share_audience": "group", "mt_share_group": "mtclass", "mt_share_mode": "card"}
    return {
        "llm": forms.service_form("llm", **card, mt_model="tinymodel:latest", mt_model_source="path",
                                  mt_model_path=str(models)),
        "database": forms.service_form("database", **card, mt_db_instance="ood" + secrets.token_hex(4)),
        "dashboard": forms.service_form(
            "dashboard", **card, mt_dashboard_type="command",
            mt_command=f'cd {site} && exec python3 -m http.server "$port" --bind 127.0.0.1'),
        "instruction": forms.service_form("instruction", **card, mt_file_path=str(notes)),
    }


@pytest.mark.slurm
def test_services_publish_and_receivers_see_running_cards(
    ood_site: OodSite, ood_version: str, host_slurm: dict[str, str]
) -> None:
    work = shared_render_dir()
    launched: dict[str, dict[str, Any]] = {}
    service_forms = _service_forms(work)
    instance_name = service_forms["database"]["mt_db_instance"]
    instance = Path("~mtpub").expanduser() / "ood-mt-databases" / f"postgresql-{instance_name}"
    try:
        for kind, form in service_forms.items():
            launched[kind] = ood_site.launch("mtpub", ood_version, f"mt_{kind}", form)
        jobs = {kind: str(got["job_id"]) for kind, got in launched.items()}

        def evidence() -> str:
            return "\n".join(f"--- {kind} (job {jobs[kind]}) ---\n"
                             + ((got["staged_root"] / "output.log").read_text(errors="replace")
                                if (got["staged_root"] / "output.log").exists() else "(no output yet)")
                             for kind, got in launched.items())

        for kind, got in launched.items():
            # connection.yml appears once after.sh has returned (OOD's create_yml).
            wait_for(lambda g=got: "mt_share_status" in connection(g["staged_root"]), 240,
                     f"{kind}: job {jobs[kind]} to finish after.sh", evidence)
            status = connection(got["staged_root"])["mt_share_status"]
            assert status == "shared with group mtclass", f"{kind}: {status}\n{evidence()}"
            assert squeue_field(jobs[kind], "%j").startswith("mt1:mtclass:"), kind

        mine = {s["job_id"]: s for s in ood_site.sessions("mtpub", ood_version)}
        for kind, job in jobs.items():
            assert mine[job]["status"] == "running", (kind, mine[job])
            assert mine[job]["connect"]["mt_share_status"] == "shared with group mtclass", kind
            assert "Sharing: shared with group mtclass" in mine[job]["body"], (kind, mine[job]["body"])

        for receiver in ("mtrecv", "mtrecv2"):
            cards = {s["job_id"]: s for s in ood_site.sessions(receiver, ood_version)}
            for kind, job in jobs.items():
                card = cards.get(job)
                assert card, f"{receiver} has no card for the {kind} share (job {job})"
                assert card["status"] == "running", (kind, card)
                assert card["token"].startswith("sys/mt_delivery_"), card["token"]
                assert card["body"].strip() and "render error" not in card["body"], (kind, card["body"])
                assert "OOD renders" not in card["body"], (kind, card["body"])
        outsider = {s["job_id"] for s in ood_site.sessions("mtout", ood_version)}
        assert not outsider & set(jobs.values())
    finally:
        for got in launched.values():
            subprocess.run(["scancel", str(got["job_id"])], check=False)
        for got in launched.values():
            wait_for(lambda g=got: squeue_field(str(g["job_id"]), "%T") == "", 90, f"job {got['job_id']} to end")
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(instance, ignore_errors=True)


@pytest.mark.slurm
def test_clients_launch_with_a_share_chosen(ood_site: OodSite, ood_version: str, host_slurm: dict[str, str]) -> None:
    llm = {"host": "node7", "port": "41234", "gate_secret": "g" * 43, "model": "m1", "models": "m1"}
    db = {"engine": "postgresql", "host": "node8", "port": "45432", "database": "shared", "user": "guest",
          "password": "pw-" + secrets.token_hex(8), "jdbc_url": "jdbc:postgresql://node8:45432/shared"}
    jobs = [publish(ood_site, "mtpub", app="llm", conn=llm), publish(ood_site, "mtpub", app="database", conn=db)]
    launched = []
    try:
        for app in CLIENT_APPS:
            form = ood_site.form("mtrecv", ood_version, app)
            chosen = {}
            for attr in form["attributes"]:
                if attr["id"] in ("mt_llm_share", "mt_database_share"):
                    offered = [value for _label, value in attr["options"]]
                    job = jobs[0] if attr["id"] == "mt_llm_share" else jobs[1]
                    assert job in offered, f"{app}: the real share {job} is not offered: {attr['options']}"
                    chosen[attr["id"]] = job
            kind = app.removeprefix("mt_")
            launched.append(ood_site.launch("mtrecv", ood_version, app, forms.client_form(kind, **chosen)))
        for got in launched:
            job = str(got["job_id"])
            wait_for(lambda j=job: squeue_field(j, "%T") == "", 120, f"client job {job} to end")
            out = (got["staged_root"] / "output.log").read_text()
            assert (got["staged_root"] / "client_test_double_record.json").exists(), out
            for missing in ("no LLM share chosen", "no database share chosen", "no longer available"):
                assert missing not in out, f"{got['job_id']}: {out}"
    finally:
        subprocess.run(["scancel", *jobs, *[str(g["job_id"]) for g in launched]], check=False)


@pytest.mark.slurm
def test_regressions_the_suite_must_catch(ood_site: OodSite, host_slurm: dict[str, str]) -> None:
    """The three ways the apps once failed in a real OOD, put back into a copy of one app:
    each must fail here (and so in the tests above)."""
    apps = shared_render_dir()
    try:
        def broken_copy(name: str, app: str, change: Any) -> Path:
            root = apps / name
            root.mkdir(mode=0o755)
            copy = Path(shutil.copytree(ood_site.apps / app, root / app))
            change(copy)
            return root

        def bare_name(app: Path) -> None:
            before = app / "template" / "before.sh.erb"
            before.write_text(before.read_text().replace("context.mt_share_audience", "mt_share_audience"))

        bare = broken_copy("bare", "mt_instruction", bare_name)
        with pytest.raises(OodError, match="undefined local variable or method `mt_share_audience"):
            ood_site.stage("mtpub", "4.2.3", "mt_instruction", forms.service_form("instruction"), apps_dir=bare)

        not_exec = broken_copy("mode", "mt_instruction", lambda app: (app / "template" / "script.sh.erb").chmod(0o644))
        staged = ood_site.stage("mtpub", "4.2.3", "mt_instruction", forms.service_form("instruction"),
                                apps_dir=not_exec)
        assert not Path(staged["staged_root"], "script.sh").stat().st_mode & 0o111

        def misspelled(app: Path) -> None:
            # The dashboard waits through mt_gate_wait (the gate's helpers, in service_helpers.sh).
            helpers = app / "template" / "service_helpers.sh"
            assert "wait_until_port_used" in helpers.read_text()
            helpers.write_text(helpers.read_text().replace("wait_until_port_used", "wait_until_port"))

        helper = broken_copy("helper", "mt_dashboard", misspelled)
        form = forms.service_form("dashboard", mt_share_audience="user", mt_dashboard_type="command",
                                  mt_command='exec python3 -m http.server "$port" --bind 127.0.0.1')
        got = ood_site.launch("mtpub", "4.2.3", "mt_dashboard", form, apps_dir=helper)
        job = str(got["job_id"])
        try:
            wait_for(lambda: (got["staged_root"] / "connection.yml").exists(), 120, f"job {job}'s after.sh")
            out = (got["staged_root"] / "output.log").read_text()
            assert "wait_until_port: command not found" in out, out
            assert not squeue_field(job, "%j").startswith("mt1:"), "published although the helper does not exist"
        finally:
            subprocess.run(["scancel", job], check=False)
    finally:
        shutil.rmtree(apps, ignore_errors=True)
