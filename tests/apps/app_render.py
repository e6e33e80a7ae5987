"""Render the kit's apps for tests exactly as `ood-mt build` does.

Contexts come from ood_mt.render.app_specs (the build's own code), so the tests exercise
what the build ships; `render_all` is a real build of the lab site.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from cookiecutter.main import cookiecutter

from ood_mt.config import CLIENT_APPS as CLIENT_KINDS
from ood_mt.config import DELIVERY_APPS as DELIVERY_KINDS
from ood_mt.config import SERVICE_APPS as SERVICE_KINDS
from ood_mt.config import SiteConfig, load_site, local_app_dir
from ood_mt.render import CLIENT_TEMPLATE, DELIVERY_TEMPLATE, SERVICE_TEMPLATE, app_specs, build

REPO = Path(__file__).resolve().parents[2]
SITE_FILE = REPO / "inventories" / "lab" / "group_vars" / "all" / "multitenant.yml"

__all__ = ["CLIENT_KINDS", "CLIENT_TEMPLATE", "DELIVERY_KINDS", "DELIVERY_TEMPLATE", "REPO", "SERVICE_KINDS",
           "SERVICE_TEMPLATE", "SITE_FILE", "client_context", "delivery_context", "lab_doc", "render",
           "render_all", "service_context", "site"]


def lab_site() -> SiteConfig:
    return load_site(SITE_FILE)


def lab_doc() -> dict[str, Any]:
    """The lab site file as parsed YAML, its site-local apps' paths made absolute: a copy of it
    written anywhere builds the same apps."""
    raw = yaml.safe_load(SITE_FILE.read_text())
    for entry in raw["multitenant"].get("local_apps", []):
        entry["path"] = str(local_app_dir(SITE_FILE, entry))
    return raw


def site() -> dict[str, Any]:
    """The lab site's validated `multitenant` mapping (defaults filled in)."""
    return lab_site().data


def _context(app_name: str, overrides: dict[str, Any] | None) -> dict[str, Any]:
    spec = next(s for s in app_specs(lab_site()) if s.name == app_name)
    ctx = dict(spec.context)
    ctx.update(overrides or {})
    return ctx


def service_context(kind: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    return _context(f"mt_{kind}", overrides)


def client_context(kind: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    return _context(f"mt_{kind}", overrides)


def delivery_context(kind: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    return _context(f"mt_delivery_{kind}", overrides)


def render(template: Path, context: dict[str, Any], out_dir: Path) -> Path:
    """Render one app (e.g. with a test's overrides) into out_dir; return the app directory."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return Path(cookiecutter(str(template), no_input=True, extra_context=context, output_dir=str(out_dir),
                             overwrite_if_exists=True))


def render_all(out_dir: Path) -> dict[str, Path]:
    """Every app of the lab site (its local apps too), from a real `ood-mt build`: {app name: app dir}."""
    manifest = build(lab_site(), out_dir / "build")
    return {app["name"]: out_dir / "build" / "apps" / app["name"] for app in manifest["apps"]}
