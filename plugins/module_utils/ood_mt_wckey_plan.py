"""Pure planning for the sacctmgr_wckey module: what to add, remove and cancel, and the exact
sacctmgr/squeue/sacct command lines, from values the parsers return.

No Ansible, no subprocess. Imported by the module as
`ansible_collections.ood_mt.multitenant.plugins.module_utils.ood_mt_wckey_plan`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Sequence, Set

from ansible_collections.ood_mt.multitenant.plugins.module_utils.ood_mt_sacctmgr_parse import (
    ActiveJob,
    WckeyModuleError,
)

# A command line longer than this is split; Linux allows ~2 MB, 100 KB keeps well clear
# of any limit while 1,000 typical user names still fit in one call.
MAX_COMMAND_BYTES = 100_000


@dataclass
class Plan:
    """What the module has to do, computed from the listings without side effects."""

    before: List[str]
    after: List[str]
    add: List[str] = field(default_factory=list)
    remove: List[str] = field(default_factory=list)
    default_wckey_add: List[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.add or self.remove or self.default_wckey_add)


def default_candidates(members: Sequence[str], users: Sequence[str], state: str,
                       ensure_default_wckey: bool) -> List[str]:
    """Users whose other WCKeys must be read to know whether they need the empty default one
    (members of the site's WCKey already hold a WCKey)."""
    if state != "present" or not ensure_default_wckey:
        return []
    have = set(members)
    return [user for user in users if user not in have]


def holding_a_wckey(held: Mapping[str, Sequence[str]]) -> Set[str]:
    """Users with a WCKey association. Rows whose WCKey starts with '*' are slurmdbd's own
    record of jobs that ran under the default WCKey: not associations, no right to submit."""
    return {user for user, wckeys in held.items() if any(not key.startswith("*") for key in wckeys)}


def plan_changes(members: Sequence[str], holders: Set[str], users: Sequence[str], state: str,
                 ensure_default_wckey: bool) -> Plan:
    """Compare the WCKey's `members` with the wanted state; `holders` are the users known to
    hold some WCKey (from `holding_a_wckey`). `users` are normalized."""
    current = set(members)
    before = sorted(current)
    if state == "present":
        add = [user for user in users if user not in current]
        default_add = ([user for user in users if user not in current and user not in holders]
                       if ensure_default_wckey else [])
        return Plan(before=before, after=sorted(current | set(add)), add=add, default_wckey_add=default_add)
    if state == "absent":
        remove = [user for user in users if user in current]
        return Plan(before=before, after=sorted(current - set(remove)), remove=remove)
    raise WckeyModuleError(f"parameter 'state' is {state!r}: use present or absent")


def jobs_holding_wckey(jobs: Sequence[ActiveJob], wckey: str, users: Sequence[str]) -> List[ActiveJob]:
    """The jobs of `users` that carry `wckey` (a '*' prefix marks a default WCKey: not ours)."""
    wanted = set(users)
    found = [job for job in jobs if job.user in wanted and job.wckey == wckey]
    return sorted(found, key=lambda job: (len(job.job_id), job.job_id))


# ---------------------------------------------------------------- command lines


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


def _batched(prefix: Sequence[str], suffix: Sequence[str], names: Sequence[str], key: str) -> List[List[str]]:
    fixed = _fixed_bytes([*prefix, *suffix])
    return [[*prefix, f"{key}{','.join(chunk)}", *suffix] for chunk in chunk_names(names, fixed)]


def members_argv(sacctmgr: str, cluster: str, wckey: str) -> List[str]:
    """The site's WCKey only: other users' WCKey strings never reach the parser."""
    return [sacctmgr, "--parsable2", "--noheader", "list", "wckey", f"name={wckey}", f"cluster={cluster}",
            "format=WCKey,Cluster,User"]


def held_argvs(sacctmgr: str, cluster: str, users: Sequence[str]) -> List[Dict[str, List[str]]]:
    """Per chunk of users: `counts` (one line a row) and `wckeys` (User first, WCKey last)."""
    prefix = [sacctmgr, "--parsable2", "--noheader", "list", "wckey"]
    return [{"users": chunk,
             "counts": [*prefix, f"user={','.join(chunk)}", f"cluster={cluster}", "format=User"],
             "wckeys": [*prefix, f"user={','.join(chunk)}", f"cluster={cluster}", "format=User,WCKey"]}
            for chunk in chunk_names(users, _fixed_bytes([*prefix, f"cluster={cluster}", "format=User,WCKey"]))]


def association_argvs(sacctmgr: str, cluster: str, users: Sequence[str]) -> List[List[str]]:
    return _batched([sacctmgr, "--parsable2", "--noheader", "list", "association"],
                    [f"cluster={cluster}", "format=User"], users, "user=")


def squeue_argv(squeue: str) -> List[str]:
    # One call for all users: `squeue --users` fails outright on a name with no Unix
    # account, and offboarding users whose accounts are already gone is normal.
    return [squeue, "--noheader", "--all", "--format=%A|%u|%w|%T"]


def sacct_argv(sacct: str, cluster: str, job_ids: Sequence[str]) -> List[str]:
    return [sacct, "--noheader", "--parsable2", "--allocations", f"--clusters={cluster}",
            f"--jobs={','.join(job_ids)}", "--format=JobIDRaw,State"]


def write_commands(sacctmgr: str, cluster: str, wckey: str, plan: Plan) -> List[List[str]]:
    """The sacctmgr write commands for a plan, in the order they must run."""
    commands: List[List[str]] = []
    where = f"cluster={cluster}"
    # The empty WCKey goes first: a user's first WCKey becomes its default.
    if plan.default_wckey_add:
        commands += _batched([sacctmgr, "-i", "add", "user"], ["wckey=", where], plan.default_wckey_add, "")
        commands += _batched([sacctmgr, "-i", "modify", "user", "where"], [where, "set", "defaultwckey="],
                             plan.default_wckey_add, "name=")
    if plan.add:
        commands += _batched([sacctmgr, "-i", "add", "user"], [f"wckey={wckey}", where], plan.add, "")
    if plan.remove:
        commands += _batched([sacctmgr, "-i", "delete", "user"], [f"wckey={wckey}", where], plan.remove, "name=")
    return commands


# ---------------------------------------------------------------- messages and results


def _shown(names: Sequence[str]) -> str:
    return ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")


def active_jobs_message(jobs: Sequence[ActiveJob], wckey: str) -> str:
    shown = _shown([f"{job.job_id} ({job.user}, {job.state})" for job in jobs])
    return (
        f"{len(jobs)} pending or running job(s) of the users being removed carry WCKey {wckey}: {shown}. "
        "slurmdbd adds the WCKey back when it records such a job, so removing it now would not last, "
        "and nothing was changed. Wait for the jobs to end or scancel them, or set active_jobs: cancel "
        "(role variable ood_mt_onboarding_active_jobs: cancel) to cancel them and then remove the users."
    )


def unknown_users_message(unknown: Sequence[str], cluster: str) -> str:
    return (
        f"{len(unknown)} user(s) have no Slurm user association on cluster {cluster}, so they cannot get "
        f"a WCKey: {_shown(unknown)}. Add them to an account first, e.g. "
        f"sacctmgr -i add user {','.join(unknown[:3])} account=<account> cluster={cluster}"
    )


def settle_failed_message(wckey: str, still: Sequence[str], rounds: int) -> str:
    return (
        f"slurmdbd put WCKey {wckey} back for {', '.join(still)} {rounds} times after it was "
        "removed: a job of theirs that carries it is still being recorded. Find it with "
        f"`squeue --states=all --format='%A|%u|%w|%T' | grep '|{wckey}|'`, wait for it (or scancel it) "
        "and run the offboarding again"
    )


def describe(members: Sequence[str], wckey: str, cluster: str) -> str:
    lines = [f"# users with WCKey {wckey!r} on cluster {cluster}"]
    lines.extend(members)
    return "\n".join(lines) + "\n"


def result(plan: Plan, wckey: str, cluster: str, commands: List[List[str]], live: Sequence[ActiveJob],
           removed_again: List[str]) -> Dict[str, object]:
    """The module's return values (RETURN in its documentation) plus its diff."""
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
        "cancelled": [job.job_id for job in live],  # squeue lists each job once; already in id order
        "removed_again": removed_again,
        "diff": {
            "before": describe(plan.before, wckey, cluster),
            "after": describe(plan.after, wckey, cluster),
            "before_header": f"sacctmgr wckey {wckey}",
            "after_header": f"sacctmgr wckey {wckey}",
        },
    }
