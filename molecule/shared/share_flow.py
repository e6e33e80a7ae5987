"""The publisher side of an end-to-end share, launched by OOD's own code.

OOD's dashboard code (tests/ood/ood_dashboard.rb in the OOD container) builds the installed
mt_database app's form context, stages it and submits it through ood_core's Slurm adapter
(`Session#save`), as the publisher; the job runs on the lab's compute node (real slurmd,
real PostgreSQL 15)."""

from __future__ import annotations

import json
import shlex
import uuid
from typing import Any

from labhosts import as_user, host, ood, wait_for

DATABASE_FORM: dict[str, str] = {
    "bc_num_hours": "1", "mt_cores": "1", "mt_memory_gb": "1", "bc_account": "", "bc_queue": "",
    "mt_share_audience": "group", "mt_share_group": "mtclass", "mt_share_users": "",
    "mt_share_mode": "card", "mt_engine": "postgresql:15", "mt_db_instance": "e2e",
    "mt_db_name": "shared", "mt_db_user": "guest", "mt_share_preset": "connection",
}
SESSION_ROOT = "ondemand/data/sys/dashboard/batch_connect/sys/mt_database/output"


def submit_database(user: str, **overrides: str) -> str:
    """Launch the installed mt_database service as `user` through OOD; return the job id."""
    form = {**DATABASE_FORM, **overrides}
    form_file = f"/home/{user}/.ood-mt-test-form-{uuid.uuid4()}.json"
    wrote = host("ood").run(as_user(user, f"umask 077; printf %s {shlex.quote(json.dumps(form))} > {form_file}"))
    assert wrote.rc == 0, wrote.stderr
    launched: dict[str, Any] = ood(user, "launch", "mt_database", form_file)
    host("ood").run(as_user(user, f"rm -f {form_file}"))
    assert launched["ok"], f"OOD could not launch mt_database for {user}: {launched['errors']}"
    return str(launched["job_id"])


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
