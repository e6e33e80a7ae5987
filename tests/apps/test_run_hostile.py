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
from tests.ood.oodsite import OodSite, publish


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
                  "mt_share_mode": "MT_SHARE_MODE", "mt_share_audience": "MT_SHARE_AUDIENCE"}


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


CLIENT_VARS = {  # share conn key -> variable the client's before.sh sets
    "llm": {"host": "MT_LLM_HOST", "port": "MT_LLM_PORT", "api_url": "MT_LLM_API_URL", "model": "MT_LLM_MODEL",
            "models": "MT_LLM_MODELS"},
    "database": {"engine": "MT_DB_ENGINE", "host": "MT_DB_HOST", "port": "MT_DB_PORT", "database": "MT_DB_NAME",
                 "user": "MT_DB_USER", "password": "MT_DB_PASSWORD", "jdbc_url": "MT_DB_JDBC_URL"},
}
CLIENT_SHARES = {"jupyter": ("llm", "database"), "gradio": ("llm",), "cloudbeaver": ("database",),
                 "codeserver": ("llm",)}


@pytest.mark.slurm
@pytest.mark.parametrize("kind", sorted(CLIENT_SHARES))
def test_client_before_sh_keeps_hostile_share_values_byte_for_byte(
    built_apps: Path, ood_site: OodSite, host_slurm: dict[str, str], kind: str
) -> None:
    marker = ood_site.base / "publishers" / f"pwned-{kind}"
    jobs: list[str] = []
    try:
        for i, value in enumerate(hostile_values(marker)):
            chosen = {}
            for app in CLIENT_SHARES[kind]:
                job = publish(ood_site, "mtpub", app=app, conn=dict.fromkeys(CLIENT_VARS[app], value))
                jobs.append(job)
                chosen[f"mt_{app}_share"] = job
            session = stage(ood_site, built_apps / f"mt_{kind}", forms.client_form(kind, **chosen), user="mtrecv")
            names = [v for app in CLIENT_SHARES[kind] for v in CLIENT_VARS[app].values()]
            done, got = run_before(session, names, user="mtrecv")
            assert done.returncode == 0, f"{kind} value {i}: before.sh failed: {done.stderr}"
            for name in names:
                assert got.get(name) == value.encode(), f"{kind}: {name} changed: {got.get(name)!r}"
            assert not marker.exists(), f"{kind} value {i}: a share value ran a command"
    finally:
        subprocess.run(["scancel", *jobs], check=False)
