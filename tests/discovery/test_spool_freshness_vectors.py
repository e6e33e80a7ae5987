"""The CLI's spool reader applies the freshness rule the initializer applies: both run
tests/vectors/spool_freshness.json (docs/discovery.md, "Freshness")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ood_mt import spool

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "spool_freshness.json").read_text())


def test_the_vectors_use_this_readers_constants() -> None:
    assert VECTORS["stale_intervals"] == spool.FRESH_INTERVALS
    assert VECTORS["format"] == spool.HEARTBEAT_FORMAT


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_freshness(case: dict) -> None:
    beat = None if case["heartbeat"] is None else spool.parse_heartbeat(case["heartbeat"].encode())
    assert (beat is not None and beat.fresh(case["now"])) == case["fresh"]
