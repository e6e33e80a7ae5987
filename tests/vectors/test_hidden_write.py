"""tests/vectors/hidden_write.json is what its generator writes, and the CLI's writer
(ood_mt.hidden: with_entry, to_write, save, as `ood-mt hide` uses them) leaves every
case's file; the initializer's writer runs the same file (tests/initializer/hidden_write_test.rb)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from ood_mt import hidden
from tests.vectors import generate_hidden_write

VECTORS = json.loads((Path(__file__).parent / "hidden_write.json").read_text(encoding="utf-8"))


def test_the_committed_file_is_what_the_generator_writes() -> None:
    assert generate_hidden_write.build() == VECTORS


def test_the_constants_are_the_writers() -> None:
    assert (VECTORS["format"], VECTORS["max_entries"]) == (hidden.FORMAT, hidden.MAX_ENTRIES)
    assert len(VECTORS["cases"]) >= 15


def before_text(case: dict[str, Any]) -> bytes | None:
    if case["file"] is None:
        return None
    if not case["fill"]:
        return case["file"].encode("utf-8")
    data = json.loads(case["file"])
    data["hidden"] = generate_hidden_write.fill(case["fill"]) + data["hidden"]
    return json.dumps(data).encode("utf-8")


def add_as_the_cli_does(home: Path, added: dict[str, Any]) -> bool:
    """`ood-mt hide`'s steps (shares_cli.hide): refuse a bad file, add, save when changed."""
    got = hidden.load(home)
    if got.problem:
        raise ValueError(got.problem)
    updated = hidden.with_entry(got.entries, added)
    if updated is got.entries:
        return False
    got.entries = updated
    hidden.save(got)
    return True


def test_every_case_through_a_file(tmp_path: Path) -> None:
    for number, case in enumerate(VECTORS["cases"]):
        home = tmp_path / str(number)
        path = hidden.path_for(home)
        text = before_text(case)
        if text is not None:
            path.parent.mkdir(parents=True)
            path.write_bytes(text)
        try:
            written = add_as_the_cli_does(home, case["add"])
        except ValueError:
            assert case["refused"], case["name"]
            assert path.read_bytes() == text, f"{case['name']}: a refused file is left as it was"
            continue
        assert not case["refused"], case["name"]
        assert written == case["written"], case["name"]
        after = json.loads(path.read_bytes())
        expected = generate_hidden_write.fill(case["fill"])[case["fill_kept_from"]:] + case["after"]
        assert after == {"format": 1, "hidden": expected}, case["name"]
        if written:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, case["name"]
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, case["name"]
            assert not [p for p in path.parent.iterdir() if p.name != path.name], "no temporary file left"
