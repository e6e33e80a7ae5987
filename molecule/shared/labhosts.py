"""Access to the Molecule lab's containers for the testinfra verifiers (podman backend)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Optional

import testinfra

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[2]))
PREFIX = os.environ.get("OOD_MT_LAB_PREFIX", "ood-mt-mol")
BUILD = REPO / "build" / "lab"
HARNESS_DIR = "/opt/ood-mt-harness"
INITIALIZER = "/etc/ood/config/apps/dashboard/initializers/ood_multitenant.rb"
APPS_DIR = "/var/www/ood/apps/sys"
WCKEY = "multitenant"


def manifest() -> dict[str, Any]:
    """The build manifest the default scenario's converge deployed (build/lab/manifest.json)."""
    path = BUILD / "manifest.json"
    assert path.is_file(), f"{path} missing: the default scenario's converge runs `ood-mt build` first"
    return json.loads(path.read_text())


def host(node: str) -> Any:
    """A testinfra host for lab node `slurm`, `compute` or `ood`."""
    return testinfra.get_host(f"podman://{PREFIX}-{node}")


def as_user(user: str, command: str) -> str:
    """Shell command running `command` as `user` with a login-like environment."""
    return f"runuser -l {shlex.quote(user)} -c {shlex.quote(command)}"


def install_harness() -> None:
    """Copy the dashboard/job harnesses (test code, not the kit) into the OOD container."""
    name = f"{PREFIX}-ood"
    subprocess.run(["podman", "exec", name, "mkdir", "-p", HARNESS_DIR], check=True)
    for rb in sorted((REPO / "tests" / "harness").glob("*.rb")):
        subprocess.run(["podman", "cp", str(rb), f"{name}:{HARNESS_DIR}/{rb.name}"], check=True)
    subprocess.run(["podman", "exec", name, "chmod", "-R", "a+rX", HARNESS_DIR], check=True)


def dashboard(user: str) -> dict[str, Any]:
    """Run the dashboard harness as `user` (one PUN boot + one sessions page) and parse its JSON."""
    cmd = as_user(user, f"MULTITENANT_ENABLE=true ruby {HARNESS_DIR}/ood_dashboard_harness.rb "
                        f"--initializer {INITIALIZER} --apps-dir {APPS_DIR} --sessions")
    result = host("ood").run(cmd)
    assert result.rc == 0, f"dashboard harness as {user} failed: {result.stderr}"
    return json.loads(result.stdout)


def wait_for(what: str, probe: Callable[[], Optional[Any]], timeout: float = 180, every: float = 3) -> Any:
    """Poll `probe` until it returns something truthy; fail naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    last: Optional[Any] = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def slurm_logs() -> str:
    """Slurm daemon log tails and failed units, to explain a failing assertion."""
    out = subprocess.run([str(REPO / "lab" / "lab_ctl.sh"), "logs", "--prefix", PREFIX],
                         capture_output=True, text=True, check=False)
    return out.stdout[-20000:]
