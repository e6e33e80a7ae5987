#!/usr/bin/env python3
"""Benchmark: the initializer's share discovery against the original framework's.

On the real host Slurm (tests/lab/host_slurm.sh start; run as root):
  1. queues --held held jobs of another user (mtout) with parallel `sbatch --hold`
     (not an array: squeue shows a pending array as one row) and reports the rate;
  2. starts --shares running jobs of mtpub with --wckey=multitenant, each renamed to a
     real ~600-character v1 token for the tenant group (keys generated for this run);
  3. as mtrecv, in ONE Ruby process, times --runs times, interleaved:
       new  = the initializer's discovery: the single squeue call + parse + verify
              (src/ood_mt/initializer/lib/, the INITIALIZER_LIBS, exactly as the dashboard runs them)
       old  = the original framework's discovery: `sacct --allocations ... --wckeys=multitenant`
              then `squeue --format=%i|%1024j -j <ids>` (calls + parse, no decryption)
       new_call = the single squeue call + parse alone (what verification adds is the difference)
     and the Python CLI's discovery (ood_mt.shares: same call + parse + verify);
  4. prints a table (median, p95, min in ms) and cleans up every job it submitted.

Usage: .venv/bin/python bench/discovery.py [--held 10000] [--shares 50] [--runs 15]
"""

from __future__ import annotations

import argparse
import grp
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from ood_mt import codec, config, keys, render  # noqa: E402

HELD_USER = "mtout"
PUBLISHER = "mtpub"
RECEIVER = "mtrecv"
GROUP = "mtclass"
PUBLISHER_GROUP = "mtusr"
WCKEY = "multitenant"
SCANCEL_CHUNK = 500
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"  # util-linux; /usr/sbin is not always on PATH

RUBY_BENCH = r"""
require "json"
lib = ARGV[0]
ARGV[3].split(",").each { |name| require File.join(lib, name) } # ood_mt.render.INITIALIZER_LIBS
runs = Integer(ARGV[2])
config = MultiTenant::Config.load(ARGV[1], contract: JSON.parse(File.read(File.join(lib, "share_contract.json"))))
me = MultiTenant::Identity.current
def now_ms = Process.clock_gettime(Process::CLOCK_MONOTONIC) * 1000.0

new_discovery = lambda do
  keys = MultiTenant::KeyStore.new(key_dir: config.key_dir, home: me.home)
  verifier = MultiTenant::Verifier.new(config: config, identity: me, keys: keys)
  jobs = MultiTenant::Discovery.new(config: config).call
  raise jobs.message if jobs.is_a?(MultiTenant::Discovery::Failure)
  jobs.count { |job| (verifier.verify(job) rescue nil) }
end

new_call_only = lambda do
  jobs = MultiTenant::Discovery.new(config: config).call
  raise jobs.message if jobs.is_a?(MultiTenant::Discovery::Failure)
  jobs.size
end

old_discovery = lambda do
  out = IO.popen(["sacct", "--allocations", "--noheader", "--parsable2", "--state=RUNNING",
                  "--format=jobidraw,user,cluster", "-a", "--wckeys=#{config.wckey}"], &:read)
  ids = out.lines.map { |l| l.split("|").first }.compact.reject(&:empty?)
  next 0 if ids.empty?
  names = IO.popen(["squeue", "--noheader", "--format=%i|%1024j", "-j", ids.join(",")], &:read)
  names.lines.count { |l| l.split("|", 2)[1].to_s.start_with?("mt1:") }
end

variants = { "new" => new_discovery, "old" => old_discovery, "new_call" => new_call_only }
result = variants.keys.to_h { |k| [k, []] }
runs.times do |i|
  order = variants.keys.rotate(i % variants.size)
  order.each do |which|
    t0 = now_ms
    count = variants.fetch(which).call
    result[which] << (now_ms - t0)
    result["#{which}_count"] = count
  end
end
puts JSON.generate(result)
"""

PY_BENCH = r"""
import json, sys, time
from ood_mt import shares
site = shares.load_site_summary(sys.argv[1])
runs = int(sys.argv[2])
me = shares.Identity.current()
times, count = [], 0
for _ in range(runs):
    t0 = time.monotonic()
    verifier = shares.Verifier(site, me)
    count = sum(1 for job in shares.discover(site.squeue, site.squeue_timeout_seconds)
                if verifier.evaluate(job).accepted)
    times.append((time.monotonic() - t0) * 1000)
print(json.dumps({"python": times, "python_count": count}))
"""


def run_as(user: str, argv: list[str], stdin: str | None = None, env: dict[str, str] | None = None,
           timeout: float = 600) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": f"/home/{user}"}
    clean.update(env or {})
    return subprocess.run([RUNUSER, "-u", user, "--", *argv], capture_output=True, text=True, input=stdin,
                          env=clean, timeout=timeout, check=False, cwd="/tmp")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def queue_held(count: int, parallel: int) -> tuple[list[str], float]:
    script = (f"seq {count} | xargs -P {parallel} -I{{}} sbatch --parsable --hold -J bench-held "
              "-o /dev/null --wrap true")
    started = time.monotonic()
    proc = run_as(HELD_USER, ["bash", "-c", script], timeout=1800)
    elapsed = time.monotonic() - started
    ids = [line.split(";")[0] for line in proc.stdout.split() if line.strip()]
    if proc.returncode != 0 or len(ids) != count:
        raise SystemExit(f"bench: queued {len(ids)}/{count} held jobs; sbatch said: {proc.stderr[-500:]}")
    return ids, elapsed


def start_shares(count: int, master: bytes, base: Path) -> list[str]:
    ids = []
    for _ in range(count):
        proc = run_as(PUBLISHER, ["sbatch", "--parsable", f"--wckey={WCKEY}", "-J", "bench-share", "-o", "/dev/null",
                                  f"--chdir={base}", "--wrap", "sleep 3600"])
        if proc.returncode != 0:
            raise SystemExit(f"bench: sbatch as {PUBLISHER} failed: {proc.stderr}")
        ids.append(proc.stdout.strip().split(";")[0])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-t", "R", "-u", PUBLISHER, "-o", "%i"], capture_output=True,
                             text=True, check=True).stdout.split()
        if set(ids) <= set(out):
            break
        time.sleep(0.5)
    else:
        raise SystemExit("bench: share jobs did not start within 120 s (node full?)")
    key = keys.derive_group_key(master, GROUP, 1)

    def publish(jobid: str) -> None:
        # ~600-character tokens like real shares: incompressible connection details.
        payload = {"v": 1, "app": "llm", "title": f"Bench {jobid}", "preset": "api", "mode": "form",
                   "delivery": "sys/mt_delivery_default", "session": os.urandom(8).hex(),
                   "created": int(time.time()),
                   "conn": {"host": "node1", "port": "11434", "password": os.urandom(64).hex(),
                            "x_pad": os.urandom(116).hex()}}
        token = codec.encode(payload, group_key=key, aud=GROUP, kv=1, jobid=jobid, owner=PUBLISHER)
        proc = run_as(PUBLISHER, ["scontrol", "update", f"JobId={jobid}", f"JobName={token}"])
        if proc.returncode != 0:
            raise SystemExit(f"bench: rename of {jobid} failed: {proc.stderr}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(publish, ids))
    return ids


def wait_for_accounting(ids: list[str], timeout: float = 600) -> float:
    """Seconds until sacct lists every share job as running: slurmdbd receives job records
    behind the thousands of submissions just queued, and the old framework's discovery only
    sees what slurmdbd has. Timing starts after this, so both variants see all shares."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        out = subprocess.run(["sacct", "--allocations", "--noheader", "--parsable2", "--state=RUNNING",
                              "--format=jobidraw", "-a", f"--wckeys={WCKEY}"], capture_output=True, text=True,
                             check=False).stdout.split()
        if set(ids) <= set(out):
            return time.monotonic() - started
        time.sleep(1)
    raise SystemExit(f"bench: slurmdbd did not record the share jobs within {timeout:.0f} s")


def make_keys(base: Path, master: bytes) -> Path:
    key_dir = base / "keys"
    group_dir = key_dir / GROUP
    group_dir.mkdir(parents=True)
    gid = grp.getgrnam(GROUP).gr_gid
    os.chown(group_dir, 0, gid)
    group_dir.chmod(0o750)
    for name, text in (("current", "1\n"), ("v1.key", keys.derive_group_key(master, GROUP, 1).hex() + "\n")):
        path = group_dir / name
        path.write_text(text)
        os.chown(path, 0, gid)
        path.chmod(0o440)
    return key_dir


def scratch_site(base: Path, master: bytes, script_name: str, script: str) -> Path:
    """A site.json in BASE for the bench site (the lab's, with the bench's WCKey, groups, key dir
    and a spool in BASE), the package and SCRIPT copied where the lab users can read them.
    Returns the site.json path."""
    key_dir = make_keys(base, master)
    shutil.copytree(REPO / "src/ood_mt", base / "py/ood_mt", symlinks=True)
    lab = config.load_site(REPO / "inventories/lab/group_vars/all/multitenant.yml").public_summary()
    site_json = base / "site.json"
    site_json.write_text(json.dumps({**lab, "site": "bench", "wckey": WCKEY, "publisher_group": PUBLISHER_GROUP,
                                     "tenant_groups": [GROUP], "tenant_group_pattern": "", "key_dir": str(key_dir),
                                     "squeue": "squeue", "spool_dir": str(base / "spool")}))
    (base / script_name).write_text(script)
    for path in base.rglob("*"):
        if not path.is_relative_to(key_dir) and not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    return site_json


def cancel(ids: list[str]) -> None:
    for start in range(0, len(ids), SCANCEL_CHUNK):
        subprocess.run(["scancel", *ids[start : start + SCANCEL_CHUNK]], check=False, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--held", type=int, default=10_000, help="held jobs of another user to queue")
    parser.add_argument("--shares", type=int, default=50, help="running share jobs to publish")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per variant (>= 10)")
    parser.add_argument("--parallel", type=int, default=8, help="parallel sbatch calls when queueing")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (it submits jobs as the lab users); start Slurm with "
                         "tests/lab/host_slurm.sh start")
    if args.runs < 10:
        raise SystemExit("bench: --runs must be at least 10")
    base = Path(tempfile.mkdtemp(prefix="ood-mt-bench-", dir="/tmp"))
    base.chmod(0o755)
    submitted: list[str] = []
    try:
        master = os.urandom(32)
        key_dir = make_keys(base, master)
        lib = base / "lib"
        shutil.copytree(REPO / "src/ood_mt/initializer/lib", lib)
        shutil.copytree(REPO / "src/ood_mt", base / "py/ood_mt")
        site = {"wckey": WCKEY, "publisher_group": PUBLISHER_GROUP, "tenant_groups": [GROUP],
                "tenant_group_pattern": "", "key_dir": str(key_dir), "cluster": "hostlab", "refresh_seconds": 30}
        shutil.copy(REPO / "src/ood_mt/share_contract.json", lib / "share_contract.json")
        lab_site = config.load_site(REPO / "inventories/lab/group_vars/all/multitenant.yml").public_summary()
        (base / "site.json").write_text(json.dumps({**lab_site, **site, "site": "bench"}))
        (base / "bench.rb").write_text(RUBY_BENCH)
        (base / "bench_py.py").write_text(PY_BENCH)
        for path in base.rglob("*"):
            if not path.is_relative_to(key_dir):
                path.chmod(0o755 if path.is_dir() else 0o644)

        print(f"queueing {args.held} held jobs of {HELD_USER} ({args.parallel} parallel sbatch)...", flush=True)
        held, held_s = queue_held(args.held, args.parallel)
        submitted += held
        print(f"  {len(held)} held jobs in {held_s:.1f} s ({len(held) / held_s:.0f} jobs/s)", flush=True)
        print(f"starting and publishing {args.shares} share jobs of {PUBLISHER}...", flush=True)
        share_ids = start_shares(args.shares, master, base)
        submitted += share_ids
        lag = wait_for_accounting(share_ids)
        print(f"  sacct listed all {len(share_ids)} running shares {lag:.1f} s after they were published",
              flush=True)

        ruby = run_as(RECEIVER, ["ruby", str(base / "bench.rb"), str(lib), str(base / "site.json"),
                                 str(args.runs), ",".join(render.INITIALIZER_LIBS)])
        if ruby.returncode != 0:
            raise SystemExit(f"bench: ruby bench failed: {ruby.stderr}")
        timings = json.loads(ruby.stdout)
        python = run_as(RECEIVER, ["/usr/bin/python3", str(base / "bench_py.py"), str(base / "site.json"),
                                   str(args.runs)], env={"PYTHONPATH": str(base / "py")})
        if python.returncode != 0:
            raise SystemExit(f"bench: python bench failed: {python.stderr}")
        timings.update(json.loads(python.stdout))
    finally:
        cancel(submitted)
        shutil.rmtree(base, ignore_errors=True)

    queue = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=False).stdout.split()
    print(f"\nqueue: {args.held} held jobs of {HELD_USER} + {args.shares} running shares; {args.runs} runs each, "
          f"as {RECEIVER}; cleaned up ({len(queue)} jobs left in the queue)")
    rows = [
        ("initializer (Ruby): 1 squeue + parse + verify", timings["new"], timings["new_count"]),
        ("  of which the squeue call + parse alone", timings["new_call"], timings["new_call_count"]),
        ("old framework: sacct --wckeys + squeue -j ids", timings["old"], timings["old_count"]),
        ("ood-mt CLI (Python): 1 squeue + parse + verify", timings["python"], timings["python_count"]),
    ]
    print(f"{'variant':<50} {'median ms':>10} {'p95 ms':>8} {'min ms':>8} {'shares':>7}")
    for label, values, count in rows:
        print(f"{label:<50} {statistics.median(values):>10.1f} {percentile(values, 95):>8.1f} "
              f"{min(values):>8.1f} {count:>7}")
    ratio = statistics.median(timings["new"]) / statistics.median(timings["old"])
    print(f"initializer / old framework (medians): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
