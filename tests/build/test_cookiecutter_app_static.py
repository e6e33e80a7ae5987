"""`cookiecutter cookiecutter-mt-app --no-input` output passes the built-in apps' static
checks, with its form and staging done by OOD's own dashboard code (tests/apps/ood_app.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from ood_mt.render import SERVICE_TEMPLATE
from tests.apps import forms
from tests.apps.ood_app import OOD_STAGED_FILES, form_attributes
from tests.apps.slurm_jobs import shared_render_dir
from tests.ood.oodsite import OodSite

MANIFEST_KEYS = {"name", "category", "subcategory", "role", "description"}
HOSTILE = "a'b\"c $(touch /tmp/ood-mt-pwned) `id` ; x\ny é日本"


def _plain_cookiecutter_app(tmp: Path) -> Path:
    result = subprocess.run([str(Path(sys.executable).parent / "cookiecutter"), "--no-input", str(SERVICE_TEMPLATE)],
                            cwd=tmp, env={**os.environ, "HOME": str(tmp)}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return tmp / "mt_my_shared_service"


def test_plain_cookiecutter_app_passes_static_checks(tmp_path: Path, ood_site: OodSite) -> None:
    made = _plain_cookiecutter_app(tmp_path)
    # As the app author copies it: modes as cookiecutter wrote them, in a dir users can read.
    apps = shared_render_dir()
    try:
        app = Path(shutil.copytree(made, apps / made.name))
        for path in [app, *app.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))
        manifest = yaml.safe_load((app / "manifest.yml").read_text())
        assert set(manifest) >= MANIFEST_KEYS and all(str(manifest[k]).strip() for k in MANIFEST_KEYS)

        attrs = form_attributes(ood_site, app, initializer=False)
        assert [v for _l, v in attrs["mt_share_preset"]["options"]] == ["weblink", "debug"]

        values = {**forms.COMMON, **forms.SHARING, "mt_share_preset": "weblink", "mt_command": HOSTILE}
        staged = ood_site.stage("mtpub", "4.2.3", app.name, values, apps_dir=apps)
        assert "--wckey=multitenant" in staged["native"]
        session = Path(staged["staged_root"])
        assert (session / "script.sh").stat().st_mode & 0o100, "the job could not run script.sh"
        scripts = sorted(p for p in session.glob("*.sh") if p.name not in OOD_STAGED_FILES)
        assert {s.name for s in scripts} >= {"before.sh", "script.sh", "after.sh", "mt_share.sh"}
        for script in scripts:
            subprocess.run(["bash", "-n", str(script)], check=True)
            assert "touch /tmp/ood-mt-pwned" not in script.read_text()
        result = subprocess.run(["shellcheck", "-s", "bash", *map(str, scripts)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout
    finally:
        shutil.rmtree(apps, ignore_errors=True)
