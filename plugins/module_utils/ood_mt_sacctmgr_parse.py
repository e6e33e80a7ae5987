"""Pure reading of what sacctmgr, squeue and sacct print, for the sacctmgr_wckey module.

No Ansible, no subprocess: every function takes text and returns values, so the unit tests
run them on output captured from a real Slurm (tests/onboarding/sacctmgr_samples/).
Imported by the module as
`ansible_collections.ood_mt.multitenant.plugins.module_utils.ood_mt_sacctmgr_parse`.

Where WCKeys are not enforced users choose any WCKey string, `|` and newlines included, and
slurmdbd records an association for it. So no listing read here holds another user's WCKey:
the members listing is asked for the site's WCKey only (`name=<wckey>`), and the one listing
that shows WCKey strings (`wckeys_held`) is asked only for the users being onboarded, puts
the WCKey last, and is checked against a count of their rows that no WCKey can change.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

_FORBIDDEN_IN_NAMES = re.compile(r"[,|=\"'\s]")
_UNREACHABLE_HINTS = (
    "persistent connection",
    "persistinit",
    "connection refused",
    "problem talking to the database",
    "unable to contact slurmdbd",
)
# sacct states of a job that slurmdbd will still hear about; anything else is an end state.
_UNFINISHED_STATES = frozenset({
    "PENDING", "RUNNING", "SUSPENDED", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING",
    "CONFIGURING", "COMPLETING", "SIGNALING", "STAGE_OUT", "STOPPED",
})


class WckeyModuleError(Exception):
    """A problem the user must fix; the message says what and how."""


@dataclass(frozen=True)
class ActiveJob:
    """A pending or running job, from `squeue --format=%A|%u|%w|%T`."""

    job_id: str
    user: str
    wckey: str
    state: str


# ---------------------------------------------------------------- parameters


def normalize_wckey(value: object) -> str:
    """Validate a WCKey parameter and return it as Slurm stores it (lower case)."""
    if not isinstance(value, str) or not value.strip():
        raise WckeyModuleError("parameter 'wckey' must be a non-empty string, e.g. wckey: multitenant")
    if value.startswith("*"):
        raise WckeyModuleError(
            f"parameter 'wckey' is {value!r}: a WCKey starting with '*' is reserved by Slurm; drop the '*'"
        )
    if _FORBIDDEN_IN_NAMES.search(value):
        raise WckeyModuleError(
            f"parameter 'wckey' is {value!r}: it must not contain ',', '|', '=', quotes or whitespace"
        )
    return value.lower()


def normalize_users(users: Optional[Iterable[object]]) -> List[str]:
    """Return a NEW list of validated, lower-cased, de-duplicated user names (input order)."""
    result: List[str] = []
    seen: Set[str] = set()
    for index, name in enumerate(users or []):
        if not isinstance(name, str) or not name.strip():
            raise WckeyModuleError(f"parameter 'users' item {index} is {name!r}: give a non-empty user name")
        if _FORBIDDEN_IN_NAMES.search(name) or name.startswith("-"):
            raise WckeyModuleError(
                f"parameter 'users' item {index} is {name!r}: a user name must not start with '-' or "
                "contain ',', '|', '=', quotes or whitespace"
            )
        key = name.lower()
        if key not in seen:
            seen.add(key)
            result.append(key)
    return result


# ---------------------------------------------------------------- sacctmgr


def split_parsable(text: str, tool: str, fields: Sequence[str]) -> List[List[str]]:
    """Split `--parsable2 --noheader` style output into rows of len(fields) '|'-separated values."""
    rows: List[List[str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != len(fields):
            raise WckeyModuleError(
                f"unexpected {tool} output line {number}: {line!r} (expected '{'|'.join(fields)}')"
            )
        rows.append(parts)
    return rows


def parse_members(text: str, wckey: str, cluster: str) -> List[str]:
    """Users holding `wckey` on `cluster`, from `list wckey name=<wckey> cluster=<cluster>
    format=WCKey,Cluster,User` (parsable2, no header), sorted.

    Every line must name exactly this WCKey and cluster: anything else means the listing is
    not what was asked for, and the module stops rather than guess who holds the WCKey."""
    expected = f"{wckey}|{cluster}|<user>"
    found: Set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split("|")
        if len(parts) != 3 or parts[0].lower() != wckey or parts[1].lower() != cluster or not parts[2]:
            raise WckeyModuleError(
                f"unexpected sacctmgr output line {number}: {line!r} (expected '{expected}'); "
                f"the listing of WCKey {wckey} is not aligned, so nothing was changed"
            )
        found.add(parts[2].lower())
    return sorted(found)


def parse_row_counts(text: str, users: Sequence[str]) -> Counter:
    """Rows per user from `list wckey user=<users> cluster=<c> format=User`: one line a row
    (user names hold no newline), so no WCKey string can change the count."""
    asked = set(users)
    counts: Counter = Counter()
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lower() not in asked:
            raise WckeyModuleError(f"unexpected sacctmgr output line {number}: {line!r} (expected one of "
                                   "the user names asked for)")
        counts[line.lower()] += 1
    return counts


def wckeys_held(text: str, users: Sequence[str], counts: Counter) -> Dict[str, List[str]]:
    """Each user's WCKeys from `list wckey user=<users> cluster=<c> format=User,WCKey`.

    A record starts at a line `<user asked for>|`; the WCKey is the rest, up to the next
    record (it may hold `|` and newlines). A WCKey holding a newline followed by
    `<another user>|` would forge a record; `counts` (from `parse_row_counts`, which no
    WCKey can change) exposes that, and the module stops naming the users concerned."""
    asked = set(users)
    held: Dict[str, List[str]] = {}
    current: Optional[Tuple[str, List[str]]] = None
    records: List[Tuple[str, List[str]]] = []
    for number, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"), start=1):
        user, sep, rest = line.partition("|")
        if sep and user.lower() in asked:
            current = (user.lower(), [rest])
            records.append(current)
        elif current is not None:
            current[1].append(line)  # the WCKey of the record before held a newline
        elif line:
            raise WckeyModuleError(f"unexpected sacctmgr output line {number}: {line!r} (expected '<user>|<wckey>')")
    parsed: Counter = Counter(user for user, _wckey in records)
    differ = sorted(user for user in set(parsed) | set(counts) if parsed[user] != counts[user])
    if differ:
        raise WckeyModuleError(
            f"the WCKey listing of {', '.join(differ)} is ambiguous: a WCKey of a user being onboarded holds a "
            "newline followed by a user name (possible only where WCKeys are not enforced), so the module "
            "cannot tell who holds what and changed nothing. Find it with "
            f"`sacctmgr -P list wckey user={','.join(differ)} format=User,WCKey` and remove it "
            "(`sacctmgr -i delete user <user> wckey=<that wckey>`), or set ensure_default_wckey: false"
        )
    for user, lines in records:
        held.setdefault(user, []).append("\n".join(lines).lower())
    return held


def parse_association_users(text: str) -> Set[str]:
    """Users named in `list association format=User` output (parsable2, no header)."""
    return {line.strip().lower() for line in text.splitlines() if line.strip()}


def unreachable_message(stderr: str, host: Optional[str]) -> Optional[str]:
    """A clear message when stderr says slurmdbd could not be reached, else None."""
    lowered = stderr.lower()
    if not any(hint in lowered for hint in _UNREACHABLE_HINTS):
        return None
    match = re.search(r"host:([^:\s]+):(\d+)", stderr)
    where = f"{match.group(1)} (port {match.group(2)})" if match else (host or "the AccountingStorageHost")
    return f"sacctmgr could not reach slurmdbd: {stderr.strip()}; is slurmdbd running on {where}?"


# ---------------------------------------------------------------- squeue, sacct, slurm.conf


def parse_squeue_jobs(text: str) -> List[ActiveJob]:
    """Parse `squeue --noheader --format=%A|%u|%w|%T` output."""
    rows = split_parsable(text, "squeue", ("JobID", "User", "WCKey", "State"))
    return [ActiveJob(job_id=job_id.strip(), user=user.strip().lower(), wckey=wckey.strip().lower(),
                      state=state.strip()) for job_id, user, wckey, state in rows]


def unrecorded_jobs(sacct_text: str, job_ids: Sequence[str]) -> List[str]:
    """Job ids whose end slurmdbd has not recorded yet, from `sacct -X -P -n -o JobIDRaw,State`.

    A job is recorded when sacct lists it and none of its rows is in an unfinished state."""
    seen: Set[str] = set()
    unfinished: Set[str] = set()
    for raw_id, state in split_parsable(sacct_text, "sacct", ("JobIDRaw", "State")):
        seen.add(raw_id.strip())
        words = state.split()
        if not words or words[0] in _UNFINISHED_STATES:
            unfinished.add(raw_id.strip())
    return [job_id for job_id in job_ids if job_id not in seen or job_id in unfinished]


def cluster_from_slurm_conf(text: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """(ClusterName, AccountingStorageHost) from slurm.conf text (None: unreadable); None for what is not there."""
    found: Dict[str, str] = {}
    for raw in (text or "").splitlines():
        line = raw.split("#", 1)[0].strip()
        if "=" not in line:
            continue
        name, value = line.split("=", 1)
        found.setdefault(name.strip().lower(), value.strip().split()[0] if value.strip() else "")
    return found.get("clustername") or None, found.get("accountingstoragehost") or None
