"""Python side of tests/harness/ood_job_harness.rb (a HARNESS standing in for OOD)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Optional

from tests.apps.app_render import REPO

HARNESS = REPO / "tests" / "harness" / "ood_job_harness.rb"

# Hostile text for every free-text form field and share value: quotes, command
# substitution, backticks, ;, a newline, a glob and non-ASCII.
HOSTILE = "a'b\"c $(touch CANARY) `touch CANARY`; touch CANARY\nzweite Zeile ü € * \\ end"


def stage(app: Path, form: dict[str, Any], root: Path, session_id: str,
          shares: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Stage APP as OOD would; return the harness's JSON (session_dir, job_script, native...)."""
    root.mkdir(parents=True, exist_ok=True)
    ctx = root / f"{session_id}.form.json"
    ctx.write_text(json.dumps(form))
    argv = ["ruby", str(HARNESS), "--app", str(app), "--context", str(ctx), "--session-root", str(root),
            "--session-id", session_id]
    if shares is not None:
        shares_file = root / f"{session_id}.shares.json"
        shares_file.write_text(json.dumps(shares))
        argv += ["--shares", str(shares_file)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def render_form(app: Path, shares: Optional[dict[str, Any]] = None, tmp: Optional[Path] = None) -> str:
    argv = ["ruby", str(HARNESS), "--render-form", str(app)]
    if shares is not None and tmp is not None:
        shares_file = tmp / "form.shares.json"
        shares_file.write_text(json.dumps(shares))
        argv += ["--shares", str(shares_file)]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def render_view(view: Path, connection: dict[str, str], tmp: Path) -> str:
    conn = tmp / "view.connection.json"
    conn.write_text(json.dumps(connection))
    return subprocess.run(["ruby", str(HARNESS), "--render-view", str(view), "--connection", str(conn)],
                          capture_output=True, text=True, check=True).stdout
