#!/usr/bin/env python3
"""Benchmark: what the dashboard initializer's refresh costs per request with the discovery spool.

No Slurm needed. Writes a spool in a temporary directory (docs/discovery.md): a fresh
heartbeat, one listing file per tenant group of the receiver (--groups, each with --shares
real v1 shares of its group, made with ood_mt.codec and keys generated for this run) and the
receiver's own file; then, in ONE Ruby process with the initializer's libraries
(src/ood_mt/initializer/lib, the INITIALIZER_LIBS, as the dashboard loads them), times:

  unchanged   Refresher#refresh when nothing changed (what every sessions-page and form
              request pays): heartbeat stat + freshness + one stat per listing file
  freshness   Spool#freshness alone (one stat; the heartbeat is re-read only when it changed)
  signature   Spool#signature alone (one stat per listing path)
  changed     Refresher#refresh(force: true): every file read, parsed and every share
              verified and its card written (what a change costs, once)

and prints median, p95 and min in microseconds.

Usage: .venv/bin/python bench/spool_skip.py [--groups 3] [--shares 20] [--runs 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from ood_mt import codec, config, keys, render, share_contract  # noqa: E402

RUBY = r'''
require "json"
require "etc"
lib_dir, spool, key_dir, home, groups_json, runs, force_runs = ARGV
INITIALIZER_LIBS = JSON.parse(ENV.fetch("OOD_MT_LIBS"))
INITIALIZER_LIBS.each { |name| require File.join(lib_dir, name) }
contract = JSON.parse(File.read(File.join(lib_dir, "../../share_contract.json")))
site = JSON.parse(File.read(File.join(spool, "..", "site.json")))
config = MultiTenant::Config.new(site, contract: contract)
groups = JSON.parse(groups_json)
me = MultiTenant::Identity.new(name: "bench", uid: 4242, gid: 4242, home: home, group_names: ["bench"] + groups)
refresher = MultiTenant::Refresher.new(config: config, identity: me, env: {}, logger: ->(_l) {},
                                       membership: ->(_u, _g) { true })
raise "expected shares from the spool" if refresher.refresh.empty? || refresher.source != :spool

def clock = Process.clock_gettime(Process::CLOCK_MONOTONIC)

def measure(n)
  Array.new(n) do
    t = clock
    yield
    (clock - t) * 1e6
  end.sort
end

spool_obj = refresher.spool
now = Time.now.to_f
out = {
  "shares" => refresher.specs.size,
  "listing_files" => spool_obj.paths.size,
  "unchanged" => measure(Integer(runs)) { refresher.refresh },
  "freshness" => measure(Integer(runs)) { spool_obj.freshness(now) },
  "signature" => measure(Integer(runs)) { spool_obj.signature },
  "changed" => measure(Integer(force_runs)) { refresher.refresh(force: true) }
}
puts JSON.generate(out)
'''


def row(jobid: str, owner: str, wckey: str, name: str) -> bytes:
    """One record exactly as squeue prints the share contract's listing."""
    values = [jobid, owner, wckey, "N/A", name, "(null)"]
    out = b""
    for (_field, width), value in zip(share_contract.contract()["listing"]["fields"], values):
        out += value.encode()[:width].ljust(width, b" ") + b"|"
    return out + b"\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--groups", type=int, default=3)
    parser.add_argument("--shares", type=int, default=20)
    parser.add_argument("--runs", type=int, default=20000)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="ood-mt-bench-spool-"))
    spool = base / "spool"
    (spool / "group").mkdir(parents=True)
    (spool / "user").mkdir()
    master = os.urandom(32)
    groups = [f"bench{i:02d}" for i in range(args.groups)]
    summary = config.load_site(REPO / "inventories/lab/group_vars/all/multitenant.yml").public_summary()
    summary.update(spool_dir=str(spool), key_dir=str(base / "keys"), tenant_groups=groups, publisher_group="bench")
    (base / "site.json").write_text(json.dumps(summary))
    now = int(time.time())
    jobid = 100000
    for group in groups:
        gdir = base / "keys" / group
        gdir.mkdir(parents=True)
        (gdir / "current").write_text("1\n")
        (gdir / "v1.key").write_text(keys.derive_group_key(master, group, 1).hex() + "\n")
        listing = b""
        for _ in range(args.shares):
            jobid += 1
            payload = {"v": 1, "app": "llm", "title": "Bench", "preset": "api", "mode": "form",
                       "delivery": "sys/mt_delivery_default", "session": "b", "created": now,
                       "conn": {"host": "node1", "port": "8080"}}
            token = codec.encode(payload, group_key=keys.derive_group_key(master, group, 1), aud=group, kv=1,
                                 jobid=str(jobid), owner=f"pub{jobid}")
            listing += row(str(jobid), f"pub{jobid}", summary["wckey"], token)
        (spool / "group" / f"{group}.listing").write_bytes(listing)
    (spool / "user" / "bench.listing").write_bytes(b"")
    (spool / "heartbeat").write_text(json.dumps({"format": 1, "written": time.time(), "interval": 3600}))
    home = base / "home"
    home.mkdir()
    env = {**os.environ, "OOD_MT_LIBS": json.dumps(list(render.INITIALIZER_LIBS))}
    done = subprocess.run(["ruby", "-e", RUBY, str(REPO / "src/ood_mt/initializer/lib"), str(spool),
                           str(base / "keys"), str(home), json.dumps(groups), str(args.runs), "50"],
                          capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return 1
    got = json.loads(done.stdout)
    ruby = subprocess.run(["ruby", "-e", "print RUBY_VERSION"], capture_output=True, text=True, check=False).stdout
    print(f"spool: {got['listing_files']} listing paths ({args.groups} group files + the user's own), "
          f"{got['shares']} shares verified; ruby {ruby}")
    print(f"{'what':<12}{'runs':>8}{'median us':>12}{'p95 us':>10}{'min us':>10}")
    for name in ("unchanged", "freshness", "signature", "changed"):
        xs = got[name]
        print(f"{name:<12}{len(xs):>8}{xs[len(xs) // 2]:>12.1f}{xs[int(len(xs) * 0.95)]:>10.1f}{xs[0]:>10.1f}")
    subprocess.run(["rm", "-rf", str(base)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
