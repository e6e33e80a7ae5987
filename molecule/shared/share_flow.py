"""The publisher side of an end-to-end share, launched by OOD's own code.

OOD's dashboard code (tests/ood/ood_dashboard.rb in the OOD container) builds the installed
mt_database app's form context, stages it and submits it through ood_core's Slurm adapter
(`Session#save`), as the publisher; the job runs on the lab's compute node (real slurmd,
real PostgreSQL of the lab generation: 15 on bookworm, 17 on trixie)."""

from __future__ import annotations

import json
import shlex
import uuid
from typing import Any

from labhosts import as_user, host, ood, wait_for

DATABASE_FORM: dict[str, str] = {
    "bc_num_hours": "1", "mt_cores": "1", "mt_memory_gb": "1", "bc_account": "", "bc_queue": "",
    "mt_share_audience": "group", "mt_share_group": "mtclass", "mt_share_users": "",
    "mt_share_mode": "card", "mt_db_instance": "e2e",
    "mt_db_name": "shared", "mt_db_user": "guest", "mt_share_preset": "connection",
}
SESSION_ROOT = "ondemand/data/sys/dashboard/batch_connect/sys/mt_database/output"
# The lab's site-local service (inventories/lab/apps/mt_http_demo, made by `ood-mt new-app`,
# listed in the lab site file's local_apps): the generic web service, serving a page whose
# text the receiver checks.
LOCAL_HTTP_APP = "mt_http_demo"
LOCAL_HTTP_TEXT = "ood-mt local app says hello"
LOCAL_HTTP_FORM: dict[str, str] = {
    "bc_num_hours": "1", "mt_cores": "1", "mt_memory_gb": "1", "bc_account": "", "bc_queue": "",
    "mt_command": (f'mkdir -p www && echo "{LOCAL_HTTP_TEXT}" > www/index.html && '
                   'exec python3 -m http.server "$port" --bind 127.0.0.1 --directory www'),
    "mt_share_audience": "group", "mt_share_group": "mtclass", "mt_share_users": "",
    "mt_share_mode": "card", "mt_share_preset": "weblink",
}

# The dashboard service running a real R Shiny app (the generation's r-cran-shiny on the compute
# node): the page carries SHINY_UI_TEXT, and only the app's server function, over Shiny's
# WebSocket, sends SHINY_SERVER_TEXT.
SHINY_UI_TEXT = "ood-mt shiny ui says hello"
SHINY_SERVER_TEXT = "ood-mt shiny server says hello"
SHINY_APP = ("library(shiny)\n"
             f'ui <- fluidPage(p("{SHINY_UI_TEXT}"), textOutput("x"))\n'
             f'server <- function(input, output, session) {{ output$x <- renderText("{SHINY_SERVER_TEXT}") }}\n'
             "shinyApp(ui, server)\n")
SHINY_FORM: dict[str, str] = {
    "bc_num_hours": "1", "mt_cores": "1", "mt_memory_gb": "1", "bc_account": "", "bc_queue": "",
    "mt_dashboard_type": "shiny", "mt_command": "",
    "mt_share_audience": "group", "mt_share_group": "mtclass", "mt_share_users": "",
    "mt_share_mode": "card", "mt_share_preset": "weblink",
}


def _launch(user: str, app: str, form: dict[str, str]) -> str:
    """Launch the installed APP as `user` through OOD's own code with FORM; return the job id."""
    form_file = f"/home/{user}/.ood-mt-test-form-{uuid.uuid4()}.json"
    wrote = host("ood").run(as_user(user, f"umask 077; printf %s {shlex.quote(json.dumps(form))} > {form_file}"))
    assert wrote.rc == 0, wrote.stderr
    launched: dict[str, Any] = ood(user, "launch", app, form_file)
    host("ood").run(as_user(user, f"rm -f {form_file}"))
    assert launched["ok"], f"OOD could not launch {app} for {user}: {launched['errors']}"
    return str(launched["job_id"])


def lab_generation() -> dict[str, str]:
    """The lab generation's settings (lab/generations/<generation>.env), as the lab's base
    image keeps them in /etc/ood-mt-lab/generation.env."""
    out = host("compute").run("cat /etc/ood-mt-lab/generation.env")
    assert out.rc == 0, f"the lab image has no /etc/ood-mt-lab/generation.env: {out.stderr}"
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if line.startswith("LAB_") and "=" in line)


def submit_database(user: str, **overrides: str) -> str:
    """Launch the installed mt_database service as `user` through OOD, on the lab generation's
    PostgreSQL; return the job id."""
    engine = f"postgresql:{lab_generation()['LAB_PG_MAJOR']}"
    return _launch(user, "mt_database", {**DATABASE_FORM, "mt_engine": engine, **overrides})


def submit_local_http(user: str, **overrides: str) -> str:
    """Launch the lab's site-local HTTP service (LOCAL_HTTP_APP) as `user` through OOD, shared
    with group mtclass as a web link card; return the job id."""
    return _launch(user, LOCAL_HTTP_APP, {**LOCAL_HTTP_FORM, **overrides})


def submit_shiny(user: str) -> tuple[str, str]:
    """Write SHINY_APP into a directory of `user`'s (the shared /home) and launch the installed
    mt_dashboard service on it through OOD; return (job id, app directory)."""
    app_dir = f"/home/{user}/ood-mt-test-shiny-{uuid.uuid4().hex[:8]}"
    write = f"mkdir -m 0755 {app_dir} && printf %s {shlex.quote(SHINY_APP)} > {app_dir}/app.R"
    wrote = host("ood").run(as_user(user, write))
    assert wrote.rc == 0, wrote.stderr
    return _launch(user, "mt_dashboard", {**SHINY_FORM, "mt_app_dir": app_dir}), app_dir


def http_get_as(user: str, host_name: str, port: str, path: str = "/") -> Any:
    """GET PATH of HOST_NAME:PORT as `user` from the OOD host (Ruby's stdlib; prints the status
    line's code, a newline, then the body)."""
    script = 'r = Net::HTTP.get_response(ARGV[0], ARGV[2], Integer(ARGV[1])); puts r.code; print r.body'
    return host("ood").run(as_user(user, f"ruby -rnet/http -e {shlex.quote(script)} "
                                         f"{shlex.quote(host_name)} {shlex.quote(port)} {shlex.quote(path)}"))


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
