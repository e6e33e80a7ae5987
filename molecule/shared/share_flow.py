"""The publisher side of an end-to-end share, done the way OOD would do it.

The job harness (tests/harness/ood_job_harness.rb, a HARNESS standing in for the dashboard's
batch_connect submission) stages the rendered app with real Ruby ERB; the job is then
submitted with real `sbatch` using the rendered `script.native` options and runs on the lab's
compute node (real slurmd, real PostgreSQL 15)."""

from __future__ import annotations

import json
import shlex
import uuid
from typing import Any

from labhosts import APPS_DIR, HARNESS_DIR, as_user, host, wait_for

DATABASE_FORM: dict[str, str] = {
    "bc_num_hours": "1", "mt_cores": "1", "mt_memory_gb": "1", "bc_account": "", "bc_queue": "",
    "mt_share_audience": "group", "mt_share_group": "mtclass", "mt_share_users": "",
    "mt_share_mode": "card", "mt_engine": "postgresql:15", "mt_db_instance": "e2e",
    "mt_db_name": "shared", "mt_db_user": "guest", "mt_share_preset": "connection",
}
SESSION_ROOT = "ondemand/data/sys/dashboard/batch_connect/sys/mt_database/output"


def submit_database(user: str, **overrides: str) -> str:
    """Stage + sbatch the mt_database service as `user`; return the Slurm job id."""
    form = {**DATABASE_FORM, **overrides}
    session_id = str(uuid.uuid4())
    ood = host("ood")
    form_file = f"/home/{user}/{session_id}.form.json"
    wrote = ood.run(as_user(user, f"umask 077; mkdir -p ~/{SESSION_ROOT} && "
                                  f"printf %s {shlex.quote(json.dumps(form))} > {form_file}"))
    assert wrote.rc == 0, wrote.stderr
    staged = ood.run(as_user(user, f"ruby {HARNESS_DIR}/ood_job_harness.rb --app {APPS_DIR}/mt_database "
                                   f"--context {form_file} --session-root ~/{SESSION_ROOT} "
                                   f"--session-id {session_id}"))
    assert staged.rc == 0, f"job harness failed for {user}: {staged.stderr}"
    info: dict[str, Any] = json.loads(staged.stdout)
    session = info["session_dir"]
    native = " ".join(shlex.quote(a) for a in info["native"])
    submit = ood.run(as_user(user, f"sbatch --parsable -J sys/dashboard/sys/mt_database --time=60 {native} "
                                   f"--chdir {shlex.quote(session)} -o {shlex.quote(session)}/output.log "
                                   f"{shlex.quote(info['job_script'])}"))
    assert submit.rc == 0, f"sbatch as {user} failed: {submit.stderr}"
    return submit.stdout.strip().split(";")[0]


def job_state(job_id: str) -> tuple[str, str]:
    """(state, name) of a job as squeue shows it, ("", "") once it is gone."""
    out = host("ood").run(f"squeue --noheader -j {job_id} -o '%T|%j'")
    if out.rc != 0 or not out.stdout.strip():
        return ("", "")
    state, _, name = out.stdout.strip().partition("|")
    return (state, name)


def wait_published(job_id: str, timeout: float = 240) -> str:
    """Wait until the job runs and has renamed itself to a protocol v1 token; return the name."""
    def published() -> str:
        state, name = job_state(job_id)
        if state not in ("PENDING", "CONFIGURING", "RUNNING"):
            raise AssertionError(f"job {job_id} left the queue before publishing (state {state!r}); "
                                 f"see its output.log under ~/{SESSION_ROOT}")
        return name if state == "RUNNING" and name.startswith("mt1:") else ""
    return wait_for(f"job {job_id} to publish its share", published, timeout=timeout)


def cancel(user: str, job_id: str) -> None:
    out = host("ood").run(as_user(user, f"scancel {job_id}"))
    assert out.rc == 0, out.stderr
    wait_for(f"job {job_id} to leave the queue", lambda: job_state(job_id)[0] == "", timeout=120)


def running_cards(dash: dict[str, Any], job_id: str) -> list[dict[str, Any]]:
    return [c for c in dash["cards"] if c["job_id"] == job_id and c["status"] == "running"]


def psql_as(user: str, connection_path: str, sql: str) -> Any:
    """Connect as `user` with the card's connection.yml; the password travels in PGPASSWORD
    inside the container only (never in argv)."""
    script = ('c = YAML.safe_load(File.read(ARGV[0])); ENV["PGPASSWORD"] = c.fetch("password"); '
              'exec("psql", "-h", c.fetch("host"), "-p", c.fetch("port"), "-U", c.fetch("user"), '
              '"-d", c.fetch("database"), "-tAc", ARGV[1])')
    return host("ood").run(as_user(user, f"ruby -ryaml -e {shlex.quote(script)} "
                                         f"{shlex.quote(connection_path)} {shlex.quote(sql)}"))
