"""Generate tests/vectors/verdicts.json: what a receiver decides about each job of a listing.

Run once, commit the output:  .venv/bin/python -m tests.vectors.generate_verdicts
Each case is an squeue listing exactly as Slurm prints the share contract's format, the
receiver's identity and groups; the file also holds the key files and the group directory
all cases share. The expected outcome (the listing refused, or per job: accepted or the
rejection reason) is computed by the Python reference (ood_mt.shares) AND written down by
hand here: the generator refuses to save a case where the two disagree. BOTH suites run
the file: tests/initializer/test_verdict_vectors.py (Python CLI side) and
tests/initializer/verdict_vectors_test.rb (the initializer), so a change to one verifier
alone fails a suite. The protocol limits are in the file too, and each implementation
asserts its own constants against them.

Keys here are PUBLIC TEST VALUES derived from fixed labels: never use them on a cluster.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from ood_mt import codec, keys, share_contract, shares
from tests.vectors import verdict_reference

OUT = Path(__file__).with_name("verdicts.json")
NOW = 1767225600  # 2026-01-01: every share's "created" unless a case changes it
SITE = {"wckey": "multitenant", "publisher_group": "mtusr", "tenant_groups": ["mtclass", "lab2"],
        "delivery_apps": ["mt_delivery_default", "mt_delivery_debug", "mt_delivery_readfile"]}
# Who is in which group (member lists; a user's own group is theirs alone).
DIRECTORY = {"mtusr": ["alice", "mallory", "dave"], "mtclass": ["alice", "bob", "dave"], "lab2": ["bob", "dave"]}
USERS = {"alice": 3001, "bob": 3002, "mallory": 3003, "carol": 3004, "dave": 3005}


def fixed(label: str, n: int = 32) -> bytes:
    return hashlib.sha256(b"ood-mt verdict vector\n" + label.encode()).digest()[:n]


MASTER = fixed("master")
GROUP_KEYS = {("mtclass", v): keys.derive_group_key(MASTER, "mtclass", v) for v in (1, 2, 3)}
USER_KEYS = {user: fixed(f"user key {user}") for user in ("alice", "bob")}
# mtclass keeps current 3 and previous 2 (1 retired); lab2 has no key files at all.
KEY_FILES = {"mtclass/current": "3\n", "mtclass/v3.key": GROUP_KEYS[("mtclass", 3)].hex() + "\n",
             "mtclass/v2.key": GROUP_KEYS[("mtclass", 2)].hex() + "\n"}


def payload(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "v": 1, "app": "database", "title": "Class database", "preset": "connection", "mode": "card",
        "delivery": "sys/mt_delivery_default", "session": "s-1", "created": NOW,
        "conn": {"engine": "postgresql", "host": "node7", "port": "45432", "database": "shared", "user": "guest",
                 "password": "pw-Abc123!#", "jdbc_url": "jdbc:postgresql://node7:45432/shared",
                 "mt_preset": "connection"},
    }
    for key, value in changes.items():
        if key == "conn_changes":
            base["conn"] = {**base["conn"], **value}
        else:
            base[key] = value
    return base


def token(jobid: str, owner: str, p: dict[str, Any], *, aud: str = "mtclass", kv: int | None = None,
          key: bytes | None = None) -> str:
    if kv is None:
        kv = keys.USER_KEY_VERSION if aud.startswith("~") else 3
    if key is None:
        key = USER_KEYS[aud[1:]] if aud.startswith("~") else GROUP_KEYS[(aud, kv)]
    plain = json.dumps(p, separators=(",", ":"), ensure_ascii=False).encode()
    return codec.encode(p, group_key=key, aud=aud, kv=kv, jobid=jobid, owner=owner,
                        nonce=fixed(f"nonce {jobid} {owner}", 16), compressed=gzip.compress(plain, 9, mtime=0))


# Every job started well before NOW in any time zone (StartTime is the squeue host's local time).
STARTED = "2025-12-30T00:00:00"


def record(jobid: str, user: str, wckey: str, name: str, comment: str = "(null)", start: str = STARTED) -> bytes:
    values = [jobid, user, wckey, start, name, comment]
    return b"".join(v.encode()[:width].ljust(width) + b"|"
                    for v, (_f, width) in zip(values, shares.LISTING_FIELDS)) + b"\n"


def share_record(jobid: str, owner: str, p: dict[str, Any], wckey: str = "multitenant", start: str = STARTED,
                 **kw: Any) -> bytes:
    name, comment = codec.split_transport(token(jobid, owner, p, **kw))
    return record(jobid, owner, wckey, name, comment or "(null)", start)


def tampered(jobid: str, owner: str) -> bytes:
    good = token(jobid, owner, payload())
    flip = len(good) - 30
    bad = good[:flip] + ("A" if good[flip] != "A" else "B") + good[flip + 1:]
    return record(jobid, owner, "multitenant", bad)


BOB = {"name": "bob", "uid": USERS["bob"], "groups": ["bob", "mtclass", "lab2"]}
ALICE = {"name": "alice", "uid": USERS["alice"], "groups": ["alice", "mtusr", "mtclass"]}


def cases() -> list[dict[str, Any]]:
    """(name, me, listing records, expected) with expected = "listing-refused" or {jobid: verdict}."""
    out: list[dict[str, Any]] = []

    def case(name: str, me: dict[str, Any], records: list[bytes], expect: Any) -> None:
        out.append({"name": name, "me": me, "listing": b"".join(records), "expect": expect})

    case("accepted: group share, previous key version, split token, user list holding me, my own user share",
         ALICE, [share_record("101", "alice", payload()),
                 share_record("102", "alice", payload(), kv=2),
                 share_record("103", "alice", payload(conn_changes={"x_note": "n" * 1000}, title="t" * 120)),
                 share_record("104", "alice", payload(users=codec.encode_users([USERS["alice"], 5000]))),
                 share_record("105", "alice", payload(mode="form"), aud="~alice"),
                 record("106", "alice", "multitenant", "sys/dashboard/sys/mt_database")],
         {"101": "accepted", "102": "accepted", "103": "accepted", "104": "accepted", "105": "accepted"})
    gated = payload(app="llm", preset="api", conn={"host": "node7", "port": "41234",
                                                   "gate_secret": "Gs" * 21 + "_-", "model": "llama3.2:1b",
                                                   "models": "llama3.2:1b", "mt_preset": "api"})
    case("a gated service's share carries the gate's secret", BOB, [share_record("111", "alice", gated)],
         {"111": "accepted"})
    case("who may publish to whom", BOB,
         [share_record("201", "carol", payload()),
          share_record("202", "mallory", payload()),
          share_record("203", "alice", payload(), aud="~bob"),
          share_record("204", "alice", payload(), aud="~alice"),
          share_record("205", "dave", payload(), aud="lab2", key=GROUP_KEYS[("mtclass", 3)]),
          share_record("206", "alice", payload(), wckey="other"),
          share_record("207", "alice", payload(), wckey="*MultiTenant"),
          share_record("208", "alice", payload(users=codec.encode_users([USERS["alice"]]))),
          share_record("209", "alice", payload(), kv=1)],
         {"201": "publisher-not-in-group", "202": "publisher-not-in-audience", "203": "publisher-not-in-audience",
          "204": "not-in-audience", "205": "no-key", "206": "wrong-wckey", "207": "accepted",
          "208": "not-in-audience", "209": "key-version-retired"})
    bad_fields = {
        "301": payload(conn_changes={"host": "node9\nplugin-dir=/tmp/evil"}),
        "302": payload(conn_changes={"port": "0"}),
        "303": payload(conn_changes={"port": "70000"}),
        "304": payload(conn_changes={"password": 'pw"x'}),
        "305": payload(conn_changes={"jdbc_url": "jdbc:mariadb://node9:3306/shared?allowLocalInfile=true"}),
        "306": payload(title="Class \u202edatabase"),
        "307": payload(title="Class\x1b[2Jdatabase"),
        "308": payload(title="t" * 121),
        "309": payload(created=0),
        "310": payload(created="1767225600"),
        "311": payload(title="Class \ufffe"),
        "312": payload(conn_changes={"x_note": "a\u0085b"}),
        "313": payload(preset="not a preset"),
        "314": payload(conn_changes={"database": "shared`; DROP"}),
        "315": payload(title="   "),
        "316": payload(conn_changes={"gate_secret": "short-secret"}),
        "317": payload(conn_changes={"gate_secret": "s" * 40 + "/../x"}),
    }
    # "created" as a string is refused by the codec's own payload check (bad-payload).
    case("values outside the contract", BOB, [share_record(j, "alice", p) for j, p in bad_fields.items()],
         {**dict.fromkeys(bad_fields, "bad-field"), "310": "bad-payload"})
    case("a share from before its job was requeued", BOB,
         [share_record("801", "alice", payload(created=NOW - 40 * 86400)),
          share_record("802", "alice", payload(created=NOW - 40 * 86400), start="N/A"),
          share_record("803", "alice", payload(created=NOW), start="2026-01-03T00:00:00")],
         {"801": "stale-share", "802": "accepted", "803": "stale-share"})
    case("connection keys and structure", BOB,
         [share_record("401", "alice", payload(conn_changes={"class": "x"})),
          share_record("402", "alice", payload(conn_changes={f"x_k{i}": "v" for i in range(20)})),
          share_record("403", "alice", payload(mode="popup")),
          share_record("404", "alice", payload(delivery="sys/mt_jupyter")),
          tampered("405", "alice"),
          record("406", "alice", "multitenant", "mt1:mtclass:3:!!!")],
         {"401": "bad-conn-key", "402": "bad-conn-key", "403": "bad-payload", "404": "bad-payload", "405": "bad-tag",
          "406": "bad-encoding"})
    limit = share_contract.contract()["limits"]["shares_per_publisher"]
    many = [share_record(str(500 + i), "alice", payload(created=NOW + i)) for i in range(limit + 2)]
    expect = {str(500 + i): ("too-many-shares" if i < 2 else "accepted") for i in range(limit + 2)}
    expect["600"] = "accepted"
    case("at most shares_per_publisher per publisher, the newest kept", BOB,
         [*many, share_record("600", "dave", payload())], expect)
    good = share_record("701", "alice", payload())
    forged = token("999", "alice", payload())
    case("a hostile WCKey and name cannot forge a record", BOB,
         [record("700", "mallory", "a|b\nc", "x\n999 |alice|multitenant|" + forged[:900]), good],
         {"701": "accepted"})
    for what, records in {
        "a stray line before the records": [b"slurm_load_jobs error: something\n", good],
        "a record cut short": [good, good[:200] + b"\n"],
        "a record without its separators": [good.replace(b"|", b" ")],
        "a job listed twice": [good, good],
        "a user name holding a newline": [record("702", "ali\nce", "multitenant", "mt1:x")],
    }.items():
        case(f"listing refused: {what}", BOB, records, "listing-refused")
    return out


def build() -> dict[str, Any]:
    contract = share_contract.contract()
    vectors: dict[str, Any] = {
        "comment": "ood-mt verdict VECTORS (receiver side). Keys are public test values, NOT secrets. "
                   "Generated by tests/vectors/generate_verdicts.py; run by the Python and the Ruby suites.",
        "limits": {**contract["limits"], "record_bytes": shares.RECORD_BYTES, "token_max": codec.TOKEN_MAX,
                   "plaintext_max": codec.PLAINTEXT_MAX, "squeue_format": shares.SQUEUE_FORMAT},
        "reasons": sorted(codec.REASONS),
        "site": SITE,
        "directory": DIRECTORY,
        "key_files": KEY_FILES,
        "user_key_files": {user: key.hex() + "\n" for user, key in USER_KEYS.items()},
        "cases": [{"name": c["name"], "me": c["me"], "listing_b64": base64.b64encode(c["listing"]).decode(),
                   "expect": c["expect"]} for c in cases()],
    }
    with tempfile.TemporaryDirectory() as tmp:
        key_dir, homes = verdict_reference.write_files(vectors, Path(tmp))
        for case in vectors["cases"]:
            got = verdict_reference.outcome(vectors, case, key_dir, homes)
            if got != case["expect"]:
                raise SystemExit(f"case {case['name']!r}: the reference decides {got}, the case says {case['expect']}")
    return vectors


def main() -> int:
    OUT.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

