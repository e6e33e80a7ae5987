"""Generate tests/vectors/hidden_write.json: what a writer of the hidden file leaves in it.

Run once, commit the output:  .venv/bin/python -m tests.vectors.generate_hidden_write
Two writers add a publication to ``~/.config/ood-mt/hidden.json``: ``ood-mt hide``
(src/ood_mt/hidden.py: with_entry, to_write, save) and the dashboard when the receiver
presses Delete on a received share's card (src/ood_mt/initializer/lib/hidden.rb:
Hidden.add). The rule (docs/protocol.md "Hidden shares"): a file that breaks the reading
rule is refused and left as it was; a publication already there is not added again (the
file is not rewritten); otherwise the entry is appended, the entries are ordered oldest
first by ``hidden_at`` (missing or not a number: 0; ties keep their order) and only the
newest ``max_entries`` are kept; the file is ``{"format": 1, "hidden": [...]}``, mode 0600
in a 0700 directory. Each case: the file before (null: missing), the entry added, and
either ``refused`` or the entries the file holds afterwards (``written``: whether it was
rewritten). ``fill`` synthetic entries (jobid 10000+n, created C, hidden_at C+n) come
before the file's own entries, and the synthetic entries from ``fill_kept_from`` on before
``after`` (so the file stays small). The expected outcomes are hand-written here. Writers run the file: the CLI
(tests/vectors/test_hidden_write.py) and the initializer (tests/initializer/hidden_write_test.rb).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from tests.vectors import case_rows, write

OUT = Path(__file__).with_name("hidden_write.json")
C = 1767225600
MAX_ENTRIES = 1000


def ent(jobid: str = "4711", created: int = C, at: Any = None, **more: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"jobid": jobid, "created": created, **more}
    if at is not None:
        found["hidden_at"] = at
    return found


def hid(*entries: dict[str, Any]) -> str:
    return json.dumps({"format": 1, "hidden": list(entries)})


def fill(count: int) -> list[dict[str, Any]]:
    """The synthetic entries a case's ``fill`` stands for (readers build the same)."""
    return [ent(str(10000 + n), C, at=C + n) for n in range(count)]


NEW = {"jobid": "4711", "created": C, "app": "llm", "title": "Llama", "publisher": "alice", "hidden_at": C + 100}

Row = tuple[str, Optional[str], int, dict[str, Any], bool, bool, int, Optional[list[dict[str, Any]]]]


def row(name: str, before: Optional[str], added: dict[str, Any], refused: bool, written: bool,
        after: Optional[list[dict[str, Any]]], filled: int = 0, kept_from: int = 0) -> Row:
    """(name, file before, fill, entry added, refused, written, fill_kept_from, entries after)."""
    return (name, before, filled, added, refused, written, kept_from, after)


CASES: list[Row] = [
    row("no file: created with the entry", None, NEW, False, True, [NEW]),
    row("empty list: the entry", hid(), NEW, False, True, [NEW]),
    row("appended after older entries", hid(ent("10", at=C + 1), ent("12", at=C + 2)), NEW, False, True,
     [ent("10", at=C + 1), ent("12", at=C + 2), NEW]),
    row("ordered by hidden_at", hid(ent("12", at=C + 200), ent("10", at=C + 1)), NEW, False, True,
     [ent("10", at=C + 1), NEW, ent("12", at=C + 200)]),
    row("no hidden_at counts as 0, ties keep their order", hid(ent("12"), ent("10"), ent("11", at=C)), NEW, False,
     True, [ent("12"), ent("10"), ent("11", at=C), NEW]),
    row("a hidden_at that is not a number counts as 0", hid(ent("12", at="soon"), ent("10", at=C + 1)), NEW, False,
     True, [ent("12", at="soon"), ent("10", at=C + 1), NEW]),
    row("a float hidden_at is a number", hid(ent("12", at=C + 150.5), ent("10", at=C + 1)), NEW, False, True,
     [ent("10", at=C + 1), NEW, ent("12", at=C + 150.5)]),
    row("other keys of entries are kept", hid(ent("10", at=C + 1, note="mine")), NEW, False, True,
     [ent("10", at=C + 1, note="mine"), NEW]),
    row("already hidden: not rewritten", hid(ent("4711", at=C + 5)), NEW, False, False, [ent("4711", at=C + 5)]),
    row("another publication of the job: added", hid(ent("4711", C - 60, at=C + 5)), NEW, False, True,
     [ent("4711", C - 60, at=C + 5), NEW]),
    row("full: the oldest is dropped", hid(), {**NEW, "hidden_at": C + 5000}, False, True,
        [{**NEW, "hidden_at": C + 5000}], MAX_ENTRIES, 1),
    row("full and older than all: the new entry itself is dropped", hid(), {**NEW, "hidden_at": C - 1}, False, True,
        [], MAX_ENTRIES, 0),
    row("refused: not JSON", "{\"format\": 1, \"hidden\": [", NEW, True, False, None),
    row("refused: format 2", json.dumps({"format": 2, "hidden": []}), NEW, True, False, None),
    row("refused: a bad entry", hid(ent("x")), NEW, True, False, None),
    row("refused: empty file", "", NEW, True, False, None),
]


def build() -> dict[str, Any]:
    return {
        "comment": "ood-mt HIDDEN file WRITER vectors: the hidden file before (null: missing), the entry added, "
                   "and whether the writer refused or what the file holds afterwards (docs/protocol.md, Hidden "
                   "shares). Generated by tests/vectors/generate_hidden_write.py; run by the CLI's and the "
                   "initializer's suites.",
        "format": 1,
        "max_entries": MAX_ENTRIES,
        "cases": case_rows(CASES, ("name", "file", "fill", "add", "refused", "written", "fill_kept_from", "after")),
    }


if __name__ == "__main__":
    write(OUT, build())
