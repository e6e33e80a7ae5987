"""Generate tests/vectors/v1.json, the protocol v1 test vectors.

Run once, commit the output:  .venv/bin/python tests/vectors/generate.py
Keys, nonces and uid lists derive from fixed labels and seeds. The gzip bytes are
stored in the file (compressed_hex) because another zlib may compress differently:
the committed file, not a re-run, is the reference the tests check.

The keys here are PUBLIC TEST VALUES, not secrets: never use them on a cluster.
Each expected rejection reason is the one docs/protocol.md specifies; the generator
checks the reference decoder agrees before writing, so a wrong vector cannot be saved.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

from ood_mt import codec, keys

OUT = Path(__file__).with_name("v1.json")


def fixed_bytes(label: str, n: int = 32) -> bytes:
    return hashlib.sha256(b"ood-mt test vector\n" + label.encode()).digest()[:n]


MASTER = fixed_bytes("master secret")
GROUP_KEY = keys.derive_group_key(MASTER, "mtclass", 1)
USER_KEY = fixed_bytes("user key alice")
OTHER_KEY = keys.derive_group_key(MASTER, "mtclass", 2)


def payload(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "v": 1,
        "app": "mt_llm",
        "title": "Llama 3.2 1B for the class",
        "preset": "ollama",
        "mode": "card",
        "delivery": "sys/mt_delivery_default",
        "session": "7f3c2a10-5b1e-4c2d-9a8b-0e1f2a3b4c5d",
        "created": 1767225600,
        "conn": {
            "host": "node017.cluster.example",
            "port": "41873",
            "api_url": "http://node017.cluster.example:41873/v1",
            "models": "llama3.2:1b,qwen2.5-coder:1.5b",
        },
    }
    base.update(changes)
    return base


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


def plain(p: dict[str, Any]) -> bytes:
    return json.dumps(p, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def token_case(
    name: str,
    *,
    p: dict[str, Any] | None,
    key: bytes = GROUP_KEY,
    aud: str = "mtclass",
    kv: int = 1,
    jobid: str = "4242",
    owner: str = "alice",
    compressed: bytes | None = None,
) -> dict[str, Any]:
    nonce = fixed_bytes("nonce " + name, 16)
    if compressed is None:
        assert p is not None
        compressed = gz(plain(p))
    token = codec.encode(
        p or {}, group_key=key, aud=aud, kv=kv, jobid=jobid, owner=owner, nonce=nonce, compressed=compressed
    )
    job_name, comment = codec.split_transport(token)
    return {
        "name": name,
        "key_hex": key.hex(),
        "aud": aud,
        "kv": kv,
        "jobid": jobid,
        "owner": owner,
        "nonce_hex": nonce.hex(),
        "compressed_hex": compressed.hex(),
        "token": token,
        "job_name": job_name,
        "comment": comment,
        "expect": "ok",
        "payload": p,
    }


def negative(base: dict[str, Any], name: str, expect: str, **changes: Any) -> dict[str, Any]:
    case = {k: base[k] for k in ("key_hex", "jobid", "owner", "token")}
    case.update(changes)
    case.update({"name": name, "expect": expect, "derived_from": base["name"]})
    return case


def flip_char(text: str, index: int) -> str:
    ch = text[index]
    return text[:index] + ("B" if ch != "B" else "C") + text[index + 1 :]


def build() -> dict[str, Any]:
    rng = random.Random(20260101)
    small = [1001, 1002, 1007, 1500, 23456]
    thousand = sorted(rng.sample(range(100_000, 200_000), 1000))
    group = token_case("group audience", p=payload())
    user = token_case(
        "user audience",
        p=payload(title="only me", mode="form"),
        key=USER_KEY,
        aud="~alice",
    )
    users_small = token_case("users list, 5 uids", p=payload(users=codec.encode_users(small), title="five people"))
    users_1000 = token_case("users list, 1000 uids", p=payload(users=codec.encode_users(thousand)))
    needs_comment = token_case(
        "needs the comment",
        p=payload(
            conn={"host": "n1", "port": "1", "note": b"".join(fixed_bytes(f"filler {i}") for i in range(28)).hex()}
        ),
    )
    unicode_case = token_case(
        "unicode values",
        p=payload(
            title="Modèle partagé — 模型 🚀",
            conn={"host": "nœud-7", "password": 'p"a\\s$(x)`y`;\nz\u0001', "emoji": "🦙🐘"},
        ),
    )
    version2 = token_case("key version 2", p=payload(), key=OTHER_KEY, kv=2, jobid="123456789012")
    ok_cases = [group, user, users_small, users_1000, needs_comment, unicode_case, version2]

    blob_start = len("mt1:mtclass:1:")
    tok = group["token"]
    trunc_bad_len = tok[:-1] if (len(tok) - 1 - blob_start) % 4 == 1 else tok[:-2]
    if (len(trunc_bad_len) - blob_start) % 4 != 1:
        trunc_bad_len = tok[: blob_start + ((len(tok) - blob_start - 1) // 4) * 4 + 1]
    bad_cases = [
        negative(group, "tampered ciphertext byte", "bad-tag", token=flip_char(tok, blob_start + 30)),
        negative(group, "tampered tag byte", "bad-tag", token=flip_char(tok, len(tok) - 5)),
        negative(group, "wrong jobid", "bad-tag", jobid="4243"),
        negative(group, "wrong owner", "bad-tag", owner="mallory"),
        negative(group, "wrong key", "bad-tag", key_hex=OTHER_KEY.hex()),
        negative(group, "audience changed", "bad-tag", token=tok.replace("mt1:mtclass:", "mt1:mtclasz:", 1)),
        negative(group, "key version changed", "bad-tag", token=tok.replace(":1:", ":3:", 1)),
        negative(group, "truncated to invalid base64 length", "bad-encoding", token=trunc_bad_len),
        negative(
            group,
            "truncated at a base64 quantum",
            "bad-tag",
            token=tok[: blob_start + ((len(tok) - blob_start) // 4 - 1) * 4],
        ),
        negative(group, "truncated to nonce only", "bad-encoding", token=tok[: blob_start + 22]),
        negative(group, "bad base64 character", "bad-encoding", token=tok[:40] + "!" + tok[41:]),
        negative(group, "padding present", "bad-encoding", token=tok + "=="),
        negative(group, "extra field", "bad-encoding", token=tok.replace("mt1:mtclass:", "mt1:mtclass:x:", 1)),
        negative(group, "zero key version", "bad-encoding", token=tok.replace(":1:", ":0:", 1)),
        negative(group, "old framework name", "not-a-share", token="sys/dashboard|mtclass|U2FsdGVk"),
        negative(group, "empty", "not-a-share", token=""),
        negative(group, "over 2042 characters", "too-large", token=tok + "A" * (2043 - len(tok))),
    ]
    # Valid tag, broken plaintext: what a buggy (or hostile, key-holding) publisher could send.
    for name, compressed, reason in (
        ("not gzip, valid tag", b"this is not gzip data", "bad-payload"),
        ("json array, valid tag", gz(b"[1,2,3]"), "bad-payload"),
        ("json not utf-8, valid tag", gz(b'{"v":1,"app":"\xff"}'), "bad-payload"),
        ("version 2 plaintext, valid tag", gz(plain(payload(v=2))), "bad-payload"),
        ("conn not flat, valid tag", gz(plain(payload(conn={"a": {"b": "c"}}))), "bad-payload"),
        ("unknown field, valid tag", gz(plain(payload(extra="x"))), "bad-payload"),
        ("created is a string, valid tag", gz(plain(payload(created="1767225600"))), "bad-payload"),
        ("truncated gzip, valid tag", gz(plain(payload()))[:-6], "bad-payload"),
        ("gzip plus trailing data, valid tag", gz(plain(payload())) + b"\x00", "bad-payload"),
        ("gzip bomb 1 MiB, valid tag", gz(b" " * (1 << 20)), "too-large"),
    ):
        case = token_case(name, p=None, compressed=compressed)
        case.update({"expect": reason, "payload": None})
        bad_cases.append(case)

    users_cases = [
        {"name": "5 uids", "uids": small, "encoded": codec.encode_users(small), "expect": "ok"},
        {"name": "1000 uids", "uids": thousand, "encoded": codec.encode_users(thousand), "expect": "ok"},
        {"name": "1 uid", "uids": [0], "encoded": codec.encode_users([0]), "expect": "ok"},
        {
            "name": "consecutive",
            "uids": list(range(5000, 5100)),
            "encoded": codec.encode_users(range(5000, 5100)),
            "expect": "ok",
        },
        {"name": "k over 24", "encoded": {"n": 2, "first": 1, "k": 25, "bits": "AA=="}, "expect": "bad-payload"},
        {"name": "n zero", "encoded": {"n": 0, "first": 1, "k": 0, "bits": ""}, "expect": "bad-payload"},
        {"name": "n over 100000", "encoded": {"n": 100001, "first": 1, "k": 0, "bits": ""}, "expect": "bad-payload"},
        {"name": "ends inside a gap", "encoded": {"n": 2, "first": 1, "k": 0, "bits": "/w=="}, "expect": "bad-payload"},
        {"name": "extra gaps", "encoded": {"n": 2, "first": 1, "k": 0, "bits": "AAA="}, "expect": "bad-payload"},
        {"name": "bits not base64", "encoded": {"n": 2, "first": 1, "k": 0, "bits": "*"}, "expect": "bad-payload"},
        {"name": "first is a string", "encoded": {"n": 1, "first": "1", "k": 0, "bits": ""}, "expect": "bad-payload"},
    ]
    return {
        "comment": (
            "ood-mt protocol v1 TEST VECTORS. The keys below are public test values, "
            "NOT secrets; never use them on a cluster. Generated by tests/vectors/generate.py."
        ),
        "protocol": "mt1",
        "group_keys": [
            {
                "master_hex": MASTER.hex(),
                "group": "mtclass",
                "version": v,
                "key_hex": keys.derive_group_key(MASTER, "mtclass", v).hex(),
            }
            for v in (1, 2)
        ],
        "tokens": ok_cases + bad_cases,
        "users": users_cases,
    }


def self_check(vectors: dict[str, Any]) -> None:
    for case in vectors["tokens"]:
        try:
            got = codec.decode(
                case["token"], group_key=bytes.fromhex(case["key_hex"]), jobid=case["jobid"], owner=case["owner"]
            )
            outcome = "ok" if got == case["payload"] else "wrong payload"
        except codec.Rejected as exc:
            outcome = exc.reason
        if outcome != case["expect"]:
            sys.exit(f"vector {case['name']!r}: reference decoder says {outcome}, expected {case['expect']}")
    for case in vectors["users"]:
        try:
            outcome = "ok" if codec.decode_users(case["encoded"]) == case.get("uids") else "wrong uids"
        except codec.Rejected as exc:
            outcome = exc.reason
        if outcome != case["expect"]:
            sys.exit(f"users vector {case['name']!r}: got {outcome}, expected {case['expect']}")


def main() -> None:
    vectors = build()
    self_check(vectors)
    OUT.write_text(json.dumps(vectors, indent=1, ensure_ascii=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(vectors['tokens'])} token vectors, {len(vectors['users'])} users vectors)")


if __name__ == "__main__":
    main()
