"""Suite-wide fixtures: the real host Slurm and running commands as a lab user.

Only what every suite needs lives here; suites add their own conftest.py in their
subdirectory.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterator, Sequence, Union

import pytest

from tests.ood.oodsite import OOD_VERSIONS

if TYPE_CHECKING:
    from tests.ood.oodsite import OodSite

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST_SLURM_SCRIPT = REPO_ROOT / "tests" / "lab" / "host_slurm.sh"
# Cold start takes about 5 s here; the margin covers a slow CI machine and a restart.
HOST_SLURM_START_TIMEOUT_S = 240

Command = Union[str, Sequence[str]]
RunAs = Callable[..., "subprocess.CompletedProcess[str]"]


# The checkout as the Ansible collection ood_mt.multitenant (scripts/collection_link.sh):
# ansible finds the roles, modules and filters there by FQCN (ansible.cfg collections_path),
# and the unit tests import the modules as Ansible does, `ansible_collections.ood_mt.multitenant...`.
COLLECTIONS_PATH = REPO_ROOT / ".ansible" / "collections"


def pytest_configure(config: pytest.Config) -> None:
    # Also declared in pyproject.toml; repeated so the marker exists when pytest is run
    # with another rootdir/config.
    config.addinivalue_line("markers", "slurm: needs the real Slurm started by tests/lab/host_slurm.sh")
    subprocess.run(["bash", str(REPO_ROOT / "scripts" / "collection_link.sh")], check=True)
    if str(COLLECTIONS_PATH) not in sys.path:
        sys.path.append(str(COLLECTIONS_PATH))


def _parse_exports(text: str) -> Dict[str, str]:
    """Turn the `export NAME=value` lines printed by `host_slurm.sh env` into a dict."""
    exports: Dict[str, str] = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            exports[name] = value
    return exports


@pytest.fixture(scope="session")
def host_slurm() -> Dict[str, str]:
    """Start (or reuse) the real single-node Slurm and the lab users; return its facts.

    The returned dict holds the exports of `host_slurm.sh env`, e.g.
    OOD_MT_SLURM_CLUSTER, OOD_MT_SLURM_PARTITION, OOD_MT_SLURM_ACCOUNT, SLURM_CONF.
    Skips when not root or when OOD_MT_SKIP_SLURM=1.
    """
    if os.environ.get("OOD_MT_SKIP_SLURM") == "1":
        pytest.skip("OOD_MT_SKIP_SLURM=1: tests that need the host Slurm are skipped")
    if os.geteuid() != 0:
        pytest.skip("the host Slurm lab needs root (tests/lab/host_slurm.sh manages /etc/slurm and daemons)")
    started = subprocess.run(
        [str(HOST_SLURM_SCRIPT), "start"],
        capture_output=True,
        text=True,
        timeout=HOST_SLURM_START_TIMEOUT_S,
        check=False,
    )
    if started.returncode != 0:
        pytest.fail(
            f"{HOST_SLURM_SCRIPT} start failed (exit {started.returncode}):\n{started.stderr}{started.stdout}"
        )
    env = subprocess.run([str(HOST_SLURM_SCRIPT), "env"], capture_output=True, text=True, check=True)
    return _parse_exports(env.stdout)


def _clean_env(user: str) -> Dict[str, str]:
    """A login-like environment for USER, without anything inherited from the test run."""
    import pwd

    entry = pwd.getpwnam(user)
    return {
        "HOME": entry.pw_dir,
        "USER": user,
        "LOGNAME": user,
        "SHELL": entry.pw_shell or "/bin/sh",
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "LANG": "C.UTF-8",
    }


@pytest.fixture
def run_as() -> RunAs:
    """Return run_as(user, cmd, **kw): run CMD as the Unix USER with a clean environment.

    CMD is an argv list, or a string run by `sh -c`. Keyword arguments go to
    subprocess.run (input=, timeout=, check=, cwd=); `env=` adds variables to the clean
    environment. Output is captured as text; the CompletedProcess is returned.
    """

    def _run_as(user: str, cmd: Command, **kw: object) -> subprocess.CompletedProcess[str]:
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        extra = kw.pop("env", None) or {}
        env = _clean_env(user)
        env.update({str(k): str(v) for k, v in dict(extra).items()})  # type: ignore[call-overload]
        # runuser without --login passes the environment it is given through unchanged
        # (apart from USER/LOGNAME/HOME), so the clean dict goes in as env=, never in argv
        # where a secret would be visible in `ps`.
        kw.setdefault("timeout", 120)
        kw.setdefault("cwd", env["HOME"])
        kw.setdefault("check", False)
        return subprocess.run(  # type: ignore[call-overload]
            ["runuser", "-u", user, "--", *argv], capture_output=True, text=True, env=env, **kw
        )

    return _run_as


@pytest.fixture(scope="session")
def ood_site() -> Iterator[OodSite]:
    """A test OOD site run by OOD's own dashboard code (tests/ood/oodsite.py); skipped, with
    the reason, when OOD's sources or root are not available."""
    import shutil
    import tempfile

    from tests.ood.oodsite import make_site, missing_source_reason

    reason = missing_source_reason()
    if reason:
        pytest.skip(reason)
    if os.geteuid() != 0:
        pytest.skip("the OOD site fixture installs group keys root:<group> and runs OOD as lab users (needs root)")
    base = Path(tempfile.mkdtemp(prefix="ood-mt-ood-", dir="/tmp"))
    try:
        yield make_site(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=OOD_VERSIONS, ids=[f"ood{v}" for v in OOD_VERSIONS])
def ood_version(request: pytest.FixtureRequest) -> str:
    """Each OOD version the kit supports (tests/ood/oodsite.py OOD_VERSIONS)."""
    return str(request.param)
