#!/usr/bin/env python3
"""Benchmark: how soon a receiver sees a new share, and stops seeing an ended one (issue 14).

On the real host Slurm (tests/lab/host_slurm.sh start; as root, under
`flock -o /tmp/ood-mt-slurm.lock`), with the real discovery service running
(`ood-mt discovery serve`, the interval of the lab's site file, 10 s) into a scratch spool:
for each of --rounds rounds, one share job of mtpub for mtclass is started and published
(bench/discovery.py's start_shares), and a poller running AS mtrecv reads mtrecv's spool files
(ood_mt.spool.read, what the initializer and `ood-mt list` read; the initializer checks the spool
on every page request) every 0.2 s:
  appear    = publish (the job renamed to its token) -> the share in mtrecv's view
  disappear = scancel -> the share gone from mtrecv's view (its card goes at the next page)
Prints median and max of each. Target: at most 15 s.

Usage: .venv/bin/python bench/share_latency.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import discovery as bench_discovery  # noqa: E402

POLLER = r"""
import sys, time
from ood_mt import shares, spool
site = shares.load_site_summary(sys.argv[1])
jobid, want = sys.argv[2], sys.argv[3] == "present"
me = shares.Identity.current()
print("ready", flush=True)
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    got = spool.read(site, me)
    if got.jobs is not None and any(job.jobid == jobid for job in got.jobs) == want:
        print(repr(time.time()), flush=True)
        sys.exit(0)
    time.sleep(0.2)
sys.exit(1)
"""


def poll(base: Path, site_json: Path, jobid: str, want: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([bench_discovery.RUNUSER, "-u", "mtrecv", "--", "/usr/bin/python3",
                             str(base / "poller.py"), str(site_json), jobid, want],
                            stdout=subprocess.PIPE, text=True, cwd="/tmp",
                            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": str(base / "py")})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def seen_at(proc: subprocess.Popen[str]) -> float:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if proc.wait(timeout=150) != 0 or not line:
        raise SystemExit("bench: the receiver never saw the change within 120 s")
    return float(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root with the host Slurm started (tests/lab/host_slurm.sh start)")
    base = Path(tempfile.mkdtemp(prefix="ood-mt-bench-latency-", dir="/tmp"))
    base.chmod(0o755)
    appear: list[float] = []
    disappear: list[float] = []
    service = None
    interval = 0
    try:
        master = os.urandom(32)
        site_json = bench_discovery.scratch_site(base, master, "poller.py", POLLER)
        interval = json.loads(site_json.read_text())["discovery_interval_seconds"]
        service = subprocess.Popen([sys.executable, "-m", "ood_mt.cli", "discovery", "serve",
                                    "--site-json", str(site_json)], env={**os.environ, "PYTHONPATH": str(REPO / "src")},
                                   stderr=subprocess.DEVNULL)
        for n in range(args.rounds):
            ids = bench_discovery.start_shares(1, master, base)
            published = time.time()
            watcher = poll(base, site_json, ids[0], "present")
            appear.append(seen_at(watcher) - published)
            watcher = poll(base, site_json, ids[0], "absent")
            cancelled = time.time()
            bench_discovery.cancel(ids)
            disappear.append(seen_at(watcher) - cancelled)
            print(f"round {n + 1}: appear {appear[-1]:.1f} s, disappear {disappear[-1]:.1f} s", flush=True)
    finally:
        if service is not None:
            service.send_signal(signal.SIGTERM)
            service.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)
    print(f"\ndiscovery interval {interval} s; {args.rounds} rounds; as mtrecv, polling its spool view every 0.2 s")
    for name, values in (("appear (publish -> visible)", appear), ("disappear (scancel -> gone)", disappear)):
        print(f"{name:<30} median {statistics.median(values):5.1f} s   max {max(values):5.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
