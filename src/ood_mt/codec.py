"""Share protocol v1: the Python reference implementation.

The byte layout and algorithms are specified in docs/protocol.md (summary in
docs/architecture.md, "Protocol v1"). The bash encoder
(src/ood_mt/templates/shared/partials/mt_codec.sh) and the Ruby decoder
(src/ood_mt/initializer/lib/codec.rb) must agree with this module byte for byte;
tests/vectors/v1.json pins that agreement.

Everything that can go wrong with a token received from Slurm is reported as
``Rejected`` with one of the stable reason identifiers, never as another
exception, because receivers run this on data any WCKey holder can write.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import hmac
import json
import os
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# The reasons and their exception live with the share contract (one definition, also staged
# into jobs without this package); re-exported here for the codec's callers.
from ood_mt.share_contract import REASONS, Rejected  # noqa: F401

PREFIX = "mt1:"
COMMENT_PREFIX = "mt1c:"
NAME_MAX = 1023  # Slurm job name limit (characters)
COMMENT_MAX = 1024  # Slurm comment limit (characters)
TOKEN_MAX = NAME_MAX + COMMENT_MAX - len(COMMENT_PREFIX)  # 2042
PLAINTEXT_MAX = 64 * 1024  # decompressed bound: guards receivers against gzip bombs
NONCE_LEN = 16
TAG_LEN = 16
KEY_LEN = 32
USERS_MAX = 100_000
RICE_K_MAX = 24
UID_MAX = 2**32 - 1

# A group name, or "~" + a user name. No ':' (field separator) and no newline
# (AAD separator); '@' and '.' appear in directory-backed names.
_AUD_RE = re.compile(r"~?[A-Za-z0-9_.][A-Za-z0-9_.@-]{0,255}", re.ASCII)
_KV_RE = re.compile(r"[1-9][0-9]{0,8}", re.ASCII)
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*", re.ASCII)
_STRING_FIELDS = ("app", "title", "preset", "mode", "delivery", "session")
_ALLOWED_FIELDS = frozenset({"v", "created", "conn", "users", *_STRING_FIELDS})


@dataclass(frozen=True)
class Token:
    """The parsed, not yet verified, fields of a v1 token."""

    aud: str
    kv: int
    nonce: bytes
    ct: bytes
    tag: bytes


# --- primitives -------------------------------------------------------------


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def _subkeys(group_key: bytes) -> tuple[bytes, bytes]:
    return _hmac(group_key, b"ood-mt/1 enc"), _hmac(group_key, b"ood-mt/1 mac")


def _ctr(k_enc: bytes, nonce: bytes, data: bytes) -> bytes:
    # The password is the hex text so `openssl enc -pass env:` can reproduce it exactly.
    password = _hmac(k_enc, nonce).hex().encode("ascii")
    key_iv = hashlib.pbkdf2_hmac("sha256", password, b"", 1, 48)
    cipher = Cipher(algorithms.AES(key_iv[:32]), modes.CTR(key_iv[32:]))
    ctx = cipher.encryptor()
    return ctx.update(data) + ctx.finalize()


def _aad(aud: str, kv: int, jobid: str, owner: str) -> bytes:
    return f"ood-mt/1\n{aud}\n{kv}\n{jobid}\n{owner}\n".encode()


def _tag(k_mac: bytes, aad: bytes, nonce: bytes, ct: bytes) -> bytes:
    return _hmac(k_mac, aad + nonce + ct)[:TAG_LEN]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _check_context(jobid: str, owner: str) -> None:
    for label, value in (("jobid", jobid), ("owner", owner)):
        if not isinstance(value, str) or not value or "\n" in value:
            raise Rejected("bad-encoding", f"{label} must be a non-empty string without newlines")


def _check_key(group_key: bytes) -> None:
    if not isinstance(group_key, (bytes, bytearray)) or len(group_key) != KEY_LEN:
        raise Rejected("no-key", f"audience key must be {KEY_LEN} bytes")


# --- token syntax -----------------------------------------------------------


def parse_token(token: str) -> Token:
    """Split a token into its fields; no key needed, nothing verified yet."""
    if not isinstance(token, str) or not token.startswith(PREFIX):
        raise Rejected("not-a-share", "does not start with mt1:")
    if len(token) > TOKEN_MAX:
        raise Rejected("too-large", f"{len(token)} characters, limit {TOKEN_MAX}")
    parts = token.split(":")
    if len(parts) != 4:
        raise Rejected("bad-encoding", "expected mt1:<aud>:<kv>:<blob>")
    _, aud, kv_text, blob = parts
    if not _AUD_RE.fullmatch(aud):
        raise Rejected("bad-encoding", "audience is not a group or ~user name")
    if not _KV_RE.fullmatch(kv_text):
        raise Rejected("bad-encoding", "key version is not a positive decimal")
    if not _B64URL_RE.fullmatch(blob) or len(blob) % 4 == 1:
        raise Rejected("bad-encoding", "blob is not base64url")
    try:
        raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
    except (binascii.Error, ValueError) as exc:
        raise Rejected("bad-encoding", "blob is not base64url") from exc
    if _b64url(raw) != blob:  # non-canonical trailing bits: all three implementations refuse them
        raise Rejected("bad-encoding", "blob is not canonical base64url")
    if len(raw) < NONCE_LEN + TAG_LEN:
        raise Rejected("bad-encoding", "blob shorter than nonce and tag")
    return Token(
        aud=aud,
        kv=int(kv_text),
        nonce=raw[:NONCE_LEN],
        ct=raw[NONCE_LEN:-TAG_LEN],
        tag=raw[-TAG_LEN:],
    )


# --- payload ------------------------------------------------------------------


def _no_constants(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")


def _gunzip_bounded(data: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip wrapper only
    try:
        out = inflater.decompress(data, PLAINTEXT_MAX + 1)
    except zlib.error as exc:
        raise Rejected("bad-payload", "not gzip data") from exc
    if len(out) > PLAINTEXT_MAX:
        raise Rejected("too-large", f"plaintext over {PLAINTEXT_MAX} bytes")
    if not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
        raise Rejected("bad-payload", "gzip stream truncated or followed by extra data")
    return out


def validate_payload(payload: Any) -> dict[str, Any]:
    """Check the plaintext structure; returns the payload or raises Rejected('bad-payload')."""
    if not isinstance(payload, dict):
        raise Rejected("bad-payload", "plaintext is not a JSON object")
    unknown = set(payload) - _ALLOWED_FIELDS
    if unknown:
        # Strict on purpose: any change to the plaintext is a new protocol version (mt2:).
        raise Rejected("bad-payload", f"unknown fields {sorted(unknown)}")
    if type(payload.get("v")) is not int or payload["v"] != 1:
        raise Rejected("bad-payload", "v is not 1")
    for field in _STRING_FIELDS:
        if not isinstance(payload.get(field), str):
            raise Rejected("bad-payload", f"{field} is missing or not a string")
    created = payload.get("created")
    if not isinstance(created, int) or isinstance(created, bool):
        raise Rejected("bad-payload", "created is missing or not an integer")
    conn = payload.get("conn")
    if not isinstance(conn, dict) or not all(isinstance(v, str) for v in conn.values()):
        raise Rejected("bad-payload", "conn is not a flat object of strings")
    if "users" in payload and not isinstance(payload["users"], dict):
        raise Rejected("bad-payload", "users is not an object")
    return payload


def _parse_json(plain: bytes) -> Any:
    try:
        text = plain.decode("utf-8")
        return json.loads(text, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Rejected("bad-payload", "plaintext is not UTF-8 JSON") from exc


# --- encode / decode --------------------------------------------------------


def encode(
    payload: dict[str, Any],
    *,
    group_key: bytes,
    aud: str,
    kv: int,
    jobid: str,
    owner: str,
    nonce: bytes | None = None,
    compressed: bytes | None = None,
) -> str:
    """Build a token. ``nonce``/``compressed`` pin the random and zlib-dependent parts (vectors)."""
    _check_key(group_key)
    _check_context(jobid, owner)
    if not _AUD_RE.fullmatch(aud):
        raise ValueError(f"audience {aud!r} is not a group name or ~user")
    if not isinstance(kv, int) or isinstance(kv, bool) or not _KV_RE.fullmatch(str(kv)):
        raise ValueError(f"key version {kv!r} is not a positive integer")
    if compressed is None:
        validate_payload(payload)
        plain = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        compressed = gzip.compress(plain, compresslevel=9, mtime=0)
    if nonce is None:
        nonce = os.urandom(NONCE_LEN)
    if len(nonce) != NONCE_LEN:
        raise ValueError(f"nonce must be {NONCE_LEN} bytes")
    k_enc, k_mac = _subkeys(bytes(group_key))
    ct = _ctr(k_enc, nonce, compressed)
    tag = _tag(k_mac, _aad(aud, kv, jobid, owner), nonce, ct)
    token = f"{PREFIX}{aud}:{kv}:{_b64url(nonce + ct + tag)}"
    if len(token) > TOKEN_MAX:
        raise Rejected("too-large", f"token is {len(token)} characters, limit {TOKEN_MAX}")
    return token


def decode(token: str, *, group_key: bytes, jobid: str, owner: str) -> dict[str, Any]:
    """Verify and decrypt a token. ``jobid``/``owner`` come from Slurm, not the message."""
    parsed = parse_token(token)
    _check_key(group_key)
    _check_context(jobid, owner)
    k_enc, k_mac = _subkeys(bytes(group_key))
    expected = _tag(k_mac, _aad(parsed.aud, parsed.kv, jobid, owner), parsed.nonce, parsed.ct)
    if not hmac.compare_digest(expected, parsed.tag):
        raise Rejected("bad-tag", "authentication failed (wrong key, job, owner or tampered)")
    plain = _gunzip_bounded(_ctr(k_enc, parsed.nonce, parsed.ct))
    return validate_payload(_parse_json(plain))


# --- transport ----------------------------------------------------------------


def split_transport(token: str) -> tuple[str, str | None]:
    """(JobName, Comment) for a token; Comment is None when the name alone holds it."""
    if len(token) <= NAME_MAX:
        return token, None
    if len(token) > TOKEN_MAX:
        raise Rejected(
            "too-large",
            f"token is {len(token)} characters; JobName+Comment hold {TOKEN_MAX}",
        )
    return token[:NAME_MAX], COMMENT_PREFIX + token[NAME_MAX:]


def join_transport(name: str, comment: str | None) -> str | None:
    """The token carried by a job's name (+ comment), or None when the job is not a share.

    The comment is used only when the name is exactly NAME_MAX long, i.e. was split,
    so a stale or unrelated comment never changes a complete token.
    """
    if not isinstance(name, str) or not name.startswith(PREFIX):
        return None
    if len(name) == NAME_MAX and isinstance(comment, str) and comment.startswith(COMMENT_PREFIX):
        return name + comment[len(COMMENT_PREFIX) :]
    return name


# --- explicit user lists (Rice-coded uid gaps) ------------------------------


def _rice_k(gaps_total: int, count: int) -> int:
    if count == 0:
        return 0
    mean = gaps_total // count
    return min(RICE_K_MAX, max(0, mean.bit_length() - 1))


def encode_users(uids: Iterable[int]) -> dict[str, Any]:
    """The ``users`` object for a list of uids (sorted, deduplicated)."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("user list is empty")
    if len(ordered) > USERS_MAX:
        raise ValueError(f"user list has {len(ordered)} uids, limit {USERS_MAX}")
    if ordered[0] < 0 or ordered[-1] > UID_MAX:
        raise ValueError("uid out of range 0..2^32-1")
    gaps = [b - a - 1 for a, b in zip(ordered, ordered[1:])]
    k = _rice_k(sum(gaps), len(gaps))
    bits: list[str] = []
    for gap in gaps:
        bits.append("1" * (gap >> k) + "0")
        if k:
            bits.append(format(gap & ((1 << k) - 1), f"0{k}b"))
    bitstring = "".join(bits)
    bitstring += "0" * (-len(bitstring) % 8)
    packed = int(bitstring, 2).to_bytes(len(bitstring) // 8, "big") if bitstring else b""
    return {"n": len(ordered), "first": ordered[0], "k": k, "bits": base64.b64encode(packed).decode()}


def _int_field(obj: dict[str, Any], name: str, low: int, high: int) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise Rejected("bad-payload", f"users.{name} must be an integer in {low}..{high}")
    return value


def decode_users(users: dict[str, Any]) -> list[int]:
    """Expand a ``users`` object to its sorted uid list; Rejected('bad-payload') if malformed."""
    if not isinstance(users, dict):
        raise Rejected("bad-payload", "users is not an object")
    n = _int_field(users, "n", 1, USERS_MAX)
    first = _int_field(users, "first", 0, UID_MAX)
    k = _int_field(users, "k", 0, RICE_K_MAX)
    bits_text = users.get("bits")
    if not isinstance(bits_text, str):
        raise Rejected("bad-payload", "users.bits is not a string")
    try:
        packed = base64.b64decode(bits_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Rejected("bad-payload", "users.bits is not base64") from exc
    bitstring = "".join(format(byte, "08b") for byte in packed)
    total = len(bitstring)
    pos = 0
    uids = [first]
    for _ in range(n - 1):
        zero = bitstring.find("0", pos)
        if zero < 0 or zero + 1 + k > total:
            raise Rejected("bad-payload", "users.bits ends inside a gap")
        q = zero - pos
        rem = int(bitstring[zero + 1 : zero + 1 + k], 2) if k else 0
        pos = zero + 1 + k
        uid = uids[-1] + 1 + ((q << k) | rem)
        if uid > UID_MAX:
            raise Rejected("bad-payload", "uid out of range")
        uids.append(uid)
    # Only zero padding to the next byte may follow the n-1 gaps.
    if total - pos >= 8 or "1" in bitstring[pos:]:
        raise Rejected("bad-payload", f"users.bits holds more than n-1={n - 1} gaps")
    return uids
