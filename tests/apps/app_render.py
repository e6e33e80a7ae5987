"""Render the kit's app templates for tests, with the lab site file's values.

Same extra_context as `ood-mt build` passes (see the task contract in docs/apps.md), so
tests exercise what the build ships. Used until/alongside src/ood_mt/render.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from cookiecutter.main import cookiecutter

REPO = Path(__file__).resolve().parents[2]
SITE_FILE = REPO / "inventories" / "lab" / "group_vars" / "all" / "multitenant.yml"
SERVICE_TEMPLATE = REPO / "cookiecutter-mt-app"
CLIENT_TEMPLATE = REPO / "src" / "ood_mt" / "templates" / "client"
DELIVERY_TEMPLATE = REPO / "src" / "ood_mt" / "templates" / "delivery"

SERVICE_KINDS = ("llm", "database", "dashboard", "instruction")
CLIENT_KINDS = ("jupyter", "gradio", "cloudbeaver", "codeserver")
DELIVERY_KINDS = ("default", "debug", "readfile")

TITLES = {
    "llm": "LLM (Ollama)", "database": "Database", "dashboard": "Dashboard", "instruction": "Instruction",
    "jupyter": "Jupyter (MT)", "gradio": "Gradio chat (MT)", "cloudbeaver": "CloudBeaver (MT)",
    "codeserver": "Code Server (MT)", "default": "Shared service", "debug": "Shared service (debug)",
    "readfile": "Shared document",
}


def site() -> dict[str, Any]:
    """The lab site file's `multitenant` mapping."""
    return yaml.safe_load(SITE_FILE.read_text())["multitenant"]


def service_context(kind: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    s = site()
    ctx: dict[str, Any] = {
        "app_slug": f"mt_{kind}", "app_title": TITLES[kind], "service_kind": kind,
        "description": f"{TITLES[kind]}, started as a Slurm job and shared through Open OnDemand.",
        "cluster": s["cluster"], "wckey": s["wckey"], "publisher_group": s["publisher_group"],
        "tenant_groups": ",".join(s["tenant_groups"]), "tenant_group_pattern": s["tenant_group_pattern"],
        "key_dir": s["keys"]["dir"], "resources": s["resources"], "app": dict(s["apps"][kind]),
    }
    ctx.update(overrides or {})
    return ctx


def client_context(kind: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    s = site()
    ctx: dict[str, Any] = {
        "app_slug": f"mt_{kind}", "app_title": TITLES[kind], "client_kind": kind,
        "cluster": s["cluster"], "resources": s["resources"], "app": dict(s["apps"][kind]),
    }
    ctx.update(overrides or {})
    return ctx


def delivery_context(kind: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    s = site()
    app = {"max_file_kb": s["apps"]["delivery_readfile"]["max_file_kb"]} if kind == "readfile" else {}
    ctx: dict[str, Any] = {"app_slug": f"mt_delivery_{kind}", "app_title": TITLES[kind],
                           "delivery_kind": kind, "app": app}
    ctx.update(overrides or {})
    return ctx


def render(template: Path, context: dict[str, Any], out_dir: Path) -> Path:
    """Render one app into out_dir; return the app directory."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return Path(cookiecutter(str(template), no_input=True, extra_context=context, output_dir=str(out_dir),
                             overwrite_if_exists=True))


def render_all(out_dir: Path) -> dict[str, Path]:
    """Every built-in app of the lab site: {app name: app dir}."""
    apps: dict[str, Path] = {}
    for kind in SERVICE_KINDS:
        apps[f"mt_{kind}"] = render(SERVICE_TEMPLATE, service_context(kind), out_dir)
    for kind in CLIENT_KINDS:
        if CLIENT_TEMPLATE.exists():
            apps[f"mt_{kind}"] = render(CLIENT_TEMPLATE, client_context(kind), out_dir)
    for kind in DELIVERY_KINDS:
        if DELIVERY_TEMPLATE.exists():
            apps[f"mt_delivery_{kind}"] = render(DELIVERY_TEMPLATE, delivery_context(kind), out_dir)
    return apps
