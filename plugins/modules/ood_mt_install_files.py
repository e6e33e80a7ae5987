#!/usr/bin/python
# Copyright: ood-multitenant contributors
# SPDX-License-Identifier: MIT
"""Ansible module ood_mt_install_files: install files from one tar bundle in one run."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ood_mt_install_files
short_description: Install files and directories from one tar bundle, each with its owner, group and mode
description:
  - Installs the given files from a tar archive already on the host, in one module run instead of one
    C(ansible.builtin.copy) per file. Each file is taken from the archive member named by its C(src),
    checked against its C(sha256), written to a temporary file beside its destination with its owner,
    group and mode, and renamed into place, so no reader ever sees a half-written file.
  - Directories are created or fixed first, in the order given.
  - Install exactly what needs installing (module M(ood_mt.multitenant.ood_mt_install_plan) says which);
    every listed file and directory is reported as changed.
  - Check mode writes nothing; with C(--diff) text files up to 64 KiB show their old and new content.
options:
  archive:
    description:
      - Path on the host of the tar archive (uncompressed) holding the files, named by their C(src).
      - In check mode it may be missing (the copy before this task did not run); the change is still reported.
    type: path
    required: true
  files:
    description:
      - The files to install; each has C(src) (member name), C(dest) (absolute path), C(owner), C(group),
        C(mode) (octal string) and C(sha256) (hex digest the member must have).
    type: list
    elements: dict
    default: []
  dirs:
    description:
      - Directories to create or fix, parents first; each has C(path), C(owner), C(group) and C(mode).
    type: list
    elements: dict
    default: []
notes:
  - Supports check mode and diff mode.
author:
  - ood-multitenant contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Install the files the plan says differ
  ood_mt.multitenant.ood_mt_install_files:
    archive: /var/lib/ood-mt/ood-bundle.tar
    dirs: "{{ plan.dirs }}"
    files: "{{ plan.files | map('extract', manifest.files) | list }}"
"""

RETURN = r"""
dirs:
  description: Directories created or fixed.
  returned: always
  type: list
  elements: str
installed:
  description: Destinations of the files installed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ood_mt.multitenant.plugins.module_utils.ood_mt_file_bundle import (
    BundleError,
    install,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "archive": {"type": "path", "required": True},
            "files": {"type": "list", "elements": "dict", "default": []},
            "dirs": {"type": "list", "elements": "dict", "default": []},
        },
        supports_check_mode=True,
    )
    try:
        result = install(module.params["archive"], module.params["dirs"], module.params["files"],
                         check=module.check_mode, want_diff=module._diff)
    except BundleError as exc:
        module.fail_json(msg=str(exc))
    except KeyError as exc:
        module.fail_json(msg=f"a file or directory entry lacks field {exc}; rebuild with `ood-mt build`")
    except OSError as exc:
        module.fail_json(msg=f"cannot install: {exc}")
    diff = result.pop("diff")
    if module._diff and diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
