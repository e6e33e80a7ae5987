"""Fuzzing the decoders: random and mutated tokens may only ever produce Rejected.

Python: >= 100,000 decodes in-process. Ruby: tests/protocol/fuzz_codec.rb with
>= 10,000, run under the real Ruby. Both also check the integrity property that
no changed token ever verifies (a "forgery"), and feed authenticated garbage
(valid tag, hostile plaintext) to reach the gzip/JSON/validation code.
"""

from __future__ import annotations

import gzip
import json
import random
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from ood_mt import codec

REPO = Path(__file__).resolve().parents[2]
VECTORS = json.loads((REPO / "tests" / "vectors" / "v1.json").read_text(encoding="utf-8"))
VALID = [c for c in VECTORS["tokens"] if c["expect"] == "ok"]
PY_COUNT = 100_000
RUBY_COUNT = 20_000
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_:~=+/!\n\x00"
UNICODE = ["é", "模", "🚀", "\u0000", "\u202e", "\udcff", "\U0010ffff"]


def _mutate(rng: random.Random, tok: str) -> str:
    kind = rng.randrange(7)
    if kind == 0:  # 1-4 character flips
        chars = list(tok)
        for _ in range(rng.randint(1, 4)):
            chars[rng.randrange(len(chars))] = rng.choice(ALPHABET)
        return "".join(chars)
    if kind == 1:  # truncation
        return tok[: rng.randrange(len(tok) + 1)]
    if kind == 2:  # insertion
        i = rng.randrange(len(tok) + 1)
        return tok[:i] + rng.choice(ALPHABET) + tok[i:]
    if kind == 3:  # base64 garbage after the prefix
        return "mt1:" + "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(60)))
    if kind == 4:  # random unicode
        i = rng.randrange(len(tok))
        return tok[:i] + rng.choice(UNICODE) + tok[i:]
    if kind == 5:  # swap two blob halves
        head, _, blob = tok.rpartition(":")
        cut = rng.randrange(len(blob) + 1)
        return f"{head}:{blob[cut:]}{blob[:cut]}"
    return tok.replace(":1:", f":{rng.randrange(5)}:", 1)


def _authenticated_garbage(rng: random.Random, case: dict[str, Any]) -> str:
    plain = json.dumps(case["payload"], separators=(",", ":"))
    kind = rng.randrange(4)
    if kind == 0:
        body = rng.randbytes(rng.randrange(200))
    elif kind == 1:
        i = rng.randrange(len(plain))
        body = gzip.compress((plain[:i] + rng.choice(ALPHABET) + plain[i + 1 :]).encode())
    elif kind == 2:
        body = gzip.compress(plain.encode())[: rng.randrange(60)]
    else:
        body = gzip.compress(b"[" * rng.randrange(5000) + b"]" * rng.randrange(5000))
    return codec.encode(
        {},
        group_key=bytes.fromhex(case["key_hex"]),
        aud=case["aud"],
        kv=case["kv"],
        jobid=case["jobid"],
        owner=case["owner"],
        compressed=body,
    )


def test_python_decode_only_rejects() -> None:
    rng = random.Random(20260101)
    reasons: Counter[str] = Counter()
    forged = 0
    keys = {c["name"]: bytes.fromhex(c["key_hex"]) for c in VALID}
    for n in range(PY_COUNT):
        case = rng.choice(VALID)
        garbage = n % 10 == 5
        token = _authenticated_garbage(rng, case) if garbage else _mutate(rng, case["token"])
        try:
            codec.decode(token, group_key=keys[case["name"]], jobid=case["jobid"], owner=case["owner"])
            reasons["accepted"] += 1
            if not garbage and token != case["token"]:
                forged += 1
        except codec.Rejected as exc:
            assert exc.reason in codec.REASONS
            reasons[exc.reason] += 1
        # Anything else propagates and fails the test with the token in the traceback.
    assert sum(reasons.values()) == PY_COUNT
    assert forged == 0
    assert {"bad-encoding", "bad-tag", "bad-payload", "not-a-share"} <= set(reasons), reasons


def test_ruby_decode_only_rejects() -> None:
    proc = subprocess.run(
        [
            "ruby",
            "-I",
            str(REPO / "src/ood_mt/initializer" / "lib"),
            str(REPO / "tests" / "protocol" / "fuzz_codec.rb"),
            str(RUBY_COUNT),
            "20260101",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["count"] == RUBY_COUNT
    assert result["forged"] == 0
    assert sum(result["reasons"].values()) + result["accepted"] == RUBY_COUNT
    assert {"bad-encoding", "bad-tag", "bad-payload"} <= set(result["reasons"]), result
