"""The bash publisher reads key files exactly as ood_mt.keys does: tests/vectors/key_files.json.

The publisher encrypts with the group's current key only, so each group case is checked for
what the current version yields: its key where the reference accepts the group (a malformed
previous key file refuses the group, for the publisher as for receivers), nothing where it
refuses it.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ood_mt.app_templates import service_library_text

REPO = Path(__file__).resolve().parents[2]
VECTORS = json.loads((REPO / "tests" / "vectors" / "key_files.json").read_text(encoding="utf-8"))

READ_GROUP = """
set -u
source "$1"
if mt_read_group_key "$2" "$3"; then printf '%s %s\\n' "$MT_KEY_VERSION" "$MT_KEY_HEX"; else echo "no-key"; fi
"""
READ_USER = """
set -u
source "$1"
if mt__load_key "$2" 1 "fix"; then printf '%s\\n' "$MT_KEY_HEX"; else echo "no-key"; fi
"""


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lib") / "mt_share.sh"
    path.write_text(service_library_text())
    return path


def _current_version(files: dict[str, str]) -> str | None:
    raw = files.get("current")
    if raw is None:
        return None
    text = base64.b64decode(raw).decode("latin-1").replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
    return text


@pytest.mark.parametrize("case", VECTORS["group_cases"], ids=lambda c: c["name"])
def test_group_key_files(case: dict[str, Any], library: Path, tmp_path: Path) -> None:
    group_dir = tmp_path / VECTORS["group"]
    group_dir.mkdir()
    for name, raw in case["files"].items():
        (group_dir / name).write_bytes(base64.b64decode(raw))
    got = subprocess.run(["bash", "-c", READ_GROUP, "read", str(library), str(tmp_path), VECTORS["group"]],
                         capture_output=True, text=True, check=True).stdout.strip()
    expect = case["expect"]
    current = _current_version(case["files"])
    if isinstance(expect, dict) and current in expect:
        assert got == f"{current} {expect[current]}", case["name"]
    else:
        assert got == "no-key", case["name"]


@pytest.mark.parametrize("case", VECTORS["user_cases"], ids=lambda c: c["name"])
def test_user_key_file(case: dict[str, Any], library: Path, tmp_path: Path) -> None:
    key = tmp_path / "user.key"
    key.write_bytes(base64.b64decode(case["file"]))
    got = subprocess.run(["bash", "-c", READ_USER, "read", str(library), str(key)],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert got == (case["expect"] if case["expect"] != "no-key" else "no-key"), case["name"]
