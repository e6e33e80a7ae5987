"""What a share may carry (protocol v1), checked by receivers and, early, by publishers.

Every field of a share is untrusted input from another user (docs/threat-model.md,
"Hostile publisher"). The rules are DATA, in ``share_contract.json`` next to this file: this
module applies them for the CLI, ``src/ood_mt/initializer/lib/contract.rb`` applies the same file
inside the dashboard, and ``tests/vectors/verdicts.json`` pins the two together.

`ood-mt build` also stages this file and the JSON into every service's ``template/``, where
``mt_publish`` runs it as a script on the share's plaintext before publishing
(``python3 share_contract.py PLAIN.json``: exit 1 with the violation on stderr), so a
publisher learns at once what receivers would refuse. It therefore runs without the
``ood_mt`` package too (standard library only, Python >= 3.9).
"""

from __future__ import annotations

import json
import re
import sys
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Optional, Sequence

REASONS = frozenset(
    {
        "not-a-share",
        "bad-encoding",
        "wrong-wckey",
        "publisher-not-in-group",
        "no-key",
        "key-version-retired",
        "bad-tag",
        "bad-payload",
        "too-large",
        "not-in-audience",
        "job-not-running",
        # the share contract and receiver policy (share_contract.py, shares.py)
        "publisher-not-in-audience",
        "bad-field",
        "bad-conn-key",
        "too-many-shares",
        "stale-share",
        # the publisher's own check (share_contract.check_publication): never a receiver verdict
        "secret-to-selected-users",
    }
)


class Rejected(Exception):
    """A token that is not accepted; ``reason`` is a stable identifier from REASONS."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@lru_cache(maxsize=1)
def contract() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(__file__).with_name("share_contract.json").read_text("utf-8"))
    return data


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(f"(?:{pattern})", re.ASCII)


def matches(pattern: str, value: str) -> bool:
    return _compiled(pattern).fullmatch(value) is not None


def forbidden_character(text: str) -> Optional[str]:
    """The first code point free text may not hold, as U+XXXX, or None."""
    ranges = contract()["text"]["forbidden_ranges"]
    for ch in text:
        cp = ord(ch)
        if (cp & 0xFFFE) == 0xFFFE or any(lo <= cp <= hi for lo, hi in ranges):
            return f"U+{cp:04X}"
    return None


def _check_text(field: str, value: str, max_chars: int) -> None:
    if len(value) > max_chars:
        raise Rejected("bad-field", f"{field}: {len(value)} characters, limit {max_chars}")
    bad = forbidden_character(value)
    if bad:
        raise Rejected("bad-field", f"{field}: holds the control or invisible character {bad}")


def check_conn(conn: dict[str, str]) -> None:
    """Each connection key from the contract's set (or x_<name>), each value to its rule."""
    rules = contract()["conn"]
    limits = contract()["limits"]
    if len(conn) > limits["conn_keys"]:
        raise Rejected("bad-conn-key", f"{len(conn)} connection keys, limit {limits['conn_keys']}")
    for key in sorted(conn):
        value = conn[key]
        rule = rules["fields"].get(key)
        if rule is None:
            if not matches(rules["extension_key"], key):
                raise Rejected("bad-conn-key", f"conn.{key} is not a connection key receivers accept")
            _check_text(f"conn.{key}", value, limits["text_chars"])
            continue
        _check_text(f"conn.{key}", value, rule.get("max_chars", limits["text_chars"]))
        if not matches(rule["pattern"], value):
            raise Rejected("bad-field", f"conn.{key}: not the form a {key} has")
        if "min" in rule and not rule["min"] <= int(value) <= rule["max"]:
            raise Rejected("bad-field", f"conn.{key}: {value} is outside {rule['min']}..{rule['max']}")


def check_payload(payload: Any, delivery_apps: Sequence[str]) -> None:
    """Raise Rejected unless PAYLOAD (a decrypted share) keeps the contract."""
    if not isinstance(payload, dict):
        raise Rejected("bad-payload", "payload is not an object")
    rules = contract()["payload"]
    limits = contract()["limits"]
    if payload.get("mode") not in rules["modes"]:
        raise Rejected("bad-payload", f"mode {payload.get('mode')!r}")
    conn = payload.get("conn")
    if not isinstance(conn, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in conn.items()):
        raise Rejected("bad-payload", "conn must map names to strings")
    delivery = payload.get("delivery")
    if not isinstance(delivery, str) or not delivery.startswith("sys/") or delivery[4:] not in delivery_apps:
        raise Rejected("bad-payload", f"delivery {delivery!r} is not a delivery app of this site")
    for field in ("title", "app"):
        if not isinstance(payload.get(field), str):
            raise Rejected("bad-payload", f"{field} missing")
    title = payload["title"]
    if not title.strip():
        raise Rejected("bad-field", "title: empty")
    _check_text("title", title, limits["title_chars"])
    for field in ("app", "preset", "session"):
        value = payload.get(field, "")
        if not isinstance(value, str) or not matches(rules[field], value):
            raise Rejected("bad-field", f"{field}: {value!r} is not the form an {field} has")
    created = payload.get("created")
    if not isinstance(created, int) or isinstance(created, bool) or not (
        limits["created_min"] <= created <= limits["created_max"]
    ):
        raise Rejected("bad-field", f"created: {created!r} is not a time between {limits['created_min']} "
                                    f"and {limits['created_max']}")
    check_conn(conn)


def check_publication(payload: dict[str, Any]) -> None:
    """Publisher-side only: a share listing selected users carries no secret field. Such a
    share is encrypted with the GROUP's key, so every member could read the secret; it
    would only look private (docs/threat-model.md, residual risks)."""
    if "users" not in payload:
        return
    fields = contract()["conn"]["fields"]
    secrets = sorted(key for key in payload.get("conn", {}) if fields.get(key, {}).get("secret"))
    if secrets:
        raise Rejected("secret-to-selected-users",
                       f"conn.{secrets[0]} would be readable by every member of the group, not only the listed "
                       "users; share with a group of its own, or with your user only")


def main(argv: list[str]) -> int:
    """Publisher-side check of a share's plaintext (file ARGV[1]); its own delivery app is
    taken as valid (the job picked it; receivers check it against the site's list)."""
    try:
        payload = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
        delivery = payload.get("delivery", "") if isinstance(payload, dict) else ""
        check_payload(payload, [str(delivery)[4:]])
        check_publication(payload)
    except Rejected as exc:
        print(f"{exc.reason}: {exc.detail}", file=sys.stderr)
        return 1
    except (OSError, ValueError, IndexError) as exc:
        print(f"cannot check the share: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
