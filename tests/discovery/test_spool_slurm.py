"""The spool on the real Slurm: a real share job of mtpub, `ood-mt discovery serve --once` as root,
then `ood-mt list` as the receiver and the outsider with a squeue on PATH that always fails."""

from __future__ import annotations

import grp
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ood_mt import codec, keys
from tests.discovery.conftest import REPO, user_python
from tests.initializer.test_shares_unit import SITE
from tests.ood.oodsite import ADMIN_PATH, squeue_field, wait_for

pytestmark = pytest.mark.slurm

GROUP = "mtclass"
LIST = ("import sys; from ood_mt import shares_cli; "
        "shares_cli.list_command(sys.argv[1:], prog_name='ood-mt list')")


def _keys(base: Path, master: bytes) -> Path:
    group_dir = base / "keys" / GROUP
    group_dir.mkdir(parents=True)
    (base / "keys").chmod(0o755)
    gid = grp.getgrnam(GROUP).gr_gid
    os.chown(group_dir, 0, gid)
    group_dir.chmod(0o750)
    for name, text in (("v1.key", keys.derive_group_key(master, GROUP, 1).hex() + "\n"), ("current", "1\n")):
        (group_dir / name).write_text(text)
        os.chown(group_dir / name, 0, gid)
        (group_dir / name).chmod(0o440)
    return base / "keys"


@pytest.fixture
def share_job(host_slurm: dict[str, str], open_tmp: Path) -> Iterator[str]:
    """A running job of mtpub under the site WCKey renamed to a real share for mtclass."""
    master = os.urandom(32)
    _keys(open_tmp, master)
    done = subprocess.run(["runuser", "-u", "mtpub", "--", "sbatch", "--parsable", "--wckey=multitenant", "-J",
                           "mt-spool", "--chdir=/tmp", "--output=/dev/null", "--wrap", "exec sleep 600"],
                          capture_output=True, text=True, check=False, env=ADMIN_PATH)
    assert done.returncode == 0, done.stderr
    job = done.stdout.strip().split(";")[0]
    try:
        wait_for(lambda: squeue_field(job, "%T") == "RUNNING", 60, f"job {job} to run")
        payload = {"v": 1, "app": "llm", "title": "Spooled share", "preset": "api", "mode": "form",
                   "delivery": "sys/mt_delivery_default", "session": "s", "created": int(time.time()),
                   "conn": {"host": "node1", "port": "11434"}}
        token = codec.encode(payload, group_key=keys.derive_group_key(master, GROUP, 1), aud=GROUP, kv=1,
                             jobid=job, owner="mtpub")
        renamed = subprocess.run(["runuser", "-u", "mtpub", "--", "scontrol", "update", f"JobId={job}",
                                  f"JobName={token}"], capture_output=True, text=True, check=False, env=ADMIN_PATH)
        assert renamed.returncode == 0, renamed.stderr
        yield job
    finally:
        subprocess.run(["scancel", job], check=False)


def test_receiver_lists_from_the_spool_and_the_outsider_sees_nothing(share_job: str, open_tmp: Path,
                                                                     run_as: object) -> None:
    base = open_tmp
    env = user_python(base)
    spool_dir = base / "spool"
    site = {**SITE, "spool_dir": str(spool_dir), "key_dir": str(base / "keys"), "squeue": "squeue"}
    (base / "site.json").write_text(json.dumps(site))
    (base / "site.json").chmod(0o644)
    served = subprocess.run([sys.executable, "-m", "ood_mt.cli", "discovery", "serve", "--once", "--site-json",
                             str(base / "site.json")], capture_output=True, text=True, check=False,
                            env={**os.environ, **ADMIN_PATH, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"})
    assert served.returncode == 0, served.stderr
    assert "wrote group/mtclass.listing" in served.stderr
    # From here on, any squeue a reader runs fails loudly: the listing can only come from the spool.
    fail_bin = base / "failbin"
    fail_bin.mkdir(mode=0o755)
    (fail_bin / "squeue").write_text("#!/bin/sh\necho 'squeue must not run: the spool is fresh' >&2\nexit 3\n")
    (fail_bin / "squeue").chmod(0o755)
    path = {"PATH": f"{fail_bin}:/usr/bin:/bin:/usr/sbin:/sbin"}
    argv = ["/usr/bin/python3", "-c", LIST, "--site-json", str(base / "site.json"), "--json", "-v"]
    receiver = run_as("mtrecv", argv, env={**env, **path})  # type: ignore[operator]
    assert receiver.returncode == 0, receiver.stderr
    rows = json.loads(receiver.stdout)
    assert [(r["jobid"], r["publisher"], r["audience"], r["title"]) for r in rows] == [
        (share_job, "mtpub", GROUP, "Spooled share")]
    assert receiver.stderr == "", receiver.stderr
    outsider = run_as("mtout", argv, env={**env, **path})  # type: ignore[operator]
    assert outsider.returncode == 0 and json.loads(outsider.stdout) == [] and outsider.stderr == "", outsider.stderr
    cat = run_as("mtout", ["cat", str(spool_dir / "group" / f"{GROUP}.listing")])  # type: ignore[operator]
    assert cat.returncode != 0 and "Permission denied" in cat.stderr
    # Control: with the spool stale, the same receiver falls back to squeue: the failing double.
    (spool_dir / "heartbeat").write_text(json.dumps({"format": 1, "written": 1000, "interval": 10}))
    stale = run_as("mtrecv", argv, env={**env, **path})  # type: ignore[operator]
    assert stale.returncode == 2 and "asking Slurm directly" in stale.stderr and "must not run" in stale.stderr
