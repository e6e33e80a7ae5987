"""The ``ood-mt`` command line."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import click

from ood_mt import __version__, discovery_cli, publisher_cli, shares_cli
from ood_mt.app_templates import AUTHOR_KIND, TemplateError, kind_meta
from ood_mt.config import (
    SERVICE_KINDS,
    SiteConfig,
    SiteConfigError,
    inventory_dir,
    load_site,
    schema_doc,
    validate_app_answers,
)
from ood_mt.render import (
    SERVICE_TEMPLATE,
    AppSpec,
    BuildError,
    build,
    kit_owned_files,
    render_app,
    service_context,
    tree_digest,
)

SITE_HELP = "Site file: inventories/<site>/group_vars/all/multitenant.yml."


def _load(site_file: str) -> SiteConfig:
    try:
        return load_site(site_file)
    except SiteConfigError as exc:
        click.echo(str(exc), err=True)
        click.echo(f"ood-mt: {len(exc.problems)} problem(s) in {exc.file}; nothing was written.", err=True)
        sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ood-mt")
def main() -> None:
    """Build, inspect and share Open OnDemand multitenant apps.

    ood-mt renders a site's app suite (services, clients, deliveries) and dashboard
    initializer from the kit's cookiecutter templates, creates new multitenant service
    apps, and lists the shared services a user can see.

    \b
    Typical use:
      ood-mt validate --site inventories/mysite/group_vars/all/multitenant.yml
      ood-mt build --site inventories/mysite/group_vars/all/multitenant.yml --out build/mysite
      ood-mt new-app --site inventories/mysite/group_vars/all/multitenant.yml mt_rstudio
      ood-mt list

    Run `ood-mt COMMAND --help` for each command's options and an example.
    """


@main.command("validate")
@click.option("--site", "site_file", required=True, type=click.Path(dir_okay=False), help=SITE_HELP)
@click.option("--explain", is_flag=True, help="Also print every key of the site file with its default.")
def validate_cmd(site_file: str, explain: bool) -> None:
    """Check a site file and report every problem.

    Each problem names the file, the key, the bad value and the fix. Exit status 0 when the
    file is valid, 2 when it is not.

    \b
    Example:
      ood-mt validate --site inventories/lab/group_vars/all/multitenant.yml
    """
    site = _load(site_file)
    click.echo(f"{site_file}: valid site '{site.site}' (cluster {site.data['cluster']}, "
               f"WCKey {site.data['wckey']}, publishers {site.data['publisher_group']})")
    if explain:
        for path, doc, default in schema_doc():
            click.echo(f"  {path}: {doc} [default: {json.dumps(default)}]")


@main.command("build")
@click.option("--site", "site_file", required=True, type=click.Path(dir_okay=False), help=SITE_HELP)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory; replaced as a whole, and only when the build succeeds.")
@click.option("--digest", is_flag=True, help="Print the sha256 of the whole output tree at the end.")
def build_cmd(site_file: str, out_dir: str, digest: bool) -> None:
    """Render the app suite and the initializer for one site.

    Writes OUT/apps/<app>/ for every enabled app, OUT/initializer/ood_multitenant.rb,
    OUT/etc/site.json (the public site summary for hosts) and OUT/manifest.json (every
    file with its destination, owner, group, mode and sha256), which the Ansible role
    ood_mt_ood installs from. The same site file always gives byte-identical output. The
    output holds no secret.

    \b
    Example:
      ood-mt build --site inventories/lab/group_vars/all/multitenant.yml --out build/lab
    """
    site = _load(site_file)
    started = time.perf_counter()
    try:
        manifest = build(site, Path(out_dir))
    except BuildError as exc:
        click.echo(f"ood-mt build: {exc}", err=True)
        click.echo(f"ood-mt build: {out_dir} was left as it was.", err=True)
        sys.exit(1)
    elapsed = time.perf_counter() - started
    apps = ", ".join(a["name"] for a in manifest["apps"])
    click.echo(f"built {len(manifest['apps'])} apps ({apps}) and the initializer for site "
               f"'{site.site}' into {out_dir} in {elapsed:.2f} s")
    if digest:
        click.echo(f"tree sha256: {tree_digest(Path(out_dir))}")


@main.command("new-app")
@click.option("--site", "site_file", required=True, type=click.Path(dir_okay=False), help=SITE_HELP)
@click.option("--title", default=None, help="Title shown in the dashboard (default: from NAME).")
@click.option("--kind", default="custom", show_default=True,
              type=click.Choice(SERVICE_KINDS),
              help="Start from one of the built-in services instead of the generic web service.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Directory the new app directory is created in "
                   "[default: the site's inventory directory's apps/, e.g. inventories/mysite/apps].")
@click.argument("name")
def new_app_cmd(site_file: str, title: str | None, kind: str, out_dir: str | None, name: str) -> None:
    """Create a new multitenant service app named NAME, with the site's values filled in.

    The same as `cookiecutter cookiecutter-mt-app` but without prompts: the WCKey, groups,
    cluster, key directory and resource limits come from the site file. The new app
    already publishes, gates and shares like the built-in services; edit
    template/script.sh.erb to start your service (docs/app-author-guide.md), then list it in
    the site file's `local_apps` (the command prints the entry): `ood-mt build` checks it and
    the roles install it like the built-in services.

    \b
    Example:
      ood-mt new-app --site inventories/lab/group_vars/all/multitenant.yml \\
          --title "RStudio Server" mt_rstudio     # creates inventories/lab/apps/mt_rstudio
    """
    site = _load(site_file)
    try:
        # The author's generic kind has no kind.json: its HTTP service is gated by default, so its
        # shares carry the gate's secret (docs/gate.md).
        shares_secrets = kind == AUTHOR_KIND or bool(kind_meta("service", kind).get("shares_secrets", False))
    except TemplateError as exc:
        click.echo(f"ood-mt new-app: {exc}", err=True)
        sys.exit(2)
    context = service_context(site, kind, name, title or name.removeprefix("mt_").replace("_", " ").title(),
                              shares_secrets=shares_secrets)
    problems = validate_app_answers(context, "ood-mt new-app")
    if problems:
        click.echo("\n".join(problems), err=True)
        sys.exit(2)
    out = Path(out_dir) if out_dir is not None else inventory_dir(Path(site_file)) / "apps"
    if (out / name).exists():
        click.echo(f"ood-mt new-app: {out / name} already exists; choose another NAME or --out.", err=True)
        sys.exit(2)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config.yml"
        cfg.write_text(f"replay_dir: {tmp}/replay\ncookiecutters_dir: {tmp}/cc\n")
        try:
            path = render_app(AppSpec(name, "service", SERVICE_TEMPLATE, context), out, cfg)
        except BuildError as exc:
            click.echo(f"ood-mt new-app: {exc}", err=True)
            sys.exit(1)
    click.echo(f"created {path}: edit template/script.sh.erb, then list it in {site_file}:")
    click.echo(local_app_entry(Path(site_file), path, name))


def local_app_entry(site_file: Path, app: Path, name: str) -> str:
    """What to add to SITE_FILE for the app made at APP (its `local_apps` entry), and where the
    app should live when it is not in the inventory."""
    inventory = inventory_dir(site_file)
    try:
        rel = app.absolute().relative_to(inventory)
    except ValueError:
        rel = None
    if rel == Path("apps") / name:
        entry = f"    - name: {name}"
    elif rel is not None:
        entry = f"    - name: {name}\n      path: {rel}"
    else:
        entry = f"    - name: {name}\n      path: {app.absolute()}"
    lines = [f"  multitenant:\n    local_apps:\n{entry}"]
    if rel is None:
        lines.append(f"(better: keep the app with the site, in {inventory / 'apps' / name}, and drop `path`)")
    lines.append(f"then `ood-mt build --site {site_file} --out build/<site>` checks it and lists it in the "
                 "manifest; the roles install it for the publisher group (docs/app-author-guide.md).")
    return "\n".join(lines)


@main.command("refresh-app")
@click.argument("app_dir", type=click.Path(file_okay=False, exists=True))
def refresh_app_cmd(app_dir: str) -> None:
    """Rewrite the kit-owned files of a service app with the kit's current ones.

    The kit-owned files are the publishing library (template/mt_share.sh) and
    template/service_helpers.sh; your own files are not touched. `ood-mt build` refuses a
    site-local app whose kit-owned files differ from what the kit renders now.

    \b
    Example:
      ood-mt refresh-app inventories/lab/apps/mt_http_demo
    """
    app = Path(app_dir)
    if not (app / "manifest.yml").is_file() or not (app / "template").is_dir():
        click.echo(f"ood-mt refresh-app: {app} is not a service app (no manifest.yml and template/); "
                   "pass the app's directory.", err=True)
        sys.exit(2)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            reference = kit_owned_files(Path(tmp))
        except BuildError as exc:
            click.echo(f"ood-mt refresh-app: {exc}", err=True)
            sys.exit(1)
    changed = []
    for rel, text in reference.items():
        dest = app / rel
        if not dest.is_file() or dest.read_bytes() != text:
            dest.write_bytes(text)
            changed.append(rel)
    click.echo(f"{app}: " + (f"rewrote {', '.join(changed)}" if changed else "the kit-owned files are current"))


for _command in (shares_cli.list_command, shares_cli.hide_command, shares_cli.show_command, shares_cli.audit_command,
                 shares_cli.inspect_command, publisher_cli.share_command, publisher_cli.unshare_command,
                 discovery_cli.discovery_group):
    main.add_command(_command)


if __name__ == "__main__":
    main()
