#!/usr/bin/python
# Copyright: ood-multitenant contributors
# SPDX-License-Identifier: MIT
"""Ansible module sacctmgr_wckey: give users a Slurm WCKey association, or take it away."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sacctmgr_wckey
short_description: Ensure Slurm users have (or do not have) an association with one WCKey
description:
  - Reads the members of the WCKey with ONE C(sacctmgr list wckey name=K) call, then
    adds all missing users with ONE C(sacctmgr -i add user U1,U2,... wckey=K) call (split
    only when the command line would exceed 100 KB), or removes users with one
    C(sacctmgr -i delete user name=U1,U2,... wckey=K) call.
  - No listing it reads holds another user's WCKey string, so a WCKey holding C(|) or a
    newline (users choose any where WCKeys are not enforced) cannot stop it; a members listing
    that is not aligned on O(wckey) and the cluster stops it without a change.
  - When users must be added, one more read (C(sacctmgr list association)) checks that
    each of them already has a user association on the cluster; sacctmgr would otherwise
    create an account-less user record that still cannot submit jobs.
  - Slurm stores WCKeys and user names in lower case; both are compared case-insensitively
    and reported in lower case.
  - With O(ensure_default_wckey), users who have no WCKey association at all on the cluster
    (read for the users being added only, first their row count, then their WCKeys) first get the
    empty WCKey C("") as their default. Under
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
  - ood-multitenant contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Onboard the class to the multitenant WCKey
  ood_mt.multitenant.sacctmgr_wckey:
    wckey: multitenant
    users: "{{ class_roster }}"

- name: Offboard two users on a named cluster, cancelling their jobs under the WCKey
  ood_mt.multitenant.sacctmgr_wckey:
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


import os
import subprocess
import time
from typing import Dict, List, Optional, Sequence, Set

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ood_mt.multitenant.plugins.module_utils.ood_mt_sacctmgr_parse import (
    ActiveJob,
    WckeyModuleError,
    cluster_from_slurm_conf,
    normalize_users,
    normalize_wckey,
    parse_association_users,
    parse_members,
    parse_row_counts,
    parse_squeue_jobs,
    unreachable_message,
    unrecorded_jobs,
    wckeys_held,
)
from ansible_collections.ood_mt.multitenant.plugins.module_utils.ood_mt_wckey_plan import (
    Plan,
    active_jobs_message,
    association_argvs,
    default_candidates,
    held_argvs,
    holding_a_wckey,
    jobs_holding_wckey,
    members_argv,
    plan_changes,
    result,
    sacct_argv,
    settle_failed_message,
    squeue_argv,
    unknown_users_message,
    write_commands,
)

_POLL_SECONDS = 0.5
# How many times a removal slurmdbd undid is repeated before the module gives up.
_MAX_REMOVAL_ROUNDS = 3


class Slurm:
    """Runs Slurm's commands with a timeout and turns their failures into WckeyModuleError."""

    def __init__(self, sacctmgr: str, timeout: int, dbd_host: Optional[str]) -> None:
        self.sacctmgr = sacctmgr
        self.timeout = timeout
        self.dbd_host = dbd_host
        self.env = dict(os.environ, LC_ALL="C")

    def sibling(self, name: str) -> str:
        return sibling_tool(self.sacctmgr, name)

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

    def members(self, cluster: str, wckey: str) -> List[str]:
        return parse_members(self.run(members_argv(self.sacctmgr, cluster, wckey)), wckey, cluster)

    def holders(self, cluster: str, users: Sequence[str]) -> Set[str]:
        found: Set[str] = set()
        for call in held_argvs(self.sacctmgr, cluster, users):
            counts = parse_row_counts(self.run(call["counts"]), call["users"])
            found |= holding_a_wckey(wckeys_held(self.run(call["wckeys"]), call["users"], counts))
        return found

    def with_association(self, cluster: str, users: Sequence[str]) -> Set[str]:
        found: Set[str] = set()
        for argv in association_argvs(self.sacctmgr, cluster, users):
            found |= parse_association_users(self.run(argv))
        return found

    def active_jobs(self) -> List[ActiveJob]:
        try:
            return parse_squeue_jobs(self.run(squeue_argv(self.sibling("squeue"))))
        except WckeyModuleError as exc:
            raise WckeyModuleError(
                f"{exc}; the module lists jobs before removing a WCKey because slurmdbd restores it for "
                "a live job: run it where squeue reaches slurmctld, or set active_jobs: ignore"
            ) from exc

    def cancel_and_wait(self, job_ids: Sequence[str], cluster: str) -> None:
        """scancel the jobs, then wait until slurmdbd has recorded the end of each."""
        self.run([self.sibling("scancel"), *job_ids])
        deadline = time.monotonic() + self.timeout
        waiting = list(job_ids)
        while True:
            waiting = unrecorded_jobs(self.run(sacct_argv(self.sibling("sacct"), cluster, waiting)), waiting)
            if not waiting:
                return
            if time.monotonic() >= deadline:
                raise WckeyModuleError(
                    f"cancelled job(s) {', '.join(waiting)} but slurmdbd had not recorded their end within "
                    f"{self.timeout} s, so the WCKey was NOT removed (slurmdbd would add it back); "
                    "check `sacct -j <id>` and run again, or raise 'timeout'"
                )
            time.sleep(_POLL_SECONDS)

    def settle_removal(self, cluster: str, wckey: str, removed: Sequence[str], settle_seconds: int) -> List[str]:
        """Watch `wckey` for `settle_seconds`; remove again whoever slurmdbd put back.

        Returns the users removed again. slurmdbd re-adds a WCKey association when it
        records a job carrying it (`Add WCKeys` by the slurm user in `sacctmgr list
        transactions`), even a job that ended moments before the removal."""
        removed_set = set(removed)
        removed_again: List[str] = []
        for _round in range(_MAX_REMOVAL_ROUNDS):
            deadline = time.monotonic() + settle_seconds
            back: List[str] = []
            while time.monotonic() < deadline and not back:
                time.sleep(_POLL_SECONDS)
                back = sorted(set(self.members(cluster, wckey)) & removed_set)
            if not back:
                return removed_again
            for argv in write_commands(self.sacctmgr, cluster, wckey, Plan(before=[], after=[], remove=back)):
                self.run(argv, allow_nothing=True)
            removed_again.extend(user for user in back if user not in removed_again)
        still = sorted(set(self.members(cluster, wckey)) & removed_set)
        if still:
            raise WckeyModuleError(settle_failed_message(wckey, still, _MAX_REMOVAL_ROUNDS))
        return removed_again


# ---------------------------------------------------------------- module entry point


def sibling_tool(sacctmgr_path: str, name: str) -> str:
    """`name` from sacctmgr's directory when sacctmgr was given as a path, else from PATH."""
    directory = os.path.dirname(sacctmgr_path)
    return os.path.join(directory, name) if directory else name


def read_slurm_conf(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def run_module(params: Dict[str, object], check_mode: bool, sacctmgr_path: str) -> Dict[str, object]:
    """Do the work; return the module result. Raises WckeyModuleError on bad input/state."""
    wckey = normalize_wckey(params["wckey"])
    users = normalize_users(params.get("users") or [])  # type: ignore[arg-type]
    state = str(params.get("state") or "present")
    ensure_default = bool(params.get("ensure_default_wckey", True))
    active_policy = str(params.get("active_jobs") or "fail")
    if active_policy not in ("fail", "cancel", "ignore"):
        raise WckeyModuleError(f"parameter 'active_jobs' is {active_policy!r}: use fail, cancel or ignore")
    conf_path = os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")
    conf_cluster, dbd_host = cluster_from_slurm_conf(read_slurm_conf(conf_path))
    cluster = str(params.get("cluster") or conf_cluster or "").lower()
    if not cluster:
        raise WckeyModuleError(f"no ClusterName in {conf_path}; set the module parameter 'cluster'")
    timeout = int(params.get("timeout") or 60)  # type: ignore[call-overload]
    if timeout <= 0:
        raise WckeyModuleError(f"parameter 'timeout' is {timeout}: give a positive number of seconds")
    settle_seconds = int(params.get("settle_seconds", 5) or 0)  # type: ignore[call-overload]
    if settle_seconds < 0:
        raise WckeyModuleError(f"parameter 'settle_seconds' is {settle_seconds}: give 0 or more seconds")
    slurm = Slurm(sacctmgr_path, timeout, dbd_host)

    members = slurm.members(cluster, wckey)
    candidates = default_candidates(members, users, state, ensure_default)
    holders = slurm.holders(cluster, candidates) if candidates else set()
    plan = plan_changes(members, holders, users, state, ensure_default)
    needs_association = sorted(set(plan.add) | set(plan.default_wckey_add))
    if needs_association:
        known = slurm.with_association(cluster, needs_association)
        unknown = [user for user in needs_association if user not in known]
        if unknown:
            raise WckeyModuleError(unknown_users_message(unknown, cluster))
    live: List[ActiveJob] = []
    if plan.remove and active_policy != "ignore":
        live = jobs_holding_wckey(slurm.active_jobs(), wckey, plan.remove)
        if live and active_policy == "fail":
            raise WckeyModuleError(active_jobs_message(live, wckey))
    removed_again: List[str] = []
    commands = write_commands(sacctmgr_path, cluster, wckey, plan)
    if not check_mode:
        if live:
            slurm.cancel_and_wait([job.job_id for job in live], cluster)
        for argv in commands:
            slurm.run(argv, allow_nothing=True)
        if plan.remove and settle_seconds > 0:
            removed_again = slurm.settle_removal(cluster, wckey, plan.remove, settle_seconds)
    return result(plan, wckey, cluster, commands, live, removed_again)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "wckey": {"type": "str", "required": True, "no_log": False},
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
