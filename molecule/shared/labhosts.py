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
GENERATION = os.environ.get("OOD_MT_LAB_GENERATION") or "bookworm"
PREFIX = os.environ.get("OOD_MT_LAB_PREFIX", f"ood-mt-mol-{GENERATION}")
# This generation's lab keeps its site file, build and wheelhouse here (molecule/shared/create.yml).
LAB_STATE = REPO / ".lab" / f"molecule-{GENERATION}"
BUILD = LAB_STATE / "build"
WHEELHOUSE = LAB_STATE / "wheelhouse"
SITE_FILE = LAB_STATE / "site" / "group_vars" / "all" / "multitenant.yml"
# OOD's own code and the test runner that loads it (tests/ood/ood_dashboard.rb), copied in
# by install_ood_runner; never part of the kit.
OOD_TEST_DIR = "/opt/ood-mt-test"
OOD_SOURCE = Path(os.environ.get("OOD_MT_OOD_SOURCE", REPO.parent / "shared" / "ood"))
OOD_VERSION = os.environ.get("OOD_MT_OOD_VERSION", "4.2.3")
INITIALIZER = "/etc/ood/config/apps/dashboard/initializers/ood_multitenant.rb"
APPS_DIR = "/var/www/ood/apps/sys"
WCKEY = "multitenant"


def manifest() -> dict[str, Any]:
    """The build manifest the default scenario's converge deployed (.lab/molecule-<generation>/build/manifest.json)."""
    path = BUILD / "manifest.json"
    assert path.is_file(), f"{path} missing: the default scenario's converge runs `ood-mt build` first"
    return json.loads(path.read_text())


def host(node: str) -> Any:
    """A testinfra host for lab node `slurm`, `compute` or `ood`."""
    return testinfra.get_host(f"podman://{PREFIX}-{node}")


def as_user(user: str, command: str) -> str:
    """Shell command running `command` as `user` with a login-like environment."""
    return f"runuser -l {shlex.quote(user)} -c {shlex.quote(command)}"


def ood_source_missing() -> Optional[str]:
    if (OOD_SOURCE / f"ondemand-{OOD_VERSION}" / "apps" / "dashboard").is_dir():
        return None
    return f"OOD's sources are not at {OOD_SOURCE}; set OOD_MT_OOD_SOURCE (see docs/testing.md)"


def install_ood_runner() -> None:
    """Copy OOD's sources (a test dependency) and tests/ood/ (the runner that loads them)
    into the OOD container: test code, never part of the kit. Without the sources, the
    tests that need them skip (ood() says why)."""
    if ood_source_missing():
        return
    name = f"{PREFIX}-ood"
    subprocess.run(["podman", "exec", name, "rm", "-rf", OOD_TEST_DIR], check=True)
    subprocess.run(["podman", "exec", name, "mkdir", "-p", OOD_TEST_DIR], check=True)
    subprocess.run(["podman", "cp", str(REPO / "tests" / "ood"), f"{name}:{OOD_TEST_DIR}/runner"], check=True)
    subprocess.run(["podman", "cp", str(OOD_SOURCE), f"{name}:{OOD_TEST_DIR}/ood"], check=True)
    subprocess.run(["podman", "exec", name, "chmod", "-R", "a+rX", OOD_TEST_DIR], check=True)


def ood_run(user: str, *args: str) -> dict[str, Any]:
    """Run OOD's own dashboard code as `user` in the OOD container, with the production paths
    (apps, clusters.d, the dashboard env file, the kit's installed initializer). Returns its
    JSON ({"result", "boot"}) plus "log": the lines OOD and the initializer logged."""
    missing = ood_source_missing()
    if missing:
        import pytest

        pytest.skip(missing)
    cmd = as_user(user, f"OOD_MT_OOD_SOURCE={OOD_TEST_DIR}/ood OOD_MT_OOD_VERSION={OOD_VERSION} "
                        f"ruby {OOD_TEST_DIR}/runner/ood_dashboard.rb --initializer {INITIALIZER} "
                        f"--env-file /etc/ood/config/apps/dashboard/env "
                        + " ".join(shlex.quote(a) for a in args))
    result = host("ood").run(cmd)
    assert result.rc == 0, f"OOD {OOD_VERSION} as {user}: {' '.join(args)} failed: {result.stderr}"
    envelope: dict[str, Any] = json.loads(result.stdout)
    envelope["log"] = result.stderr.splitlines()  # Rails.logger writes to stderr by default
    return envelope


def ood(user: str, *args: str) -> Any:
    """The result of one OOD command as `user` (see ood_run)."""
    return ood_run(user, *args)["result"]


def dashboard(user: str) -> dict[str, Any]:
    """`user`'s sessions page (one dashboard boot, OOD's Session.all): {"cards", "log"}."""
    page = ood_run(user, "sessions")
    return {"cards": page["result"], "log": page["log"]}


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
