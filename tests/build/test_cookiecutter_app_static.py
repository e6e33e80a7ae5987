"""`cookiecutter cookiecutter-mt-app --no-input` output passes the built-in apps' static checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from ood_mt.render import SERVICE_TEMPLATE
from tests.apps import forms
from tests.apps.ood_harness import render_form, stage

MANIFEST_KEYS = {"name", "category", "subcategory", "role", "description"}
HOSTILE = "a'b\"c $(touch /tmp/ood-mt-pwned) `id` ; x\ny é日本"


def _plain_cookiecutter_app(tmp: Path) -> Path:
    result = subprocess.run([str(Path(sys.executable).parent / "cookiecutter"), "--no-input", str(SERVICE_TEMPLATE)],
                            cwd=tmp, env={**os.environ, "HOME": str(tmp)}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return tmp / "mt_my_shared_service"


def test_plain_cookiecutter_app_passes_static_checks(tmp_path):
    app = _plain_cookiecutter_app(tmp_path)
    manifest = yaml.safe_load((app / "manifest.yml").read_text())
    assert set(manifest) >= MANIFEST_KEYS and all(str(manifest[k]).strip() for k in MANIFEST_KEYS)

    form = yaml.safe_load(render_form(app, None, tmp_path))
    for field in form["form"]:
        assert field in form["attributes"] or field.startswith("bc_"), field
    assert [v for _l, v in form["attributes"]["mt_share_preset"]["options"]] == ["weblink", "debug"]

    values = {**forms.COMMON, **forms.SHARING, "mt_share_preset": "weblink", "mt_command": HOSTILE}
    staged = stage(app, values, tmp_path / "sessions", "s-custom")
    assert "--wckey=multitenant" in staged["native"]
    scripts = sorted(Path(staged["session_dir"]).glob("*.sh"))
    assert {s.name for s in scripts} >= {"before.sh", "script.sh", "after.sh", "mt_share.sh"}
    for script in scripts:
        subprocess.run(["bash", "-n", str(script)], check=True)
        assert "touch /tmp/ood-mt-pwned" not in script.read_text()
    result = subprocess.run(["shellcheck", "-s", "bash", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
