"""Jinja filter `ood_mt_group_key(master_hex, group, version)` -> 64 lowercase hex chars.

Runs on the Ansible controller and delegates to the kit's own `ood_mt.keys.derive_group_key`
so the roles and the CLI can never disagree on the derivation (docs/architecture.md "Keys").
"""

from __future__ import annotations

import re
from typing import Any, Callable

from ansible.errors import AnsibleFilterError

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def _derive() -> Callable[[bytes, str, int], bytes]:
    try:
        from ood_mt.keys import derive_group_key
    except ImportError as exc:
        raise AnsibleFilterError(
            "ood_mt_group_key: the kit's Python package `ood_mt` is not importable by the Python "
            f"running ansible ({exc}). Install it on the controller into the same environment as "
            "Ansible, e.g. `pip install -e <repo>` or run ./scripts/bootstrap.sh and use .venv/bin/ansible-playbook."
        ) from None
    return derive_group_key


def ood_mt_group_key(master_hex: Any, group: Any, version: Any) -> str:
    """Group key for `group`, version `version`, as lowercase hex (never logged by this filter)."""
    text = str(master_hex).strip()
    if not _HEX64.fullmatch(text):
        # do not echo the value: it is (supposed to be) a secret
        raise AnsibleFilterError("ood_mt_group_key: the master secret must be exactly 64 hex characters "
                                 "(32 random bytes); check multitenant.keys.master_secret_file or "
                                 "ood_mt_keys_master_secret")
    try:
        number = int(version)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"ood_mt_group_key: key version must be an integer, got {version!r}") from None
    try:
        return _derive()(bytes.fromhex(text), str(group), number).hex()
    except ValueError as exc:
        raise AnsibleFilterError(f"ood_mt_group_key: {exc}") from None


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Callable[..., str]]:
        return {"ood_mt_group_key": ood_mt_group_key}
