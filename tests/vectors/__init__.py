"""Shared vectors pinning the copies of a rule in several languages; helpers of the hand-written generators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence


def case_rows(cases: Sequence[Sequence[Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    """Hand-written CASES (tuples, the name first) as JSON objects with COLUMNS; names must be unique."""
    names = [case[0] for case in cases]
    assert len(set(names)) == len(names), "case names must be unique"
    return [dict(zip(columns, case)) for case in cases]


def write(out: Path, data: dict[str, Any]) -> None:
    """Write a vectors file as every generator does (one-space indent, trailing newline)."""
    out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")
