"""The rendered entry point: self-contained, off unless enabled, never breaks the dashboard.

Runs the RENDERED initializer inside OOD's own dashboard code (tests/ood/oodsite.py), as a
lab user, with no Slurm needed (the as-the-receiver runs against the real Slurm are in
test_initializer_slurm.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ood_mt import config, render
from tests.ood.oodsite import OOD_VERSIONS, OodSite

REPO = Path(__file__).resolve().parents[2]
LAB_SITE = REPO / "inventories/lab/group_vars/all/multitenant.yml"
KIT_BLOCKS = {"BatchConnect::SessionsController": 2, "BatchConnect::SessionContextsController": 1}


def _render(dest: Path, lib_override: dict[str, str] | None = None) -> Path:
    render.render_initializer(config.load_site(LAB_SITE), dest, lib_override)
    dest.chmod(0o644)
    return dest


def _initializer(ood_site: OodSite, name: str, lib_override: dict[str, str] | None = None) -> Path:
    return _render(ood_site.base / "params" / f"{name}-{os.getpid()}.rb", lib_override)


def _boot(ood_site: OodSite, initializer: Path, enable: str, *command: str,
          env: dict[str, str] | None = None) -> dict[str, Any]:
    """One dashboard boot of mtrecv with the env file saying MULTITENANT_ENABLE=ENABLE."""
    env_file = ood_site.base / "params" / f"env-{enable}"
    env_file.write_text(f"MULTITENANT_ENABLE={enable}\n")
    env_file.chmod(0o644)
    saved, ood_site.env_file = ood_site.env_file, env_file
    try:
        return ood_site.run("mtrecv", OOD_VERSIONS[0], *(command or ("sessions",)), initializer_file=initializer,
                            env=env)
    finally:
        ood_site.env_file = saved


def _kit_lines(log: list[str]) -> list[str]:
    return [line.split(": ", 1)[1] for line in log if ": ood-mt: " in line]


def test_rendered_initializer_is_one_valid_self_contained_ruby_file(tmp_path: Path) -> None:
    path = _render(tmp_path / "ood_multitenant.rb")
    text = path.read_text()
    check = subprocess.run(["ruby", "-wc", str(path)], capture_output=True, text=True, check=False)
    assert check.returncode == 0 and "Syntax OK" in check.stdout, check.stderr
    assert "require_relative" not in text
    for name in render.INITIALIZER_LIBS:
        assert f'["{name}", <<\'OOD_MT_LIB_' in text, name
    assert "module Codec" in text and "class CardWriter" in text
    # No site fact is baked in: only where site.json is. Another site builds the same file.
    assert f'SITE_JSON = "{render.SITE_JSON_DEST}"' in text
    other = config.load_site(LAB_SITE)
    other.data.update(site="elsewhere", wckey="otherkey", publisher_group="pubs", cluster="c2", refresh_seconds=7)
    render.render_initializer(other, tmp_path / "other.rb")
    assert (tmp_path / "other.rb").read_text() == text


def test_a_library_override_must_name_a_library(tmp_path: Path) -> None:
    with pytest.raises(render.BuildError, match=r"no library nope\.rb"):
        render.render_initializer(config.load_site(LAB_SITE), tmp_path / "x.rb", {"nope.rb": ""})


def test_does_nothing_unless_enabled(ood_site: OodSite) -> None:
    shutil.rmtree(ood_site.dataroot("mtrecv") / "batch_connect" / ".ood-mt", ignore_errors=True)
    booted = _boot(ood_site, _initializer(ood_site, "off"), "false")
    report = {k: v for k, v in booted["boot"].items() if k not in ("request_seconds", "page_seconds")}
    assert report == {"after_initialize": 0, "to_prepare": 0, "multitenant_specs": None,
                      "before_action_blocks": dict.fromkeys(KIT_BLOCKS, 0)}
    assert _kit_lines(booted["log"]) == []
    assert not (ood_site.dataroot("mtrecv") / "batch_connect" / ".ood-mt").exists()


def test_enabled_wires_boot_and_request_hooks(ood_site: OodSite) -> None:
    booted = _boot(ood_site, _initializer(ood_site, "on"), "true", "form", "mt_jupyter")
    assert (booted["boot"]["after_initialize"], booted["boot"]["to_prepare"]) == (1, 1)
    assert booted["boot"]["before_action_blocks"] == KIT_BLOCKS
    assert isinstance(booted["boot"]["multitenant_specs"], list)
    attrs = {a["id"]: a for a in booted["result"]["attributes"]}
    assert attrs["mt_llm_share"]["options"][0] == ["(none)", ""]
    assert (ood_site.dataroot("mtrecv") / "batch_connect/.ood-mt/refresh.stamp").is_file()


def test_missing_squeue_is_one_log_line_and_the_page_works(ood_site: OodSite, tmp_path: Path) -> None:
    empty = ood_site.base / "params" / "empty-bin"
    empty.mkdir(exist_ok=True)
    empty.chmod(0o755)
    booted = _boot(ood_site, _initializer(ood_site, "nosqueue"), "true", "sessions", env={"PATH": str(empty)})
    assert booted["boot"]["multitenant_specs"] == []
    lines = _kit_lines(booted["log"])
    # No discovery spool on this machine: the kit falls back to its own squeue (logged once),
    # whose failure a later request logs once.
    assert len(lines) == 2, lines
    assert lines[0].startswith("ood-mt: discovery spool ") and "querying Slurm directly" in lines[0], lines
    assert lines[1].startswith("ood-mt: discovery: squeue could not run"), lines


@pytest.mark.parametrize("broken", ["def broken(\n", "raise 'boom at load'\n"])
def test_a_broken_library_never_breaks_the_dashboard(ood_site: OodSite, broken: str) -> None:
    init = _initializer(ood_site, "broken", {"refresh.rb": broken})
    assert subprocess.run(["ruby", "-c", str(init)], capture_output=True, check=False).returncode == 0
    booted = _boot(ood_site, init, "true", "form", "mt_jupyter")
    attrs = {a["id"]: a for a in booted["result"]["attributes"]}
    assert attrs["mt_llm_share"]["options"] == [["(none)", ""]]
    assert any(line.startswith("ood-mt: loading the libraries failed:") for line in _kit_lines(booted["log"])), \
        booted["log"]


@pytest.mark.parametrize("problem", ["missing", "not json", "format 1", "no squeue"])
def test_an_unusable_site_json_is_one_log_line_and_the_page_works(ood_site: OodSite, problem: str) -> None:
    """site.json missing, unreadable as JSON or of another format: one line naming the file
    and the fix, no refresh, no card, and the form and sessions pages still work."""
    site_json = ood_site.base / "params" / f"site-{problem.replace(' ', '-')}-{os.getpid()}.json"
    summary = json.loads(ood_site.site_json.read_text())
    if problem == "not json":
        site_json.write_text("{not json")
    elif problem == "format 1":
        site_json.write_text(json.dumps({**summary, "format": 1}))
    elif problem == "no squeue":
        site_json.write_text(json.dumps({k: v for k, v in summary.items() if k != "squeue"}))
    if site_json.exists():
        site_json.chmod(0o644)
    shutil.rmtree(ood_site.dataroot("mtrecv") / "batch_connect" / ".ood-mt", ignore_errors=True)
    init = _initializer(ood_site, "nosite")
    env = {"OOD_MT_SITE_JSON": str(site_json)}
    booted = _boot(ood_site, init, "true", "form", "mt_jupyter", env=env)
    attrs = {a["id"]: a for a in booted["result"]["attributes"]}
    assert attrs["mt_llm_share"]["options"] == [["(none)", ""]]
    lines = _kit_lines(booted["log"])
    expected = {"missing": "missing; fix: run playbooks/site.yml", "not json": "not valid JSON",
                "format 1": "format 1, this initializer reads format 3",
                "no squeue": "field squeue is missing"}[problem]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"ood-mt: site description {site_json}: ") and expected in lines[0], lines
    assert "fix:" in lines[0]
    sessions = _boot(ood_site, init, "true", "sessions", env=env)
    assert isinstance(sessions["result"], list)
    assert not (ood_site.dataroot("mtrecv") / "batch_connect" / ".ood-mt").exists()


def test_the_installed_path_is_read_without_the_variable(ood_site: OodSite) -> None:
    """Without OOD_MT_SITE_JSON the initializer reads the baked-in path (render.SITE_JSON_DEST)."""
    booted = _boot(ood_site, _initializer(ood_site, "default-path"), "true", "form", "mt_jupyter",
                   env={"OOD_MT_SITE_JSON": ""})
    lines = _kit_lines(booted["log"])
    if Path(render.SITE_JSON_DEST).exists():
        assert not any("site description" in line for line in lines), lines
    else:
        assert lines == [f"ood-mt: site description {render.SITE_JSON_DEST}: missing; fix: run playbooks/site.yml "
                         "(the ood_mt_keys role installs the build's etc/site.json there) or set OOD_MT_SITE_JSON"]
