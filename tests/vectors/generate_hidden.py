"""Generate tests/vectors/hidden.json: which shares a receiver's hidden file hides.

Run once, commit the output:  .venv/bin/python -m tests.vectors.generate_hidden
Each case is the bytes of ``~/.config/ood-mt/hidden.json`` as text (null: the file is
missing), one share (its job id and its payload's ``created``), whether the file follows the
rule of docs/protocol.md ("Hidden shares") and whether that share is hidden. The rule: the
file is a JSON object (no NaN/Infinity) of at most 1 MiB whose ``format`` is the integer 1 and
whose ``hidden`` is a list of objects, each with ``jobid`` a Slurm job id string
(digits, optionally ``_N`` or ``+N``) and ``created`` a positive integer (not a float, not a
boolean); other keys are ignored (size and UTF-8: checked by each suite beside the
file). A share is hidden iff the file follows the rule and an entry has its job id AND
its created. A file that breaks the rule hides nothing. The expected outcomes are
hand-written here. Readers run the file: the CLI
(src/ood_mt/hidden.py, tests/vectors/test_hidden_file.py) and the initializer
(tests/initializer/hidden_vectors_test.rb, MultiTenant::Hidden).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from tests.vectors import case_rows, write

OUT = Path(__file__).with_name("hidden.json")
C = 1767225600  # the share's created unless a case says otherwise


def hid(*entries: Any, **fields: Any) -> str:
    return json.dumps({"format": 1, "hidden": list(entries), **fields})


def ent(jobid: Any = "4711", created: Any = C, **more: Any) -> dict[str, Any]:
    return {"jobid": jobid, "created": created, **more}


# (name, file text or None, share jobid, share created, valid, hidden)
CASES: list[tuple[str, Optional[str], str, Any, bool, bool]] = [
    ("hidden: the same job and created", hid(ent()), "4711", C, True, True),
    ("hidden: with the CLI's extra keys", hid(ent(app="llm", title="Llama", publisher="alice", hidden_at=C + 5)),
     "4711", C, True, True),
    ("hidden: one of several entries", hid(ent("10"), ent("4711"), ent("12", C + 1)), "4711", C, True, True),
    ("hidden: an array job id", hid(ent("4711_3")), "4711_3", C, True, True),
    ("hidden: a heterogeneous job id", hid(ent("4711+1")), "4711+1", C, True, True),
    ("hidden: unknown top-level keys are ignored", hid(ent(), note="x"), "4711", C, True, True),
    ("hidden: pretty-printed", json.dumps({"format": 1, "hidden": [ent()]}, indent=2) + "\n", "4711", C, True, True),
    ("shown: a new publication of the job (another created)", hid(ent()), "4711", C + 60, True, False),
    ("shown: another job with the same created", hid(ent()), "4712", C, True, False),
    ("shown: job id is a prefix", hid(ent("471")), "4711", C, True, False),
    ("shown: array task differs", hid(ent("4711_3")), "4711_4", C, True, False),
    ("shown: no file", None, "4711", C, True, False),
    ("shown: empty list", hid(), "4711", C, True, False),
    ("shown: the share's created is not an integer", hid(ent()), "4711", float(C), True, False),
    ("invalid: empty file", "", "4711", C, False, False),
    ("invalid: cut short", '{"format": 1, "hidden": [{"jobid": "4711", "crea', "4711", C, False, False),
    ("invalid: NaN is not JSON", '{"format": 1, "hidden": [{"jobid": "4711", "created": NaN}]}', "4711", C, False,
     False),
    ("invalid: an array", json.dumps([ent()]), "4711", C, False, False),
    ("invalid: format 2", hid(ent(), format=2), "4711", C, False, False),
    ("invalid: format the string 1", hid(ent(), format="1"), "4711", C, False, False),
    ("invalid: format 1.0", hid(ent(), format=1.0), "4711", C, False, False),
    ("invalid: format true", hid(ent(), format=True), "4711", C, False, False),
    ("invalid: no format", json.dumps({"hidden": [ent()]}), "4711", C, False, False),
    ("invalid: no hidden", json.dumps({"format": 1}), "4711", C, False, False),
    ("invalid: hidden is an object", json.dumps({"format": 1, "hidden": ent()}), "4711", C, False, False),
    ("invalid: an entry is a string", hid("4711"), "4711", C, False, False),
    ("invalid: jobid a number", hid(ent(4711)), "4711", C, False, False),
    ("invalid: jobid not digits", hid(ent("47a1")), "4711", C, False, False),
    ("invalid: jobid with a newline", hid(ent("4711\n")), "4711", C, False, False),
    ("invalid: jobid empty", hid(ent("")), "4711", C, False, False),
    ("invalid: created a string", hid(ent(created=str(C))), "4711", C, False, False),
    ("invalid: created a float", hid(ent(created=float(C))), "4711", C, False, False),
    ("invalid: created true", hid(ent(created=True)), "4711", C, False, False),
    ("invalid: created zero", hid(ent(created=0)), "4711", C, False, False),
    ("invalid: created negative", hid(ent(created=-C)), "4711", C, False, False),
    ("invalid: created missing", hid({"jobid": "4711"}), "4711", C, False, False),
    ("invalid: one bad entry spoils the file", hid(ent("10"), ent("4711"), ent("x")), "4711", C, False, False),
]


def build() -> dict[str, Any]:
    return {
        "comment": "ood-mt HIDDEN shares vectors: the receiver's ~/.config/ood-mt/hidden.json as text (null: "
                   "missing), one share (jobid, created), whether the file is valid "
                   "and whether the share is hidden (docs/protocol.md, Hidden shares). Generated by "
                   "tests/vectors/generate_hidden.py; run by the CLI's and the initializer's suites.",
        "format": 1,
        "max_bytes": 1 << 20,
        "cases": case_rows(CASES, ("name", "file", "jobid", "created", "valid", "hidden")),
    }


if __name__ == "__main__":
    write(OUT, build())
