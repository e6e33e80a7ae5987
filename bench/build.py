#!/usr/bin/env python3
"""Time `ood-mt build` of the full lab suite and check that repeated builds are identical.

    .venv/bin/python bench/build.py [--runs 5] [--site FILE]

Prints the median and max render time and the tree digest of every run (target: under 2 s).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from ood_mt.config import load_site
from ood_mt.render import build, tree_digest

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--site", default=str(REPO / "inventories/lab/group_vars/all/multitenant.yml"))
    args = parser.parse_args()
    site = load_site(args.site)
    times, digests = [], set()
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            out = Path(tmp) / f"run{run}"
            started = time.perf_counter()
            manifest = build(site, out)
            times.append(time.perf_counter() - started)
            digests.add(tree_digest(out))
    files = len(manifest["files"])
    print(f"site {site.site}: {len(manifest['apps'])} apps, {files} files, {args.runs} builds")
    print(f"render time: median {statistics.median(times):.3f} s, max {max(times):.3f} s (target < 2 s)")
    print(f"distinct tree digests: {len(digests)} ({'deterministic' if len(digests) == 1 else 'NOT deterministic'})")


if __name__ == "__main__":
    main()
