"""Hostile form and share values at RUN time: every app is staged by OOD's own code
(tests/apps/ood_app.py), its before.sh is executed in bash after ood_core's own helpers
(tests/apps/before_run.py), and each value must arrive byte for byte, with no side effect.
Hostile share values come from real jobs of a publisher (a hostile publisher), verified by
the kit's initializer inside OOD."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.apps import forms
from tests.apps.before_run import run_before
from tests.apps.ood_app import stage
from tests.ood.oodsite import OodSite, publish, publish_raw


def hostile_values(marker: Path) -> list[str]:
    """Values that would run `touch MARKER` if any of them reached bash unquoted."""
    m = str(marker)
    return [
        f"a'b\"c $(touch {m}) `touch {m}`; touch {m}",
        f"line one\nline two; touch {m} & echo done | cat > {m}",
        f"'; touch {m}; echo '",
        f"\"; touch {m}; echo \"",
        f"café 日本語 ${{HOME}} $((1+1)) \\$(touch {m}) * ? [a] ~ !! \t tab",
    ]


SERVICE_FIELDS = {  # form field -> variable before.sh sets from it
    "llm": {"mt_model": "MT_MODEL", "mt_model_path": "MT_MODEL_PATH"},
    "dashboard": {"mt_app_dir": "MT_APP_DIR", "mt_command": "MT_COMMAND"},
    "instruction": {"mt_file_path": "MT_FILE_PATH"},
}
SHARING_FIELDS = {"mt_share_group": "MT_SHARE_GROUP", "mt_share_users": "MT_SHARE_USERS",
                  "mt_share_mode": "MT_SHARE_MODE", "mt_share_audience": "MT_SHARE_AUDIENCE",
                  "mt_share_until": "MT_SHARE_UNTIL"}


@pytest.mark.parametrize("kind", sorted(SERVICE_FIELDS))
def test_service_before_sh_keeps_hostile_values_byte_for_byte(built_apps: Path, ood_site: OodSite, kind: str) -> None:
    marker = ood_site.base / "publishers" / f"pwned-{kind}"
    for i, value in enumerate(hostile_values(marker)):
        fields = {**SERVICE_FIELDS[kind], **SHARING_FIELDS}
        form = forms.service_form(kind, **dict.fromkeys(fields, value))
        if kind == "dashboard":
            form["mt_dashboard_type"] = "command"
        session = stage(ood_site, built_apps / f"mt_{kind}", form)
        done, got = run_before(session, sorted(fields.values()), user="mtpub")
        assert done.returncode == 0, f"{kind} value {i}: before.sh failed: {done.stderr}"
        for field, var in fields.items():
            assert got.get(var) == value.encode(), f"{kind}: {var} (form field {field}) changed: {got.get(var)!r}"
        assert not marker.exists(), f"{kind} value {i}: a form value ran a command"


def test_database_before_sh_refuses_hostile_names_without_side_effect(built_apps: Path, ood_site: OodSite) -> None:
    marker = ood_site.base / "publishers" / "pwned-db"
    labels = {"mt_db_instance": "Instance name", "mt_db_name": "Database name",
              "mt_db_user": "Database user for receivers"}
    for i, value in enumerate(hostile_values(marker)):
        for field, label in labels.items():
            form = forms.service_form("database", **{field: value})
            session = stage(ood_site, built_apps / "mt_database", form)
            done, _got = run_before(session, [], user="mtpub")
            assert done.returncode == 1, f"{field}={value!r} was accepted"
            assert f"form field '{label}'" in done.stderr and "fix it in the form" in done.stderr
            assert not marker.exists(), f"{field} value {i} ran a command"
    # Sharing fields are free text and must still arrive unchanged next to valid names.
    value = hostile_values(marker)[0]
    form = forms.service_form("database", **dict.fromkeys(SHARING_FIELDS, value))
    session = stage(ood_site, built_apps / "mt_database", form)
    done, got = run_before(session, sorted(SHARING_FIELDS.values()), user="mtpub")
    assert done.returncode == 0, done.stderr
    assert all(got[v] == value.encode() for v in SHARING_FIELDS.values()), got
    assert not marker.exists()


CLIENT_SHARES = {"jupyter": ("llm", "database"), "gradio": ("llm",), "cloudbeaver": ("database",),
                 "codeserver": ("llm",)}
# Shell-dangerous values the share contract still lets through (it has to: passwords are
# random printable text), published by a real job: each must reach the client's before.sh
# byte for byte and run nothing.
LLM_SHARE = {"host": "node7", "port": "41234", "api_url": "http://node7:41234", "model": "m-1", "models": "m-1"}
DB_SHARE = {"engine": "postgresql", "host": "node8", "port": "45432", "database": "shared", "user": "guest",
            "jdbc_url": "jdbc:postgresql://node8:45432/shared"}


def _valid_hostile_password(marker: Path) -> str:
    return f"$(touch${{IFS}}{marker});|&<>*?~{{x}}%!#@^+=,:"


@pytest.mark.slurm
@pytest.mark.parametrize("kind", sorted(CLIENT_SHARES))
def test_client_before_sh_keeps_dangerous_but_valid_share_values(
    built_apps: Path, ood_site: OodSite, host_slurm: dict[str, str], kind: str
) -> None:
    marker = ood_site.base / "publishers" / f"pwned-{kind}"
    password = _valid_hostile_password(marker)
    jobs: list[str] = []
    try:
        chosen = {}
        for app in CLIENT_SHARES[kind]:
            conn = LLM_SHARE if app == "llm" else {**DB_SHARE, "password": password}
            jobs.append(publish(ood_site, "mtpub", app=app, conn=conn))
            chosen[f"mt_{app}_share"] = jobs[-1]
        session = stage(ood_site, built_apps / f"mt_{kind}", forms.client_form(kind, **chosen), user="mtrecv")
        names = ["MT_LLM_CHOSEN", "MT_DB_CHOSEN", "MT_DB_PASSWORD", "MT_LLM_API_URL"]
        done, got = run_before(session, names, user="mtrecv")
        assert done.returncode == 0, f"{kind}: before.sh failed: {done.stderr}"
        for app in CLIENT_SHARES[kind]:
            assert got.get("MT_LLM_CHOSEN" if app == "llm" else "MT_DB_CHOSEN") == b"yes", (kind, got)
        if "database" in CLIENT_SHARES[kind]:
            assert got["MT_DB_PASSWORD"] == password.encode()
        assert not marker.exists(), f"{kind}: a share value ran a command"
    finally:
        subprocess.run(["scancel", *jobs], check=False)


# Values the old client configuration pasted into files and URLs (finding 1 of the
# hostile-publisher review): a newline in host put options of the publisher's choosing into
# the receiver's MariaDB option file; a JDBC URL carried driver properties to CloudBeaver.
REFUSED = {
    "host with a newline": {"host": "node9\nplugin-dir=/tmp/evil\npager=sh"},
    "password with a quote": {"password": 'x"\npager=/bin/sh'},
    "jdbc_url with properties": {"jdbc_url": "jdbc:mariadb://node9:3306/shared?allowLocalInfile=true"},
    "port out of range": {"port": "70000"},
    "database with a quote": {"database": "shared`; DROP"},
}


@pytest.mark.slurm
def test_hostile_shares_never_reach_a_client(built_apps: Path, ood_site: OodSite, host_slurm: dict[str, str]) -> None:
    """A share breaking the contract is refused by the receiver's initializer: not offered
    in the form, logged once with its reason, and a client launched with its id anyway
    starts without it."""
    base = {**DB_SHARE, "engine": "mariadb", "password": "pw-ok", "jdbc_url": "jdbc:mariadb://node9:3306/shared"}
    jobs = {what: publish_raw(ood_site, "mtpub", app="database", conn={**base, **change})
            for what, change in REFUSED.items()}
    try:
        form = ood_site.run("mtrecv", "4.2.3", "form", "mt_cloudbeaver", apps_dir=built_apps)
        offered = [v for a in form["result"]["attributes"] if a["id"] == "mt_database_share" for _l, v in a["options"]]
        for what, job in jobs.items():
            assert job not in offered, f"{what}: job {job} is offered to the receiver"
            assert any(f"ood-mt: job {job}: rejected: bad-field" in line for line in form["log"]), (what, form["log"])
        session = stage(ood_site, built_apps / "mt_jupyter",
                        forms.client_form("jupyter", mt_database_share=jobs["host with a newline"]), user="mtrecv")
        done, got = run_before(session, ["MT_DB_CHOSEN", "MT_DB_HOST", "MYSQL_HOME"], user="mtrecv")
        assert done.returncode == 0, done.stderr
        assert got["MT_DB_CHOSEN"] == b"gone" and got.get("MT_DB_HOST", b"") == b""
        assert not (session / "my.cnf").exists()
    finally:
        subprocess.run(["scancel", *jobs.values()], check=False)
