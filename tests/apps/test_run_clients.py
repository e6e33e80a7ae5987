"""Client apps at run time: each client job (before.sh + script.sh, as `ood-mt build` ships
them) started with an LLM share and a database share (PostgreSQL, MariaDB) chosen through
tests/harness/ood_job_harness.rb's MultiTenantHarness (a stand-in for the initializer).

The client programs (jupyter, cloudbeaver, code-server, the Gradio python) are replaced by
tests/apps/doubles/client_command_test_double, which records what it was started with;
the job scripts, bash and python3 that write the settings files are real."""

from __future__ import annotations

import base64
import json
import secrets
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.apps import forms
from tests.apps.before_run import run_client_job
from tests.apps.ood_harness import stage

PASSWORD = "pw-" + secrets.token_hex(12)
LLM = {"host": "node7", "port": "41234", "api_url": "http://node7:41234", "model": "qwen2.5-coder:1.5b",
       "models": "llama3.2:1b,qwen2.5-coder:1.5b", "mt_preset": "api"}
DATABASES = {
    "postgresql": {"engine": "postgresql", "host": "node8", "port": "45432", "database": "shared", "user": "guest",
                   "password": PASSWORD, "jdbc_url": "jdbc:postgresql://node8:45432/shared", "mt_preset": "connection"},
    "mariadb": {"engine": "mariadb", "host": "node9", "port": "43306", "database": "shared", "user": "guest",
                "password": PASSWORD, "jdbc_url": "jdbc:mariadb://node9:43306/shared", "mt_preset": "connection"},
}
DB_VARS = {
    "postgresql": ["PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD"],
    "mariadb": ["MYSQL_HOST", "MYSQL_TCP_PORT", "MYSQL_DATABASE", "MYSQL_USER", "MYSQL_PWD"],
}


def _shares(db_engine: str | None, llm: dict[str, str]) -> dict[str, Any]:
    shares: dict[str, Any] = {"201": {"label": "LLM from mtpub (job 201)", "app": "llm", "preset": "api",
                                      "owner": "mtpub", "group": "mtclass", "mode": "form", "conn": llm}}
    if db_engine:
        shares["202"] = {"label": f"{db_engine} from mtpub (job 202)", "app": "database", "preset": "connection",
                         "owner": "mtpub", "group": "mtclass", "mode": "form", "conn": DATABASES[db_engine]}
    return shares


def _run(built_apps: Path, tmp_path: Path, kind: str, form: dict[str, str],
         db_engine: str | None, llm: dict[str, str] = LLM) -> tuple[dict[str, Any], Path, str]:
    staged = stage(built_apps / f"mt_{kind}", forms.client_form(kind, **form), tmp_path / "sessions", kind,
                   _shares(db_engine, llm))
    session = Path(staged["session_dir"])
    record = tmp_path / "record.json"
    done = run_client_job(session, record)
    assert done.returncode == 0, f"{kind}: the job failed: {done.stderr}"
    assert record.exists(), f"{kind}: the client program was not started: {done.stdout}{done.stderr}"
    return json.loads(record.read_text()), session, done.stdout + done.stderr


def _assert_secret_kept(session: Path, output: str) -> None:
    """The password is in no file others can read, and never printed."""
    assert PASSWORD not in output
    encoded = base64.b64encode(PASSWORD.encode())
    for path in [session, *session.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir():
            assert path == session or mode & 0o077 == 0 or not any(path.iterdir()), f"{path} is {oct(mode)}"
            continue
        data = path.read_bytes()
        if PASSWORD.encode() in data or encoded in data:
            assert mode & 0o077 == 0, f"{path.relative_to(session)} holds the password and is {oct(mode)}"
    assert stat.S_IMODE(session.stat().st_mode) == 0o700


def test_jupyter_with_llm_and_postgresql(built_apps: Path, tmp_path: Path) -> None:
    rec, session, out = _run(built_apps, tmp_path, "jupyter", {"mt_llm_share": "201", "mt_database_share": "202"},
                             "postgresql")
    env = rec["env"]
    assert env["OLLAMA_HOST"] == "http://node7:41234"
    assert [env[v] for v in DB_VARS["postgresql"]] == ["node8", "45432", "shared", "guest", PASSWORD]
    assert not any(v in env for v in DB_VARS["mariadb"]), "MariaDB variables set for a PostgreSQL share"
    assert rec["argv"][1:] == ["lab", f"--config={session}/jupyter_server_config.py"]
    assert stat.S_IMODE((session / "jupyter_server_config.py").stat().st_mode) == 0o600
    _assert_secret_kept(session, out)


def test_jupyter_with_mariadb_writes_a_private_option_file(built_apps: Path, tmp_path: Path) -> None:
    rec, session, out = _run(built_apps, tmp_path, "jupyter", {"mt_llm_share": "", "mt_database_share": "202"},
                             "mariadb")
    env = rec["env"]
    assert [env[v] for v in DB_VARS["mariadb"]] == ["node9", "43306", "shared", "guest", PASSWORD]
    assert not any(v in env for v in DB_VARS["postgresql"])
    assert "OLLAMA_HOST" not in env
    assert env["MYSQL_HOME"] == str(session)
    my_cnf = session / "my.cnf"
    assert stat.S_IMODE(my_cnf.stat().st_mode) == 0o600
    lines = my_cnf.read_text().splitlines()
    for expected in ("[client]", "host=node9", "port=43306", "user=guest", f'password="{PASSWORD}"',
                     "[mysql]", "database=shared"):
        assert expected in lines, f"my.cnf lacks {expected!r}"
    _assert_secret_kept(session, out)


def test_gradio_gets_api_and_model_from_the_share(built_apps: Path, tmp_path: Path) -> None:
    rec, session, out = _run(built_apps, tmp_path, "gradio", {"mt_llm_share": "201"}, None)
    assert "using the shared LLM at http://node7:41234 (model qwen2.5-coder:1.5b)" in out
    env = rec["env"]
    assert (env["MT_LLM_API_URL"], env["MT_LLM_MODEL"]) == ("http://node7:41234", "qwen2.5-coder:1.5b")
    chat = (Path(rec["cwd"]) / rec["argv"][1]).resolve()
    assert chat == (session / "mt_gradio_chat.py").resolve() and chat.is_file()
    assert env["MT_GRADIO_ROOT_PATH"] == "/rnode/node-test-double/4711"


def test_gradio_takes_the_first_model_when_the_share_names_none(built_apps: Path, tmp_path: Path) -> None:
    no_model = {k: v for k, v in LLM.items() if k != "model"}
    rec, _session, _out = _run(built_apps, tmp_path, "gradio", {"mt_llm_share": "201"}, None, no_model)
    assert rec["env"]["MT_LLM_MODEL"] == "llama3.2:1b"


@pytest.mark.parametrize("engine", sorted(DATABASES))
def test_cloudbeaver_data_source_describes_the_share(built_apps: Path, tmp_path: Path, engine: str) -> None:
    rec, session, out = _run(built_apps, tmp_path, "cloudbeaver", {"mt_database_share": "202"}, engine)
    workspace = session / "workspace"
    assert rec["env"]["CLOUDBEAVER_WORKSPACE_LOCATION"] == str(workspace)
    assert rec["env"]["CLOUDBEAVER_WEB_SERVER_PORT"] == "4711"
    sources = workspace / "GlobalConfiguration" / ".dbeaver" / "data-sources.json"
    assert stat.S_IMODE(sources.stat().st_mode) == 0o600
    doc = json.loads(sources.read_text())
    (source,) = doc["connections"].values()
    share = DATABASES[engine]
    assert source["provider"] == {"postgresql": "postgresql", "mariadb": "mysql"}[engine]
    assert source["configuration"] == {
        "host": share["host"], "port": share["port"], "database": share["database"], "url": share["jdbc_url"],
        "type": "dev", "auth-model": "native", "user": share["user"], "password": PASSWORD}
    assert "PGPASSWORD" not in rec["env"] and "MYSQL_PWD" not in rec["env"]
    _assert_secret_kept(session, out)


def test_codeserver_sets_cline_and_continue_to_the_shared_ollama(built_apps: Path, tmp_path: Path) -> None:
    rec, session, out = _run(built_apps, tmp_path, "codeserver", {"mt_llm_share": "201"}, None)
    settings_file = session / "code-server" / "User" / "settings.json"
    continue_file = session / "continue" / "config.json"
    assert json.loads(settings_file.read_text()) == {
        "cline.apiProvider": "ollama", "cline.ollamaBaseUrl": "http://node7:41234",
        "cline.ollamaModelId": "qwen2.5-coder:1.5b"}
    (model,) = json.loads(continue_file.read_text())["models"]
    assert (model["provider"], model["apiBase"], model["model"]) == ("ollama", "http://node7:41234",
                                                                    "qwen2.5-coder:1.5b")
    assert rec["env"]["CONTINUE_GLOBAL_DIR"] == str(session / "continue")
    assert "--user-data-dir" in rec["argv"] and str(session / "code-server") in rec["argv"]
    # code-server's password reaches it in the environment, never in argv.
    assert rec["env"]["PASSWORD"] == rec["env"]["password"]
    assert rec["env"]["password"] not in " ".join(rec["argv"])
    assert rec["env"]["password"] not in out


GUIDANCE = {
    "jupyter": ["no LLM share chosen", "no database share chosen"],
    "gradio": ["no LLM share chosen", "this chat needs an LLM share"],
    "cloudbeaver": ["no database share chosen"],
    "codeserver": ["no LLM share chosen"],
}


@pytest.mark.parametrize("kind", sorted(GUIDANCE))
def test_clients_start_without_a_share_and_say_how_to_get_one(built_apps: Path, tmp_path: Path, kind: str) -> None:
    form = dict.fromkeys(forms.CLIENT_FORMS[kind], "")
    rec, session, out = _run(built_apps, tmp_path, kind, form, "postgresql")
    for words in GUIDANCE[kind]:
        assert words in out, f"{kind}: the job does not say {words!r}: {out}"
    assert "ask a publisher to share" in out
    env = rec["env"]
    assert not any(v in env for v in ["OLLAMA_HOST", *DB_VARS["postgresql"], *DB_VARS["mariadb"]]), kind
    assert not (session / "my.cnf").exists()
    assert not (session / "workspace" / "GlobalConfiguration" / ".dbeaver" / "data-sources.json").exists()
    assert not (session / "code-server" / "User" / "settings.json").exists()
