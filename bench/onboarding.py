#!/usr/bin/env python3
"""Benchmark: onboarding N users to a WCKey with sacctmgr_wckey vs. a per-user sacctmgr loop.

Runs against the real host Slurm (tests/lab/host_slurm.sh start; root). It creates N
Slurm users in a scratch account (sacctmgr needs no Unix account for them), then times:

  module      the sacctmgr_wckey module through `ansible localhost -m`, adding all N users
              to WCKey A (with ensure_default_wckey, so it also gives them the empty WCKey)
  loop        the original README's way: `sacctmgr -i add user U wckey=B` once per user
  no-op       the module again on WCKey A; slurmdbd's transaction log proves it wrote nothing

and prints a table with the speed-up. Everything it created is removed afterwards.

    .venv/bin/python bench/onboarding.py            # 1,000 users (the loop takes minutes)
    .venv/bin/python bench/onboarding.py --users 100
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
LIBRARY = REPO_ROOT / "roles" / "ood_mt_onboarding" / "library"
HOST_SLURM_SCRIPT = REPO_ROOT / "tests" / "lab" / "host_slurm.sh"
ANSIBLE = Path(sys.executable).parent / "ansible"


def sacctmgr(*args: str, check: bool = True) -> str:
    done = subprocess.run(["sacctmgr", *args], capture_output=True, text=True, timeout=600, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"sacctmgr {' '.join(args[:4])} ... failed: {done.stderr}{done.stdout}")
    return done.stdout


def lab_facts() -> Dict[str, str]:
    out = subprocess.run([str(HOST_SLURM_SCRIPT), "env"], capture_output=True, text=True, check=True).stdout
    facts: Dict[str, str] = {}
    for line in out.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        facts[name] = value
    return facts


def run_module(workdir: str, args: Dict[str, object]) -> Dict[str, object]:
    argv = [
        str(ANSIBLE), "localhost", "-i", "localhost,", "-c", "local",
        "-e", f"ansible_python_interpreter={sys.executable}",
        "-M", str(LIBRARY), "-m", "sacctmgr_wckey", "-a", json.dumps(args),
    ]
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_MODULE_UTILS=str(LIBRARY.parent / "module_utils"))
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=workdir, timeout=600, check=False)
    result = json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    if result.get("failed"):
        raise RuntimeError(f"module failed: {result.get('msg')}")
    return result


def count_writes(prefix: str) -> int:
    """slurmdbd transactions naming any user whose name starts with PREFIX."""
    out = sacctmgr("--parsable2", "--noheader", "list", "transactions", "format=Action,Where,Info")
    return sum(1 for line in out.splitlines() if f"'{prefix}" in line)


def timed(label: str, func) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    func()
    seconds = time.perf_counter() - start
    print(f"  {label}: {seconds:.2f} s", file=sys.stderr)
    return seconds


def per_user_loop(users: Sequence[str], wckey: str, cluster: str) -> None:
    for user in users:
        sacctmgr("-i", "add", "user", user, f"wckey={wckey}", f"cluster={cluster}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000, help="number of users (default 1000)")
    options = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/onboarding.py: run as root (it adds and removes Slurm users)", file=sys.stderr)
        return 2
    subprocess.run([str(HOST_SLURM_SCRIPT), "start"], check=True, capture_output=True)
    facts = lab_facts()
    cluster = facts["OOD_MT_SLURM_CLUSTER"]
    tag = secrets.token_hex(3)
    prefix = f"bo{tag}u"
    account = f"bo{tag}"
    users: List[str] = [f"{prefix}{i:05d}" for i in range(options.users)]
    wckey_module, wckey_loop = f"bo{tag}mod", f"bo{tag}loop"
    print(f"bench/onboarding.py: {len(users)} users, cluster {cluster}, account {account}", file=sys.stderr)

    sacctmgr("-i", "add", "account", account, f"cluster={cluster}", "description=bench", "organization=bench")
    try:
        sacctmgr("-i", "add", "user", ",".join(users), f"account={account}", f"cluster={cluster}")
        with tempfile.TemporaryDirectory() as workdir:
            t_module = timed("module", lambda: run_module(workdir, {"wckey": wckey_module, "users": users}))
            t_loop = timed("per-user loop", lambda: per_user_loop(users, wckey_loop, cluster))
            writes_before = count_writes(prefix)
            noop: Dict[str, object] = {}
            t_noop = timed("no-op module", lambda: noop.update(run_module(workdir, {"wckey": wckey_module,
                                                                                  "users": users})))
            writes_after = count_writes(prefix)
        rows = sacctmgr("--parsable2", "--noheader", "list", "wckey", f"cluster={cluster}", "format=WCKey,User")
        on_module = sum(1 for line in rows.splitlines() if line.startswith(f"{wckey_module}|"))
        on_loop = sum(1 for line in rows.splitlines() if line.startswith(f"{wckey_loop}|"))
    finally:
        sacctmgr("-i", "delete", "user", ",".join(users), check=False)
        sacctmgr("-i", "delete", "account", account, check=False)

    print(f"\nOnboarding {len(users)} users to a WCKey (Slurm 22.05, host lab, cluster {cluster})\n")
    print(f"| {'method':<52} | {'seconds':>8} | {'users on key':>12} |")
    print(f"|{'-' * 54}|{'-' * 10}|{'-' * 14}|")
    print(f"| {'sacctmgr_wckey module (via ansible, incl. startup)':<52} | {t_module:8.2f} | {on_module:>12} |")
    print(f"| {'per-user loop: sacctmgr -i add user U wckey=K':<52} | {t_loop:8.2f} | {on_loop:>12} |")
    print(f"| {'second module run (no-op)':<52} | {t_noop:8.2f} | {'':>12} |")
    print(f"\nspeed-up module vs loop: {t_loop / t_module:.1f}x")
    print(f"per-user loop: {1000 * t_loop / len(users):.0f} ms per user")
    print(f"no-op run: changed={noop.get('changed')}, slurmdbd transactions naming the users "
          f"before/after: {writes_before}/{writes_after} (no write: {writes_before == writes_after})")
    ok = on_module == on_loop == len(users) and noop.get("changed") is False and writes_before == writes_after
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
