"""The database service as real Slurm jobs of mtpub (PostgreSQL and MariaDB), launched by OOD's
own code: it accepts the shared credentials over the network, stops cleanly on the walltime
warning (SIGTERM to the batch shell only), and data survives that and a restart."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.apps import forms
from tests.apps.slurm_jobs import connection, job_state, render_service, shared_render_dir, submit, wait_for
from tests.ood.oodsite import OodSite

pytestmark = pytest.mark.slurm

CLIENTS = {
    "postgresql": lambda c, pw, sql: (["psql", "-X", "-At", "-h", c["host"], "-p", c["port"], "-U", c["db_user"],
                                       "-d", c["db_name"], "-c", sql], {"PGPASSWORD": pw}),
    "mariadb": lambda c, pw, sql: (["mariadb", "--no-defaults", "-N", "-h", "127.0.0.1", "-P", c["port"], "-u",
                                    c["db_user"], c["db_name"], "-e", sql], {"MYSQL_PWD": pw}),
}


@pytest.mark.parametrize("engine", ["postgresql:15", "mariadb:10.11"])
def test_database_job_shares_and_keeps_data(
    host_slurm: dict[str, str], run_as: Any, ood_site: OodSite, engine: str
) -> None:
    name = engine.split(":")[0]
    work = shared_render_dir()
    instance = "t" + secrets.token_hex(4)
    home = Path("~mtpub").expanduser()
    inst_dir = home / "ood-mt-databases" / f"{name}-{instance}"
    try:
        app = render_service("database", work)
        form = forms.service_form("database", mt_engine=engine, mt_db_instance=instance, mt_share_audience="user")

        job, session = submit(ood_site, "mtpub", app, form)
        try:
            wait_for(lambda: (inst_dir / "run" / "ready").exists(), 180, f"{name} ready (job {job})")
        except AssertionError as exc:  # keep the evidence: the finally below removes inst_dir
            secret = (inst_dir / "password").read_text().strip() if (inst_dir / "password").exists() else None
            logs = {p.name: "\n".join(line for line in p.read_text(errors="replace").splitlines()[-40:]
                                      if not secret or secret not in line)
                    for p in sorted((inst_dir / "log").glob("*"))}
            output = (session / "output.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"{exc}\n--- job output ---\n{output}\n--- {inst_dir}/log ---\n{logs}") from exc
        wait_for(lambda: "mt_share_status" in connection(session), 60, "the publish attempt")
        conn = connection(session)
        # "My user only": the per-user key is created on first use, so this publishes for real.
        assert conn["mt_share_status"] == "shared with you only", conn["mt_share_status"]
        name_now = run_as("root", ["squeue", "--noheader", "-j", job, "-O", "Name:1024"]).stdout.strip()
        assert name_now.startswith("mt1:~mtpub:1:")
        assert oct(inst_dir.stat().st_mode & 0o777) == "0o700"
        assert oct((inst_dir / "password").stat().st_mode & 0o777) == "0o600"
        password = (inst_dir / "password").read_text().strip()
        assert password not in (session / "output.log").read_text()
        assert password not in (session / "connection.yml").read_text()

        # Another user connects over TCP with the credentials the share carries.
        argv, env = CLIENTS[name](conn, password, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('ü-42');")
        made = run_as("mtrecv", argv, env=env)
        assert made.returncode == 0, made.stderr
        argv, env = CLIENTS[name](conn, "wrong-password", "SELECT 1")
        assert run_as("mtrecv", argv, env=env).returncode != 0

        # The walltime warning (--signal=B:TERM@120) reaches only the batch shell, which OOD's
        # job script does not trap: the kit's handler (installed by before.sh) must stop the
        # server cleanly. `scancel -b -s TERM` sends exactly that signal to exactly that shell.
        run_as("mtpub", ["scancel", "-b", "-s", "TERM", job])
        wait_for(lambda: job_state(run_as, job) == "", 90, f"job {job} to end")
        output = (session / "output.log").read_text()
        assert "ood-mt: SIGTERM: stopping the service cleanly" in output, output
        assert "database stopped cleanly" in output, output
        # slurmdbd records the end a moment after squeue stops listing the job (seen RUNNING here
        # under load, COMPLETED a second later): wait for a final state, then judge it.
        state: list[str] = []

        def recorded() -> bool:
            state[:] = run_as("root", ["sacct", "-n", "-X", "-j", job, "-o", "State%20,ExitCode"]).stdout.split()
            return bool(state) and state[0] not in ("PENDING", "RUNNING", "COMPLETING")

        wait_for(recorded, 60, f"slurmdbd to record the end of job {job}")
        assert state == ["COMPLETED", "0:0"], f"job {job} ended {state}, not cleanly:\n{output}"

        job2, session2 = submit(ood_site, "mtpub", app, form)
        wait_for(lambda: (inst_dir / "run" / "ready").exists() and "mt_share_status" in connection(session2), 180,
                 f"{name} ready again (job {job2})")
        conn2 = connection(session2)
        # A new password at every start: the first job's no longer opens the second.
        password2 = (inst_dir / "password").read_text().strip()
        assert password2 != password
        argv, env = CLIENTS[name](conn2, password, "SELECT 1")
        refused = run_as("mtrecv", argv, env=env)
        assert refused.returncode != 0, f"job {job2} accepts the password of job {job}"
        argv, env = CLIENTS[name](conn2, password2, "SELECT v FROM kept;")
        got = run_as("mtrecv", argv, env=env)
        assert got.returncode == 0, got.stderr
        assert got.stdout.strip() == "ü-42"
        assert password2 not in (session2 / "output.log").read_text()
        run_as("mtpub", ["scancel", job2])
        wait_for(lambda: job_state(run_as, job2) == "", 90, f"job {job2} to end")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(inst_dir, ignore_errors=True)


def test_database_that_cannot_start_says_why_in_the_job_output(host_slurm: dict[str, str], run_as: Any,
                                                                ood_site: OodSite) -> None:
    """A broken data directory (system tables missing): the job fails, and its output carries
    the end of the server's own log, without the password."""
    work = shared_render_dir()
    instance = "t" + secrets.token_hex(4)
    inst_dir = Path("~mtpub").expanduser() / "ood-mt-databases" / f"mariadb-{instance}"
    try:
        broken = run_as("mtpub", ["mkdir", "-p", "-m", "0700", str(inst_dir / "data" / "mysql")])
        assert broken.returncode == 0, broken.stderr
        app = render_service("database", work)
        form = forms.service_form("database", mt_engine="mariadb:10.11", mt_db_instance=instance,
                                  mt_share_audience="user")
        job, session = submit(ood_site, "mtpub", app, form)
        # The job ends as soon as the server gives up (after.sh stops waiting), not after 300 s.
        wait_for(lambda: job_state(run_as, job) == "", 60, f"job {job} to end")
        output = (session / "output.log").read_text()
        assert "ood-mt: database: the server exited while starting" in output, output
        assert f"ood-mt: database: last lines of {inst_dir}/log/server.err:" in output, output
        server_log = (inst_dir / "log" / "server.err").read_text()
        last_line = server_log.strip().splitlines()[-1]
        assert last_line in output, f"the server log's last line is missing from the job output:\n{output}"
        assert (inst_dir / "password").read_text().strip() not in output
        assert not (inst_dir / "run" / "ready").exists()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(inst_dir, ignore_errors=True)
