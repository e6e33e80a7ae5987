#!/usr/bin/python
# Copyright: ood-multitenant contributors
# SPDX-License-Identifier: MIT
"""Ansible module: set one parameter of a Slurm config file, or edit its comma list.

Slurm's parser matches keys case-insensitively and, when a key appears twice, uses the
last value; this module edits that last active line and leaves every other line (and
every comment) byte for byte as it was.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: slurm_conf_param
short_description: Set a parameter in slurm.conf / slurmdbd.conf, or add/remove comma-list members
description:
  - Edits one C(Key=Value) line of a Slurm configuration file in place, preserving all other
    lines and comments. Keys match case-insensitively, as in Slurm; when a key appears twice
    Slurm uses the last value, so the last active line is the one edited.
  - With O(value), the parameter is set to that value. With O(members), the listed members are
    added to (O(state=present)) or removed from (O(state=absent)) the parameter's comma list;
    existing members keep their order and spelling.
  - A key that is absent is appended at the end of the file. A list that becomes empty is
    removed from the file (Slurm then uses its default).
  - Supports check mode and diff mode.
options:
  path:
    description: Config file to edit; it must exist.
    type: path
    required: true
  key:
    description: Parameter name, e.g. C(TrackWCKey). Required unless O(edits) is given.
    type: str
  value:
    description: Value to set. Mutually exclusive with O(members).
    type: str
  members:
    description: Comma-list members to add or remove.
    type: list
    elements: str
  state:
    description: Add (V(present)) or remove (V(absent)) O(members).
    type: str
    default: present
    choices: [present, absent]
  backup:
    description: Keep a timestamped copy of the original before changing it.
    type: bool
    default: false
  edits:
    description:
      - Several edits of the same file, applied in order and written once (one candidate,
        one validation, one backup).
      - Each item has C(key) and either C(value) or C(members) (with C(state)).
      - Mutually exclusive with O(key).
    type: list
    elements: dict
  validate:
    description:
      - Command run on the candidate file before it replaces O(path); C(%s) is the candidate's path.
      - A non-zero exit leaves O(path) untouched and fails the task.
    type: str
  validate_only:
    description:
      - Render the candidate next to O(path), run O(validate) on it, remove it; never write O(path)
        (C(changed) is always false; RV(would_change) says whether a write would change it).
      - Lets a role check every file's candidate before it writes any. Does nothing in check mode.
    type: bool
    default: false
author:
  - ood-multitenant contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Track WCKeys
  ood_mt.multitenant.slurm_conf_param:
    path: /etc/slurm/slurm.conf
    key: TrackWCKey
    value: "yes"
    backup: true
    validate: env SLURM_CONF=%s scontrol show hostnames localhost

- name: Enforce WCKeys, keeping the site's other values
  ood_mt.multitenant.slurm_conf_param:
    path: /etc/slurm/slurm.conf
    key: AccountingStorageEnforce
    members: [wckeys]

- name: Two edits, one write
  ood_mt.multitenant.slurm_conf_param:
    path: /etc/slurm/slurmdbd.conf
    edits:
      - {key: TrackWCKey, value: "yes"}
      - {key: AccountingStorageEnforce, members: [wckeys]}
"""

RETURN = r"""
previous:
  description: Value before the change (null when the key was absent).
  returned: with O(key)
  type: str
  sample: associations,limits
current:
  description: Value after the change (null when the key is now absent).
  returned: with O(key)
  type: str
  sample: associations,limits,wckeys
params:
  description: Per edit, C(key), C(previous) and C(current).
  returned: with O(edits)
  type: list
  elements: dict
would_change:
  description: Whether writing the candidate would change O(path).
  returned: always
  type: bool
backup_file:
  description: Path of the backup, when one was made.
  returned: changed and O(backup)
  type: str
"""


import os
import re
import tempfile
from typing import Optional

from ansible.module_utils.basic import AnsibleModule

# `Key = value  # comment`; Slurm allows no spaces inside a value of these keys.
_LINE = re.compile(r"^(?P<lead>\s*)(?P<key>[A-Za-z][A-Za-z0-9_]*)(?P<eq>\s*=\s*)(?P<value>\S*)(?P<rest>.*)$")


class ConfError(Exception):
    """A config file problem that should be reported to the user as-is."""


def find_last_line(lines: list[str], key: str) -> Optional[int]:
    """Index of the last active line whose first key is `key` (case-insensitive)."""
    found = None
    for index, line in enumerate(lines):
        match = _LINE.match(line.rstrip("\n"))
        if match and match.group("key").lower() == key.lower():
            found = index
    return found


def merge_members(current: list[str], members: list[str], state: str) -> list[str]:
    """Set union (present) or difference (absent), case-insensitive, keeping `current`'s order."""
    wanted = [m.strip() for m in members if m.strip()]
    if state == "present":
        merged = list(current)
        for member in wanted:
            if member.lower() not in {m.lower() for m in merged}:
                merged.append(member)
        return merged
    drop = {m.lower() for m in wanted}
    return [m for m in current if m.lower() not in drop]


def edit_text(text: str, key: str, value: Optional[str], members: Optional[list[str]], state: str
              ) -> tuple[str, Optional[str], Optional[str]]:
    """Return (new_text, previous_value, new_value) for one parameter edit."""
    lines = text.splitlines(keepends=True)
    index = find_last_line(lines, key)
    previous = None
    match = None
    if index is not None:
        match = _LINE.match(lines[index].rstrip("\n"))  # find_last_line found it with _LINE
        previous = match.group("value") if match else None

    if members is not None:
        current_members = [m for m in (previous or "").split(",") if m]
        merged = merge_members(current_members, members, state)
        new_value = ",".join(merged) if merged else None
        if previous is not None and merged == current_members:
            new_value = previous
    else:
        new_value = value

    if new_value == previous:
        return text, previous, new_value
    if new_value is None:
        if index is not None:  # always: new_value differs from previous, so the key was there
            del lines[index]
    elif index is None or match is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        lines.append(f"{key}={new_value}\n")
    else:
        ending = "\n" if lines[index].endswith("\n") else ""
        lines[index] = (f"{match.group('lead')}{match.group('key')}{match.group('eq')}"
                        f"{new_value}{match.group('rest')}{ending}")
    return "".join(lines), previous, new_value


def write_validated(module: AnsibleModule, path: str, text: str, validate: Optional[str],
                    backup: bool, validate_only: bool = False) -> Optional[str]:
    """Write `text` next to `path`, validate it there, back up `path`, then rename over it (atomic).
    With `validate_only`, stop after the validation (the candidate is removed, `path` untouched).

    Returns the backup's path (None without `backup`)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, candidate = tempfile.mkstemp(prefix=".ood-mt.", suffix=".conf", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if validate:
            if "%s" not in validate:
                raise ConfError(f"validate must contain %s (the candidate file), got: {validate!r}")
            rc, out, err = module.run_command(validate.replace("%s", candidate), use_unsafe_shell=False)
            if rc != 0:
                raise ConfError(f"validation of the new {path} failed (rc={rc}), file left unchanged: "
                                f"{(err or out).strip()}")
        if validate_only:
            return None
        backup_file = module.backup_local(path) if backup else None
        os.chmod(candidate, os.stat(path).st_mode & 0o7777)
        module.atomic_move(candidate, path)
        return backup_file
    finally:
        if os.path.exists(candidate):
            os.unlink(candidate)


def edits_of(params: dict) -> list[dict]:
    """The edits asked for: `edits`, or the one given by key/value/members/state; each checked."""
    path = params["path"]
    if params["edits"] is None:
        edits = [{"key": params["key"], "value": params["value"], "members": params["members"],
                  "state": params["state"]}]
    else:
        edits = [{"value": None, "members": None, "state": "present", **item} for item in params["edits"]]
    for index, edit in enumerate(edits):
        where = f"{path}: edits item {index}" if params["edits"] is not None else path
        if not isinstance(edit.get("key"), str) or not edit["key"]:
            raise ConfError(f"{where}: give the parameter name as key")
        if (edit["value"] is None) == (edit["members"] is None):
            raise ConfError(f"{where}: give exactly one of value and members for {edit['key']}")
        if edit["state"] not in ("present", "absent"):
            raise ConfError(f"{where}: state must be present or absent, got {edit['state']!r}")
        if edit["value"] is not None and any(c.isspace() for c in str(edit["value"])):
            raise ConfError(f"{path}: value for {edit['key']} must not contain spaces: {edit['value']!r}")
    return edits


def run(module: AnsibleModule) -> dict:
    params = module.params
    path = params["path"]
    if not os.path.isfile(path):
        raise ConfError(f"{path}: no such file; slurm_conf_param edits an existing Slurm config file "
                        f"(fix the path, or install Slurm's config first)")
    edits = edits_of(params)
    with open(path, encoding="utf-8") as handle:
        before = handle.read()
    after = before
    changes = []
    for edit in edits:
        members = [str(m) for m in edit["members"]] if edit["members"] is not None else None
        value = str(edit["value"]) if edit["value"] is not None else None
        after, previous, current = edit_text(after, edit["key"], value, members, edit["state"])
        changes.append({"key": edit["key"], "previous": previous, "current": current})
    would_change = after != before
    result: dict = {"changed": would_change and not params["validate_only"], "would_change": would_change}
    if params["edits"] is None:
        result.update(previous=changes[0]["previous"], current=changes[0]["current"])
    else:
        result["params"] = changes
    if module._diff and not params["validate_only"]:
        result["diff"] = {"before": before, "after": after,
                          "before_header": path, "after_header": path}
    if would_change and not module.check_mode:
        backup_file = write_validated(module, path, after, params["validate"], params["backup"],
                                      params["validate_only"])
        if backup_file:
            result["backup_file"] = backup_file
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "key": {"type": "str", "no_log": False},
            "value": {"type": "str"},
            "members": {"type": "list", "elements": "str"},
            "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
            "edits": {"type": "list", "elements": "dict"},
            "backup": {"type": "bool", "default": False},
            "validate": {"type": "str"},
            "validate_only": {"type": "bool", "default": False},
        },
        mutually_exclusive=[("value", "members"), ("key", "edits"), ("value", "edits"), ("members", "edits")],
        required_one_of=[("key", "edits")],
        supports_check_mode=True,
    )
    try:
        result = run(module)
    except ConfError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"{module.params['path']}: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
