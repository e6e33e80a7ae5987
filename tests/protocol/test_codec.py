"""Protocol v1: the Python reference codec against the committed vectors, plus key files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from ood_mt import codec, keys

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "v1.json").read_text(encoding="utf-8"))
TOKENS = VECTORS["tokens"]
OK = [c for c in TOKENS if c["expect"] == "ok"]
BAD = [c for c in TOKENS if c["expect"] != "ok"]


def _decode(case: dict[str, Any]) -> dict[str, Any]:
    return codec.decode(
        case["token"], group_key=bytes.fromhex(case["key_hex"]), jobid=case["jobid"], owner=case["owner"]
    )


@pytest.mark.parametrize("case", OK, ids=[c["name"] for c in OK])
def test_valid_vector_decodes_to_its_payload(case: dict[str, Any]) -> None:
    assert _decode(case) == case["payload"]


@pytest.mark.parametrize("case", OK, ids=[c["name"] for c in OK])
def test_encoder_reproduces_valid_vector(case: dict[str, Any]) -> None:
    token = codec.encode(
        case["payload"],
        group_key=bytes.fromhex(case["key_hex"]),
        aud=case["aud"],
        kv=case["kv"],
        jobid=case["jobid"],
        owner=case["owner"],
        nonce=bytes.fromhex(case["nonce_hex"]),
        compressed=bytes.fromhex(case["compressed_hex"]),
    )
    assert token == case["token"]


@pytest.mark.parametrize("case", OK, ids=[c["name"] for c in OK])
def test_transport_split_and_join(case: dict[str, Any]) -> None:
    name, comment = codec.split_transport(case["token"])
    assert (name, comment) == (case["job_name"], case["comment"])
    assert len(name) <= codec.NAME_MAX
    assert comment is None or len(comment) <= codec.COMMENT_MAX
    assert codec.join_transport(name, comment) == case["token"]


@pytest.mark.parametrize("case", BAD, ids=[c["name"] for c in BAD])
def test_invalid_vector_is_rejected_with_its_reason(case: dict[str, Any]) -> None:
    with pytest.raises(codec.Rejected) as err:
        _decode(case)
    assert err.value.reason == case["expect"]


@pytest.mark.parametrize("case", VECTORS["users"], ids=[c["name"] for c in VECTORS["users"]])
def test_users_vectors(case: dict[str, Any]) -> None:
    if case["expect"] == "ok":
        assert codec.decode_users(case["encoded"]) == case["uids"]
        assert codec.encode_users(case["uids"]) == case["encoded"]
    else:
        with pytest.raises(codec.Rejected) as err:
            codec.decode_users(case["encoded"])
        assert err.value.reason == case["expect"]


def test_group_key_derivation_vectors() -> None:
    for case in VECTORS["group_keys"]:
        got = keys.derive_group_key(bytes.fromhex(case["master_hex"]), case["group"], case["version"])
        assert got.hex() == case["key_hex"]


def test_users_roundtrip_random_and_rice_parameter() -> None:
    import random

    rng = random.Random(7)
    for count in (1, 2, 10, 1000, 20000):
        uids = rng.sample(range(0, 10_000_000), count)
        enc = codec.encode_users(uids)
        assert codec.decode_users(enc) == sorted(uids)
        if count > 1:
            s = sorted(uids)
            mean = (s[-1] - s[0] - (count - 1)) // (count - 1)
            assert 2 ** enc["k"] <= max(mean, 1) < 2 ** (enc["k"] + 1) or enc["k"] == codec.RICE_K_MAX


def test_users_duplicates_and_order_do_not_matter() -> None:
    assert codec.decode_users(codec.encode_users([5, 3, 5, 1])) == [1, 3, 5]


def test_join_transport_ignores_comment_unless_name_was_split() -> None:
    assert codec.join_transport("mt1:g:1:AAAA", "mt1c:BBBB") == "mt1:g:1:AAAA"
    assert codec.join_transport("sys/dashboard/sys/x", "mt1c:BBBB") is None
    long_name = "mt1:g:1:" + "A" * (codec.NAME_MAX - 8)
    assert codec.join_transport(long_name, "unrelated comment") == long_name
    assert codec.join_transport(long_name, "mt1c:BBBB") == long_name + "BBBB"


def test_split_transport_rejects_over_limit() -> None:
    with pytest.raises(codec.Rejected) as err:
        codec.split_transport("mt1:g:1:" + "A" * codec.TOKEN_MAX)
    assert err.value.reason == "too-large"


def test_encode_refuses_share_too_large_for_transport() -> None:
    payload = OK[0]["payload"] | {"conn": {"blob": os.urandom(1600).hex()}}
    with pytest.raises(codec.Rejected) as err:
        codec.encode(payload, group_key=b"k" * 32, aud="g", kv=1, jobid="1", owner="o")
    assert err.value.reason == "too-large"


def test_fresh_nonce_per_encode() -> None:
    p = OK[0]["payload"]
    one = codec.encode(p, group_key=b"k" * 32, aud="g", kv=1, jobid="1", owner="o")
    two = codec.encode(p, group_key=b"k" * 32, aud="g", kv=1, jobid="1", owner="o")
    assert one != two
    assert codec.decode(one, group_key=b"k" * 32, jobid="1", owner="o") == p


def test_parse_token_fields() -> None:
    tok = codec.parse_token(OK[1]["token"])
    assert (tok.aud, tok.kv) == ("~alice", 1)
    assert tok.nonce.hex() == OK[1]["nonce_hex"]
    assert len(tok.tag) == codec.TAG_LEN


# --- key files ---------------------------------------------------------------


def _write_group(key_dir: Path, group: str, current: int, versions: dict[int, str]) -> None:
    d = key_dir / group
    d.mkdir(parents=True, exist_ok=True)
    (d / "current").write_text(f"{current}\n")
    for v, text in versions.items():
        (d / f"v{v}.key").write_text(text)


def test_read_group_keys_current_and_previous(tmp_path: Path) -> None:
    k3, k2, k1 = os.urandom(32), os.urandom(32), os.urandom(32)
    _write_group(tmp_path, "mtclass", 3, {3: k3.hex() + "\n", 2: k2.hex() + "\n", 1: k1.hex() + "\n"})
    gk = keys.read_group_keys(tmp_path, "mtclass")
    assert gk.current == 3
    assert gk.keys == {3: k3, 2: k2}
    assert gk.key_for(2) == k2
    with pytest.raises(codec.Rejected) as err:
        gk.key_for(1)
    assert err.value.reason == "key-version-retired"
    assert k3.hex() not in repr(gk)


def test_read_group_keys_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(keys.KeyFileError, match=r"not in group nogroup or keys are not installed at"):
        keys.read_group_keys(tmp_path, "nogroup")
    _write_group(tmp_path, "g", 1, {1: "not hex\n"})
    with pytest.raises(keys.KeyFileError, match=str(tmp_path / "g" / "v1.key") + ": malformed"):
        keys.read_group_keys(tmp_path, "g")
    (tmp_path / "g" / "current").write_text("one\n")
    with pytest.raises(keys.KeyFileError, match=str(tmp_path / "g" / "current") + ": malformed"):
        keys.read_group_keys(tmp_path, "g")
    _write_group(tmp_path, "h", 2, {1: os.urandom(32).hex() + "\n"})
    with pytest.raises(keys.KeyFileError, match=r"v2\.key: missing"):
        keys.read_group_keys(tmp_path, "h")


def test_user_key_created_private_and_stable(tmp_path: Path) -> None:
    key = keys.load_or_create_user_key(tmp_path)
    path = keys.user_key_path(tmp_path)
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text() == key.hex() + "\n"
    assert keys.load_or_create_user_key(tmp_path) == key
    assert [p.name for p in path.parent.iterdir()] == ["user.key"]  # no temp file left


def test_user_key_refuses_group_readable_file(tmp_path: Path) -> None:
    keys.load_or_create_user_key(tmp_path)
    path = keys.user_key_path(tmp_path)
    path.chmod(0o640)
    with pytest.raises(keys.KeyFileError, match=r"group/world accessible .*chmod 600"):
        keys.load_or_create_user_key(tmp_path)
