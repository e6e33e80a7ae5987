"""`ood-mt-squeue`: the squeue a PrivateData=jobs site gives ood_core for shared cards (docs/discovery.md).

Under ``PrivateData=jobs`` a receiver's own ``squeue -j <publisher's job>`` lists nothing, so
OOD shows a shared card as completed. The kit's cluster entry for cards
(``discovery.card_cluster``) sets ``job.bin_overrides.squeue`` to this program. It answers
exactly the per-card status query of ood_core's Slurm adapter (``Batch#squeue_args``):

    squeue --all --states=all --noconvert -o "\\x1E%A\\x1F%i\\x1F..." [-u OWNERS] -j IDS [-M CLUSTER]

when every id is a running share in the spool files the caller can read (it runs as the
user: the files' modes decide), and ``os.execv``s the real squeue with the same argv for
anything else (another shape, an id not spooled, a stale spool, any error). Only the
fields the spool knows carry values (id, name, comment, user, WCKey, state RUNNING, start
time, the time used since; the submit time is given as the start time, which ood_core 0.25
parses unguarded); the rest print as squeue prints unknowns (N/A, (null), empty node list).

No click here: this runs once per card status check.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Optional

if TYPE_CHECKING:
    from ood_mt.shares import Job

RECORD_SEPARATOR = "\x1e"
UNIT_SEPARATOR = "\x1f"
_FORMAT_RE = re.compile("\x1e(%[A-Za-z](?:\x1f%[A-Za-z])*)")
_JOBID_RE = re.compile(r"[0-9]+")
# ood_core appends `-M <cluster>` when the cluster file names a Slurm cluster; squeue then prints
# "CLUSTER: <name>" before its header. The spool holds the jobs of the cluster the OOD host's
# squeue reaches by default, which is the one a site's card cluster names (docs/discovery.md).
_CLUSTER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_FLAGS = {"--all", "--states=all", "--noconvert"}
# squeue's header title of each field ood_core asks for (ood_core skips the header).
_TITLES = {"A": "JOBID", "i": "JOBID", "j": "NAME", "k": "COMMENT", "t": "ST", "T": "STATE", "u": "USER",
           "w": "WCKEY", "S": "START_TIME", "N": "NODELIST", "Y": "SCHEDNODES", "a": "ACCOUNT", "D": "NODES",
           "V": "SUBMIT_TIME", "M": "TIME"}
# What squeue prints for a field it has no value for; the rest print N/A.
_EMPTY = {"N": "", "Y": "(null)", "a": "(null)"}
SHIM_NAME = "ood-mt-squeue"


def parse_argv(args: list[str]) -> Optional[tuple[list[str], list[str], Optional[list[str]], Optional[str]]]:
    """(field letters, job ids, owners or None, cluster or None) when ARGS is ood_core's status
    query, else None."""
    cluster: Optional[str] = None
    fields: Optional[list[str]] = None
    ids: Optional[list[str]] = None
    owners: Optional[list[str]] = None
    flags: set[str] = set()
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg in _FLAGS:
            flags.add(arg)
        elif arg in ("-o", "-j", "-u", "-M") and rest:
            value = rest.pop(0)
            if arg == "-M":
                if cluster is not None or not _CLUSTER_RE.fullmatch(value) or value.lower() == "all":
                    return None
                cluster = value
            elif arg == "-o":
                match = _FORMAT_RE.fullmatch(value)
                if match is None:
                    return None
                fields = [f[1] for f in match.group(1).split(UNIT_SEPARATOR)]
            elif arg == "-j":
                ids = value.split(",")
            else:
                owners = value.split(",")
        else:
            return None
    if flags != _FLAGS or fields is None or not ids or not all(_JOBID_RE.fullmatch(i) for i in ids):
        return None
    return fields, ids, owners, cluster


def _value(letter: str, job: Job, now: float) -> str:
    started = job.start_time if job.start_time is not None else int(now)
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started))
    used = max(0, int(now) - started)
    known = {"A": job.jobid, "i": job.jobid, "j": job.name, "k": job.comment or "(null)", "t": "R",
             "T": "RUNNING", "u": job.owner, "w": job.wckey, "S": start,
             # ood_core 0.25 parses the submit time unguarded: the earliest time the spool knows.
             "V": start, "M": f"{used // 86400}-{used % 86400 // 3600:02d}:{used % 3600 // 60:02d}:{used % 60:02d}"}
    return known.get(letter, _EMPTY.get(letter, "N/A"))


def answer(args: list[str]) -> Optional[str]:
    """squeue's output for ARGS from the spool, or None: the real squeue must answer."""
    query = parse_argv(args)
    if query is None:
        return None
    fields, ids, owners, cluster = query
    from ood_mt import shares, spool

    site = shares.load_site_summary(_site_json())
    got = spool.read(site, shares.Identity.current())
    if got.jobs is None:
        return None
    by_id = {job.jobid: job for job in got.jobs}
    if not all(i in by_id for i in ids) or (owners is not None and any(by_id[i].owner not in owners for i in ids)):
        return None
    now = time.time()
    lines = [f"CLUSTER: {cluster}"] if cluster is not None else []
    lines.append(RECORD_SEPARATOR + UNIT_SEPARATOR.join(_TITLES.get(f, f.upper()) for f in fields))
    for jobid in dict.fromkeys(ids):
        lines.append(RECORD_SEPARATOR + UNIT_SEPARATOR.join(_value(f, by_id[jobid], now) for f in fields))
    return "\n".join(lines) + "\n"


def _site_json() -> Optional[Path]:
    """site.json: OOD_MT_SITE_JSON (as the initializer reads it; for tests) or the default."""
    override = os.environ.get("OOD_MT_SITE_JSON")
    return Path(override) if override else None


def real_squeue(self_path: str) -> str:
    """The real squeue: site.json's ``squeue``, resolved on PATH, never this program."""
    name = "squeue"
    try:
        from ood_mt import shares

        name = shares.load_site_summary(_site_json()).squeue
    except Exception:  # any trouble with site.json: the plain squeue still answers
        pass
    me = {os.path.realpath(self_path)}
    candidates = [name] if "/" in name else [os.path.join(d, name) for d in os.environ.get("PATH", "").split(":")
                                             if d]
    if "/" in name or os.path.basename(name) == SHIM_NAME:
        candidates += [os.path.join(d, "squeue") for d in os.environ.get("PATH", "").split(":") if d]
    for path in candidates:
        if os.path.basename(path) == SHIM_NAME or os.path.realpath(path) in me:
            continue
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError(f"{SHIM_NAME}: no squeue found for {name!r} on PATH")


def main(argv: Optional[list[str]] = None) -> NoReturn:
    args = sys.argv[1:] if argv is None else argv
    try:
        out = answer(args)
    except Exception:  # never fail a status check the real squeue can answer
        out = None
    if out is not None:
        sys.stdout.write(out)
        sys.stdout.flush()
        sys.exit(0)
    try:
        real = real_squeue(sys.argv[0])
    except FileNotFoundError as exc:
        sys.stderr.write(f"{exc}\n")
        sys.exit(127)
    os.execv(real, [real, *args])


if __name__ == "__main__":
    main()
