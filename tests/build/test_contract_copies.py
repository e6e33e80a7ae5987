"""Where YAML or Ruby must restate a site-contract value of ``ood_mt.config``, the copies are
pinned here: the site.json path on hosts, and the MULTITENANT_ENABLE variable and line pattern."""

from __future__ import annotations

import json

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from ood_mt import config, render

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_YAML = sorted([*REPO.glob("roles/*/tasks/*.yml"), *REPO.glob("roles/*/defaults/*.yml"),
                       *REPO.glob("playbooks/*.yml")])


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key), value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def values(key: str) -> list[tuple[str, str]]:
    """(file, value) of every ``key: <string>`` in the kit's Ansible YAML."""
    return [(str(path.relative_to(REPO)), value) for path in ANSIBLE_YAML
            for k, value in walk(yaml.safe_load(path.read_text())) if k == key and isinstance(value, str)]


def test_the_enable_line_pattern_has_one_spelling() -> None:
    copies = [(f, v) for f, v in values("regexp") if config.ENABLE_VARIABLE in v]
    assert {f for f, _ in copies} >= {"roles/ood_mt_ood/tasks/main.yml", "playbooks/uninstall.yml"}
    assert [(f, v) for f, v in copies if v != config.ENABLE_LINE_REGEXP] == []
    lines = [(f, v) for f, v in values("line") if config.ENABLE_VARIABLE in v]
    assert lines and all(v.startswith(f"{config.ENABLE_VARIABLE}=") for _f, v in lines)
    # the molecule verifier reads env files with the same pattern (as re.match: no '^')
    verifier = (REPO / "molecule/uninstall/tests/test_uninstall.py").read_text()
    assert f'r"{config.ENABLE_LINE_REGEXP.removeprefix("^")}"' in verifier
    pattern = re.compile(config.ENABLE_LINE_REGEXP)
    for line in ("MULTITENANT_ENABLE=true", "  export MULTITENANT_ENABLE = false"):
        assert pattern.match(line)
    assert not pattern.match("# MULTITENANT_ENABLE=true") and not pattern.match("MULTITENANT_ENABLED=1")


def test_the_initializer_reads_the_enable_variable() -> None:
    entry = (REPO / "src/ood_mt/initializer/ood_multitenant.rb.j2").read_text()
    assert f'ENV["{config.ENABLE_VARIABLE}"] == "true"' in entry


def test_the_site_json_path_has_one_value() -> None:
    defaults = yaml.safe_load((REPO / "roles/ood_mt_keys/defaults/main.yml").read_text())
    assert defaults["ood_mt_keys_site_config_dest"] == str(config.SITE_JSON_PATH)
    uninstall = (REPO / "playbooks/uninstall.yml").read_text()
    assert f"default('{config.SITE_JSON_PATH}')" in uninstall
    assert render.SITE_JSON_IN_BUILD == config.SITE_JSON_IN_BUILD == Path("etc/site.json")
    site_config = (REPO / "roles/ood_mt_keys/tasks/site_config.yml").read_text()
    assert f"ood_mt_keys_build_dir ~ '/{config.SITE_JSON_IN_BUILD}'" in site_config


def test_the_build_directory_has_one_spelling() -> None:
    """`build/<site>` next to playbooks/: the build play writes it, the keys and ood roles read it
    (their defaults, and site.yml when the build play did not run)."""
    spellings = {"{{ playbook_dir }}/../build/{{ multitenant.site }}",
                 "playbook_dir ~ '/../build/' ~ multitenant.site"}
    copies = [(f, v) for f, v in values("ood_mt_build_dir") + values("ood_mt_keys_build_dir")
              + values("ood_mt_ood_build_dir") if "build" in v]
    assert len(copies) == 5
    for file, value in copies:
        assert any(s in value for s in spellings), (file, value)
    assert 'build_dir="$repo_root/build/lab"' in (REPO / "scripts/lab.sh").read_text()


def test_the_preset_delivery_map_has_one_value() -> None:
    """The service template's default (app authors' `cookiecutter cookiecutter-mt-app`) is the map
    ood-mt build writes (config.PRESET_DELIVERY), and site.json names the same one."""
    template = json.loads((REPO / "src/ood_mt/templates/service/cookiecutter.json").read_text())
    assert template["_preset_delivery"] == config.preset_delivery_words()
    words = dict(pair.split("=", 1) for pair in config.preset_delivery_words().split())
    assert {p: f"mt_delivery_{k}" for p, k in config.PRESET_DELIVERY.items()} == {
        p: a for p, a in words.items() if p != "*"}
