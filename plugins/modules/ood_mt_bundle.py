#!/usr/bin/python
# Copyright: ood-multitenant contributors
# SPDX-License-Identifier: MIT
"""Ansible module ood_mt_bundle: write a deterministic tar of some files (run on the controller)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ood_mt_bundle
short_description: Write a deterministic tar archive of files, for one copy instead of one per file
description:
  - Writes O(dest), an uncompressed tar of O(base)/NAME for each of O(names), byte for byte the same
    for the same contents (members sorted, modification time 0, owner root, mode 0644), so that
    copying it to hosts again changes nothing.
  - Roles C(ood_mt.multitenant.ood_mt_ood) and C(ood_mt.multitenant.ood_mt_cli) run it on the controller
    (delegated to localhost) and copy the result; M(ood_mt.multitenant.ood_mt_install_files) installs
    from it. Links and anything but regular files are refused.
  - Reports C(changed) when O(dest) did not hold these bytes before.
options:
  dest:
    description: Path of the archive to write (replaced atomically).
    type: path
    required: true
  base:
    description: Directory the names are relative to.
    type: path
    required: true
  names:
    description: Relative paths of the files to put in the archive (member names).
    type: list
    elements: str
    required: true
notes:
  - "Check mode does not apply: the archive is a working file of the controller; run it with C(check_mode: false)."
author:
  - ood-multitenant contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Make the bundle of the build's files (on the controller)
  ood_mt.multitenant.ood_mt_bundle:
    dest: "{{ build_dir }}/.bundle.tar"
    base: "{{ build_dir }}"
    names: "{{ manifest.files | map(attribute='src') | list }}"
  delegate_to: localhost
  check_mode: false
"""

RETURN = r"""
sha256:
  description: SHA-256 of the archive written.
  returned: always
  type: str
"""

import hashlib
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ood_mt.multitenant.plugins.module_utils.ood_mt_file_bundle import (
    BundleError,
    make_bundle,
)


def _sha256(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return ""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "dest": {"type": "path", "required": True},
            "base": {"type": "path", "required": True},
            "names": {"type": "list", "elements": "str", "required": True},
        },
        supports_check_mode=False,
    )
    dest = module.params["dest"]
    before = _sha256(dest) if os.path.exists(dest) else ""
    try:
        make_bundle(dest, module.params["base"], module.params["names"])
    except (BundleError, OSError) as exc:
        module.fail_json(msg=f"cannot write the bundle {dest}: {exc}")
    after = _sha256(dest)
    module.exit_json(changed=before != after, sha256=after)


if __name__ == "__main__":
    main()
