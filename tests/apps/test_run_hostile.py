"""Hostile form and share values at RUN time: the rendered before.sh of every app is
executed in bash and each value must arrive byte for byte, with no side effect.

OOD is replaced by tests/harness/ood_job_harness.rb (staging, ERB) and the basic
template's job helpers by doubles/ood_basic_template_test_double.sh; before.sh, the
kit's libraries, bash and base64 are real."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.apps import forms
from tests.apps.before_run import run_before
from tests.apps.ood_harness import stage


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
def test_service_before_sh_keeps_hostile_values_byte_for_byte(built_apps: Path, tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "pwned"
    for i, value in enumerate(hostile_values(marker)):
        fields = {**SERVICE_FIELDS[kind], **SHARING_FIELDS}
        form = forms.service_form(kind, **dict.fromkeys(fields, value))
        if kind == "dashboard":
            form["mt_dashboard_type"] = "command"
        staged = stage(built_apps / f"mt_{kind}", form, tmp_path / "sessions", f"{kind}-{i}")
        done, got = run_before(Path(staged["session_dir"]), sorted(fields.values()))
        assert done.returncode == 0, f"{kind} value {i}: before.sh failed: {done.stderr}"
        for field, var in fields.items():
            assert got.get(var) == value.encode(), f"{kind}: {var} (form field {field}) changed: {got.get(var)!r}"
        assert not marker.exists(), f"{kind} value {i}: a form value ran a command"


def test_database_before_sh_refuses_hostile_names_without_side_effect(built_apps: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    labels = {"mt_db_instance": "Instance name", "mt_db_name": "Database name",
              "mt_db_user": "Database user for receivers"}
    for i, value in enumerate(hostile_values(marker)):
        for field, label in labels.items():
            form = forms.service_form("database", **{field: value})
            staged = stage(built_apps / "mt_database", form, tmp_path / "sessions", f"db-{i}-{field}")
            done, _got = run_before(Path(staged["session_dir"]), [])
            assert done.returncode == 1, f"{field}={value!r} was accepted"
            assert f"form field '{label}'" in done.stderr and "fix it in the form" in done.stderr
            assert not marker.exists(), f"{field} value {i} ran a command"
    # Sharing fields are free text and must still arrive unchanged next to valid names.
    value = hostile_values(marker)[0]
    form = forms.service_form("database", **dict.fromkeys(SHARING_FIELDS, value))
    staged = stage(built_apps / "mt_database", form, tmp_path / "sessions", "db-sharing")
    done, got = run_before(Path(staged["session_dir"]), sorted(SHARING_FIELDS.values()), env={"HOME": str(tmp_path)})
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


@pytest.mark.parametrize("kind", sorted(CLIENT_SHARES))
def test_client_before_sh_keeps_hostile_share_values_byte_for_byte(
    built_apps: Path, tmp_path: Path, kind: str
) -> None:
    marker = tmp_path / "pwned"
    for i, value in enumerate(hostile_values(marker)):
        shares = {f"{100 + n}": {"label": f"{app} share", "app": app, "preset": "debug", "owner": "mtpub",
                                 "group": "mtclass", "mode": "form", "conn": dict.fromkeys(CLIENT_VARS[app], value)}
                  for n, app in enumerate(CLIENT_SHARES[kind])}
        form = forms.client_form(kind, **{f"mt_{app}_share": f"{100 + n}" for n, app in enumerate(CLIENT_SHARES[kind])})
        staged = stage(built_apps / f"mt_{kind}", form, tmp_path / "sessions", f"{kind}-{i}", shares)
        names = [v for app in CLIENT_SHARES[kind] for v in CLIENT_VARS[app].values()]
        done, got = run_before(Path(staged["session_dir"]), names)
        assert done.returncode == 0, f"{kind} value {i}: before.sh failed: {done.stderr}"
        for name in names:
            assert got.get(name) == value.encode(), f"{kind}: {name} changed: {got.get(name)!r}"
        assert not marker.exists(), f"{kind} value {i}: a share value ran a command"
