#!/usr/bin/python
"""Ansible module sacctmgr_wckey: give users a Slurm WCKey association, or take it away."""

from __future__ import annotations

import os
import re
import subprocess
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
  sacctmgr_path:
    description: sacctmgr executable (name looked up in PATH, or an absolute path).
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

- name: Offboard two users on a named cluster
  sacctmgr_wckey:
    wckey: multitenant
    users: [alice, bob]
    state: absent
    cluster: hpc1
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


class WckeyModuleError(Exception):
    """A problem the user must fix; the message says what and how."""


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


def parse_wckey_listing(text: str) -> List[WckeyRow]:
    """Parse `list wckey format=WCKey,Cluster,User` output (parsable2, no header)."""
    rows: List[WckeyRow] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 3:
            raise WckeyModuleError(
                f"unexpected sacctmgr output line {number}: {line!r} (expected 'WCKey|Cluster|User')"
            )
        wckey, cluster, user = parts
        rows.append(WckeyRow(wckey=wckey.lower(), cluster=cluster, user=user.lower()))
    return rows


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


def run_module(params: Dict[str, object], check_mode: bool, sacctmgr_path: str) -> Dict[str, object]:
    """Do the work; return the module result. Raises WckeyModuleError on bad input/state."""
    wckey = normalize_wckey(params["wckey"])
    users = normalize_users(params.get("users") or [])  # type: ignore[arg-type]
    state = str(params.get("state") or "present")
    conf_path = os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")
    conf_cluster, dbd_host = cluster_from_slurm_conf(conf_path)
    cluster = str(params.get("cluster") or conf_cluster or "")
    if not cluster:
        raise WckeyModuleError(f"no ClusterName in {conf_path}; set the module parameter 'cluster'")
    cluster = cluster.lower()
    timeout = int(params.get("timeout") or 60)  # type: ignore[call-overload]
    if timeout <= 0:
        raise WckeyModuleError(f"parameter 'timeout' is {timeout}: give a positive number of seconds")
    tool = Sacctmgr(sacctmgr_path, timeout, dbd_host)

    plan = plan_changes(tool.list_wckeys(cluster), cluster, wckey, users, state,
                        bool(params.get("ensure_default_wckey", True)))
    needs_association = sorted(set(plan.add) | set(plan.default_wckey_add))
    if needs_association:
        known = tool.users_with_association(cluster, needs_association)
        unknown = [user for user in needs_association if user not in known]
        if unknown:
            raise WckeyModuleError(unknown_users_message(unknown, cluster))
    commands = write_commands(sacctmgr_path, cluster, wckey, plan)
    if not check_mode:
        for argv in commands:
            tool.run(argv, allow_nothing=True)
    return {
        "changed": plan.changed,
        "added": plan.add,
        "removed": plan.remove,
        "default_wckey_added": plan.default_wckey_add,
        "users": plan.after,
        "wckey": wckey,
        "cluster": cluster,
        "commands": commands,
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
