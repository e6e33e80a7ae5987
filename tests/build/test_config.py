"""Site file validation: every rule reports the file, key, bad value and fix."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ood_mt import cli, config
from ood_mt.config import SiteConfigError, load_site, validate, validate_app_answers

REPO = Path(__file__).resolve().parents[2]
LAB_SITE = REPO / "inventories" / "lab" / "group_vars" / "all" / "multitenant.yml"
EXAMPLE_SITE = REPO / "inventories" / "example" / "group_vars" / "all" / "multitenant.yml"


def lab_doc() -> dict:
    return yaml.safe_load(LAB_SITE.read_text())


def problems_for(mutate, file: str = "site.yml") -> list[str]:
    doc = lab_doc()
    mutate(doc["multitenant"])
    with pytest.raises(SiteConfigError) as info:
        validate(doc, file)
    return str(info.value).splitlines()


def test_lab_site_is_valid_and_defaults_are_filled():
    site = load_site(LAB_SITE)
    assert site.site == "lab"
    assert site.data["wckey"] == "multitenant"
    # defaults from the schema appear even when the file omits them
    assert site.data["apps"]["llm"]["enabled"] is True
    assert site.public_summary()["key_dir"] == "/etc/ood-mt/keys"
    assert "master_secret_file" not in str(site.public_summary())


@pytest.mark.skipif(not EXAMPLE_SITE.exists(), reason="example inventory not written yet")
def test_example_site_is_valid():
    assert load_site(EXAMPLE_SITE).data["publisher_group"]


@pytest.mark.parametrize(
    ("wckey", "message", "fix"),
    [
        ("MultiTenant", "lower-cases WCKeys", "'multitenant'"),
        ("*multitenant", "starts with '*'", "drop the leading '*'"),
        ("multi|tenant", "characters Slurm or sacct parsing would alter", "lower-case letters"),
        ("multi,tenant", "characters Slurm or sacct parsing would alter", "lower-case letters"),
        ("multi tenant", "characters Slurm or sacct parsing would alter", "lower-case letters"),
        ("m" * 65, "longer than 64 characters", "shorter WCKey"),
        ("", "must not be empty", "default 'multitenant'"),
    ],
)
def test_wckey_rules(wckey, message, fix):
    (line,) = problems_for(lambda m: m.update(wckey=wckey))
    assert line.startswith("site.yml: multitenant.wckey: ")
    assert message in line
    assert f"(got {wckey!r})" in line
    assert "Fix: " in line and fix in line


@pytest.mark.parametrize("group", ["a:b", "1abc", "with space", "x" * 33, ""])
def test_illegal_group_names(group):
    (line,) = problems_for(lambda m: m.update(publisher_group=group))
    assert "multitenant.publisher_group: is not a valid POSIX group name" in line
    assert "no ':' or spaces" in line


def test_illegal_tenant_group_names_point_at_the_item():
    lines = problems_for(lambda m: m.update(tenant_groups=["ok", "bad:name"]))
    assert lines == [
        "site.yml: multitenant.tenant_groups[1]: is not a valid POSIX group name (got 'bad:name'). Fix: use "
        "1-32 characters: a letter or '_' first, then letters, digits, '_', '.', '-' (no ':' or spaces), "
        "e.g. 'mtgroup'"
    ]


def test_relative_paths_are_rejected():
    lines = problems_for(lambda m: m["paths"].update(ood_apps_dir="var/www/ood/apps/sys"))
    assert lines == ["site.yml: multitenant.paths.ood_apps_dir: must be an absolute path "
                     "(got 'var/www/ood/apps/sys'). Fix: write the full path, e.g. '/var/www/ood/apps/sys'"]


def test_unknown_key_suggests_the_close_one():
    (line,) = problems_for(lambda m: m.update(wckeys="x"))
    assert line == "site.yml: multitenant.wckeys: unknown key. Fix: did you mean 'wckey'?"


def test_wrong_types_and_yaml_booleans():
    lines = problems_for(lambda m: (m.update(refresh_seconds="30"), m["resources"]["cores"].update(max=True)))
    assert any("multitenant.refresh_seconds: must be an integer (got '30')" in x for x in lines)
    assert any("multitenant.resources.cores.max: must be an integer (got True)" in x for x in lines)


def test_missing_required_values():
    def drop(m):
        del m["cluster"]
        del m["keys"]["master_secret_file"]

    lines = problems_for(drop)
    assert any(x.startswith("site.yml: multitenant.cluster: is required. Fix: add 'cluster: ...'") for x in lines)
    assert any("multitenant.keys.master_secret_file: is required" in x for x in lines)


def test_every_problem_is_reported_in_one_pass():
    def break_three(m):
        m["wckey"] = "Bad"
        m["publisher_group"] = "a b"
        m["refresh_seconds"] = 1

    lines = problems_for(break_three)
    assert len(lines) == 3
    assert any("refresh_seconds: must be between 5 and 3600 (got 1)" in x for x in lines)


def test_cross_checks():
    lines = problems_for(lambda m: m["resources"]["cores"].update(default=9, max=4))
    assert lines == ["site.yml: multitenant.resources.cores.default: is larger than max (got 9). "
                     "Fix: lower default or raise max (4)"]
    lines = problems_for(lambda m: m.update(tenant_groups=[], tenant_group_pattern=""))
    assert "no audience group is allowed" in lines[0]
    lines = problems_for(lambda m: m.update(tenant_group_pattern="(unclosed"))
    assert "multitenant.tenant_group_pattern: is not a valid regular expression" in lines[0]


def test_jinja_in_site_file_is_refused():
    (line,) = problems_for(lambda m: m["paths"].update(ood_apps_dir="{{ ood_root }}/apps"))
    assert "Jinja expression" in line


def test_yaml_errors_name_the_line(tmp_path):
    bad = tmp_path / "multitenant.yml"
    bad.write_text("multitenant:\n  site: lab\n  cluster: [unclosed\n")
    with pytest.raises(SiteConfigError) as info:
        load_site(bad)
    assert str(info.value).startswith(f"{bad}: line ")
    assert "is not valid YAML" in str(info.value)


def test_duplicate_keys_are_refused(tmp_path):
    bad = tmp_path / "multitenant.yml"
    text = LAB_SITE.read_text().replace("  wckey: multitenant\n", "  wckey: multitenant\n  wckey: other\n")
    bad.write_text(text)
    with pytest.raises(SiteConfigError) as info:
        load_site(bad)
    assert "duplicate key 'wckey'" in str(info.value)


def test_missing_file_and_missing_top_key(tmp_path):
    with pytest.raises(SiteConfigError) as info:
        load_site(tmp_path / "nope.yml")
    assert "does not exist" in str(info.value)
    other = tmp_path / "x.yml"
    other.write_text("something: 1\n")
    with pytest.raises(SiteConfigError) as info:
        load_site(other)
    assert "multitenant: is missing" in str(info.value)


def test_input_is_not_mutated():
    doc = lab_doc()
    before = copy.deepcopy(doc)
    validate(doc)
    assert doc == before


def test_cookiecutter_answers_use_the_same_rules():
    lines = validate_app_answers({
        "app_slug": "Bad-Slug", "service_kind": "custom", "cluster": "lab", "wckey": "Upper",
        "publisher_group": "mtusr", "tenant_groups": "mtclass, b:c", "tenant_group_pattern": "",
        "key_dir": "/etc/ood-mt/keys", "resources": {"cores": {"default": "1", "max": "2"}},
    })
    assert any(x.startswith("cookiecutter answers: app_slug: is not a valid OOD app directory name") for x in lines)
    assert any(x.startswith("cookiecutter answers: wckey: Slurm lower-cases WCKeys") for x in lines)
    assert any(x.startswith("cookiecutter answers: tenant_groups[1]: is not a valid POSIX group name") for x in lines)


def _properties(node: dict, path: str):
    """(path, property schema) of every key the site schema defines, list items' keys included."""
    for key, sub in node.get("properties", {}).items():
        yield f"{path}.{key}", sub
        yield from _properties(config._resolve(sub), f"{path}.{key}")
    items = node.get("items")
    if isinstance(items, dict):
        yield from _properties(config._resolve(items), f"{path}[]")


def test_every_key_has_a_one_line_description():
    keys = list(_properties(config.site_schema(), "multitenant"))
    assert len(keys) > 40
    missing = [path for path, sub in keys if not config._resolve(sub).get("description", "").strip()]
    assert missing == [], f"keys of src/ood_mt/site.schema.json without a description: {missing}"
    multiline = [path for path, sub in keys if "\n" in config._resolve(sub)["description"]]
    assert multiline == []


def test_explain_prints_every_description():
    result = CliRunner().invoke(cli.main, ["validate", "--site", str(LAB_SITE), "--explain"])
    assert result.exit_code == 0, result.output
    rows = result.output.splitlines()[1:]
    assert len(rows) == len(config.schema_doc())
    assert not [row for row in rows if ": - [default" in row or ":  [default" in row]
    assert "  multitenant.paths.ood_apps_dir: OOD system apps directory" in result.output


def test_schema_is_valid_json_schema_and_shipped():
    config.validator_class().check_schema(config.site_schema())
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"site.schema.json"' in pyproject and '"jsonschema' in pyproject


@pytest.mark.parametrize("group", ["MTUSR", "Chem_101", "_svc", "a.b-c"])
def test_upper_case_and_dotted_group_names_are_posix_names(group):
    doc = lab_doc()
    doc["multitenant"].update(publisher_group=group, tenant_groups=[group], clients_group=group)
    assert validate(doc).data["publisher_group"] == group


def test_values_are_one_line():
    (line,) = problems_for(lambda m: m.update(publisher_group="mtusr\n"))
    assert line == ("site.yml: multitenant.publisher_group: must be on one line (got 'mtusr\\n'). "
                    "Fix: remove the line break")


def test_floats_and_empty_keys():
    (line,) = problems_for(lambda m: m.update(refresh_seconds=30.0))
    assert "multitenant.refresh_seconds: must be an integer (got 30.0)" in line
    # `paths:` with nothing under it means the defaults, as in YAML group_vars
    doc = lab_doc()
    doc["multitenant"]["paths"] = None
    assert validate(doc).data["paths"]["ood_apps_dir"] == "/var/www/ood/apps/sys"


def test_clients_group_and_engines():
    (line,) = problems_for(lambda m: m.update(clients_group="a b"))
    assert line.startswith("site.yml: multitenant.clients_group: is not a valid POSIX group name (got 'a b')")
    (line,) = problems_for(lambda m: m["apps"]["database"].update(engines=[{"name": "oracle", "version": "1"}]))
    assert line == ("site.yml: multitenant.apps.database.engines[0].name: is not a supported database engine "
                    "(got 'oracle'). Fix: use one of: postgresql, mariadb, mysql")
    (line,) = problems_for(lambda m: m["apps"]["database"].update(engines=[]))
    assert "multitenant.apps.database.engines: needs at least 1 entry" in line


def test_role_filter_reports_only_the_keys_asked_for():
    partial = {"site": "t", "tenant_groups": ["ok", "bad:name"], "keys": {"dir": "rel"}}
    lines = config.site_problem_lines(partial, ("keys", "tenant_groups"))
    assert lines == [
        "site file: multitenant.tenant_groups[1]: is not a valid POSIX group name (got 'bad:name'). Fix: use "
        "1-32 characters: a letter or '_' first, then letters, digits, '_', '.', '-' (no ':' or spaces), "
        "e.g. 'mtgroup'",
        "site file: multitenant.keys.master_secret_file: is required. Fix: add 'master_secret_file: ...' "
        "(master secret on the Ansible controller; never on hosts)",
        "site file: multitenant.keys.dir: must be an absolute path (got 'rel'). Fix: write the full path, e.g. '/rel'",
    ]
