"""The CLI's verifier (ood_mt.shares) against tests/vectors/verdicts.json, the cases the
initializer's suite runs too (verdict_vectors_test.rb): same listing, same receiver, same
key files and group directory, same expected outcome per job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ood_mt import codec, share_contract, shares
from tests.vectors import verdict_reference

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "verdicts.json").read_text(encoding="utf-8"))


def test_this_implementation_keeps_the_vectors_limits_and_reasons() -> None:
    limits = VECTORS["limits"]
    assert limits["record_bytes"] == shares.RECORD_BYTES
    assert limits["squeue_format"] == shares.SQUEUE_FORMAT
    assert (limits["token_max"], limits["plaintext_max"]) == (codec.TOKEN_MAX, codec.PLAINTEXT_MAX)
    assert {k: v for k, v in share_contract.contract()["limits"].items()} == {
        k: v for k, v in limits.items() if k in share_contract.contract()["limits"]}
    assert sorted(codec.REASONS) == VECTORS["reasons"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return verdict_reference.write_files(VECTORS, tmp_path_factory.mktemp("verdicts"))


@pytest.mark.parametrize("case", VECTORS["cases"], ids=[c["name"] for c in VECTORS["cases"]])
def test_verdicts(case: dict[str, Any], files: tuple[Path, Path]) -> None:
    assert verdict_reference.outcome(VECTORS, case, *files) == case["expect"]
