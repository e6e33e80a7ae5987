"""tests/vectors/spool_freshness.json is what its generator writes (the cases are hand-written
there); the readers' suites run it (tests/initializer/spool_freshness_vectors_test.rb)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.vectors import generate_spool_freshness


def test_the_committed_file_is_what_the_generator_writes() -> None:
    committed = json.loads((Path(__file__).parent / "spool_freshness.json").read_text(encoding="utf-8"))
    assert generate_spool_freshness.build() == committed
