"""A test Open OnDemand site on this machine, driven by OOD's OWN dashboard code.

`tests/ood/ood_dashboard.rb` loads the real dashboard (``OOD_MT_OOD_SOURCE``, default
``../shared/ood``) for one OOD version and runs a command as a Unix user: render a form,
stage, launch through ``Session#save`` (ood_core's Slurm adapter, real ``sbatch``), or read
the sessions page (``Session.all``, the adapter's real ``squeue``, card bodies through
``connections/_custom.html.erb``). This module gives tests a site to point it at: the
kit's apps, initializer and site.json built by ``ood-mt build`` from the lab site file with a key
directory of its own (keys generated at test time), a ``clusters.d`` for the host Slurm,
the dashboard env file, and a data root per user.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from ood_mt import app_templates, keys
from tests.apps.site_build import build_suite, site_overrides_with_doubles

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "tests" / "ood" / "ood_dashboard.rb"
RUBY = shutil.which("ruby") or "/usr/bin/ruby"
# Every OOD version the kit supports, each paired with its ood_core in the runner.
OOD_VERSIONS = ("4.2.3", "3.1.14")
TENANT_GROUP = "mtclass"
ADMIN_PATH = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
KEY_VERSION = 1


def ood_source() -> Path:
    return Path(os.environ.get("OOD_MT_OOD_SOURCE", REPO.parent / "shared" / "ood")).resolve()


def missing_source_reason() -> Optional[str]:
    """Why OOD's code cannot run here, or None. The tests that need it skip with this."""
    src = ood_source()
    wanted = [src / f"ondemand-{v}" / "apps" / "dashboard" for v in OOD_VERSIONS]
    missing = [str(p) for p in wanted if not p.is_dir()]
    if missing:
        return (f"OOD's sources are not at {src} (missing {', '.join(missing)}); set OOD_MT_OOD_SOURCE to a folder "
                "holding ondemand-<version>/, ood_core-<version>/ and ood_support-0.0.5/ (see docs/testing.md)")
    if shutil.which("ruby") is None:
        return "ruby is not installed (scripts/bootstrap.sh installs it)"
    return None


class OodError(AssertionError):
    pass


@dataclass
class OodSite:
    base: Path
    apps: Path
    initializer: Path
    clusters: Path
    env_file: Path
    keys_dir: Path
    master: bytes
    # The site description the kit's initializer reads (OUT/etc/site.json of the build), given
    # to it as OOD_MT_SITE_JSON in place of /etc/ood-mt/site.json.
    site_json: Path

    def dataroot(self, user: str) -> Path:
        path = self.base / "data" / user
        if not path.exists():
            entry = pwd.getpwnam(user)
            path.mkdir(parents=True)
            os.chown(path, entry.pw_uid, entry.pw_gid)
            path.chmod(0o700)
        return path

    def run(self, user: str, version: str, *args: str, initializer: bool = True, timeout: float = 120,
            apps_dir: Optional[Path] = None, env: Optional[dict[str, str]] = None,
            initializer_file: Optional[Path] = None) -> dict[str, Any]:
        """Run the OOD runner as USER; return {"result": the command's result, "boot": what the
        initializers registered, "log": Rails' log lines (OOD's and the initializer's)}.
        APPS_DIR replaces the site's apps directory (SysRouter.base_path) for one call;
        ENV is added to the runner's environment; INITIALIZER_FILE replaces the kit's."""
        log = Path(tempfile.mkstemp(prefix="ood-log-", dir=self.base / "logs")[1])
        os.chown(log, pwd.getpwnam(user).pw_uid, -1)
        argv = [RUBY, str(RUNNER), "--apps-dir", str(apps_dir or self.apps), "--clusters-dir", str(self.clusters),
                "--dataroot", str(self.dataroot(user)), "--env-file", str(self.env_file), "--log", str(log)]
        if initializer:
            argv += ["--initializer", str(initializer_file or self.initializer)]
        entry = pwd.getpwnam(user)
        full_env = {"HOME": entry.pw_dir, "USER": user, "LOGNAME": user, "LANG": "C.UTF-8",
                    "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "OOD_MT_OOD_SOURCE": str(ood_source()),
                    "OOD_MT_OOD_VERSION": version, "OOD_MT_SITE_JSON": str(self.site_json), **(env or {})}
        done = subprocess.run(["/usr/sbin/runuser", "-u", user, "--", *argv, *args], capture_output=True, text=True,
                              env=full_env, cwd="/", timeout=timeout, check=False)
        log_text = log.read_text(errors="replace")
        log.unlink()
        if done.returncode != 0:
            raise OodError(f"OOD {version} as {user}: {' '.join(args)} failed ({done.returncode}):\n"
                           f"{done.stderr}\n{log_text}")
        envelope: dict[str, Any] = json.loads(done.stdout)
        envelope["log"] = log_text.splitlines()
        return envelope

    def _params_file(self, params: dict[str, Any]) -> Path:
        path = self.base / "params" / f"{secrets.token_hex(6)}.json"
        path.write_text(json.dumps(params))
        path.chmod(0o644)
        return path

    def form(self, user: str, version: str, app: str) -> dict[str, Any]:
        result: dict[str, Any] = self.run(user, version, "form", app)["result"]
        return result

    def _session(self, command: str, user: str, version: str, app: str, params: dict[str, Any],
                 apps_dir: Optional[Path]) -> dict[str, Any]:
        """stage or launch APP with PARAMS; OodError (with OOD's log) unless OOD says ok."""
        run = self.run(user, version, command, app, str(self._params_file(params)), apps_dir=apps_dir)
        result: dict[str, Any] = run["result"]
        if not result["ok"]:
            raise OodError(f"OOD {version} could not {command} {app} for {user}: {result['errors']}\n{run['log']}")
        result["staged_root"] = Path(result["staged_root"])
        return result

    def stage(self, user: str, version: str, app: str, params: dict[str, Any],
              apps_dir: Optional[Path] = None) -> dict[str, Any]:
        """Session#save without the submission; the result has staged_root (a Path) and native."""
        return self._session("stage", user, version, app, params, apps_dir)

    def launch(self, user: str, version: str, app: str, params: dict[str, Any],
               apps_dir: Optional[Path] = None) -> dict[str, Any]:
        """Session#save as USER; the result has job_id and staged_root (a Path)."""
        return self._session("launch", user, version, app, params, apps_dir)

    def view(self, user: str, version: str, app: str, connection: dict[str, Any],
             apps_dir: Optional[Path] = None) -> str:
        """The card body OOD renders for a running session of APP with CONNECTION."""
        return str(self.run(user, version, "view", app, str(self._params_file(connection)), apps_dir=apps_dir,
                            initializer=False)["result"]["body"])

    def sessions(self, user: str, version: str) -> list[dict[str, Any]]:
        sessions: list[dict[str, Any]] = self.run(user, version, "sessions")["result"]
        return sessions

    def press(self, user: str, version: str, action: str, session_id: str, token: str = "button",
              env: Optional[dict[str, str]] = None) -> dict[str, Any]:
        """USER presses a card's button (ACTION "destroy": Delete, "cancel": Cancel) on session
        SESSION_ID: a real request through OOD's routes and SessionsController, with the token
        of OOD's own rendered button ("button"), none ("none") or another session's ("forged").
        The envelope's result has status, location, flash, and exception when Rails raised."""
        return self.run(user, version, "press", action, session_id, token, env=env)


def publish(site: OodSite, user: str, *, app: str, conn: dict[str, str], preset: str = "debug", mode: str = "form",
            title: str = "Test share", group: str = TENANT_GROUP, timeout: float = 90) -> str:
    """Submit a job of USER that publishes a share with the kit's own bash library
    (mt_share.sh, as every service's after.sh does) and then sleeps; return its id once
    the share is in the job name. The connection values are the test's choice: a service
    the lab cannot run, or a hostile publisher. Values reach the script base64-encoded."""
    import base64

    def b64(value: str) -> str:
        return base64.b64encode(value.encode()).decode()

    conns = " ".join(f'--conn "{key}=$(printf %s {b64(value)} | base64 -d)"' for key, value in conn.items())
    script = "\n".join([
        "#!/bin/bash",
        "set -euo pipefail",
        f"source {site.base}/mt_share.sh",
        f'mt_publish --app {app} --title "$(printf %s {b64(title)} | base64 -d)" --preset {preset} --mode {mode} '
        f"--delivery sys/mt_delivery_debug --audience group --group {group} --key-dir {site.keys_dir} {conns}",
        "exec sleep 1200",
        "",
    ])
    work = site.base / "publishers"
    argv = ["runuser", "-u", user, "--", "sbatch", "--parsable", "--wckey=multitenant", "-J", "mt-test",
            f"--chdir={work}", f"--output={work}/slurm-%j.out"]
    done = subprocess.run(argv, input=script, capture_output=True, text=True, check=False, env=ADMIN_PATH)
    assert done.returncode == 0, f"sbatch as {user}: {done.stderr}"
    job = done.stdout.strip().split(";")[0]

    def published() -> bool:
        return squeue_field(job, "%j").startswith("mt1:")

    wait_for(published, timeout, f"job {job} of {user} to publish",
             lambda: (work / f"slurm-{job}.out").read_text() if (work / f"slurm-{job}.out").exists() else "")
    return job


def publish_raw(site: OodSite, user: str, *, app: str, conn: dict[str, str], preset: str = "debug",
                mode: str = "form", title: str = "Test share", group: str = TENANT_GROUP,
                payload_changes: Optional[dict[str, Any]] = None) -> str:
    """A HOSTILE publisher: a job of USER renamed (by USER, with scontrol) to a share made
    with the reference encoder (ood_mt.codec), so it can carry anything the protocol can
    encode, including what the kit's own publishing library would refuse."""
    import time as _time

    from ood_mt import codec

    work = site.base / "publishers"
    argv = ["runuser", "-u", user, "--", "sbatch", "--parsable", "--wckey=multitenant", "-J", "mt-raw",
            f"--chdir={work}", "--output=/dev/null", "--wrap", "exec sleep 1200"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=ADMIN_PATH)
    assert done.returncode == 0, f"sbatch as {user}: {done.stderr}"
    job = done.stdout.strip().split(";")[0]
    wait_for(lambda: squeue_field(job, "%T") == "RUNNING", 60, f"job {job} to run")
    payload: dict[str, Any] = {"v": 1, "app": app, "title": title, "preset": preset, "mode": mode,
                               "delivery": "sys/mt_delivery_debug", "session": "raw", "created": int(_time.time()),
                               "conn": conn, **(payload_changes or {})}
    key = keys.derive_group_key(site.master, group, KEY_VERSION)
    token = codec.encode(payload, group_key=key, aud=group, kv=KEY_VERSION, jobid=job, owner=user)
    name, comment = codec.split_transport(token)
    update = ["runuser", "-u", user, "--", "scontrol", "update", f"JobId={job}", f"JobName={name}"]
    if comment:
        update.append(f"Comment={comment}")
    renamed = subprocess.run(update, capture_output=True, text=True, check=False, env=ADMIN_PATH)
    assert renamed.returncode == 0, renamed.stderr
    return job


def make_site(base: Path, overrides: Optional[dict[str, Any]] = None,
              groups: tuple[str, ...] = (TENANT_GROUP,)) -> OodSite:
    """Build the site in BASE (readable by the lab users): keys for the tenant GROUPS
    (root:<group> 0750/0440, as the keys role installs them), the apps and initializer
    from `ood-mt build`, clusters.d and the env file."""
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    master = os.urandom(32)
    keys_dir = base / "keys"
    keys_dir.mkdir()
    keys_dir.chmod(0o755)
    for group in groups:
        group_dir = keys_dir / group
        group_dir.mkdir()
        gid = grp.getgrnam(group).gr_gid
        os.chown(group_dir, 0, gid)
        group_dir.chmod(0o750)
        for name, text in ((f"v{KEY_VERSION}.key", keys.derive_group_key(master, group, KEY_VERSION).hex() + "\n"),
                           ("current", f"{KEY_VERSION}\n")):
            path = group_dir / name
            path.write_text(text)
            os.chown(path, 0, gid)
            path.chmod(0o440)
    settings = {"keys": {"dir": str(keys_dir)}, **_with_doubles(overrides)}
    apps = build_suite(base, settings)
    return site_around(base, apps, base / "build" / "initializer" / "ood_multitenant.rb", keys_dir, master,
                       base / "build" / "etc" / "site.json")


def site_around(base: Path, apps: Path, initializer: Path, keys_dir: Path, master: bytes, site_json: Path,
                cluster_id: str = "lab") -> OodSite:
    """The OOD side of a site whose apps, initializer, site.json and keys already exist under BASE:
    clusters.d (one cluster, CLUSTER_ID, the host Slurm), the dashboard env file enabling
    the kit, and the runner's working dirs."""
    clusters = base / "clusters.d"
    clusters.mkdir()
    # No `cluster:` in job:, so sbatch gets no -M (one cluster here).
    (clusters / f"{cluster_id}.yml").write_text(yaml.safe_dump({"v2": {
        "metadata": {"title": "Host Slurm"}, "login": {"host": "localhost"},
        "job": {"adapter": "slurm", "bin": "/usr/bin"}}}))
    env_file = base / "dashboard.env"
    env_file.write_text("MULTITENANT_ENABLE=true\n")
    for sub, mode in (("logs", 0o1777), ("params", 0o755), ("publishers", 0o1777), ("data", 0o755)):
        (base / sub).mkdir()
        (base / sub).chmod(mode)
    (base / "mt_share.sh").write_text(app_templates.service_library_text(), encoding="utf-8")
    for path in [clusters, *clusters.iterdir(), env_file, base / "mt_share.sh"]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return OodSite(base=base, apps=apps, initializer=initializer, clusters=clusters, env_file=env_file,
                   keys_dir=keys_dir, master=master, site_json=site_json)


def _with_doubles(overrides: Optional[dict[str, Any]]) -> dict[str, Any]:
    """The doubles for programs the lab cannot install, plus the caller's overrides."""
    merged = site_overrides_with_doubles()
    for key, value in (overrides or {}).items():
        merged[key] = value
    return merged


def squeue_field(job: str, fmt: str) -> str:
    """One squeue field of JOB (any state), "" once Slurm no longer lists it."""
    return subprocess.run(["squeue", "-h", "-j", job, "-o", fmt], capture_output=True, text=True,
                          check=False).stdout.strip()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, evidence: Callable[[], str] = lambda: "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{evidence()}")
