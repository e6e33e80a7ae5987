"""Generate tests/vectors/key_files.json: what a key file may hold, as src/ood_mt/keys.py reads it.

Run once, commit the output:  .venv/bin/python -m tests.vectors.generate_key_files
Each group case is the files of one group directory (``current``, ``v<n>.key``) as bytes,
with the keys a receiver may use ({version: key hex}) or "no-key"; each user case is the
bytes of ``~/.ood-mt/user.key`` with its key or "no-key". The outcome is computed by the
reference (ood_mt.keys.read_group_keys, ood_mt.keys.load_or_create_user_key) AND written
down by hand here: the generator refuses to save a case where the two disagree. BOTH suites
run the file: tests/initializer/test_key_file_vectors.py (Python) and
tests/initializer/key_files_test.rb (the initializer's MultiTenant::KeyStore), so a parser
that accepts more (Ruby's Integer() takes "+3", "0x1f", "1_0", " 3") fails a suite.

Keys here are PUBLIC TEST VALUES derived from fixed labels: never use them on a cluster.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Union

from ood_mt import keys

OUT = Path(__file__).with_name("key_files.json")
GROUP = "vectors"
Expect = Union[str, dict[int, str]]


def key_hex(label: str) -> str:
    return hashlib.sha256(b"ood-mt key-file vector\n" + label.encode()).hexdigest()


K1, K2, K3, K10 = key_hex("1"), key_hex("2"), key_hex("3"), key_hex("10")
KEY = (K3 + "\n").encode()


def group_cases() -> list[tuple[str, dict[str, bytes], Expect]]:
    """(name, {file name: bytes}, expected) for one group directory."""
    cases: list[tuple[str, dict[str, bytes], Expect]] = [
        ("current and previous", {"current": b"3\n", "v3.key": KEY, "v2.key": (K2 + "\n").encode()}, {3: K3, 2: K2}),
        ("current only, the previous file removed", {"current": b"3\n", "v3.key": KEY}, {3: K3}),
        ("version 1 has no previous", {"current": b"1\n", "v1.key": (K1 + "\n").encode()}, {1: K1}),
        ("no newline at the end", {"current": b"3", "v3.key": K3.encode()}, {3: K3}),
        ("CRLF and CR endings (Python reads with universal newlines)",
         {"current": b"3\r\n", "v3.key": (K3 + "\r").encode()}, {3: K3}),
        ("nine digits", {"current": b"999999999\n", "v999999999.key": KEY}, {999999999: K3}),
        ("two digits", {"current": b"10\n", "v10.key": (K10 + "\n").encode()}, {10: K10}),
        ("no current file", {"v3.key": KEY}, "no-key"),
        ("current names a missing key file", {"current": b"3\n", "v2.key": (K2 + "\n").encode()}, "no-key"),
        ("a malformed previous key refuses the group", {"current": b"3\n", "v3.key": KEY, "v2.key": b"x\n"},
         "no-key"),
    ]
    # current files Ruby's Integer() (or a strip) would read as a version: each with the key
    # file that version would name, so only the parser can refuse it.
    for text, lax in [(b"+3\n", 3), (b"0x3\n", 3), (b"0b11\n", 3), (b"0o3\n", 3), (b"1_0\n", 10), (b" 3\n", 3),
                      (b"3 \n", 3), (b"\t3\n", 3), (b"03\n", 3), (b"3\n\n", 3), (b"\n3\n", 3), (b"3\r\r\n", 3),
                      (b"3.0\n", 3), (b"3e0\n", 3), (b"1234567890\n", 1234567890), (b"0\n", 0), (b"-3\n", 3),
                      (b"", 3), (b"\n", 3), (b"3\x00\n", 3), ("\u0663\n".encode(), 3), (b"\xff3\n", 3)]:
        cases.append((f"current {text!r}", {"current": text, f"v{lax}.key": KEY}, "no-key"))
    # key files a laxer reader (strip, upcase, hex decode of any case) would take.
    for text in [K3.upper(), K3[:63], K3 + "0", " " + K3, K3 + " ", "0x" + K3[2:], K3 + "\n\n", "\n" + K3,
                 K3[:63] + "g", K3[:32] + "\n" + K3[32:]]:
        cases.append((f"v3.key {text[:6]!r}..{text[-6:]!r} ({len(text)} chars)",
                      {"current": b"3\n", "v3.key": (text + ("" if text.endswith("\n") else "\n")).encode()}, "no-key"))
    return cases


def user_cases() -> list[tuple[str, bytes, str]]:
    """(name, bytes of ~/.ood-mt/user.key (0600 in a 0700 dir), expected key hex or "no-key")."""
    return [("the key and a newline", (K1 + "\n").encode(), K1),
            ("no newline", K1.encode(), K1),
            ("CRLF", (K1 + "\r\n").encode(), K1),
            ("upper case", (K1.upper() + "\n").encode(), "no-key"),
            ("63 characters", (K1[:63] + "\n").encode(), "no-key"),
            ("a leading space", (" " + K1 + "\n").encode(), "no-key"),
            ("two newlines", (K1 + "\n\n").encode(), "no-key"),
            ("empty", b"", "no-key")]


def reference_group(files: dict[str, bytes], root: Path) -> Expect:
    """ood_mt.keys.read_group_keys on a directory holding FILES: {version: hex} or "no-key"."""
    group_dir = root / GROUP
    group_dir.mkdir(parents=True)
    for name, data in files.items():
        (group_dir / name).write_bytes(data)
    try:
        found = keys.read_group_keys(root, GROUP)
    except keys.KeyFileError:
        return "no-key"
    return {version: key.hex() for version, key in found.keys.items()}


def reference_user(data: bytes, home: Path) -> str:
    """ood_mt.keys.load_or_create_user_key with DATA already in place: key hex or "no-key"."""
    own = home / keys.USER_KEY_DIR
    own.mkdir(parents=True, mode=0o700)
    own.chmod(0o700)
    path = own / keys.USER_KEY_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    try:
        return keys.load_or_create_user_key(home).hex()
    except keys.KeyFileError:
        return "no-key"


def build() -> dict[str, Any]:
    vectors: dict[str, Any] = {
        "comment": "ood-mt key-file VECTORS: group directories and user key files as bytes (base64), with the keys "
                   "a reader may use or no-key. Keys are public test values, NOT secrets. Generated by "
                   "tests/vectors/generate_key_files.py from src/ood_mt/keys.py; run by the Python and Ruby suites.",
        "group": GROUP,
        "group_cases": [],
        "user_cases": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, files, expect) in enumerate(group_cases()):
            got = reference_group(files, Path(tmp) / f"g{index}")
            if got != expect:
                raise SystemExit(f"group case {name!r}: keys.py reads {got}, the case says {expect}")
            vectors["group_cases"].append({
                "name": name, "files": {n: base64.b64encode(d).decode() for n, d in files.items()},
                "expect": expect if isinstance(expect, str) else {str(v): k for v, k in expect.items()}})
        for index, (name, data, expect_user) in enumerate(user_cases()):
            got_user = reference_user(data, Path(tmp) / f"home{index}")
            if got_user != expect_user:
                raise SystemExit(f"user case {name!r}: keys.py reads {got_user}, the case says {expect_user}")
            vectors["user_cases"].append({"name": name, "file": base64.b64encode(data).decode(), "expect": expect_user})
    return vectors


def main() -> int:
    OUT.write_text(json.dumps(build(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
