"""tests/vectors/hidden.json is what its generator writes, and the CLI's reader
(ood_mt.hidden) gives every case's verdict; the initializer runs the same file
(tests/initializer/hidden_vectors_test.rb)."""

from __future__ import annotations

import json
from pathlib import Path

from ood_mt import hidden
from tests.vectors import generate_hidden

VECTORS = json.loads((Path(__file__).parent / "hidden.json").read_text(encoding="utf-8"))


def test_the_committed_file_is_what_the_generator_writes() -> None:
    assert generate_hidden.build() == VECTORS


def test_the_constants_are_the_readers() -> None:
    assert (VECTORS["format"], VECTORS["max_bytes"]) == (hidden.FORMAT, hidden.MAX_BYTES)
    assert len(VECTORS["cases"]) >= 30


def test_every_case_through_a_file(tmp_path: Path) -> None:
    for number, case in enumerate(VECTORS["cases"]):
        home = tmp_path / str(number)
        if case["file"] is not None:
            hidden.path_for(home).parent.mkdir(parents=True)
            hidden.path_for(home).write_bytes(case["file"].encode("utf-8"))
        got = hidden.load(home)
        assert (got.problem is None) == case["valid"], f"{case['name']}: {got.problem}"
        assert got.hides(case["jobid"], case["created"]) == case["hidden"], case["name"]


def test_size_and_utf8_beside_the_vectors(tmp_path: Path) -> None:
    good = json.dumps({"format": 1, "hidden": [{"jobid": "4711", "created": 5}]})
    assert hidden.problem_of(good.encode())[1] is None
    assert hidden.problem_of(good.replace("}]", ', "t": "\xff"}]').encode("latin-1"))[1] is not None
    big = json.dumps({"format": 1, "hidden": [{"jobid": "4711", "created": 5}], "pad": "x" * hidden.MAX_BYTES})
    assert "larger than" in str(hidden.problem_of(big.encode())[1])
