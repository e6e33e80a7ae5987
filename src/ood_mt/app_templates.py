"""Where the kit's cookiecutter templates live, and what each app kind says about itself.

Everything is package data under ``ood_mt/templates/`` (a wheel carries it; nothing points
outside the package)::

    templates/service/  client/  delivery/   one cookiecutter template per app role; each one's
                                             ``templates`` (cookiecutter's include path) is a
                                             symlink to ``shared``, so every template includes
                                             the same files
    templates/shared/partials/               partials: the bash library, form values, share forms
    templates/shared/<role>s/<kind>/         one folder per kind: what differs for that kind,
                                             and ``kind.json`` (its title and description)

The kinds of a role are the ``<role>_kind`` choices in that role's ``cookiecutter.json``: adding
a kind is its folder plus that one line (cookiecutter itself refuses a kind not listed there).
``cookiecutter-mt-app`` at the top of a checkout is a symlink to the service template.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).resolve().parent / "templates"
SHARED = TEMPLATES / "shared"
ROLES = ("service", "client", "delivery")
# The service kind an app author starts from (`cookiecutter cookiecutter-mt-app`, `ood-mt
# new-app`); it is not one of the site's built-in apps.
AUTHOR_KIND = "custom"


class TemplateError(Exception):
    """A template or kind folder is missing or malformed; the message names the file and the fix."""


def template_dir(role: str) -> Path:
    """The cookiecutter template of ROLE (service, client or delivery)."""
    if role not in ROLES:
        raise ValueError(f"unknown app role {role!r}; one of {', '.join(ROLES)}")
    return TEMPLATES / role


_KIND_FOLDERS = {"service": "services", "client": "clients", "delivery": "deliveries"}


def kind_dir(role: str, kind: str, shared: Path = SHARED) -> Path:
    """The folder holding what differs for KIND of ROLE (its files and kind.json)."""
    return shared / _KIND_FOLDERS[role] / kind


def kind_choices(role: str, template: Path | None = None) -> tuple[str, ...]:
    """The ``<role>_kind`` choices of ROLE's cookiecutter.json, in their order."""
    cc_json = (template or template_dir(role)) / "cookiecutter.json"
    try:
        choices = json.loads(cc_json.read_text(encoding="utf-8")).get(f"{role}_kind")
    except (OSError, ValueError) as exc:
        raise TemplateError(f"{cc_json}: cannot be read as JSON ({exc}); is the installation complete?") from exc
    if not isinstance(choices, list) or not choices or not all(isinstance(c, str) and c for c in choices):
        raise TemplateError(f"{cc_json}: {role}_kind: must be a non-empty list of kind names. "
                            f"Fix: list one name per folder under templates/shared/{_KIND_FOLDERS[role]}/")
    return tuple(choices)


def builtin_kinds(role: str) -> tuple[str, ...]:
    """The kinds of ROLE the kit builds for a site (the app author's starting kind excluded)."""
    return tuple(k for k in kind_choices(role) if k != AUTHOR_KIND)


def kind_meta(role: str, kind: str, shared: Path = SHARED) -> dict[str, Any]:
    """KIND's ``kind.json``: ``title`` (required), ``description`` (services; optional) and
    ``shares_secrets`` (services; optional, default false: true when the kind's shares carry a
    password, so its form offers no 'selected users' audience)."""
    path = kind_dir(role, kind, shared) / "kind.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TemplateError(f"{path}: missing ({exc.strerror}). Fix: every {role} kind folder holds a kind.json "
                            '{"title": ..., "description": ...}') from exc
    except ValueError as exc:
        raise TemplateError(f"{path}: is not valid JSON ({exc}). Fix the file") from exc
    if not isinstance(meta, dict):
        raise TemplateError(f"{path}: must be a JSON object with title (and description)")
    for field, required in (("title", True), ("description", False)):
        value = meta.get(field)
        if (value is None and required) or (value is not None and (not isinstance(value, str) or not value.strip())):
            raise TemplateError(f"{path}: {field}: must be a non-empty string (got {value!r}). "
                                f"Fix: set \"{field}\" in that file")
    if not isinstance(meta.get("shares_secrets", False), bool):
        raise TemplateError(f"{path}: shares_secrets: must be true or false (got {meta['shares_secrets']!r}). "
                            "Fix: true when the kind's shares carry a password")
    unknown = sorted(set(meta) - {"title", "description", "shares_secrets"})
    if unknown:
        raise TemplateError(f"{path}: unknown field(s) {', '.join(unknown)}. "
                            "Fix: only title, description and shares_secrets")
    return meta


# The bash library a service job sources as template/mt_share.sh: the codec, then the publishing
# flow (the service template's template/mt_share.sh includes them in this order, a blank line
# between; tests/build/test_render.py pins that the two agree).
SERVICE_LIBRARY = ("mt_codec.sh", "mt_publish.sh")


# The partials a service's template/service_helpers.sh is made of, in order, a blank line between
# (the small helpers every service uses, then the share gate's start-up: docs/gate.md).
SERVICE_HELPERS = ("service_helpers.sh", "mt_gate.sh")


def service_library_text() -> str:
    """The text of a service's template/mt_share.sh, for tests and tools that run the library
    without building an app."""
    return "\n".join((SHARED / "partials" / name).read_text(encoding="utf-8") for name in SERVICE_LIBRARY)
