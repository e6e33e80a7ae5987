#!/usr/bin/python
# Copyright: ood-multitenant contributors
# SPDX-License-Identifier: MIT
"""Ansible module: compare the build manifest with what is installed on an OOD host (read-only).

It answers, in one call instead of one stat per file: which directories and files are
missing or differ (content sha256, owner, group, mode), which paths inside managed app
directories the manifest no longer lists, and which previously installed apps
(recorded in the state file) the manifest dropped. The role then changes only those.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ood_mt_install_plan
short_description: Work out what must change to install an ood-multitenant build (read-only)
description:
  - Compares the manifest of an C(ood-mt build) (C(manifest.json)) with what is installed on an
    Open OnDemand host, in one call instead of one C(stat) per file.
  - Reports the app directories to create or fix, the files to (re)install (content sha256,
    owner, group, mode), the paths inside managed app directories that the manifest no longer
    lists, and the apps installed by earlier runs (recorded in O(state_file)) that the manifest
    dropped. Role C(ood_mt.multitenant.ood_mt_ood) then changes only those.
  - Never changes anything; always returns C(changed=false), also in check mode.
options:
  apps:
    description:
      - The manifest's C(apps) list; each item has C(name), C(dest), C(group) and C(dir_mode).
    type: list
    elements: dict
    required: true
  files:
    description:
      - The manifest's C(files) list plus its C(initializer); each item has C(dest), C(owner),
        C(group), C(mode) and C(sha256).
    type: list
    elements: dict
    required: true
  state_file:
    description:
      - JSON record of the apps installed by earlier runs, an object whose C(apps) list holds
        C(name) and C(dest) of each.
      - A missing file means nothing was installed before.
    type: path
    required: true
notes:
  - Only an app recorded in O(state_file) whose directory is named after it and starts with
    C(mt_) is ever reported in RV(removed_apps).
author:
  - ood-multitenant contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Work out what differs from the manifest
  ood_mt.multitenant.ood_mt_install_plan:
    apps: "{{ manifest.apps }}"
    files: "{{ manifest.files + [manifest.initializer] }}"
    state_file: /etc/ood-mt/installed-apps.json
  register: plan

- name: Show whether anything must change
  ansible.builtin.debug:
    msg: "{{ plan.files | length }} file(s) to install, {{ plan.stale | length }} stale path(s)"
  when: plan.pending
"""

RETURN = r"""
dirs:
  description: Directories to create or fix.
  returned: always
  type: list
  elements: dict
  sample: [{path: /var/www/ood/apps/sys/mt_database, owner: root, group: mtusr, mode: "0750"}]
files:
  description: Indexes into O(files) of the files to (re)install.
  returned: always
  type: list
  elements: int
  sample: [0, 3]
stale:
  description: Paths inside managed app directories that the manifest does not list (deepest first).
  returned: always
  type: list
  elements: str
removed_apps:
  description: Apps installed by earlier runs that the manifest dropped.
  returned: always
  type: list
  elements: dict
  sample: [{name: mt_old, dest: /var/www/ood/apps/sys/mt_old}]
pending:
  description: True when anything at all must change.
  returned: always
  type: bool
"""


import hashlib
import json
import os
import stat
from typing import Any, Optional

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ood_mt.multitenant.plugins.module_utils.ood_mt_file_bundle import (
    BundleError,
    owner_ids,
)


class PlanError(Exception):
    """Bad manifest data; the message names the entry and the fix."""


def _ids(owner: str, group: str, where: str) -> tuple[int, int]:
    try:
        return owner_ids(owner, group, where)
    except BundleError as exc:
        raise PlanError(str(exc)) from None


def _differs(path: str, uid: int, gid: int, mode: int, want_dir: bool) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return True
    kind_ok = stat.S_ISDIR(st.st_mode) if want_dir else stat.S_ISREG(st.st_mode)
    return not kind_ok or (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) != (uid, gid, mode)


def _sha256(path: str) -> Optional[str]:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 16), b""):
                digest.update(chunk)
    except (FileNotFoundError, IsADirectoryError):
        return None
    return digest.hexdigest()


def _app_of(dest: str, apps: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    for app in apps:
        if dest.startswith(app["dest"].rstrip("/") + "/"):
            return app
    return None


def plan(apps: list[dict[str, Any]], files: list[dict[str, Any]], state_file: str) -> dict[str, Any]:
    wanted_dirs: dict[str, tuple[str, str, str]] = {}
    for app in apps:
        wanted_dirs[app["dest"].rstrip("/")] = ("root", app["group"], app["dir_mode"])
    for entry in files:
        app = _app_of(entry["dest"], apps)
        if app is None:
            continue  # e.g. the initializer: its directory is not ours to manage
        top = app["dest"].rstrip("/")
        parent = os.path.dirname(entry["dest"])
        while parent != top and parent.startswith(top + "/"):
            wanted_dirs[parent] = ("root", app["group"], app["dir_mode"])
            parent = os.path.dirname(parent)

    dirs = []
    for path in sorted(wanted_dirs):
        owner, group, mode = wanted_dirs[path]
        uid, gid = _ids(owner, group, f"app directory {path}")
        if _differs(path, uid, gid, int(mode, 8), want_dir=True):
            dirs.append({"path": path, "owner": owner, "group": group, "mode": mode})

    outdated = []
    for index, entry in enumerate(files):
        uid, gid = _ids(entry["owner"], entry["group"], f"manifest file {entry['dest']}")
        if (_differs(entry["dest"], uid, gid, int(entry["mode"], 8), want_dir=False)
                or _sha256(entry["dest"]) != entry["sha256"]):
            outdated.append(index)

    listed = set(wanted_dirs) | {e["dest"] for e in files}
    stale = []
    for app in apps:
        top = app["dest"].rstrip("/")
        if not os.path.isdir(top) or os.path.islink(top):
            continue
        for root, dirnames, filenames in os.walk(top, topdown=False):
            for name in filenames + dirnames:
                path = os.path.join(root, name)
                if path not in listed:
                    stale.append(path)

    removed = []
    if os.path.exists(state_file):
        try:
            with open(state_file, encoding="utf-8") as handle:
                recorded = json.load(handle).get("apps", [])
        except (OSError, ValueError) as exc:
            raise PlanError(f"{state_file}: unreadable record of installed apps ({exc}); "
                            f"fix or delete it (it is rewritten on the next successful run)") from None
        current = {app["name"] for app in apps}
        for app in recorded:
            name, dest = app.get("name", ""), app.get("dest", "")
            # only ever remove what we recorded, and only an app directory named after the app
            if name not in current and os.path.isabs(dest) and os.path.basename(dest.rstrip("/")) == name \
                    and name.startswith("mt_") and os.path.lexists(dest):
                removed.append({"name": name, "dest": dest})

    return {"dirs": dirs, "files": outdated, "stale": stale, "removed_apps": removed,
            "pending": bool(dirs or outdated or stale or removed)}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "apps": {"type": "list", "elements": "dict", "required": True},
            "files": {"type": "list", "elements": "dict", "required": True},
            "state_file": {"type": "path", "required": True},
        },
        supports_check_mode=True,
    )
    try:
        result = plan(module.params["apps"], module.params["files"], module.params["state_file"])
    except PlanError as exc:
        module.fail_json(msg=str(exc))
    except KeyError as exc:
        module.fail_json(msg=f"manifest entry lacks field {exc}; rebuild with `ood-mt build`")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
