"""Client apps at run time: each client, as `ood-mt build` ships it, launched by OOD's own
code as mtrecv (form, Session#save, ood_core's Slurm adapter) on the real Slurm, with an LLM
share and a database share (PostgreSQL, MariaDB) chosen in the form. The shares are real:
jobs of mtpub published them with the kit's bash library, and the kit's initializer, loaded
into OOD, verified them and answers the form's choice.

The client programs (jupyter, cloudbeaver, code-server, the Gradio python) are replaced by
tests/apps/doubles/client_command_test_double, which records what it was started with;
OOD's job script, the kit's before.sh/script.sh, bash and python3 that write the settings
files are real."""

from __future__ import annotations

import base64
import json
import secrets
import stat
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.apps import forms
from tests.apps.slurm_jobs import connection, submit, wait_for
from tests.ood.oodsite import OodSite, publish, squeue_field

pytestmark = pytest.mark.slurm

PASSWORD = "pw-" + secrets.token_hex(12)
GATE_SECRET = secrets.token_urlsafe(32)
LLM_URL = f"http://node7:41234/{GATE_SECRET}"
LLM = {"host": "node7", "port": "41234", "gate_secret": GATE_SECRET, "model": "qwen2.5-coder:1.5b",
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
RECORD = "client_test_double_record.json"


@pytest.fixture(scope="module")
def shares(ood_site: OodSite, host_slurm: dict[str, str]) -> Iterator[dict[str, str]]:
    """Real shares of mtpub for mtclass: {"llm", "llm_no_model", "postgresql", "mariadb"} -> job id."""
    jobs: dict[str, str] = {}
    try:
        jobs["llm"] = publish(ood_site, "mtpub", app="llm", conn=LLM, preset="api")
        jobs["llm_no_model"] = publish(ood_site, "mtpub", app="llm", preset="api",
                                       conn={k: v for k, v in LLM.items() if k != "model"})
        for engine, conn in DATABASES.items():
            jobs[engine] = publish(ood_site, "mtpub", app="database", conn=conn, preset="connection")
        yield jobs
    finally:
        if jobs:
            subprocess.run(["scancel", *jobs.values()], check=False)


def _run(ood_site: OodSite, built_apps: Path, kind: str, form: dict[str, str]) -> tuple[dict[str, Any], Path, str]:
    """Launch client KIND as mtrecv through OOD, wait for the job to end; return (what the
    client program was started with, the staged root, the job output)."""
    job, session = submit(ood_site, "mtrecv", built_apps / f"mt_{kind}", forms.client_form(kind, **form))
    wait_for(lambda: squeue_field(job, "%T") == "", 90, f"{kind} client job {job} to end")
    output = (session / "output.log").read_text()
    record = session / RECORD
    assert record.exists(), f"{kind}: the client program was not started (job {job}):\n{output}"
    assert "Permission denied" not in output, output
    return json.loads(record.read_text()), session, output


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


def test_jupyter_with_llm_and_postgresql(
    built_apps: Path, ood_site: OodSite, shares: dict[str, str]
) -> None:
    rec, session, out = _run(ood_site, built_apps, "jupyter",
                             {"mt_llm_share": shares["llm"], "mt_database_share": shares["postgresql"]})
    env = rec["env"]
    assert env["OLLAMA_HOST"] == LLM_URL
    assert GATE_SECRET not in out, "the job's output shows the LLM's gate secret"
    assert [env[v] for v in DB_VARS["postgresql"]] == ["node8", "45432", "shared", "guest", PASSWORD]
    assert not any(v in env for v in DB_VARS["mariadb"]), "MariaDB variables set for a PostgreSQL share"
    assert rec["argv"][1:] == ["lab", f"--config={session}/jupyter_server_config.py"]
    assert stat.S_IMODE((session / "jupyter_server_config.py").stat().st_mode) == 0o600
    _assert_secret_kept(session, out)


def test_jupyter_with_mariadb_writes_a_private_option_file(
    built_apps: Path, ood_site: OodSite, shares: dict[str, str]
) -> None:
    rec, session, out = _run(ood_site, built_apps, "jupyter",
                             {"mt_llm_share": "", "mt_database_share": shares["mariadb"]})
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
    # What the receiver's real mariadb client reads from it: exactly these settings.
    seen = subprocess.run(["/usr/sbin/runuser", "-u", "mtrecv", "--", "mariadb", "--print-defaults"],
                          capture_output=True, text=True, check=True,
                          env={"MYSQL_HOME": str(session), "PATH": "/usr/bin:/bin"})
    args = seen.stdout.splitlines()[-1].split()
    assert {a.split("=", 1)[0] for a in args} <= {"--socket", "--host", "--port", "--user", "--password", "--database"}
    for expected in ("--host=node9", "--port=43306", "--user=guest", f"--password={PASSWORD}", "--database=shared"):
        assert expected in args, f"mariadb reads {args}"
    _assert_secret_kept(session, out)


def test_gradio_gets_api_and_model_from_the_share(
    built_apps: Path, ood_site: OodSite, shares: dict[str, str]
) -> None:
    rec, session, out = _run(ood_site, built_apps, "gradio", {"mt_llm_share": shares["llm"]})
    assert "using the shared LLM on node7:41234 (model qwen2.5-coder:1.5b)" in out
    assert GATE_SECRET not in out, "the job's output shows the LLM's gate secret"
    env = rec["env"]
    assert (env["MT_LLM_API_URL"], env["MT_LLM_MODEL"]) == (LLM_URL, "qwen2.5-coder:1.5b")
    chat = (Path(rec["cwd"]) / rec["argv"][1]).resolve()
    assert chat == (session / "mt_gradio_chat.py").resolve() and chat.is_file()
    mine = connection(session)
    assert env["MT_GRADIO_ROOT_PATH"] == f"/rnode/{mine['host']}/{mine['port']}"


def test_gradio_takes_the_first_model_when_the_share_names_none(
    built_apps: Path, ood_site: OodSite, shares: dict[str, str]
) -> None:
    rec, _session, _out = _run(ood_site, built_apps, "gradio", {"mt_llm_share": shares["llm_no_model"]})
    assert rec["env"]["MT_LLM_MODEL"] == "llama3.2:1b"


@pytest.mark.parametrize("engine", sorted(DATABASES))
def test_cloudbeaver_data_source_describes_the_share(built_apps: Path, ood_site: OodSite, shares: dict[str, str],
                                                     engine: str) -> None:
    rec, session, out = _run(ood_site, built_apps, "cloudbeaver", {"mt_database_share": shares[engine]})
    workspace = session / "workspace"
    assert rec["env"]["CLOUDBEAVER_WORKSPACE_LOCATION"] == str(workspace)
    assert rec["env"]["CLOUDBEAVER_WEB_SERVER_PORT"] == connection(session)["port"]
    # The share is a private connection of the receiver's own CloudBeaver user, not a global one.
    sources = workspace / "user-projects" / "cbadmin" / ".dbeaver" / "data-sources.json"
    assert not (workspace / "GlobalConfiguration").exists()
    assert stat.S_IMODE(sources.stat().st_mode) == 0o600
    assert stat.S_IMODE(sources.parent.stat().st_mode) == 0o700
    doc = json.loads(sources.read_text())
    (source,) = doc["connections"].values()
    share = DATABASES[engine]
    assert source["provider"] == {"postgresql": "postgresql", "mariadb": "mysql"}[engine]
    assert source["configuration"] == {
        "host": share["host"], "port": share["port"], "database": share["database"], "url": share["jdbc_url"],
        "type": "dev", "auth-model": "native", "user": share["user"], "password": PASSWORD}
    assert "PGPASSWORD" not in rec["env"] and "MYSQL_PWD" not in rec["env"]
    _assert_secret_kept(session, out)
    _assert_cloudbeaver_admin(rec, session, out)


def _assert_cloudbeaver_admin(rec: dict[str, Any], session: Path, out: str) -> None:
    """CloudBeaver starts with its own administrator: a fresh password per session, in its
    initial-data.conf (0600) and its environment (automatic first-start configuration, no setup
    wizard), shown on the receiver's own card (connection.yml, 0600), never in argv or output."""
    admin_password = connection(session)["password"]
    assert len(admin_password) >= 12 and any(c.isupper() for c in admin_password)
    assert any(c.islower() for c in admin_password) and any(c.isdigit() for c in admin_password)
    initial = Path(rec["env"]["CLOUDBEAVER_DB_INITIAL_DATA"])
    assert initial == session / "workspace" / "conf" / "initial-data.conf"
    assert stat.S_IMODE(initial.stat().st_mode) == 0o600
    doc = json.loads(initial.read_text())
    assert (doc["adminName"], doc["adminPassword"]) == ("cbadmin", admin_password)
    assert {t["subjectId"]: t["permissions"] for t in doc["teams"]} == {"admin": ["admin"], "user": []}
    env = rec["env"]
    assert (env["CB_ADMIN_NAME"], env["CB_ADMIN_PASSWORD"]) == ("cbadmin", admin_password)
    assert env["CB_SERVER_URL"] == f"http://{connection(session)['host']}:{connection(session)['port']}/"
    assert env["CLOUDBEAVER_APP_ANONYMOUS_ACCESS_ENABLED"] == "false"
    assert admin_password not in " ".join(rec["argv"])
    assert admin_password not in out
    assert stat.S_IMODE((session / "connection.yml").stat().st_mode) == 0o600
    for path in session.rglob("*"):
        if path.is_file() and admin_password.encode() in path.read_bytes():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, f"{path} holds the admin password"


def test_codeserver_sets_cline_and_continue_to_the_shared_ollama(
    built_apps: Path, ood_site: OodSite, shares: dict[str, str]
) -> None:
    rec, session, out = _run(ood_site, built_apps, "codeserver", {"mt_llm_share": shares["llm"]})
    settings_file = session / "code-server" / "User" / "settings.json"
    continue_file = session / "continue" / "config.json"
    assert json.loads(settings_file.read_text()) == {
        "cline.apiProvider": "openai", "cline.openAiBaseUrl": f"{LLM_URL}/v1", "cline.openAiApiKey": "ollama",
        "cline.openAiModelId": "qwen2.5-coder:1.5b"}
    (model,) = json.loads(continue_file.read_text())["models"]
    assert (model["provider"], model["apiBase"], model["model"]) == ("ollama", LLM_URL,
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
def test_clients_start_without_a_share_and_say_how_to_get_one(built_apps: Path, ood_site: OodSite, kind: str) -> None:
    form = dict.fromkeys(forms.CLIENT_FORMS[kind], "")
    rec, session, out = _run(ood_site, built_apps, kind, form)
    for words in GUIDANCE[kind]:
        assert words in out, f"{kind}: the job does not say {words!r}: {out}"
    assert "ask a publisher to share" in out
    env = rec["env"]
    assert not any(v in env for v in ["OLLAMA_HOST", *DB_VARS["postgresql"], *DB_VARS["mariadb"]]), kind
    assert not (session / "my.cnf").exists()
    assert not list((session / "workspace").rglob("data-sources.json"))
    if kind == "cloudbeaver":
        _assert_cloudbeaver_admin(rec, session, out)
    assert not (session / "code-server" / "User" / "settings.json").exists()
