"""The database service's credentials on the real Slurm (issue 12, items 3 and 4): jobs of mtpub
launched by OOD's own code, receivers' cards written by the kit's initializer inside OOD.

- a member of an earlier audience (mtrecv, share #1 to group mtclass) gets nothing from the next
  job on the same instance shared with the publisher only: not with share #1's details, not with
  the card's connection.yml left from before, not at the new host and port;
- an outsider (mtout), with what anyone can read (squeue shows the node; the port can be scanned),
  cannot log in: no password, empty or default passwords, the publisher's own login or the
  engine's administrator over TCP;
- the rotate operation (mt_db_rotate in the session directory) while the job runs: the old
  password fails, the re-published share (decrypted here, and on the receiver's card) carries the
  new one, which works; the job goes on and still stops cleanly."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml

from ood_mt import codec, keys
from tests.apps import forms
from tests.apps.slurm_jobs import connection, job_state, job_token, submit, wait_for
from tests.ood.oodsite import KEY_VERSION, OOD_VERSIONS, TENANT_GROUP, OodSite

pytestmark = pytest.mark.slurm

ENGINES = ["postgresql:15", "mariadb:10.11"]


def login(run_as: Any, user: str, engine: str, host: str, port: str, db_user: str, password: Optional[str],
          database: str = "shared") -> bool:
    """Whether Unix USER logs in over TCP at HOST:PORT as DB_USER with PASSWORD (None: no password
    at all). The password travels in the client's environment, never in argv."""
    if engine == "postgresql":
        argv = ["psql", "-X", "-At", "-w", "-h", host, "-p", port, "-U", db_user, "-d", database, "-c", "SELECT 1"]
        env = {"PGCONNECT_TIMEOUT": "5", **({"PGPASSWORD": password} if password is not None else {})}
    else:
        argv = ["mariadb", "--no-defaults", "--protocol=TCP", "--connect-timeout=5", "-N", "-h", host, "-P", port,
                "-u", db_user, database, "-e", "SELECT 1"]
        env = {"MYSQL_PWD": password} if password is not None else {}
    done = run_as(user, argv, env=env, timeout=30)
    return bool(done.returncode == 0 and done.stdout.strip() == "1")


def _new_instance(engine: str) -> tuple[str, str, Path]:
    """(engine name, a fresh instance name, its directory under mtpub's data root)."""
    name = engine.split(":")[0]
    instance = "t" + secrets.token_hex(4)
    return name, instance, Path("~mtpub").expanduser() / "ood-mt-databases" / f"{name}-{instance}"


def _start(ood_site: OodSite, inst_dir: Path, form: dict[str, Any]) -> tuple[str, Path]:
    """Launch the site's mt_database (built with the site's own key directory) as mtpub with FORM;
    return (job id, session dir) once it is ready and has published."""
    job, session = submit(ood_site, "mtpub", ood_site.apps / "mt_database", form)

    def evidence() -> str:
        out = session / "output.log"
        return out.read_text(errors="replace")[-3000:] if out.exists() else "(no output yet)"

    try:
        wait_for(lambda: (inst_dir / "run" / "ready").exists() and "mt_share_status" in connection(session), 240,
                 f"job {job} ready and published")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{evidence()}") from exc
    return job, session


def _stop(run_as: Any, job: str) -> None:
    run_as("root", ["scancel", job])
    wait_for(lambda: job_state(run_as, job) == "", 90, f"job {job} to end")


def _card(ood_site: OodSite, user: str, job: str) -> dict[str, Any]:
    cards = {s["job_id"]: s for s in ood_site.sessions(user, OOD_VERSIONS[0])}
    assert job in cards, f"{user} has no card for job {job}: {sorted(cards)}"
    return cards[job]


def _shared_password(ood_site: OodSite, run_as: Any, job: str) -> str:
    group_key = keys.derive_group_key(ood_site.master, TENANT_GROUP, KEY_VERSION)
    share = codec.decode(job_token(run_as, job), group_key=group_key, jobid=job, owner="mtpub")
    return str(share["conn"]["password"])


def _sacct_state(run_as: Any, job: str) -> list[str]:
    return list(run_as("root", ["sacct", "-n", "-X", "-j", job, "-o", "State%20,ExitCode"]).stdout.split())


def _assert_auth_settings(run_as: Any, engine: str, inst_dir: Path, db_user: str) -> None:
    """Over the network only the receivers' user, only with a password: PostgreSQL's pg_hba has
    no trust/peer/ident host line; MariaDB has no anonymous account and nobody else at '%'."""
    if engine == "postgresql":
        lines = [line.split() for line in (inst_dir / "pgdata" / "pg_hba.conf").read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
        assert ["local", "all", "all", "trust"] in lines
        hosts = [line for line in lines if line[0] != "local"]
        assert hosts and all(line[0] == "host" and line[2] == f'"{db_user}"' and line[-1] == "scram-sha-256"
                             for line in hosts), lines
    else:
        got = run_as("mtpub", ["mariadb", "--no-defaults", "-S", str(inst_dir / "run" / "mysqld.sock"), "-u", "mtpub",
                               "-N", "-e", "SELECT CONCAT(user, '@', host, ' ', plugin) FROM mysql.user"])
        assert got.returncode == 0, got.stderr
        accounts = got.stdout.split("\n")
        assert not [a for a in accounts if a.startswith("@")], f"anonymous accounts: {accounts}"
        assert [a.split()[0] for a in accounts if "@%" in a] == [f"{db_user}@%"], accounts


def _open_session(engine: str, host: str, port: str, db_user: str, password: str) -> subprocess.Popen[bytes]:
    """mtrecv's client in a 60 s query; once it is connected (seen by the server), return it."""
    if engine == "postgresql":
        argv = ["psql", "-X", "-w", "-h", host, "-p", port, "-U", db_user, "-d", "shared", "-c", "SELECT pg_sleep(60)"]
        env = {"PGPASSWORD": password}
    else:
        argv = ["mariadb", "--no-defaults", "--protocol=TCP", "-h", host, "-P", port, "-u", db_user, "shared",
                "-e", "SELECT SLEEP(60)"]
        env = {"MYSQL_PWD": password}
    proc = subprocess.Popen(["/usr/sbin/runuser", "-u", "mtrecv", "--", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", **env})
    time.sleep(3)
    assert proc.poll() is None, "mtrecv could not open a session with the current password"
    return proc


@pytest.mark.parametrize("engine", ENGINES)
def test_former_audience_and_outsiders_get_nothing(host_slurm: dict[str, str], run_as: Any, ood_site: OodSite,
                                                   engine: str) -> None:
    name, instance, inst_dir = _new_instance(engine)
    jobs: list[str] = []
    try:
        job1, _session1 = _start(ood_site, inst_dir, forms.service_form(
            "database", mt_engine=engine, mt_db_instance=instance, mt_share_audience="group",
            mt_share_group=TENANT_GROUP, mt_share_mode="card", mt_share_preset="connection"))
        jobs.append(job1)
        # Share #1 reaches mtrecv's card, and works.
        card = _card(ood_site, "mtrecv", job1)
        old = {k: str(v) for k, v in card["connect"].items()}
        left_behind = Path(card["connection_path"])
        assert login(run_as, "mtrecv", name, old["host"], old["port"], old["user"], old["password"])
        _stop(run_as, job1)

        # The publisher starts the instance again, for themself only.
        job2, session2 = _start(ood_site, inst_dir, forms.service_form(
            "database", mt_engine=engine, mt_db_instance=instance, mt_share_audience="user"))
        jobs.append(job2)
        new = connection(session2)
        password2 = (inst_dir / "password").read_text().strip()
        assert password2 != old["password"]
        assert login(run_as, "mtpub", name, new["host"], new["port"], new["db_user"], password2)

        _assert_auth_settings(run_as, name, inst_dir, new["db_user"])
        former = [(old["host"], old["port"], old["user"], old["password"]),
                  (new["host"], new["port"], old["user"], old["password"])]
        if left_behind.exists():  # the card file from before, if the dashboard has not removed it yet
            kept = {str(k): str(v) for k, v in (yaml.safe_load(left_behind.read_text()) or {}).items()}
            former.append((new["host"], new["port"], kept.get("user", ""), kept.get("password", "")))
        got_in = [attempt for attempt in former if login(run_as, "mtrecv", name, *attempt)]
        assert not got_in, f"a member of the earlier audience still gets in: {len(got_in)} of {len(former)}"

        # An outsider with what squeue shows (the node) and a port scan finds (the port).
        admin = "postgres" if name == "postgresql" else "root"
        users = [new["db_user"], "mtpub", "mtout", admin]
        passwords: list[Optional[str]] = [None, "", "password", "guest", admin, "mtpub", "secret"]
        tries = [(u, p) for u in users for p in [*passwords, u]]
        outsider_in = [(u, "<none>" if p is None else p) for u, p in tries
                       if login(run_as, "mtout", name, new["host"], new["port"], u, p)]
        assert not outsider_in, f"the outsider logged in: {outsider_in}"
        # The same tries from the node itself over loopback (TCP: no peer or trust there).
        outsider_in = [(u, p) for u, p in tries if login(run_as, "mtout", name, "127.0.0.1", new["port"], u, p)]
        assert not outsider_in, f"the outsider logged in over loopback: {outsider_in}"
    finally:
        for job in jobs:
            run_as("root", ["scancel", job])
        for job in jobs:
            wait_for(lambda j=job: job_state(run_as, j) == "", 90, f"job {job} to end")
        shutil.rmtree(inst_dir, ignore_errors=True)


@pytest.mark.parametrize("engine", ENGINES)
def test_rotation_while_the_job_runs(host_slurm: dict[str, str], run_as: Any, ood_site: OodSite,
                                     engine: str) -> None:
    name, instance, inst_dir = _new_instance(engine)
    job = ""
    try:
        job, session = _start(ood_site, inst_dir, forms.service_form(
            "database", mt_engine=engine, mt_db_instance=instance, mt_share_audience="group",
            mt_share_group=TENANT_GROUP, mt_share_mode="card", mt_share_preset="connection"))
        conn = connection(session)
        host, port, user = conn["host"], conn["port"], conn["db_user"]
        password1 = (inst_dir / "password").read_text().strip()
        assert _shared_password(ood_site, run_as, job) == password1
        assert login(run_as, "mtrecv", name, host, port, user, password1)
        rotate = session / "mt_db_rotate"
        assert conn["rotate_command"] == str(rotate)
        assert oct(rotate.stat().st_mode & 0o777) == "0o700"

        # A session opened with the old password, still running when the password changes.
        sleeper = _open_session(name, host, port, user, password1)
        done = run_as("mtpub", [str(rotate)], timeout=150)
        assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{(session / 'output.log').read_text()[-3000:]}"
        assert done.stdout.startswith("rotated at "), done.stdout
        assert "share: shared with group mtclass" in done.stdout, done.stdout

        password2 = (inst_dir / "password").read_text().strip()
        assert password2 != password1
        try:
            sleeper.wait(timeout=20)
        except subprocess.TimeoutExpired:
            sleeper.kill()
            raise AssertionError("a session opened with the old password outlived the rotation") from None
        assert sleeper.returncode != 0
        assert not login(run_as, "mtrecv", name, host, port, user, password1), "the old password still works"
        assert login(run_as, "mtrecv", name, host, port, user, password2)
        # The re-published share carries the new password; so does the receiver's card.
        assert _shared_password(ood_site, run_as, job) == password2
        card = _card(ood_site, "mtrecv", job)
        assert card["connect"]["password"] == password2
        assert login(run_as, "mtrecv", name, card["connect"]["host"], str(card["connect"]["port"]),
                     card["connect"]["user"], card["connect"]["password"])
        # The publisher's card was rewritten; no password in the job output.
        assert connection(session)["mt_share_status"] == "shared with group mtclass"
        output = (session / "output.log").read_text()
        assert "ood-mt: database password rotation: rotated at" in output, output
        assert password1 not in output and password2 not in output
        assert password2 not in connection(session).values()
        # Nor in the server's or the kit's logs, and no client file is left with it.
        for path in [*(inst_dir / "log").iterdir(), *(inst_dir / "run").iterdir()]:
            if path.is_file():
                text = path.read_text(errors="replace")
                assert password1 not in text and password2 not in text, f"{path} holds a password"

        # The job goes on after the rotation, and still stops cleanly on SIGTERM.
        assert job_state(run_as, job) == "RUNNING"
        run_as("mtpub", ["scancel", "-b", "-s", "TERM", job])
        wait_for(lambda: job_state(run_as, job) == "", 90, f"job {job} to end")
        output = (session / "output.log").read_text()
        assert "database stopped cleanly" in output, output
        # slurmdbd may record the end a moment after squeue stops listing the job.
        wait_for(lambda: _sacct_state(run_as, job)[:1] not in (["RUNNING"], []), 30, f"sacct to record job {job}'s end")
        state = _sacct_state(run_as, job)
        assert state == ["COMPLETED", "0:0"], f"job {job} ended {state}:\n{output}"
        job = ""
    finally:
        if job:
            run_as("root", ["scancel", job])
            wait_for(lambda: job_state(run_as, job) == "", 90, f"job {job} to end")
        shutil.rmtree(inst_dir, ignore_errors=True)
