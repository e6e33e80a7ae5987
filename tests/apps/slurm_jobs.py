"""Running rendered apps as real Slurm jobs of a lab user, launched by OOD's own code."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from ood_mt import render
from tests.apps import app_render
from tests.ood.oodsite import OOD_VERSIONS, OodSite


def shared_render_dir() -> Path:
    """A directory other lab users can read (pytest's tmp dirs are 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix="ood-mt-apps-"))
    path.chmod(0o755)
    return path


def render_service(kind: str, out: Path, app: dict[str, Any] | None = None) -> Path:
    ctx = app_render.service_context(kind)
    if app:
        ctx["app"] = {**ctx["app"], **app}
    app_dir = app_render.render(app_render.SERVICE_TEMPLATE, ctx, out)
    # The modes `ood-mt build` gives (render.runs_as_program): OOD stages each file with them.
    for root, dirs, files in os.walk(out):
        for name in dirs:
            (Path(root) / name).chmod(0o755)
        for name in files:
            path = Path(root) / name
            rel = path.relative_to(app_dir) if path.is_relative_to(app_dir) else Path(name)
            path.chmod(0o755 if render.runs_as_program(rel) else 0o644)
    return app_dir


def submit(ood: OodSite, user: str, app: Path, form: dict[str, Any],
           version: str = OOD_VERSIONS[0]) -> tuple[str, Path]:
    """Launch APP for USER with FORM through OOD's own Session#save (tests/ood/oodsite.py):
    staging, OOD's job script and ood_core's Slurm adapter submitting to the real sbatch.
    Return (job id, staged root)."""
    launched = ood.launch(user, version, app.name, form, apps_dir=app.parent)
    return str(launched["job_id"]), launched["staged_root"]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, session: Path | None = None) -> None:
    """Poll PREDICATE every second until it holds; after TIMEOUT s fail, with the tail of the
    job's output.log when SESSION (its staged root) is given: what the job did instead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    evidence = ""
    if session is not None:
        log = session / "output.log"
        tail = log.read_text(errors="replace")[-4000:] if log.is_file() else "(none yet)"
        evidence = f"\n--- {log} (tail) ---\n{tail}"
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{evidence}")


def job_state(run_as: Callable[..., Any], job: str) -> str:
    out = run_as("root", ["squeue", "--noheader", "-j", job, "-o", "%T"])
    return out.stdout.strip()


def job_name(run_as: Callable[..., Any], job: str) -> str:
    out = run_as("root", ["squeue", "--noheader", "-j", job, "-O", "Name:1024"])
    return out.stdout.strip()


def job_token(run_as: Callable[..., Any], job: str) -> str:
    """The share token a running job carries (JobName, plus Comment when split)."""
    from ood_mt import codec

    out = run_as("root", ["squeue", "--noheader", "-j", job, "-O", "Name:1024|,Comment:1024"])
    name, _, comment = out.stdout.rstrip("\n").partition("|")
    token = codec.join_transport(name.strip(), comment.strip() or None)
    assert token, f"job {job} carries no share: {out.stdout!r}"
    return token


def connection(session: Path) -> dict[str, str]:
    import yaml

    path = session / "connection.yml"
    data = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    # OOD's create_yml writes host/port/password unquoted (port reads as an int): compare as text.
    return {str(k): "" if v is None else str(v) for k, v in data.items()}
