"""A receiver's hidden shares: ``~/.config/ood-mt/hidden.json`` (docs/protocol.md "Hidden shares").

The receiver's own file, written by ``ood-mt hide`` and by the dashboard when the receiver
presses Delete on a received share's card (mode 0600, directory 0700), and read by
the CLI (``ood-mt list``) and the dashboard initializer (``MultiTenant::Hidden``, the same
rule, pinned by tests/vectors/hidden.json). An entry hides ONE publication of a job: the
pair (job id, the share's ``created``). A new publication of the same job (a re-share, an
unshare and share again) has another ``created`` and is shown again.

A file that breaks the rule hides nothing and is never overwritten: readers say so in one
line naming the file and the fix; ``ood-mt hide`` refuses to write.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

FORMAT = 1
RELPATH = Path(".config") / "ood-mt" / "hidden.json"
MAX_BYTES = 1 << 20
MAX_ENTRIES = 1000  # `hide` drops the oldest entries beyond this (jobs long ended)
JOBID = re.compile(r"\A[0-9]+(?:[_+][0-9]+)?\Z")


def path_for(home: Path) -> Path:
    return home / RELPATH


@dataclass
class HiddenSet:
    """What a hidden file says: ``entries`` (each has at least jobid and created) and, when the
    file breaks the rule, ``problem`` (then nothing is hidden)."""

    path: Path
    entries: list[dict[str, Any]] = field(default_factory=list)
    problem: Optional[str] = None

    def keys(self) -> set[tuple[str, int]]:
        return set() if self.problem else {(e["jobid"], e["created"]) for e in self.entries}

    def hides(self, jobid: str, created: Any) -> bool:
        return _is_int(created) and (jobid, created) in self.keys()

    def message(self) -> str:
        return (f"ood-mt: hidden shares file {self.path}: {self.problem}; nothing is hidden until it is fixed; "
                f"fix: repair it or move it aside (`mv {self.path} {self.path}.bad`), then hide again with "
                "`ood-mt hide JOBID`")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def problem_of(text: Optional[bytes]) -> tuple[list[dict[str, Any]], Optional[str]]:
    """(entries, None) when TEXT (the file's bytes; None: no file) follows the rule, else ([], why)."""
    if text is None:
        return [], None
    if len(text) > MAX_BYTES:
        return [], f"larger than {MAX_BYTES} bytes"
    try:
        data = json.loads(text.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        return [], f"not valid JSON ({str(exc).splitlines()[0][:80]})"
    if not isinstance(data, dict):
        return [], "not a JSON object"
    if not _is_int(data.get("format")) or data.get("format") != FORMAT:
        return [], f"format is {json.dumps(data.get('format'))[:20]}, not {FORMAT}"
    entries = data.get("hidden")
    if not isinstance(entries, list):
        return [], "field hidden is not a list"
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict):
            return [], f"entry {number} is not an object"
        if not isinstance(entry.get("jobid"), str) or not JOBID.match(entry["jobid"]):
            return [], f"entry {number}: jobid is not a Slurm job id string"
        if not _is_int(entry.get("created")) or entry["created"] <= 0:
            return [], f"entry {number}: created is not a positive integer"
    return entries, None


def load(home: Path) -> HiddenSet:
    path = path_for(home)
    try:
        text: Optional[bytes] = path.read_bytes()
    except FileNotFoundError:
        text = None
    except OSError as exc:
        return HiddenSet(path, problem=f"cannot be read ({exc.strerror})")
    entries, problem = problem_of(text)
    return HiddenSet(path, entries, problem)


def with_entry(entries: list[dict[str, Any]], added: dict[str, Any]) -> list[dict[str, Any]]:
    """ENTRIES with ADDED appended unless its publication (jobid, created) is there already."""
    if any(e["jobid"] == added["jobid"] and e["created"] == added["created"] for e in entries):
        return entries
    return [*entries, added]


def _order(entry: dict[str, Any]) -> float:
    value = entry.get("hidden_at")
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def to_write(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the writer keeps: oldest first by hidden_at (missing or not a number: 0; ties keep
    their order), at most MAX_ENTRIES, the newest. The initializer's writer (Hidden.to_write,
    the dashboard's Delete on a card) keeps the same, pinned by tests/vectors/hidden_write.json."""
    return sorted(entries, key=_order)[-MAX_ENTRIES:]


def save(hidden: HiddenSet) -> None:
    """Write HIDDEN's entries (0600 in a 0700 directory), atomically. Never over a file that breaks the rule."""
    assert hidden.problem is None
    entries = to_write(hidden.entries)
    hidden.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(hidden.path.parent, 0o700)
    fd, tmp = tempfile.mkstemp(prefix=".hidden.", suffix=".tmp", dir=hidden.path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"format": FORMAT, "hidden": entries}, out, indent=1, sort_keys=True)
            out.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, hidden.path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def entry(jobid: str, payload: dict[str, Any], publisher: str, now: Optional[float] = None) -> dict[str, Any]:
    return {"jobid": jobid, "created": payload["created"], "app": payload.get("app", ""),
            "title": payload.get("title", ""), "publisher": publisher,
            "hidden_at": int(time.time() if now is None else now)}
