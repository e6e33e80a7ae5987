"""Capacity benchmark: how many users fit in one share's Slurm job name (and name + comment).

Prints a table: for explicit uid lists drawn uniformly from a 100,000-wide uid range,
the largest list that still fits, for protocol v1 (JobName alone <= 1023 characters;
JobName + Comment <= 2042) and for the original framework's encoding (JobName only),
with a realistic LLM share payload. Several seeds; min and median reported.

The original framework's format is re-implemented here only to measure it, from the
facts in ../shared/docs/original-design.md: plaintext "{'mtu':'<sorted uids>',...}|{conn}"
with whitespace removed, gzip, AES-256-CBC, base64 on one line, name
"sys/dashboard|<group>|<b64>". The uid separator (comma) is an assumption.

Both formats compress with the real `gzip -n -9`, as the job scripts do.

Run: .venv/bin/python bench/capacity.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ood_mt import codec

UID_LOW = 10_000
UID_RANGE = 100_000
GROUP = "mtclass"
JOBID = "12345678"
OWNER = "publisher01"
CONN = {
    "host": "gpu-node017.cluster.example.edu",
    "port": "41873",
    "api_url": "http://gpu-node017.cluster.example.edu:41873/v1",
    "models": "llama3.2:1b,qwen2.5-coder:1.5b",
}
SESSION = "7f3c2a10-5b1e-4c2d-9a8b-0e1f2a3b4c5d"


def gzip_n9(data: bytes) -> bytes:
    return subprocess.run(["gzip", "-n", "-9", "-c"], input=data, capture_output=True, check=True).stdout


def v1_token(uids: Sequence[int], key: bytes) -> str:
    payload = {
        "v": 1, "app": "mt_llm", "title": "Llama 3.2 1B for the class", "preset": "ollama", "mode": "card",
        "delivery": "sys/mt_delivery_default", "session": SESSION, "created": int(time.time()),
        "conn": CONN, "users": codec.encode_users(uids),
    }  # fmt: skip
    plain = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    try:
        return codec.encode(payload, group_key=key, aud=GROUP, kv=1, jobid=JOBID, owner=OWNER,
                            compressed=gzip_n9(plain))  # fmt: skip
    except codec.Rejected:
        return "x" * (codec.TOKEN_MAX + 1)


def original_name(uids: Sequence[int], key: bytes) -> str:
    meta = (
        f"{{'mtu':'{','.join(str(u) for u in sorted(uids))}','mti':'{SESSION}','mta':'mt_llm',"
        "'mtm':'card','mtd':'sys/dashboard'}"
    )
    conn = "{" + ",".join(f"'{k}':'{v}'" for k, v in CONN.items()) + "}"
    plain = "".join(f"{meta}|{conn}".split()).encode()
    padder = padding.PKCS7(128).padder()
    padded = padder.update(gzip_n9(plain)) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    b64 = base64.b64encode(enc.update(padded) + enc.finalize()).decode()
    return f"sys/dashboard|{GROUP}|{b64}"


def max_fitting(pool: Sequence[int], size_of: Callable[[Sequence[int]], int], limit: int) -> int:
    """Largest n such that the first n uids of pool fit; binary search, then a local check."""
    lo, hi = 1, 1
    while size_of(pool[:hi]) <= limit:
        lo, hi = hi, hi * 2
        if hi > len(pool):
            return len(pool)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if size_of(pool[:mid]) <= limit:
            lo = mid
        else:
            hi = mid
    return lo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    key = os.urandom(32)
    rows: dict[str, list[int]] = {"v1 JobName (<=1023)": [], "v1 JobName+Comment (<=2042)": [],
                                  "original JobName (<=1023)": []}  # fmt: skip
    for seed in range(args.seeds):
        pool = random.Random(seed).sample(range(UID_LOW, UID_LOW + UID_RANGE), 5000)
        rows["v1 JobName (<=1023)"].append(max_fitting(pool, lambda u: len(v1_token(u, key)), codec.NAME_MAX))
        rows["v1 JobName+Comment (<=2042)"].append(max_fitting(pool, lambda u: len(v1_token(u, key)), codec.TOKEN_MAX))
        rows["original JobName (<=1023)"].append(
            max_fitting(pool, lambda u: len(original_name(u, key)), codec.NAME_MAX)
        )
    print(f"users per share; uids uniform in [{UID_LOW}, {UID_LOW + UID_RANGE}); LLM share payload; "
          f"{args.seeds} seeds")  # fmt: skip
    print(f"{'encoding':<30} {'min':>6} {'median':>7} {'max':>6}   per seed")
    for name, values in rows.items():
        print(f"{name:<30} {min(values):>6} {statistics.median(values):>7g} {max(values):>6}   {values}")
    print(f"v1 token with a 1-uid list: {len(v1_token([UID_LOW], key))} characters "
          "(group audience: no list, a few characters less)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
