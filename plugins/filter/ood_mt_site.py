"""Jinja filter `ood_mt_site_problems(multitenant, keys)` -> the site file's problems, one line each.

Runs on the Ansible controller and applies the kit's own site-file schema
(`ood_mt.config`, `src/ood_mt/site.schema.json`), so a role and `ood-mt validate` can never
disagree on a site rule. With `keys` (top-level keys of `multitenant`), only the problems of
those keys: a role checks what it reads. An empty list means the keys are valid.
"""

from __future__ import annotations

from typing import Any, Callable

from ansible.errors import AnsibleFilterError


def ood_mt_site_problems(multitenant: Any, keys: Any = ()) -> list[str]:
    """Problems of the site variable, as `ood-mt validate` prints them."""
    try:
        from ood_mt.config import site_problem_lines
    except ImportError as exc:
        raise AnsibleFilterError(
            "ood_mt_site_problems: the kit's Python package `ood_mt` is not importable by the Python "
            f"running ansible ({exc}). Install it on the controller into the same environment as "
            "Ansible, e.g. `pip install -e <repo>` or run ./scripts/bootstrap.sh and use .venv/bin/ansible-playbook."
        ) from None
    if isinstance(keys, str) or not all(isinstance(k, str) for k in keys):
        raise AnsibleFilterError(f"ood_mt_site_problems: keys must be a list of top-level key names, got {keys!r}")
    return site_problem_lines(_plain(multitenant), tuple(keys), "the site file (multitenant)")


def _plain(value: Any) -> Any:
    """Ansible's tagged/unsafe strings and mappings as the plain types the schema checks."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Callable[..., list[str]]]:
        return {"ood_mt_site_problems": ood_mt_site_problems}
