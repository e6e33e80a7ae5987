"""Site-local services (`multitenant.local_apps`): `ood-mt new-app` makes one in the inventory,
`ood-mt build` checks it with the service apps' static checks (ood_mt.app_checks) and lists it
in the manifest like a built-in service; every problem names the site file, the entry, the
app file and the fix, and nothing is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ood_mt import app_checks, cli
from ood_mt.config import SiteConfigError, inventory_dir, load_site
from ood_mt.render import BuildError, build, tree_digest
from tests.apps.app_render import lab_doc

APP = "mt_probe"


def _site(inventory: Path, local_apps: list[dict[str, Any]]) -> Path:
    """A copy of the lab site in INVENTORY/group_vars/all/multitenant.yml with LOCAL_APPS."""
    doc = lab_doc()
    doc["multitenant"]["local_apps"] = local_apps
    site_file = inventory / "group_vars" / "all" / "multitenant.yml"
    site_file.parent.mkdir(parents=True, exist_ok=True)
    site_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    return site_file


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An inventory whose site lists APP, made by `ood-mt new-app` (its default --out)."""
    inventory = tmp_path_factory.mktemp("inv") / "mysite"
    site_file = _site(inventory, [{"name": APP}])
    result = CliRunner().invoke(cli.main, ["new-app", "--site", str(site_file), APP])
    assert result.exit_code == 0, result.output
    assert (inventory / "apps" / APP / "manifest.yml").is_file()
    # the entry to add, exactly
    assert f"  multitenant:\n    local_apps:\n    - name: {APP}\n" in result.output
    return inventory


@pytest.fixture
def inventory(made: Path, tmp_path: Path) -> Path:
    """A fresh copy of the made inventory, for a test to break."""
    return Path(shutil.copytree(made, tmp_path / "mysite"))


def _site_file(inventory: Path) -> Path:
    return inventory / "group_vars" / "all" / "multitenant.yml"


def _build_problems(inventory: Path, tmp_path: Path) -> str:
    out = tmp_path / "out"
    with pytest.raises(BuildError) as info:
        build(load_site(_site_file(inventory)), out)
    assert not out.exists(), "a failed build wrote its output"
    return str(info.value)


def test_local_app_is_built_and_listed_like_a_builtin_service(inventory: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    manifest = build(load_site(_site_file(inventory)), out)
    entry = next(a for a in manifest["apps"] if a["name"] == APP)
    assert entry == {"name": APP, "role": "service", "group": "mtusr", "dir_mode": "0750",
                     "dest": f"/var/www/ood/apps/sys/{APP}"}
    assert json.loads((out / "manifest.json").read_text()) == manifest
    files = {f["src"]: f for f in manifest["files"] if f["src"].startswith(f"apps/{APP}/")}
    source = inventory / "apps" / APP
    for path in source.rglob("*"):
        if path.is_file():
            rel = path.relative_to(source)
            built = files[f"apps/{APP}/{rel}"]
            assert (out / built["src"]).read_bytes() == path.read_bytes()
            assert (built["group"], built["mode"]) == ("mtusr", "0750" if rel.name == "script.sh.erb" else "0640")
    # the share contract's checker, staged as for the built-in services
    assert f"apps/{APP}/template/share_contract.py" in files
    # the same inputs, the same bytes
    again = tmp_path / "again"
    build(load_site(_site_file(inventory)), again)
    assert tree_digest(again) == tree_digest(out)


def test_disabled_local_app_is_neither_checked_nor_built(tmp_path: Path) -> None:
    site_file = _site(tmp_path / "inv", [{"name": "mt_not_made", "enabled": False}])
    manifest = build(load_site(site_file), tmp_path / "out")
    assert "mt_not_made" not in {a["name"] for a in manifest["apps"]}


def test_missing_app_directory(tmp_path: Path) -> None:
    inventory = tmp_path / "inv"
    site_file = _site(inventory, [{"name": "mt_nowhere"}])
    message = _build_problems(inventory, tmp_path)
    assert f"{site_file}: multitenant.local_apps[0] (mt_nowhere, {inventory / 'apps' / 'mt_nowhere'})" in message
    assert "does not exist" in message and "ood-mt new-app" in message


def test_stale_publishing_library_and_refresh_app(inventory: Path, tmp_path: Path) -> None:
    lib = inventory / "apps" / APP / "template" / "mt_share.sh"
    lib.write_text(lib.read_text() + "# an older kit\n")
    message = _build_problems(inventory, tmp_path)
    assert "multitenant.local_apps[0] (mt_probe" in message
    assert "template/mt_share.sh: differs from the kit's current publishing library" in message
    assert f"ood-mt refresh-app {inventory / 'apps' / APP}" in message
    result = CliRunner().invoke(cli.main, ["refresh-app", str(inventory / "apps" / APP)])
    assert result.exit_code == 0 and "rewrote template/mt_share.sh" in result.output, result.output
    build(load_site(_site_file(inventory)), tmp_path / "out")
    again = CliRunner().invoke(cli.main, ["refresh-app", str(inventory / "apps" / APP)])
    assert "the kit-owned files are current" in again.output


def test_shellcheck_failure_names_the_script(inventory: Path, tmp_path: Path) -> None:
    script = inventory / "apps" / APP / "template" / "script.sh.erb"
    script.write_text(script.read_text().replace('mt_gate_run -- bash -c "${MT_COMMAND}"',
                                                 'for f in $(ls); do echo "$f"; done'))
    message = _build_problems(inventory, tmp_path)
    assert "template/script.sh.erb: shellcheck: script.sh:" in message and "SC2045" in message
    assert "# shellcheck disable=SC<n>" in message


def test_bash_syntax_error(inventory: Path, tmp_path: Path) -> None:
    after = inventory / "apps" / APP / "template" / "after.sh.erb"
    after.write_text(after.read_text() + "if then fi\n")
    message = _build_problems(inventory, tmp_path)
    assert "template/after.sh.erb: fails `bash -n`" in message


def test_bad_yaml(inventory: Path, tmp_path: Path) -> None:
    (inventory / "apps" / APP / "manifest.yml").write_text("name: [unclosed\n")
    form = inventory / "apps" / APP / "form.yml.erb"
    form.write_text(form.read_text().replace("form:\n", "form:\n  - [\n", 1))
    message = _build_problems(inventory, tmp_path)
    assert "manifest.yml: cannot be read as YAML" in message
    assert "form.yml.erb: renders to invalid YAML" in message


def test_erb_that_does_not_render(inventory: Path, tmp_path: Path) -> None:
    before = inventory / "apps" / APP / "template" / "before.sh.erb"
    # a bare form value in a template ERB: OOD fails the launch the same way
    before.write_text(before.read_text() + "CORES=<%= mt_cores %>\n")
    submit = inventory / "apps" / APP / "submit.yml.erb"
    submit.write_text(submit.read_text() + "# <%= 1 + %>\n")
    message = _build_problems(inventory, tmp_path)
    assert "template/before.sh.erb: does not render: line" in message
    assert "undefined local variable or method `mt_cores'" in message or "mt_cores" in message
    assert "submit.yml.erb: does not render" in message and "SyntaxError" in message
    assert "context.<id>" in message


def test_wrong_wckey_and_cluster(inventory: Path, tmp_path: Path) -> None:
    submit = inventory / "apps" / APP / "submit.yml.erb"
    submit.write_text(submit.read_text().replace("--wckey=multitenant", "--wckey=other"))
    form = inventory / "apps" / APP / "form.yml.erb"
    form.write_text(form.read_text().replace('cluster: "lab"', 'cluster: "elsewhere"'))
    message = _build_problems(inventory, tmp_path)
    assert "submit.yml.erb: does not ask for the site's WCKey '--wckey=multitenant'" in message
    assert "form.yml.erb: runs on cluster 'elsewhere', not the site's 'lab'" in message


def test_not_made_from_the_kit_template(tmp_path: Path) -> None:
    inventory = tmp_path / "inv"
    _site(inventory, [{"name": "mt_plain"}])
    plain = inventory / "apps" / "mt_plain"
    plain.mkdir(parents=True)
    (plain / "manifest.yml").write_text("name: Plain\ncategory: x\nsubcategory: y\nrole: batch_connect\n"
                                        "description: z\n")
    (plain / "form.yml").write_text("form: []\n")
    message = _build_problems(inventory, tmp_path)
    assert "missing: this is not a service made from the kit's template" in message
    assert "template/mt_share.sh" in message and "ood-mt new-app" in message


def test_missing_tool_is_named_with_its_package(inventory: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which
    monkeypatch.setattr(app_checks.shutil, "which", lambda name: None if name == "shellcheck" else real(name))
    message = _build_problems(inventory, tmp_path)
    assert "multitenant.local_apps: `shellcheck` is not on PATH" in message
    assert "Fix: install shellcheck" in message


@pytest.mark.parametrize(("entries", "expected"), [
    ([{"name": "mt_llm"}], "multitenant.local_apps[0].name: is the name of a built-in app"),
    ([{"name": "mt_delivery_mine"}], "multitenant.local_apps[0].name: is the name of a built-in app"),
    ([{"name": "mt_x"}, {"name": "mt_x"}], "multitenant.local_apps[1].name: is listed twice"),
    ([{"name": "rstudio"}], "multitenant.local_apps[0].name: is not a site-local app name"),
    ([{"name": "mt_x", "path": "~/apps/mt_x"}], "multitenant.local_apps[0].path: cannot start with '~'"),
    ([{"path": "apps/mt_x"}], "multitenant.local_apps[0].name: is required"),
])
def test_site_file_entry_problems(tmp_path: Path, entries: list[dict[str, Any]], expected: str) -> None:
    site_file = _site(tmp_path / "inv", entries)
    with pytest.raises(SiteConfigError) as info:
        load_site(site_file)
    assert f"{site_file}: {expected}" in str(info.value)
    assert "Fix:" in str(info.value)


def test_paths_are_relative_to_the_inventory_directory(tmp_path: Path) -> None:
    assert inventory_dir(tmp_path / "inv" / "group_vars" / "all" / "multitenant.yml") == tmp_path / "inv"
    assert inventory_dir(tmp_path / "inv" / "group_vars" / "all.yml") == tmp_path / "inv"
    assert inventory_dir(tmp_path / "loose" / "site.yml") == tmp_path / "loose"
    site_file = _site(tmp_path / "inv", [{"name": "mt_a"}, {"name": "mt_b", "path": "services/b"},
                                         {"name": "mt_c", "path": "/srv/apps/c"}])
    dirs = [app.source for app in load_site(site_file).local_apps()]
    assert dirs == [tmp_path / "inv" / "apps" / "mt_a", tmp_path / "inv" / "services" / "b", Path("/srv/apps/c")]


def test_new_app_outside_the_inventory_says_where_it_belongs(tmp_path: Path) -> None:
    site_file = _site(tmp_path / "inv", [])
    result = CliRunner().invoke(cli.main, ["new-app", "--site", str(site_file), "--out", str(tmp_path / "else"),
                                           "mt_elsewhere"])
    assert result.exit_code == 0, result.output
    assert f"      path: {tmp_path / 'else' / 'mt_elsewhere'}" in result.output
    assert f"keep the app with the site, in {tmp_path / 'inv' / 'apps' / 'mt_elsewhere'}" in result.output


def test_site_without_the_key_builds_no_local_app(tmp_path: Path) -> None:
    doc = lab_doc()
    del doc["multitenant"]["local_apps"]
    site_file = tmp_path / "multitenant.yml"
    site_file.write_text(yaml.safe_dump(doc))
    site = load_site(site_file)
    assert site.data["local_apps"] == [] and site.local_apps() == []
    assert "local_apps" not in site.public_summary()
