"""Running rendered apps as real Slurm jobs of a lab user, through the OOD job harness."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from tests.apps import app_render
from tests.apps.ood_harness import HARNESS


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
    for root, dirs, files in os.walk(out):
        for name in dirs:
            (Path(root) / name).chmod(0o755)
        for name in files:
            (Path(root) / name).chmod(0o644)
    return app_dir


def submit(run_as: Callable[..., Any], user: str, app: Path, form: dict[str, Any], work: Path,
           session_id: str, env: dict[str, str] | None = None) -> tuple[str, Path]:
    """Stage APP for USER with FORM (as OOD would) and sbatch it; return (job id, session dir).
    ENV is added to the submitting environment, which the job inherits (sbatch --export=ALL)."""
    # Unique per call: the session root is in the user's home and outlives the test, so a
    # reused id would let a stale connection.yml answer for the new job.
    session_id = f"{session_id}-{secrets.token_hex(4)}"
    ctx = work / f"{session_id}.json"
    ctx.write_text(json.dumps(form))
    ctx.chmod(0o644)
    staged = run_as(user, ["ruby", str(HARNESS), "--app", str(app), "--context", str(ctx), "--session-root",
                           "ood-mt-test-sessions", "--session-id", session_id])
    assert staged.returncode == 0, staged.stderr
    info = json.loads(staged.stdout)
    session = Path(info["session_dir"])
    cmd = ["sbatch", "--parsable", "--time=15", *info["native"], "--chdir", str(session),
           "--output", str(session / "output.log"), str(session / "job_script.sh")]
    sub = run_as(user, cmd, env=env or {})
    assert sub.returncode == 0, f"{shlex.join(cmd)}: {sub.stderr}"
    return sub.stdout.strip().split(";")[0], session


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


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
    return yaml.safe_load(path.read_text()) if path.exists() else {}
