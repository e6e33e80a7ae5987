"""The PrivateData=jobs shim `ood-mt-squeue`, read by ood_core's OWN Slurm adapter (both versions)."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from ood_mt import squeue_shim
from tests.conftest import _clean_env
from tests.discovery.conftest import shim
from tests.discovery.spool_fixtures import fresh_spool, share_row
from tests.initializer.test_shares_unit import SITE
from tests.ood.oodsite import OOD_VERSIONS, missing_source_reason, ood_source

HERE = Path(__file__).resolve().parent
OOD_CORE_FOR = {"4.2.3": "ood_core-0.31.1", "3.1.14": "ood_core-0.25.0"}
# ood_core's status query as Batch#squeue_args builds it (info: every field of all_squeue_fields).
FIELDS = [f"%{letter}" for letter in "aABcCdDeEfFgGhHiIjJkKlLmMnNoOqPQrStTuUvVwWxXyYzZb"]
STATUS_ARGV = ["--all", "--states=all", "--noconvert", "-o", "\x1e" + "\x1f".join(FIELDS), "-j", "4711"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs ood_core as the lab users (root to switch)")


@pytest.mark.parametrize(("argv", "ok"), [
    (STATUS_ARGV, True),
    ([*STATUS_ARGV, "-u", "mtpub"], True),
    ([*STATUS_ARGV[:4], "\x1e%A\x1f%t", *STATUS_ARGV[5:]], True),
    ([*STATUS_ARGV, "-M", "hostlab"], True),  # ood_core's `cluster:`: answered with squeue's CLUSTER line
    ([*STATUS_ARGV, "-M", "a,b"], False),
    ([*STATUS_ARGV, "-M", "all"], False),  # every cluster: only the real squeue knows them
    (STATUS_ARGV[1:], False),
    ([*STATUS_ARGV[:-1], "4711_1"], False),
    ([*STATUS_ARGV[:4], "%A %t", *STATUS_ARGV[5:]], False),
    (["-h", "-j", "4711"], False),
])
def test_only_ood_cores_status_query_is_answered(argv: list[str], ok: bool) -> None:
    assert (squeue_shim.parse_argv(argv) is not None) is ok


def _double(base: Path) -> Path:
    """The 'real' squeue of these tests: logs its argv (one line per call, fields joined by |)
    and says what Slurm says of an unknown job id."""
    path = base / "bin" / "squeue"
    log = base / "real-squeue.log"
    log.touch(mode=0o666)
    log.chmod(0o666)
    path.write_text('#!/bin/bash\n( IFS="|"; echo "$*" ) >> ' + str(log) + "\n"
                    'echo "slurm_load_jobs error: Invalid job id specified" >&2\nexit 1\n')
    path.chmod(0o755)
    return path


def _site(base: Path, squeue: Path) -> Path:
    path = base / "site.json"
    path.write_text(json.dumps({**SITE, "spool_dir": str(base / "spool"), "squeue": str(squeue)}))
    path.chmod(0o644)
    return path


def _ood_core(user: str, version: str, base: Path, *ids: str, shim_path: Path, cluster: str = "") -> dict[str, Any]:
    env = {**_clean_env(user), "OOD_MT_SITE_JSON": str(base / "site.json"),
           "PATH": f"{base / 'bin'}:/usr/bin:/bin", "OOD_CORE_CLUSTER": cluster}
    done = subprocess.run(["/usr/sbin/runuser", "-u", user, "--", "ruby", str(HERE / "ood_core_info.rb"),
                           str(ood_source() / OOD_CORE_FOR[version]), str(shim_path), *ids],
                          capture_output=True, text=True, env=env, cwd="/", timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _real_calls(base: Path) -> list[list[str]]:
    return [line.split("|") for line in (base / "real-squeue.log").read_text().split("\n") if line]


@pytest.fixture
def shim_site(open_tmp: Path) -> Path:
    if missing_source_reason():
        pytest.skip(missing_source_reason() or "")
    shim(open_tmp)
    _site(open_tmp, _double(open_tmp))
    fresh_spool(open_tmp / "spool", share_row("4711", "mtpub", "mtclass", start="2026-01-31T09:00:00")
                + share_row("4712", "mtpub", "~mtpub"))
    return open_tmp


@pytest.mark.parametrize("cluster", ["", "lab"])
@pytest.mark.parametrize("version", OOD_VERSIONS)
def test_ood_core_sees_a_spooled_share_running_without_the_real_squeue(shim_site: Path, version: str,
                                                                      cluster: str) -> None:
    """Also with the cluster file's `job.cluster` set (ood_core adds `-M <cluster>` and skips
    squeue's CLUSTER line), as the lab's cluster file does."""
    got = _ood_core("mtrecv", version, shim_site, "4711", shim_path=shim_site / "bin" / "ood-mt-squeue",
                    cluster=cluster)
    job = got["4711"]
    assert (job["status"], job["status_call"], job["owner"], job["native_wckey"]) == (
        "running", "running", "mtpub", "multitenant")
    assert job["name"].startswith("mt1:mtclass:1:") and job["nodes"] == 0
    assert abs(job["wallclock"] - (time.time() - job["dispatch"])) < 120
    assert job["dispatch"] == int(datetime.datetime(2026, 1, 31, 9).timestamp())
    assert _real_calls(shim_site) == []


@pytest.mark.parametrize("version", OOD_VERSIONS)
def test_anything_else_goes_to_the_real_squeue_with_the_same_argv(shim_site: Path, version: str) -> None:
    shim_path = shim_site / "bin" / "ood-mt-squeue"
    got = _ood_core("mtrecv", version, shim_site, "999", "4712", shim_path=shim_path)
    assert got["999"]["status"] == "completed", "unknown id: the real squeue's 'Invalid job id' → completed"
    assert got["4712"]["status"] == "completed", "another user's own share: not in mtrecv's files"
    calls = _real_calls(shim_site)
    assert len(calls) == 4 and calls[0][:3] == ["--all", "--states=all", "--noconvert"] and calls[0][-2:] == [
        "-j", "999"]
    assert calls[0][4].startswith("\x1e%a\x1f%A\x1f")
    outsider = _ood_core("mtout", version, shim_site, "4711", shim_path=shim_path)
    assert outsider["4711"]["status"] == "completed" and len(_real_calls(shim_site)) == 6


def test_a_stale_spool_goes_to_the_real_squeue(shim_site: Path) -> None:
    fresh_spool(shim_site / "spool", share_row("4711", "mtpub", "mtclass"), now=1_000_000)
    got = _ood_core("mtrecv", OOD_VERSIONS[0], shim_site, "4711", shim_path=shim_site / "bin" / "ood-mt-squeue")
    assert got["4711"]["status"] == "completed" and len(_real_calls(shim_site)) == 2


def test_the_shim_never_runs_itself(shim_site: Path) -> None:
    """site.json naming the shim as squeue: the shim still finds the real one on PATH."""
    _site(shim_site, shim_site / "bin" / "ood-mt-squeue")
    got = _ood_core("mtrecv", OOD_VERSIONS[0], shim_site, "999", shim_path=shim_site / "bin" / "ood-mt-squeue")
    assert got["999"]["status"] == "completed" and len(_real_calls(shim_site)) == 2
