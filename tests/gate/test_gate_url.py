"""Receivers compose a gated service's address from host, port and gate_secret (docs/protocol.md)."""

from __future__ import annotations

import pytest

from ood_mt import share_contract, shares
from ood_mt.codec import Rejected


def test_gate_url_is_composed_from_the_share() -> None:
    secret = "A" * 40 + "_-"
    assert shares.gate_url({"host": "node7", "port": "41234", "gate_secret": secret}) == \
        f"http://node7:41234/{secret}/"
    assert shares.gate_url({"host": "node7", "port": "41234"}) is None


def test_gate_secret_is_a_secret_field_of_the_contract() -> None:
    field = share_contract.contract()["conn"]["fields"]["gate_secret"]
    assert field == {"pattern": "[A-Za-z0-9_-]{32,256}", "secret": True}


def test_a_gated_share_is_never_published_to_selected_users() -> None:
    payload = {"conn": {"host": "n", "port": "1", "gate_secret": "s" * 43}, "users": {"n": 1}}
    with pytest.raises(Rejected) as info:
        share_contract.check_publication(payload)
    assert info.value.reason == "secret-to-selected-users" and "conn.gate_secret" in str(info.value)
    share_contract.check_publication({"conn": payload["conn"]})
