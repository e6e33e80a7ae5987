#!/usr/bin/env python3
"""Benchmark: from `ood-mt unshare` to (a) the old gate secret refused and (b) the receiver's card
gone (issue 13). Real Slurm (tests/lab/host_slurm.sh start; run as root, under
`flock -o /tmp/ood-mt-slurm.lock`) and OOD's own dashboard code (OOD_MT_OOD_SOURCE).

A test site is made as the real-Slurm tests make it (tests/ood/oodsite.py). --runs dashboard jobs of
mtpub (python3 -m http.server behind the share gate), shared with mtclass as cards, are launched
through OOD's Session#save. For each, once mtrecv's sessions page shows its card: t0, then
`ood-mt unshare JOBID` as mtpub (the command as a publisher runs it), then
  (a) mtrecv's curl with the old secret polled every 0.1 s until 404;
  (b) mtrecv's sessions page (a fresh dashboard process, i.e. the next refresh) polled until the
      card is gone. In a running dashboard the next refresh comes within the spool's discovery
      interval (10 s) or refresh_seconds (30 s) on the squeue fall-back: add that to (b).
Prints median and max of each, in seconds.

Usage: OOD_MT_OOD_SOURCE=/work/shared/ood flock -o /tmp/ood-mt-slurm.lock .venv/bin/python bench/live.py [--runs 10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from tests.apps.slurm_jobs import connection, job_name, submit, wait_for  # noqa: E402
from tests.apps.test_run_unshare import cards, cli, shared_page_form, status  # noqa: E402
from tests.conftest import _clean_env  # noqa: E402
from tests.ood.oodsite import make_site  # noqa: E402


def run_as(user: str, argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**_clean_env(user), **dict(kw.pop("env", None) or {})}  # type: ignore[arg-type]
    return subprocess.run(["/usr/sbin/runuser", "-u", user, "--", *argv], capture_output=True, text=True,
                          env=env, check=False, cwd="/", **kw)  # type: ignore[call-overload]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ood-mt-bench-live-", dir="/tmp"))
    jobs: list[str] = []
    try:
        site = make_site(base)
        form = shared_page_form(base / "www")
        launched = [submit(site, "mtpub", site.apps / "mt_dashboard", form) for _ in range(args.runs)]
        jobs = [job for job, _ in launched]
        refused, gone = [], []
        for job, session in launched:
            wait_for(lambda j=job, s=session: job_name(run_as, j).startswith("mt1:") and (s / "mt_agent").is_dir(),
                     180, f"job {job} to publish")
            wait_for(lambda j=job: j in cards(site, "mtrecv"), 60, f"mtrecv's card of job {job}")
            mine = connection(session)
            old_url = f"http://{mine['host']}:{mine['port']}/{mine['mt_gate_secret']}/"
            assert status(run_as, old_url) == "200"
            t0 = time.monotonic()
            done = cli(run_as, site, "mtpub", "unshare", job)
            assert done.returncode == 0, done.stderr
            while status(run_as, old_url) != "404":
                time.sleep(0.1)
            refused.append(time.monotonic() - t0)
            while job in cards(site, "mtrecv"):
                pass
            gone.append(time.monotonic() - t0)
            print(f"job {job}: old secret refused after {refused[-1]:.2f} s, card gone after {gone[-1]:.2f} s",
                  flush=True)
        for what, values in (("old secret refused", refused), ("receiver's card gone", gone)):
            print(f"{what}: median {statistics.median(values):.2f} s, max {max(values):.2f} s (n={len(values)})")
        return 0
    finally:
        if jobs:
            subprocess.run(["scancel", *jobs], check=False)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
