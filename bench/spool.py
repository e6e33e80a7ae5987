#!/usr/bin/env python3
"""Benchmark: the discovery spool against every receiver running its own squeue (issue 14).

On the real host Slurm (tests/lab/host_slurm.sh start; run as root, under
`flock -o /tmp/ood-mt-slurm.lock`):
  1. for each --held count (default 0, 10000, 30000): queues that many held jobs of mtout
     (bench/discovery.py's queue_held) next to --shares running shares of mtpub, writes the
     spool with ONE `ood_mt.spool` cycle, and times, as mtrecv, --runs times each:
       spool = reading the receiver's spool files (ood_mt.spool.read: heartbeat + files + parse)
       squeue = the receiver's own squeue call + parse (ood_mt.shares.discover)
  2. counts squeue calls per minute for 1/100/1000 simulated receivers refreshing every
     site.json refresh_seconds (30 s), through a counting squeue wrapper: with the spool (the
     service's calls; receivers read files) and without (each receiver's own squeue).
     Simulated: one minute of refreshes run back to back, the service's cycles counted for
     the same minute at discovery_interval_seconds.

Usage: .venv/bin/python bench/spool.py [--held 0,10000,30000] [--shares 50] [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import discovery as bench_discovery  # noqa: E402

from ood_mt import shares, spool  # noqa: E402

RECEIVER = "mtrecv"
REFRESH_SECONDS = 30
INTERVAL_SECONDS = 10

READER = r"""
import json, sys, time
from ood_mt import shares, spool
site = shares.load_site_summary(sys.argv[1])
runs = int(sys.argv[2])
me = shares.Identity.current()
out = {"spool": [], "squeue": []}
for _ in range(runs):
    t0 = time.monotonic(); got = spool.read(site, me); out["spool"].append((time.monotonic() - t0) * 1000)
    assert got.jobs is not None, got.reason
    out["spool_count"] = len(got.jobs)
    t0 = time.monotonic(); jobs = shares.discover(site.squeue, site.squeue_timeout_seconds)
    out["squeue"].append((time.monotonic() - t0) * 1000)
    out["squeue_count"] = len(jobs)
print(json.dumps(out))
"""


def counting_squeue(base: Path, listing: bytes) -> tuple[Path, Path]:
    """A squeue that counts its calls and prints a canned listing (no load on slurmctld)."""
    (base / "canned.bin").write_bytes(listing)
    count = base / "calls"
    script = base / "counting-squeue"
    script.write_text(f'#!/bin/sh\necho x >> "{count}"\ncat "{base / "canned.bin"}"\n')
    script.chmod(0o755)
    return script, count


def calls_per_minute(base: Path, site: shares.SiteSummary, receivers: int) -> tuple[int, int]:
    """(with the spool, without): squeue calls in one simulated minute."""
    listing = shares.run_with_timeout(shares.squeue_argv(site.squeue), site.squeue_timeout_seconds)
    script, count = counting_squeue(base, listing)
    me = shares.Identity("mtrecv", 0, 0, Path("/"), ("mtclass",))
    refreshes = receivers * (60 // REFRESH_SECONDS)
    count.unlink(missing_ok=True)
    for _ in range(60 // INTERVAL_SECONDS):  # the service's cycles in that minute
        spool.write(site.spool_dir, spool.route(site, shares.run_with_timeout(shares.squeue_argv(str(script)), 10)),
                    INTERVAL_SECONDS)
    for _ in range(refreshes):
        assert spool.read(site, me).jobs is not None
    with_spool = len(count.read_text().split()) if count.exists() else 0
    count.unlink(missing_ok=True)
    for _ in range(refreshes):
        shares.discover(str(script), 10)
    without = len(count.read_text().split())
    return with_spool, without


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--held", default="0,10000,30000", help="comma-separated held-job counts to measure at")
    parser.add_argument("--shares", type=int, default=50)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--receivers", default="1,100,1000")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root with the host Slurm started (tests/lab/host_slurm.sh start)")
    base = Path(tempfile.mkdtemp(prefix="ood-mt-bench-spool-", dir="/tmp"))
    base.chmod(0o755)
    submitted: list[str] = []
    rows = []
    try:
        master = os.urandom(32)
        site_json = bench_discovery.scratch_site(base, master, "reader.py", READER)
        site = shares.load_site_summary(site_json)
        submitted += bench_discovery.start_shares(args.shares, master, base)
        queued = 0
        for held in sorted(int(h) for h in args.held.split(",")):
            if held > queued:
                ids, secs = bench_discovery.queue_held(held - queued, 8)
                submitted += ids
                queued = held
                print(f"queued {len(ids)} more held jobs in {secs:.1f} s", flush=True)
            t0 = time.monotonic()
            listing = shares.run_with_timeout(shares.squeue_argv("squeue"), 30)
            report = spool.write(site.spool_dir, spool.route(site, listing), INTERVAL_SECONDS)
            cycle_ms = (time.monotonic() - t0) * 1000
            done = bench_discovery.run_as(RECEIVER, ["/usr/bin/python3", str(base / "reader.py"), str(site_json),
                                                     str(args.runs)], env={"PYTHONPATH": str(base / "py")})
            if done.returncode != 0:
                raise SystemExit(f"bench: reader failed: {done.stderr}")
            got = json.loads(done.stdout)
            rows.append((held, got, cycle_ms, report))
        receivers = [(n, *calls_per_minute(base, site, n)) for n in (int(r) for r in args.receivers.split(","))]
    finally:
        bench_discovery.cancel(submitted)
        shutil.rmtree(base, ignore_errors=True)

    print(f"\n{args.shares} running shares of mtpub for mtclass; {args.runs} runs each, as {RECEIVER}")
    print(f"{'held jobs':>9} {'spool read ms (median/p95)':>27} {'own squeue ms (median/p95)':>27} "
          f"{'shares':>7} {'service cycle ms':>17}")
    pct = bench_discovery.percentile
    for held, got, cycle_ms, _report in rows:
        print(f"{held:>9} {statistics.median(got['spool']):>16.2f} / {pct(got['spool'], 95):>7.2f}"
              f" {statistics.median(got['squeue']):>16.1f} / {pct(got['squeue'], 95):>7.1f}"
              f" {got['spool_count']:>4}/{got['squeue_count']:<3} {cycle_ms:>16.1f}")
    print(f"\nsqueue calls per minute (refresh every {REFRESH_SECONDS} s, service every {INTERVAL_SECONDS} s, "
          "counted by a counting squeue wrapper):")
    print(f"{'receivers':>9} {'with the spool':>15} {'without':>9}")
    for n, with_spool, without in receivers:
        print(f"{n:>9} {with_spool:>15} {without:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
