"""Issue 12, item 4: an outsider gets nothing from the shared services (real Slurm, real OOD code).

mtpub shares, as real jobs behind their gates: the LLM (the Ollama test double), a dashboard
command (python3 -m http.server), a real R Shiny app (Debian's r-cran-shiny) and the lab's
site-local generic service (mt_http_demo, `ood-mt new-app`'s template). mtout, in no audience,
then uses everything it can read: squeue (node, job, work directory), the node's ports (a TCP
connect scan of 1024-65535 on every address other nodes reach this node by, and the shared ports
on the node's name), the job's files it can list, `ps` and /proc. At each open port it tries GET /
and Ollama's API. Successes: 0 (any 2xx from a service's port, or any answer holding a service's
content). mtrecv, given the share's connection, gets through (positive control, the Shiny
WebSocket included). The secret is in no job output, no process's argv or environment that mtout
can read, and not in squeue.

Not covered, by design (docs/threat-model.md): the node's loopback. On this one-host lab the node
name resolves to 127.0.0.1, so mtout is "a user with a job on the same node" and reaches the
services' loopback ports; the scan of 127.0.0.1 is limited to the shared (gate) ports.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from ood_mt import codec
from tests.apps import forms
from tests.apps.slurm_jobs import job_name, job_state, job_token, shared_render_dir, submit, wait_for
from tests.ood.oodsite import OodSite

pytestmark = pytest.mark.slurm

# The outsider's scan (stdlib only, spec on stdin): the same script the Molecule lab runs.
SCANNER = (Path(__file__).resolve().parents[1] / "outsider_scanner.py").read_text()

# A receiver's Shiny session over the gate's WebSocket: the same script the Molecule lab runs.
SHINY_WS = (Path(__file__).resolve().parents[1] / "shiny_ws_client.py").read_text()


def _user_key(user: str) -> bytes:
    return bytes.fromhex((Path(f"~{user}").expanduser() / ".ood-mt" / "user.key").read_text().strip())


def _shiny_available() -> bool:
    return shutil.which("Rscript") is not None and subprocess.run(
        ["Rscript", "-e", "library(shiny)"], capture_output=True).returncode == 0


def _outside_addresses() -> list[str]:
    """The addresses other nodes reach this node by (IPv4, not loopback)."""
    out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
    return [a for a in out if re.fullmatch(r"[0-9.]+", a) and not a.startswith("127.")]


def test_outsider_gets_nothing_from_any_shared_service(
    host_slurm: dict[str, str], run_as: Any, built_apps: Path, ood_site: OodSite
) -> None:
    if not _shiny_available():
        pytest.fail("R Shiny is not installed: apt-get install r-cran-shiny (scripts/bootstrap.sh installs it)")
    work = shared_render_dir()
    tag = secrets.token_hex(6)
    markers = {"page": f"dashboard-page-{tag}", "demo": f"demo-page-{tag}", "shiny": f"shiny-ui-{tag}",
               "shiny_ws": f"shiny-server-{tag}", "model": f"model{tag}"}
    for name, text in (("site", markers["page"]), ("demo", markers["demo"])):
        (work / name).mkdir(mode=0o755)
        (work / name / "index.html").write_text(f"<p>{text}</p>\n")
        (work / name / "index.html").chmod(0o644)
    (work / "shiny").mkdir(mode=0o755)
    (work / "shiny" / "app.R").write_text(
        "library(shiny)\n"
        f'ui <- fluidPage(p("{markers["shiny"]}"), textOutput("x"))\n'
        f'server <- function(input, output, session) {{ output$x <- renderText("{markers["shiny_ws"]}") }}\n'
        "shinyApp(ui, server)\n")
    (work / "shiny" / "app.R").chmod(0o644)
    models = work / "models" / "manifests" / "registry.ollama.ai" / "library" / markers["model"]
    models.mkdir(parents=True)
    (models / "latest").write_text("{}")
    for path in [work / "models", *(work / "models").rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    model = f"{markers['model']}:latest"
    launches = {
        "llm": (built_apps / "mt_llm", forms.service_form(
            "llm", mt_share_audience="user", mt_model=model, mt_model_source="path",
            mt_model_path=str(work / "models"))),
        "command": (built_apps / "mt_dashboard", forms.service_form(
            "dashboard", mt_share_audience="user", mt_dashboard_type="command",
            mt_command=f'cd {work / "site"} && exec python3 -m http.server "$port" --bind 127.0.0.1')),
        "shiny": (built_apps / "mt_dashboard", forms.service_form(
            "dashboard", mt_share_audience="user", mt_dashboard_type="shiny", mt_app_dir=str(work / "shiny"))),
        "generic": (built_apps / "mt_http_demo", {
            **forms.COMMON, **forms.SHARING, "mt_share_audience": "user", "mt_share_preset": "weblink",
            "mt_command": f'cd {work / "demo"} && exec python3 -m http.server "$port" --bind 127.0.0.1'}),
    }
    jobs: dict[str, tuple[str, Path]] = {}
    try:
        for name, (app, form) in launches.items():
            jobs[name] = submit(ood_site, "mtpub", app, form)
        for name, (job, _session) in jobs.items():
            wait_for(lambda j=job: job_name(run_as, j).startswith("mt1:"), 120, f"the {name} job {job} to publish")
        key = _user_key("mtpub")
        conns = {name: codec.decode(job_token(run_as, job), group_key=key, jobid=job, owner="mtpub")["conn"]
                 for name, (job, _s) in jobs.items()}
        secrets_ = {name: conn["gate_secret"] for name, conn in conns.items()}

        # Positive control: the audience (mtrecv, given the share) gets through each gate.
        expect = {"llm": ("/api/tags", markers["model"]), "command": ("/", markers["page"]),
                  "shiny": ("/", markers["shiny"]), "generic": ("/", markers["demo"])}
        for name, (path, marker) in expect.items():
            conn = conns[name]
            got = run_as("mtrecv", ["curl", "--silent", "--fail", "--max-time", "20",
                                    f"http://{conn['host']}:{conn['port']}/{conn['gate_secret']}{path}"])
            assert got.returncode == 0 and marker in got.stdout, (name, got)
        ws_script = work / "shiny_ws.py"
        ws_script.write_text(SHINY_WS)
        ws_script.chmod(0o644)
        shiny = conns["shiny"]
        ws = run_as("mtrecv", ["/usr/bin/python3", str(ws_script),
                               f"http://{shiny['host']}:{shiny['port']}/{shiny['gate_secret']}/websocket/",
                               markers["shiny_ws"]], timeout=60)
        assert ws.stdout.strip() == f"got {markers['shiny_ws']}", ws

        # The outsider: what squeue shows it, the files it can list, the processes it can see.
        listing = run_as("mtout", ["squeue", "--noheader", "-o", "%all"])
        assert listing.returncode == 0
        ps = run_as("mtout", ["ps", "-eo", "pid,args"])
        assert "ood_mt.gate" in ps.stdout
        gate_pids = [line.split()[0] for line in ps.stdout.splitlines() if "ood_mt.gate --listen" in line]
        proc = run_as("mtout", ["sh", "-c", " ".join(
            f"cat /proc/{pid}/cmdline /proc/{pid}/environ 2>/dev/null;" for pid in gate_pids)])
        sessions = " ".join(str(s) for _j, s in jobs.values())
        files = run_as("mtout", ["sh", "-c", f"for d in {sessions}; do ls -la \"$d\" \"$d/mt_gate\"; "
                                             f"cat \"$d/mt_gate/secret\" \"$d/output.log\"; done 2>&1"])
        for name, secret in secrets_.items():
            for what, text in (("squeue", listing.stdout), ("ps", ps.stdout), ("/proc", proc.stdout),
                               ("the job's files", files.stdout)):
                assert secret not in text, f"mtout reads the {name} share's gate secret in {what}"
            job, session = jobs[name]
            assert secret not in (session / "output.log").read_text(), f"{name}: the secret in the job's output"

        # The scan: every port on the node's outside addresses, the shared ports on its name.
        node = conns["llm"]["host"]
        node_addr = socket.gethostbyname(node)
        shared_ports = sorted({int(c["port"]) for c in conns.values()})
        targets = [[a, list(range(1024, 65536))] for a in _outside_addresses() if a != node_addr]
        targets.append([node_addr, shared_ports if node_addr.startswith("127.") else list(range(1024, 65536))])
        scanner = work / "scan.py"
        scanner.write_text(SCANNER)
        scanner.chmod(0o644)
        spec = {"targets": targets, "markers": list(markers.values()), "model": model}
        started = time.monotonic()
        scan = run_as("mtout", ["/usr/bin/python3", str(scanner)], input=json.dumps(spec), timeout=900)
        assert scan.returncode == 0, scan.stderr
        result = json.loads(scan.stdout)
        job_ports = set(shared_ports)
        for _job, session in jobs.values():
            svc = re.search(r"share gate on 0\.0\.0\.0:\d+ in front of 127\.0\.0\.1:(\d+)",
                            (session / "output.log").read_text())
            assert svc, f"no gate in {session}"
            job_ports.add(int(svc.group(1)))
        successes = [a for a in result["answers"]
                     if a["marker"] or (a["port"] in job_ports and 200 <= a["status"] < 300)]
        found_shared = {a["port"] for a in result["answers"] if a["port"] in shared_ports}
        print(f"outsider scan: {sum(len(p) for p in result['open'].values())} open ports on "
              f"{[t[0] for t in targets]} in {time.monotonic() - started:.1f} s; "
              f"{len(result['answers'])} requests; successes: {len(successes)}")
        assert found_shared == set(shared_ports), f"the scan missed shared ports: {result['open']}"
        assert successes == [], f"the outsider got through: {successes}"
        refused = {(a["port"], a["path"]): a["status"] for a in result["answers"] if a["port"] in shared_ports}
        assert set(refused.values()) <= {404, 400}, refused
    finally:
        for job, _session in jobs.values():
            run_as("mtpub", ["scancel", job])
        for job, _session in jobs.values():
            wait_for(lambda j=job: job_state(run_as, j) == "", 60, f"job {job} to end")
        shutil.rmtree(work, ignore_errors=True)
