#!/usr/bin/env python3
"""Benchmark: from `ood-mt unshare`, from a re-share to another group (`ood-mt share --audience
group --group mtusr`) and from an expiry, to (a) the old gate secret refused and (b) the receiver's
card gone (issue 13). Real Slurm (tests/lab/host_slurm.sh start; run as root, under
`flock -o /tmp/ood-mt-slurm.lock`) and OOD's own dashboard code (OOD_MT_OOD_SOURCE).

A test site is made as the real-Slurm tests make it (tests/ood/oodsite.py). --runs dashboard jobs of
mtpub (python3 -m http.server behind the share gate), shared with mtclass as cards, are launched
through OOD's Session#save, on a site whose tenant groups are mtclass and mtusr (mtpub only). For
each job, in turn, once mtrecv's sessions page shows its card:
  re-share: t0, then `ood-mt share JOBID --audience group --group mtusr` as mtpub; then shared with
      mtclass again (not timed);
  unshare: t0, then `ood-mt unshare JOBID` as mtpub; then shared with mtclass again (not timed);
  expiry: the request `until=<now + 5 s>` is written into the agent's directory as mtpub (the CLI's
      smallest --until is 1m); t0 is that expiry time;
and for each
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
from tests.ood.oodsite import OodSite, make_site  # noqa: E402


def run_as(user: str, argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    env = {**_clean_env(user), **dict(kw.pop("env", None) or {})}  # type: ignore[arg-type]
    return subprocess.run(["/usr/sbin/runuser", "-u", user, "--", *argv], capture_output=True, text=True,
                          env=env, check=False, cwd="/", **kw)  # type: ignore[call-overload]


def measure(site: OodSite, job: str, url: str, t0: float) -> tuple[float, float]:
    """Seconds from T0 (time.time()) to URL refused (404) for mtrecv, and to mtrecv's card gone."""
    while status(run_as, url) != "404":
        time.sleep(0.1)
    refused = time.time() - t0
    while job in cards(site, "mtrecv"):
        pass
    return refused, time.time() - t0


def share_with_mtclass(site: OodSite, job: str, session: Path) -> str:
    """Share JOB with mtclass (again); its gate URL once mtrecv has the card."""
    done = cli(run_as, site, "mtpub", "share", "--audience", "group", "--group", "mtclass", job)
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(lambda: job in cards(site, "mtrecv"), 60, f"mtrecv's card of job {job}")
    mine = connection(session)
    url = f"http://{mine['host']}:{mine['port']}/{mine['mt_gate_secret']}/"
    assert status(run_as, url) == "200"
    return url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="ood-mt-bench-live-", dir="/tmp"))
    jobs: list[str] = []
    try:
        site = make_site(base, {"tenant_groups": ["mtclass", "mtusr"]}, groups=("mtclass", "mtusr"))
        form = shared_page_form(base / "www")
        launched = [submit(site, "mtpub", site.apps / "mt_dashboard", form) for _ in range(args.runs)]
        jobs = [job for job, _ in launched]
        figures: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in ("re-share", "unshare", "expiry")}
        for job, session in launched:
            wait_for(lambda j=job, s=session: job_name(run_as, j).startswith("mt1:") and (s / "mt_agent").is_dir(),
                     180, f"job {job} to publish")
            wait_for(lambda j=job: j in cards(site, "mtrecv"), 60, f"mtrecv's card of job {job}")
            mine = connection(session)
            url = f"http://{mine['host']}:{mine['port']}/{mine['mt_gate_secret']}/"
            assert status(run_as, url) == "200"
            for what in ("re-share", "unshare", "expiry"):
                t0 = time.time()
                if what == "re-share":
                    done = cli(run_as, site, "mtpub", "share", "--audience", "group", "--group", "mtusr", job)
                    assert done.returncode == 0, done.stdout + done.stderr
                elif what == "unshare":
                    done = cli(run_as, site, "mtpub", "unshare", job)
                    assert done.returncode == 0, done.stdout + done.stderr
                else:
                    t0 = float(int(time.time()) + 5)
                    run_as("mtpub", ["sh", "-c", f"printf 'request=share\\nuntil={int(t0)}\\n' "
                                                 f"> {session}/mt_agent/request"])
                refused, gone = measure(site, job, url, t0)
                figures[what][0].append(refused)
                figures[what][1].append(gone)
                print(f"job {job}: {what}: old secret refused after {refused:.2f} s, card gone after {gone:.2f} s",
                      flush=True)
                if what != "expiry":
                    url = share_with_mtclass(site, job, session)
        for what, (refused_all, gone_all) in figures.items():
            for label, values in (("old secret refused", refused_all), ("receiver's card gone", gone_all)):
                print(f"{what}: {label}: median {statistics.median(values):.2f} s, max {max(values):.2f} s "
                      f"(n={len(values)})")
        return 0
    finally:
        if jobs:
            subprocess.run(["scancel", *jobs], check=False)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
