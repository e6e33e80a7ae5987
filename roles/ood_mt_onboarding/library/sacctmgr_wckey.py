#!/usr/bin/python
"""Ansible module sacctmgr_wckey: give users a Slurm WCKey association, or take it away."""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

DOCUMENTATION = r"""
---
module: sacctmgr_wckey
short_description: Ensure Slurm users have (or do not have) an association with one WCKey
description:
  - Reads the WCKey associations of the cluster with ONE C(sacctmgr list wckey) call, then
    adds all missing users with ONE C(sacctmgr -i add user U1,U2,... wckey=K) call (split
    only when the command line would exceed 100 KB), or removes users with one
    C(sacctmgr -i delete user name=U1,U2,... wckey=K) call.
  - When users must be added, one more read (C(sacctmgr list association)) checks that
    each of them already has a user association on the cluster; sacctmgr would otherwise
    create an account-less user record that still cannot submit jobs.
  - Slurm stores WCKeys and user names in lower case; both are compared case-insensitively
    and reported in lower case.
  - With O(ensure_default_wckey), users who have no WCKey association at all on the cluster
    first get the empty WCKey C("") as their default. Under
    C(AccountingStorageEnforce=wckeys) a user without any WCKey association cannot submit
    any job, and a user's first WCKey becomes its default, so without this step a newly
    onboarded user's ordinary jobs would be charged to O(wckey).
  - Before removing users (O(state=absent)), one C(squeue) call looks for their pending or
    running jobs that carry the WCKey. slurmdbd adds a missing WCKey association back
    when it records such a job (its start or end), so removing it under a live job does
    not last. What then happens is chosen with O(active_jobs).
  - After removing users the module watches the WCKey for O(settle_seconds) and removes
    again any user slurmdbd has put back (it does so for a job it is still recording, e.g.
    one that ended seconds ago), up to three times; then it fails rather than report a
    removal that did not last.
  - Supports check mode (reads only) and diff mode (members of the WCKey before/after).
options:
  wckey:
    description: The WCKey, e.g. C(multitenant). Must not be empty, start with C(*), or
      contain a comma, C(|), C(=), a quote or whitespace.
    type: str
    required: true
  users:
    description: User names to add to (or remove from) the WCKey. Other members of the
      WCKey are left alone. The list is not modified.
    type: list
    elements: str
    default: []
  state:
    description: C(present) adds missing users; C(absent) removes the listed users.
    type: str
    choices: [present, absent]
    default: present
  cluster:
    description: Cluster name in slurmdbd. Default is C(ClusterName) from the
      C(slurm.conf) sacctmgr reads (C($SLURM_CONF) or C(/etc/slurm/slurm.conf)).
    type: str
  ensure_default_wckey:
    description: With O(state=present), users with no WCKey association at all on the
      cluster also get the empty WCKey C("") and it as their default WCKey.
    type: bool
    default: true
  active_jobs:
    description:
      - With O(state=absent), what to do about pending or running jobs of the listed
        users that carry the WCKey.
      - C(fail) stops with a message naming the jobs; nothing is written.
      - C(cancel) cancels them with C(scancel), waits (up to O(timeout)) until slurmdbd
        has recorded their end, then removes the users.
      - C(ignore) skips the check (and the C(squeue) call); the removal is undone by
        slurmdbd if such a job exists.
    type: str
    choices: [fail, cancel, ignore]
    default: fail
  settle_seconds:
    description: After removing users, how long to watch for slurmdbd putting them back
      (0 turns the check off). Only runs when someone was removed.
    type: int
    default: 5
  sacctmgr_path:
    description: sacctmgr executable (name looked up in PATH, or an absolute path).
      C(squeue), C(scancel) and C(sacct) are taken from the same directory.
    type: str
    default: sacctmgr
  timeout:
    description: Seconds each sacctmgr call may take before the module fails.
    type: int
    default: 60
notes:
  - Removing a WCKey that is a user's default leaves that user without a default WCKey;
    Slurm does not pick another one.
  - Needs Slurm accounting admin rights (run as root or a Slurm operator).
author:
  - ood-multitenant contributors
"""

EXAMPLES = r"""
- name: Onboard the class to the multitenant WCKey
  sacctmgr_wckey:
    wckey: multitenant
    users: "{{ class_roster }}"

- name: Offboard two users on a named cluster, cancelling their jobs under the WCKey
  sacctmgr_wckey:
    wckey: multitenant
    users: [alice, bob]
    state: absent
    cluster: hpc1
    active_jobs: cancel
"""

RETURN = r"""
added:
  description: Users given the WCKey (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [alice, bob]
removed:
  description: Users whose WCKey association was removed (or would be).
  returned: always
  type: list
  elements: str
default_wckey_added:
  description: Users who had no WCKey association and got the empty WCKey as default.
  returned: always
  type: list
  elements: str
users:
  description: All users with the WCKey on the cluster afterwards (sorted).
  returned: always
  type: list
  elements: str
wckey:
  description: The WCKey as Slurm stores it (lower case).
  returned: always
  type: str
cluster:
  description: The cluster the module worked on.
  returned: always
  type: str
commands:
  description: The sacctmgr write commands run (or that would run in check mode), as argv lists.
  returned: always
  type: list
  elements: list
active_jobs:
  description: Pending or running jobs of the removed users that carried the WCKey
    (empty when O(active_jobs=ignore) or nobody is removed).
  returned: always
  type: list
  elements: dict
  sample: [{job_id: "4711", user: alice, state: RUNNING}]
cancelled:
  description: Job ids cancelled (or that would be, in check mode) with O(active_jobs=cancel).
  returned: always
  type: list
  elements: str
removed_again:
  description: Users slurmdbd put back after the removal and the module removed again.
  returned: always
  type: list
  elements: str
"""

# A command line longer than this is split; Linux allows ~2 MB, 100 KB keeps well clear
# of any limit while 1,000 typical user names still fit in one call.
MAX_COMMAND_BYTES = 100_000
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
_POLL_SECONDS = 0.5
# How many times a removal slurmdbd undid is repeated before the module gives up.
_MAX_REMOVAL_ROUNDS = 3


class WckeyModuleError(Exception):
    """A problem the user must fix; the message says what and how."""


@dataclass(frozen=True)
class ActiveJob:
    """A pending or running job, from `squeue --format=%A|%u|%w|%T`."""

    job_id: str
    user: str
    wckey: str
    state: str


@dataclass(frozen=True)
class WckeyRow:
    """One line of `sacctmgr --parsable2 --noheader list wckey format=WCKey,Cluster,User`."""

    wckey: str
    cluster: str
    user: str


@dataclass
class Plan:
    """What the module has to do, computed from the listing without side effects."""

    before: List[str]
    after: List[str]
    add: List[str] = field(default_factory=list)
    remove: List[str] = field(default_factory=list)
    default_wckey_add: List[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.add or self.remove or self.default_wckey_add)


# ---------------------------------------------------------------- validation


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


# ---------------------------------------------------------------- parsing


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


def parse_wckey_listing(text: str) -> List[WckeyRow]:
    """Parse `list wckey format=WCKey,Cluster,User` output (parsable2, no header)."""
    return [WckeyRow(wckey=wckey.lower(), cluster=cluster, user=user.lower())
            for wckey, cluster, user in split_parsable(text, "sacctmgr", ("WCKey", "Cluster", "User"))]


def parse_squeue_jobs(text: str) -> List[ActiveJob]:
    """Parse `squeue --noheader --format=%A|%u|%w|%T` output."""
    rows = split_parsable(text, "squeue", ("JobID", "User", "WCKey", "State"))
    return [ActiveJob(job_id=job_id.strip(), user=user.strip().lower(), wckey=wckey.strip().lower(),
                      state=state.strip()) for job_id, user, wckey, state in rows]


def jobs_holding_wckey(jobs: Sequence[ActiveJob], wckey: str, users: Sequence[str]) -> List[ActiveJob]:
    """The jobs of `users` that carry `wckey` (a '*' prefix marks a default WCKey: not ours)."""
    wanted = set(users)
    found = [job for job in jobs if job.user in wanted and job.wckey == wckey]
    return sorted(found, key=lambda job: (len(job.job_id), job.job_id))


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


def active_jobs_message(jobs: Sequence[ActiveJob], wckey: str) -> str:
    shown = ", ".join(f"{job.job_id} ({job.user}, {job.state})" for job in jobs[:20])
    more = f" and {len(jobs) - 20} more" if len(jobs) > 20 else ""
    return (
        f"{len(jobs)} pending or running job(s) of the users being removed carry WCKey {wckey}: {shown}{more}. "
        "slurmdbd adds the WCKey back when it records such a job, so removing it now would not last, "
        "and nothing was changed. Wait for the jobs to end or scancel them, or set active_jobs: cancel "
        "(role variable ood_mt_onboarding_active_jobs: cancel) to cancel them and then remove the users."
    )


def parse_association_users(text: str) -> Set[str]:
    """Users named in `list association format=User` output (parsable2, no header)."""
    return {line.strip().lower() for line in text.splitlines() if line.strip()}


def cluster_from_slurm_conf(path: str) -> Tuple[Optional[str], Optional[str]]:
    """(ClusterName, AccountingStorageHost) from slurm.conf; None for what is not there."""
    found: Dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for raw in handle:
                line = raw.split("#", 1)[0].strip()
                if "=" not in line:
                    continue
                name, value = line.split("=", 1)
                found.setdefault(name.strip().lower(), value.strip().split()[0] if value.strip() else "")
    except OSError:
        return None, None
    return found.get("clustername") or None, found.get("accountingstoragehost") or None


# ---------------------------------------------------------------- planning


def plan_changes(
    rows: Sequence[WckeyRow],
    cluster: str,
    wckey: str,
    users: Sequence[str],
    state: str,
    ensure_default_wckey: bool,
) -> Plan:
    """Compare the listing with the wanted state. `wckey` and `users` are normalized."""
    on_cluster = [row for row in rows if row.cluster == cluster]
    members = {row.user for row in on_cluster if row.wckey == wckey}
    # Rows whose WCKey starts with '*' are slurmdbd's own record of jobs that ran under the
    # default WCKey; they are not associations and do not let a user submit.
    anything = {row.user for row in on_cluster if not row.wckey.startswith("*")}
    before = sorted(members)
    if state == "present":
        add = [user for user in users if user not in members]
        default_add = [user for user in users if user not in anything] if ensure_default_wckey else []
        return Plan(before=before, after=sorted(members | set(add)), add=add, default_wckey_add=default_add)
    if state == "absent":
        remove = [user for user in users if user in members]
        return Plan(before=before, after=sorted(members - set(remove)), remove=remove)
    raise WckeyModuleError(f"parameter 'state' is {state!r}: use present or absent")


def chunk_names(names: Sequence[str], fixed_bytes: int, limit: int = MAX_COMMAND_BYTES) -> List[List[str]]:
    """Split names into comma-joined groups whose command line stays under `limit` bytes."""
    chunks: List[List[str]] = []
    current: List[str] = []
    size = fixed_bytes
    for name in names:
        cost = len(name.encode()) + 1
        if current and size + cost > limit:
            chunks.append(current)
            current, size = [], fixed_bytes
        current.append(name)
        size += cost
    if current:
        chunks.append(current)
    return chunks


def _fixed_bytes(argv: Sequence[str]) -> int:
    return sum(len(arg.encode()) + 1 for arg in argv) + len("name=")


def write_commands(sacctmgr: str, cluster: str, wckey: str, plan: Plan) -> List[List[str]]:
    """The sacctmgr write commands for a plan, in the order they must run."""
    commands: List[List[str]] = []

    def batched(prefix: List[str], suffix: List[str], names: Sequence[str], key: str) -> None:
        for chunk in chunk_names(names, _fixed_bytes(prefix + suffix)):
            commands.append([*prefix, f"{key}{','.join(chunk)}", *suffix])

    where = f"cluster={cluster}"
    # The empty WCKey goes first: a user's first WCKey becomes its default.
    if plan.default_wckey_add:
        batched([sacctmgr, "-i", "add", "user"], ["wckey=", where], plan.default_wckey_add, "")
        batched([sacctmgr, "-i", "modify", "user", "where"], [where, "set", "defaultwckey="],
                plan.default_wckey_add, "name=")
    if plan.add:
        batched([sacctmgr, "-i", "add", "user"], [f"wckey={wckey}", where], plan.add, "")
    if plan.remove:
        batched([sacctmgr, "-i", "delete", "user"], [f"wckey={wckey}", where], plan.remove, "name=")
    return commands


def describe(members: Sequence[str], wckey: str, cluster: str) -> str:
    lines = [f"# users with WCKey {wckey!r} on cluster {cluster}"]
    lines.extend(members)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- running sacctmgr


def unreachable_message(stderr: str, host: Optional[str]) -> Optional[str]:
    """A clear message when stderr says slurmdbd could not be reached, else None."""
    lowered = stderr.lower()
    if not any(hint in lowered for hint in _UNREACHABLE_HINTS):
        return None
    match = re.search(r"host:([^:\s]+):(\d+)", stderr)
    where = f"{match.group(1)} (port {match.group(2)})" if match else (host or "the AccountingStorageHost")
    return f"sacctmgr could not reach slurmdbd: {stderr.strip()}; is slurmdbd running on {where}?"


class Sacctmgr:
    """Runs sacctmgr with a timeout and turns its failures into WckeyModuleError."""

    def __init__(self, path: str, timeout: int, dbd_host: Optional[str]) -> None:
        self.path = path
        self.timeout = timeout
        self.dbd_host = dbd_host
        self.env = dict(os.environ, LC_ALL="C")

    def run(self, argv: Sequence[str], allow_nothing: bool = False) -> str:
        try:
            done = subprocess.run(
                list(argv), capture_output=True, text=True, timeout=self.timeout, env=self.env, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise WckeyModuleError(
                f"sacctmgr did not answer within {self.timeout} s ({' '.join(argv[:4])} ...); "
                f"is slurmdbd running on {self.dbd_host or 'the AccountingStorageHost'}? "
                "Raise 'timeout' if it is just slow."
            ) from exc
        except OSError as exc:
            raise WckeyModuleError(f"cannot run {argv[0]}: {exc}; set 'sacctmgr_path'") from exc
        if done.returncode == 0:
            return done.stdout
        message = unreachable_message(done.stderr, self.dbd_host)
        if message:
            raise WckeyModuleError(message)
        # sacctmgr exits 1 when an add/delete had nothing to do; the plan makes that rare
        # (another admin acting at the same moment) and it is not an error.
        text = (done.stdout + done.stderr).lower()
        if allow_nothing and ("nothing new added" in text or "nothing deleted" in text):
            return done.stdout
        raise WckeyModuleError(
            f"{' '.join(argv[:5])} ... failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()}"
        )

    def list_active_jobs(self, squeue: str) -> List[ActiveJob]:
        # One call for all users: `squeue --users` fails outright on a name with no Unix
        # account, and offboarding users whose accounts are already gone is normal.
        try:
            return parse_squeue_jobs(self.run([squeue, "--noheader", "--all", "--format=%A|%u|%w|%T"]))
        except WckeyModuleError as exc:
            raise WckeyModuleError(
                f"{exc}; the module lists jobs before removing a WCKey because slurmdbd restores it for "
                "a live job: run it where squeue reaches slurmctld, or set active_jobs: ignore"
            ) from exc

    def cancel_and_wait(self, scancel: str, sacct: str, job_ids: Sequence[str], cluster: str) -> None:
        """scancel the jobs, then wait until slurmdbd has recorded the end of each."""
        self.run([scancel, *job_ids])
        deadline = time.monotonic() + self.timeout
        waiting = list(job_ids)
        while True:
            out = self.run([sacct, "--noheader", "--parsable2", "--allocations", f"--clusters={cluster}",
                            f"--jobs={','.join(waiting)}", "--format=JobIDRaw,State"])
            waiting = unrecorded_jobs(out, waiting)
            if not waiting:
                return
            if time.monotonic() >= deadline:
                raise WckeyModuleError(
                    f"cancelled job(s) {', '.join(waiting)} but slurmdbd had not recorded their end within "
                    f"{self.timeout} s, so the WCKey was NOT removed (slurmdbd would add it back); "
                    "check `sacct -j <id>` and run again, or raise 'timeout'"
                )
            time.sleep(_POLL_SECONDS)

    def members(self, cluster: str, wckey: str) -> Set[str]:
        return {row.user for row in self.list_wckeys(cluster) if row.cluster == cluster and row.wckey == wckey}

    def settle_removal(self, sacctmgr: str, cluster: str, wckey: str, removed: Sequence[str],
                       settle_seconds: int) -> List[str]:
        """Watch `wckey` for `settle_seconds`; remove again whoever slurmdbd put back.

        Returns the users removed again. slurmdbd re-adds a WCKey association when it
        records a job carrying it (`Add WCKeys` by the slurm user in `sacctmgr list
        transactions`), even a job that ended moments before the removal."""
        removed_set = set(removed)
        removed_again: List[str] = []
        for _ in range(_MAX_REMOVAL_ROUNDS):
            deadline = time.monotonic() + settle_seconds
            back: List[str] = []
            while time.monotonic() < deadline:
                time.sleep(_POLL_SECONDS)
                back = sorted(self.members(cluster, wckey) & removed_set)
                if back:
                    break
            if not back:
                return removed_again
            for argv in write_commands(sacctmgr, cluster, wckey, Plan(before=[], after=[], remove=back)):
                self.run(argv, allow_nothing=True)
            removed_again.extend(user for user in back if user not in removed_again)
        still = sorted(self.members(cluster, wckey) & removed_set)
        if not still:
            return removed_again
        raise WckeyModuleError(
            f"slurmdbd put WCKey {wckey} back for {', '.join(still)} {_MAX_REMOVAL_ROUNDS} times after it was "
            "removed: a job of theirs that carries it is still being recorded. Find it with "
            f"`squeue --states=all --format='%A|%u|%w|%T' | grep '|{wckey}|'`, wait for it (or scancel it) "
            "and run the offboarding again"
        )

    def list_wckeys(self, cluster: str) -> List[WckeyRow]:
        out = self.run([self.path, "--parsable2", "--noheader", "list", "wckey",
                        f"cluster={cluster}", "format=WCKey,Cluster,User"])
        return parse_wckey_listing(out)

    def users_with_association(self, cluster: str, users: Sequence[str]) -> Set[str]:
        found: Set[str] = set()
        prefix = [self.path, "--parsable2", "--noheader", "list", "association"]
        suffix = [f"cluster={cluster}", "format=User"]
        for chunk in chunk_names(users, _fixed_bytes(prefix + suffix)):
            found |= parse_association_users(self.run([*prefix, f"user={','.join(chunk)}", *suffix]))
        return found


def unknown_users_message(unknown: Sequence[str], cluster: str) -> str:
    shown = ", ".join(unknown[:20]) + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else "")
    return (
        f"{len(unknown)} user(s) have no Slurm user association on cluster {cluster}, so they cannot get "
        f"a WCKey: {shown}. Add them to an account first, e.g. "
        f"sacctmgr -i add user {','.join(unknown[:3])} account=<account> cluster={cluster}"
    )


# ---------------------------------------------------------------- module entry point


def sibling_tool(sacctmgr_path: str, name: str) -> str:
    """`name` from sacctmgr's directory when sacctmgr was given as a path, else from PATH."""
    directory = os.path.dirname(sacctmgr_path)
    return os.path.join(directory, name) if directory else name


def run_module(params: Dict[str, object], check_mode: bool, sacctmgr_path: str) -> Dict[str, object]:
    """Do the work; return the module result. Raises WckeyModuleError on bad input/state."""
    wckey = normalize_wckey(params["wckey"])
    users = normalize_users(params.get("users") or [])  # type: ignore[arg-type]
    state = str(params.get("state") or "present")
    active_policy = str(params.get("active_jobs") or "fail")
    if active_policy not in ("fail", "cancel", "ignore"):
        raise WckeyModuleError(f"parameter 'active_jobs' is {active_policy!r}: use fail, cancel or ignore")
    conf_path = os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")
    conf_cluster, dbd_host = cluster_from_slurm_conf(conf_path)
    cluster = str(params.get("cluster") or conf_cluster or "")
    if not cluster:
        raise WckeyModuleError(f"no ClusterName in {conf_path}; set the module parameter 'cluster'")
    cluster = cluster.lower()
    timeout = int(params.get("timeout") or 60)  # type: ignore[call-overload]
    if timeout <= 0:
        raise WckeyModuleError(f"parameter 'timeout' is {timeout}: give a positive number of seconds")
    settle_seconds = int(params.get("settle_seconds", 5) or 0)  # type: ignore[call-overload]
    if settle_seconds < 0:
        raise WckeyModuleError(f"parameter 'settle_seconds' is {settle_seconds}: give 0 or more seconds")
    tool = Sacctmgr(sacctmgr_path, timeout, dbd_host)

    plan = plan_changes(tool.list_wckeys(cluster), cluster, wckey, users, state,
                        bool(params.get("ensure_default_wckey", True)))
    needs_association = sorted(set(plan.add) | set(plan.default_wckey_add))
    if needs_association:
        known = tool.users_with_association(cluster, needs_association)
        unknown = [user for user in needs_association if user not in known]
        if unknown:
            raise WckeyModuleError(unknown_users_message(unknown, cluster))
    live: List[ActiveJob] = []
    if plan.remove and active_policy != "ignore":
        live = jobs_holding_wckey(tool.list_active_jobs(sibling_tool(sacctmgr_path, "squeue")), wckey, plan.remove)
        if live and active_policy == "fail":
            raise WckeyModuleError(active_jobs_message(live, wckey))
    cancelled = [job.job_id for job in live]  # squeue lists each job once; already in id order
    removed_again: List[str] = []
    commands = write_commands(sacctmgr_path, cluster, wckey, plan)
    if not check_mode:
        if cancelled:
            tool.cancel_and_wait(sibling_tool(sacctmgr_path, "scancel"), sibling_tool(sacctmgr_path, "sacct"),
                                 cancelled, cluster)
        for argv in commands:
            tool.run(argv, allow_nothing=True)
        if plan.remove and settle_seconds > 0:
            removed_again = tool.settle_removal(sacctmgr_path, cluster, wckey, plan.remove, settle_seconds)
    return {
        "changed": plan.changed,
        "added": plan.add,
        "removed": plan.remove,
        "default_wckey_added": plan.default_wckey_add,
        "users": plan.after,
        "wckey": wckey,
        "cluster": cluster,
        "commands": commands,
        "active_jobs": [{"job_id": job.job_id, "user": job.user, "state": job.state} for job in live],
        "cancelled": cancelled,
        "removed_again": removed_again,
        "diff": {
            "before": describe(plan.before, wckey, cluster),
            "after": describe(plan.after, wckey, cluster),
            "before_header": f"sacctmgr wckey {wckey}",
            "after_header": f"sacctmgr wckey {wckey}",
        },
    }


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "wckey": {"type": "str", "required": True},
            "users": {"type": "list", "elements": "str", "default": []},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "cluster": {"type": "str"},
            "ensure_default_wckey": {"type": "bool", "default": True},
            "active_jobs": {"type": "str", "choices": ["fail", "cancel", "ignore"], "default": "fail"},
            "settle_seconds": {"type": "int", "default": 5},
            "sacctmgr_path": {"type": "str", "default": "sacctmgr"},
            "timeout": {"type": "int", "default": 60},
        },
        supports_check_mode=True,
    )
    path = module.params["sacctmgr_path"]
    if not os.path.isabs(path):
        path = module.get_bin_path(path, required=False, opt_dirs=["/usr/bin", "/usr/local/bin"])
        if not path:
            module.fail_json(msg=f"sacctmgr_path {module.params['sacctmgr_path']!r} not found in PATH; "
                             "give the absolute path of sacctmgr")
    try:
        result = run_module(dict(module.params), module.check_mode, path)
    except WckeyModuleError as exc:
        module.fail_json(msg=str(exc))
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
