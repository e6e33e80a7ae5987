"""src/ood_mt/keys.py against tests/vectors/key_files.json, the cases the initializer's suite
runs too (key_files_test.rb): same bytes in the same files, same keys or no-key."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.vectors import generate_key_files

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "key_files.json").read_text(encoding="utf-8"))


def test_the_committed_file_is_what_the_generator_writes() -> None:
    assert generate_key_files.build() == VECTORS


@pytest.mark.parametrize("case", VECTORS["group_cases"], ids=[c["name"] for c in VECTORS["group_cases"]])
def test_group_directory(case: dict[str, Any], tmp_path: Path) -> None:
    files = {name: base64.b64decode(data) for name, data in case["files"].items()}
    got = generate_key_files.reference_group(files, tmp_path)
    assert (got if isinstance(got, str) else {str(v): k for v, k in got.items()}) == case["expect"]


@pytest.mark.parametrize("case", VECTORS["user_cases"], ids=[c["name"] for c in VECTORS["user_cases"]])
def test_user_key_file(case: dict[str, Any], tmp_path: Path) -> None:
    assert generate_key_files.reference_user(base64.b64decode(case["file"]), tmp_path / "home") == case["expect"]
