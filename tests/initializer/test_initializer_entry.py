"""The rendered entry point: self-contained, off unless enabled, never breaks the dashboard.

Runs the RENDERED initializer inside the OOD dashboard harness (as root here; the
as-the-user runs are in test_initializer_slurm.py).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import jinja2
import pytest

from ood_mt import config, render

REPO = Path(__file__).resolve().parents[2]
LAB_SITE = REPO / "inventories/lab/group_vars/all/multitenant.yml"
HARNESS = REPO / "tests/harness/ood_dashboard_harness.rb"


@functools.lru_cache(maxsize=1)
def _built_apps() -> Path:
    """The lab site's real apps (client forms list the shares), built once per test run."""
    out = Path(tempfile.mkdtemp(prefix="ood-mt-entry-apps-")) / "build"
    render.build(config.load_site(LAB_SITE), out)
    return out / "apps"


def _render(dest: Path, lib_override: dict[str, str] | None = None) -> Path:
    site = config.load_site(LAB_SITE)
    if lib_override is None:
        render.render_initializer(site, dest)
        return dest
    # Same Jinja settings as render.render_initializer, with a library replaced.
    libs = {name: (render.INITIALIZER_SRC / "lib" / name).read_text() for name in render.INITIALIZER_LIBS}
    libs.update(lib_override)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(render.INITIALIZER_SRC)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False,
                             **render.JINJA_ENV_VARS)
    dest.write_text(env.get_template("ood_multitenant.rb.j2").render(site=site.data, lib_sources=libs,
                                                                     site_json=site.public_summary()))
    return dest


def _harness(initializer: Path, tmp_path: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
                "OOD_DATAROOT": str(tmp_path / "data"), **env}
    proc = subprocess.run(["ruby", str(HARNESS), "--initializer", str(initializer), "--apps-dir", str(_built_apps()),
                           "--sessions", *args], capture_output=True, text=True, env=full_env, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_rendered_initializer_is_one_valid_self_contained_ruby_file(tmp_path: Path) -> None:
    path = _render(tmp_path / "ood_multitenant.rb")
    text = path.read_text()
    check = subprocess.run(["ruby", "-wc", str(path)], capture_output=True, text=True, check=False)
    assert check.returncode == 0 and "Syntax OK" in check.stdout, check.stderr
    assert "require_relative" not in text
    assert "module Codec" in text and "class CardWriter" in text
    site = json.loads(text.split("<<'OOD_MT_SITE_JSON').freeze\n", 1)[1].split("\nOOD_MT_SITE_JSON", 1)[0])
    assert (site["wckey"], site["publisher_group"], site["tenant_groups"], site["cluster"]) == (
        "multitenant", "mtusr", ["mtclass"], "lab")


def test_does_nothing_unless_enabled(tmp_path: Path) -> None:
    result = _harness(_render(tmp_path / "init.rb"), tmp_path, {"MULTITENANT_ENABLE": "false"})
    assert result["specs"] is None
    assert result["log"] == [] and result["errors"] == []
    assert result["hooks"] == {"after_initialize": 0, "to_prepare": 0, "sessions_before_action": 0,
                               "session_contexts_before_action": 0}
    assert not (tmp_path / "data").exists()


def test_enabled_wires_boot_and_request_hooks(tmp_path: Path) -> None:
    result = _harness(_render(tmp_path / "init.rb"), tmp_path, {"MULTITENANT_ENABLE": "true"}, "--form",
                      "mt_jupyter", "--requests", "3")
    assert result["errors"] == []
    assert result["hooks"] == {"after_initialize": 1, "to_prepare": 1, "sessions_before_action": 1,
                               "session_contexts_before_action": 1}
    assert result["form"]["attributes"]["mt_llm_share"]["options"][0] == ["(none)", ""]
    assert (tmp_path / "data/batch_connect/.ood-mt/refresh.stamp").is_file()


def test_missing_squeue_is_one_log_line_and_the_page_works(tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    ruby = subprocess.run(["sh", "-c", "command -v ruby"], capture_output=True, text=True, check=True).stdout.strip()
    (empty / "ruby").symlink_to(ruby)
    result = _harness(_render(tmp_path / "init.rb"), tmp_path, {"MULTITENANT_ENABLE": "true", "PATH": str(empty),
                                                                "OOD_MT_HARNESS_SQUEUE": "/bin/false"},
                      "--requests", "3")
    assert result["errors"] == []
    assert result["specs"] == {}
    assert len(result["log"]) == 1 and result["log"][0].startswith("ood-mt: discovery: squeue could not run")


@pytest.mark.parametrize("broken", ["def broken(\n", "raise 'boom at load'\n"])
def test_a_broken_library_never_breaks_the_dashboard(tmp_path: Path, broken: str) -> None:
    init = _render(tmp_path / "init.rb", {"multitenant.rb": broken})
    assert subprocess.run(["ruby", "-c", str(init)], capture_output=True, check=False).returncode == 0
    result = _harness(init, tmp_path, {"MULTITENANT_ENABLE": "true"}, "--form", "mt_jupyter")
    assert result["errors"] == []
    assert result["form"]["attributes"]["mt_llm_share"]["options"] == [["(none)", ""]]
    assert any(line.startswith("ood-mt: loading the libraries failed:") for line in result["log"]), result["log"]


def test_harness_renames_an_unparsable_db_file_like_the_dashboard(tmp_path: Path) -> None:
    db = tmp_path / "data/batch_connect/db"
    db.mkdir(parents=True)
    (db / ".half-written").write_text('{"id": ')
    result = _harness(_render(tmp_path / "init.rb"), tmp_path, {"MULTITENANT_ENABLE": "false"})
    assert result["renamed"] == [".half-written"]
    assert sorted(p.name for p in db.iterdir()) == [".half-written.bak"]
    assert result["cards"] == []
