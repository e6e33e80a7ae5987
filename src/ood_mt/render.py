"""Render the app suite and the dashboard initializer for one site.

Every app is rendered by cookiecutter from a template in this repository; the initializer
by Jinja2 from ``src/ood_mt/initializer/``. Output is deterministic: no timestamps, stable
ordering, normalised file modes. The whole tree is rendered into a temporary directory
next to the destination and swapped in only when everything succeeded, so a failed build
leaves the previous output untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import jinja2
import yaml
from cookiecutter.exceptions import CookiecutterException
from cookiecutter.main import cookiecutter

from ood_mt import app_checks, app_templates, share_contract
from ood_mt.config import (
    CLIENT_APPS,
    DELIVERY_APPS,
    SERVICE_APPS,
    SITE_JSON_IN_BUILD,
    SITE_JSON_PATH,
    SiteConfig,
    preset_delivery_words,
)

# The app templates are package data (ood_mt.app_templates); `cookiecutter-mt-app` at the top
# of a checkout is a symlink to the service template.
SERVICE_TEMPLATE = app_templates.template_dir("service")
CLIENT_TEMPLATE = app_templates.template_dir("client")
DELIVERY_TEMPLATE = app_templates.template_dir("delivery")
# The initializer's sources are package data too: a wheel builds everything.
INITIALIZER_SRC = Path(__file__).resolve().parent / "initializer"
# The libraries the initializer inlines (src/ood_mt/initializer/lib/), in load order: adding a
# library is one line here; the template loops over this list, the tests load the same.
INITIALIZER_LIBS = (
    "codec.rb",  # protocol v1 (MultiTenant::Codec, MultiTenant::Rejected)
    "contract.rb",  # the share contract (MultiTenant::Contract)
    "config.rb",  # the site description, site.json (MultiTenant::Config)
    "discovery.rb",  # the squeue listing (MultiTenant::Discovery)
    "spool.rb",  # the discovery spool (MultiTenant::Spool)
    "keys.rb",  # key files (MultiTenant::KeyFile, MultiTenant::KeyStore)
    "verification.rb",  # verdicts (MultiTenant::Verifier)
    "hidden.rb",  # the receiver's hidden shares, ~/.config/ood-mt/hidden.json (MultiTenant::Hidden)
    "cards.rb",  # card files and connection.yml (MultiTenant::CardWriter)
    "refresh.rb",  # the refresh and the form helpers (MultiTenant::Refresher)
)
# Where hosts keep the site description (OUT/etc/site.json of the build, config.SITE_JSON_PATH):
# the one site fact the initializer is built with; it reads everything else from that file at run time.
SITE_JSON_DEST = str(SITE_JSON_PATH)

# Jinja settings shared by every template of the kit: bash's ${#var} and Ruby's "#{x}"
# contain '{#', Jinja's default comment opener, so comments use {## ##} instead.
JINJA_ENV_VARS = {"comment_start_string": "{##", "comment_end_string": "##}"}


class BuildError(Exception):
    """A template failed to render; the message names the app and the cause."""


@dataclass(frozen=True)
class AppSpec:
    """One app to render: where its template is and what it is told."""

    name: str
    role: str  # service | client | delivery
    template: Path
    context: dict[str, Any]
    # A site-local service (multitenant.local_apps): TEMPLATE is the app itself, copied as it is.
    local: bool = False


def service_context(site: SiteConfig, kind: str, app_slug: str, app_title: str,
                    description: str | None = None, shares_secrets: bool = False) -> dict[str, Any]:
    """What cookiecutter-mt-app is told for one service (built-in kinds and new apps alike).
    SHARES_SECRETS (the kind's kind.json): its shares carry a password, so its form offers no
    'selected users' audience."""
    d = site.data
    context: dict[str, Any] = {
        "app_slug": app_slug,
        "app_title": app_title,
        "service_kind": kind,
        "cluster": d["cluster"],
        "resources": d["resources"],
        "wckey": d["wckey"],
        "publisher_group": d["publisher_group"],
        "tenant_groups": ",".join(d["tenant_groups"]),
        "tenant_group_pattern": d["tenant_group_pattern"],
        "key_dir": d["keys"]["dir"],
        "gate_python": d["gate_python"],
        "app": site.app(kind) if kind in SERVICE_APPS else {},
        "_shares_secrets": shares_secrets,
        "_preset_delivery": preset_delivery_words(),
    }
    if description is not None:  # otherwise the template's own default
        context["description"] = description
    return context


def kind_title(role: str, kind: str) -> str:
    """The title KIND's folder gives it (kind.json); a BuildError names the file and the fix."""
    try:
        return str(app_templates.kind_meta(role, kind)["title"])
    except app_templates.TemplateError as exc:
        raise BuildError(f"mt_{kind}: {exc}") from exc


def app_specs(site: SiteConfig) -> list[AppSpec]:
    """The enabled apps of a site, in a stable order."""
    d = site.data
    specs: list[AppSpec] = []
    for kind in SERVICE_APPS:
        if site.enabled(kind):
            try:
                meta = app_templates.kind_meta("service", kind)
            except app_templates.TemplateError as exc:
                raise BuildError(f"mt_{kind}: {exc}") from exc
            specs.append(AppSpec(f"mt_{kind}", "service", SERVICE_TEMPLATE,
                                 service_context(site, kind, f"mt_{kind}", meta["title"], meta.get("description"),
                                                 meta.get("shares_secrets", False))))
    specs += [
        AppSpec(f"mt_{kind}", "client", CLIENT_TEMPLATE, {
            "app_slug": f"mt_{kind}", "app_title": kind_title("client", kind), "client_kind": kind,
            "cluster": d["cluster"], "resources": d["resources"], "app": site.app(kind),
        })
        for kind in CLIENT_APPS if site.enabled(kind)
    ]
    # Deliveries are always built: every card needs the view of its delivery.
    specs += [
        AppSpec(f"mt_delivery_{kind}", "delivery", DELIVERY_TEMPLATE, {
            "app_slug": f"mt_delivery_{kind}", "app_title": kind_title("delivery", kind), "delivery_kind": kind,
            "app": site.app("delivery_readfile") if kind == "readfile" else {},
            "web_apps_origin": d["web_apps_origin"],
        })
        for kind in DELIVERY_APPS
    ]
    return specs


def local_app_specs(site: SiteConfig) -> list[AppSpec]:
    """The enabled site-local services (``multitenant.local_apps``), in the site file's order."""
    return [AppSpec(app.name, "service", app.source, {}, local=True) for app in site.local_apps()]


def kit_owned_files(workdir: Path) -> dict[str, bytes]:
    """The kit-owned files of a service (app_checks.KIT_OWNED) as the kit renders them now: a
    throwaway app of the service template's defaults, rendered in WORKDIR."""
    workdir.mkdir(parents=True, exist_ok=True)
    with _quiet_cookiecutter_config(workdir) as cfg:
        spec = AppSpec("mt_kit_reference", "service", SERVICE_TEMPLATE, {"app_slug": "mt_kit_reference"})
        app = render_app(spec, workdir, cfg)
    return {rel: (app / rel).read_bytes() for rel in app_checks.KIT_OWNED}


def check_local_apps(site: SiteConfig, workdir: Path) -> None:
    """Run the service apps' static checks (ood_mt.app_checks) on every enabled site-local app;
    a BuildError lists every problem, each naming the site file, the entry, the app file and
    the fix. ruby and shellcheck are required once the site lists a local app."""
    local = site.local_apps()
    if not local:
        return
    try:
        for tool, why in (("ruby", "it renders the ERB files of site-local apps (multitenant.local_apps) "
                                   "as OOD does"),
                          ("shellcheck", "it checks the job scripts of site-local apps (multitenant.local_apps)")):
            app_checks.require_tool(tool, why)
    except app_checks.ToolMissing as exc:
        raise BuildError(f"{site.path}: multitenant.local_apps: {exc}") from exc
    reference = kit_owned_files(workdir / "kit")
    d = site.data
    groups = sorted({d["publisher_group"], *d["tenant_groups"]})
    lines = []
    for app in local:
        try:
            problems = app_checks.service_app_problems(
                app.source, wckey=d["wckey"], cluster=d["cluster"], groups=groups, reference=reference,
                workdir=workdir / f"check-{app.index}")
        except (app_checks.ToolMissing, OSError, subprocess.SubprocessError) as exc:
            raise BuildError(f"{site.path}: {app.key} ({app.name}): cannot be checked: {exc}") from exc
        lines += [f"{site.path}: {app.key} ({app.name}, {app.source}): {p.render()}" for p in problems]
    if lines:
        raise BuildError(f"{len(lines)} problem(s) in the site-local apps; nothing was built:\n" + "\n".join(lines))


def copy_local_app(spec: AppSpec, apps_dir: Path) -> Path:
    """Copy a checked site-local app into the build, as it is (the build then sets modes)."""
    return Path(shutil.copytree(spec.template, apps_dir / spec.name, symlinks=True))


def app_access(site: SiteConfig, role: str) -> tuple[str, str, str]:
    """(group, dir mode, file mode) an app of this role is installed with."""
    if role == "service":
        return site.data["publisher_group"], "0750", "0640"
    if role == "client" and site.data["clients_group"]:
        return site.data["clients_group"], "0750", "0640"
    return "root", "0755", "0644"


def runs_as_program(rel_path: Path) -> bool:
    """True for an app file the job executes (not sources): OOD's basic template runs
    `./script.sh &`, and staging gives each rendered file the mode of its `.erb`, so
    `template/script.sh.erb` must be installed executable (docs/app-author-guide.md)."""
    return rel_path.parts[:1] == ("template",) and rel_path.name in ("script.sh.erb", "script.sh")


def executable_mode(file_mode: str) -> str:
    """FILE_MODE with execute added wherever read is granted ("0640" -> "0750")."""
    mode = int(file_mode, 8)
    return f"{mode | ((mode & 0o444) >> 2):04o}"


@contextmanager
def _quiet_cookiecutter_config(workdir: Path) -> Iterator[Path]:
    """A cookiecutter config that keeps replay files and caches out of the user's home."""
    cfg = workdir / "cookiecutter-config.yml"
    cfg.write_text(yaml.safe_dump({
        "cookiecutters_dir": str(workdir / "cookiecutters"),
        "replay_dir": str(workdir / "replay"),
    }))
    yield cfg


def render_app(spec: AppSpec, output_dir: Path, config_file: Path) -> Path:
    """Render one app with cookiecutter into ``output_dir/<name>``."""
    if not (spec.template / "cookiecutter.json").is_file():
        raise BuildError(f"{spec.name}: template {spec.template} is missing (no cookiecutter.json); "
                         "is the repository checkout complete?")
    try:
        result = cookiecutter(
            str(spec.template),
            no_input=True,
            extra_context=spec.context,
            output_dir=str(output_dir),
            config_file=str(config_file),
            overwrite_if_exists=False,
        )
    except CookiecutterException as exc:
        raise BuildError(f"{spec.name}: rendering {spec.template} failed: {exc}") from exc
    except jinja2.TemplateError as exc:
        where = getattr(exc, "filename", None) or spec.template
        line = getattr(exc, "lineno", None)
        raise BuildError(f"{spec.name}: template error in {where}"
                         f"{f' line {line}' if line else ''}: {exc}") from exc
    path = Path(result)
    if path.name != spec.name:
        raise BuildError(f"{spec.name}: template produced '{path.name}' instead; its app_slug must be used "
                         "as the directory name")
    return path


def stage_share_contract(template_dir: Path) -> None:
    """The share contract and its checker, staged with a service's job files: mt_publish
    runs it before publishing (src/ood_mt/share_contract.py)."""
    package = Path(share_contract.__file__).parent
    for name in ("share_contract.py", "share_contract.json"):
        shutil.copyfile(package / name, template_dir / name)


def render_initializer(site: SiteConfig, dest: Path, lib_override: Optional[dict[str, str]] = None) -> None:
    """Render src/ood_mt/initializer/ood_multitenant.rb.j2 into one self-contained Ruby file: the
    share contract (share_contract.json) and the libraries (INITIALIZER_LIBS), inlined. No
    site fact is baked in but where site.json is (SITE_JSON_DEST): the initializer reads the
    site there at run time, so SITE is unused. LIB_OVERRIDE replaces a library's source
    (tests: a broken library must not break OOD)."""
    del site  # the same initializer for every site
    entry = INITIALIZER_SRC / "ood_multitenant.rb.j2"
    if not entry.is_file():
        raise BuildError(f"initializer: {entry} is missing")
    unknown = sorted(set(lib_override or {}) - set(INITIALIZER_LIBS))
    if unknown:
        raise BuildError(f"initializer: no library {', '.join(unknown)} to override (INITIALIZER_LIBS)")
    libs = []
    for name in INITIALIZER_LIBS:
        lib = INITIALIZER_SRC / "lib" / name
        if not lib.is_file():
            raise BuildError(f"initializer: {lib} is missing")
        source = (lib_override or {}).get(name, lib.read_text(encoding="utf-8"))
        delimiter = "OOD_MT_LIB_" + re.sub(r"[^A-Z0-9]", "_", name.upper())
        if delimiter in source.splitlines():
            raise BuildError(f"initializer: {lib} holds the line {delimiter}, which ends its heredoc")
        libs.append({"name": name, "delimiter": delimiter, "source": source.rstrip("\n")})
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(INITIALIZER_SRC)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        **JINJA_ENV_VARS,
    )
    try:
        text = env.get_template(entry.name).render(site_json_path=SITE_JSON_DEST, libs=libs,
                                                   contract=share_contract.contract())
    except jinja2.TemplateError as exc:
        raise BuildError(f"initializer: template error in {entry}: {exc}") from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _normalise_modes(root: Path) -> None:
    """Same modes whatever the umask or the template's bits: builds must be byte-identical.
    Inside an app, only what the job executes is executable (runs_as_program)."""
    apps = root / "apps"
    for path in sorted(root.rglob("*")):
        if path.is_dir():
            path.chmod(0o755)
        elif path.is_relative_to(apps) and len(path.relative_to(apps).parts) > 1:
            path.chmod(0o755 if runs_as_program(Path(*path.relative_to(apps).parts[1:])) else 0o644)
        else:
            executable = path.stat().st_mode & stat.S_IXUSR
            path.chmod(0o755 if executable else 0o644)


def build_manifest(site: SiteConfig, out: Path, specs: list[AppSpec]) -> dict[str, Any]:
    """Describe every file of the build with its destination, owner, group, mode and sha256."""
    d = site.data
    apps_dir = d["paths"]["ood_apps_dir"]
    apps, files = [], []
    for spec in sorted(specs, key=lambda s: s.name):
        group, dir_mode, file_mode = app_access(site, spec.role)
        app_root = out / "apps" / spec.name
        apps.append({"name": spec.name, "role": spec.role, "group": group, "dir_mode": dir_mode,
                     "dest": f"{apps_dir}/{spec.name}"})
        for path in sorted(p for p in app_root.rglob("*") if p.is_file()):
            rel = path.relative_to(app_root)
            files.append({"src": str(path.relative_to(out)), "dest": f"{apps_dir}/{spec.name}/{rel}",
                          "owner": "root", "group": group,
                          "mode": executable_mode(file_mode) if runs_as_program(rel) else file_mode,
                          "sha256": _sha256(path)})
    init = out / "initializer" / "ood_multitenant.rb"
    # Only what role ood_mt_ood reads (site.json is the keys role's: OUT/etc/site.json, fixed).
    return {
        "format": 1,
        "site": d["site"],
        "apps": apps,
        "files": files,
        "initializer": {"src": str(init.relative_to(out)),
                        "dest": f"{d['paths']['dashboard_config_dir']}/initializers/ood_multitenant.rb",
                        "owner": "root", "group": "root", "mode": "0644", "sha256": _sha256(init)},
    }


def build(site: SiteConfig, out: Path) -> dict[str, Any]:
    """Render the whole suite for ``site`` into ``out``; return the manifest.

    ``out`` is replaced only if every step succeeds.
    """
    out = out.resolve()
    _refuse_foreign_output(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    specs = app_specs(site) + local_app_specs(site)
    with tempfile.TemporaryDirectory(prefix=".ood-mt-build-", dir=out.parent) as tmp_str:
        tmp = Path(tmp_str)
        check_local_apps(site, tmp / "checks")
        staging = tmp / "out"
        (staging / "apps").mkdir(parents=True)
        with _quiet_cookiecutter_config(tmp) as cfg:
            for spec in specs:
                app_dir = copy_local_app(spec, staging / "apps") if spec.local else \
                    render_app(spec, staging / "apps", cfg)
                if spec.role == "service":
                    stage_share_contract(app_dir / "template")
        render_initializer(site, staging / "initializer" / "ood_multitenant.rb")
        (staging / SITE_JSON_IN_BUILD).parent.mkdir()
        (staging / SITE_JSON_IN_BUILD).write_text(
            json.dumps(site.public_summary(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _normalise_modes(staging)
        manifest = build_manifest(site, staging, specs)
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n",
                                               encoding="utf-8")
        (staging / "manifest.json").chmod(0o644)
        staging.chmod(0o755)
        _swap_into_place(staging, out, tmp)
    return manifest


def _refuse_foreign_output(out: Path) -> None:
    """Only an earlier build (or an empty directory) may be replaced."""
    if out.is_file() or (out.is_dir() and not (out / "manifest.json").is_file() and any(out.iterdir())):
        raise BuildError(f"{out} exists and is not an ood-mt build (no manifest.json); refusing to "
                         "replace it. Choose an empty or new --out directory.")


def _swap_into_place(staging: Path, out: Path, tmp: Path) -> None:
    """Replace ``out`` with ``staging``: rename the old tree aside, rename the new in, drop the old."""
    old = tmp / "previous"
    _refuse_foreign_output(out)
    if out.exists():
        os.rename(out, old)
    os.rename(staging, out)
    if old.exists():
        shutil.rmtree(old)


def tree_digest(root: Path) -> str:
    """One sha256 over every path, mode and content below ``root`` (for determinism checks)."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        mode = stat.S_IMODE(path.stat().st_mode)
        h.update(f"{rel}\0{mode:o}\0".encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()
