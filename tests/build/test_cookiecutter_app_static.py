"""`cookiecutter cookiecutter-mt-app --no-input` (the checkout's entry point: a symlink to the
packaged service template) output passes the built-in apps' static checks, with its form and
staging done by OOD's own dashboard code (tests/apps/ood_app.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ood_mt.render import SERVICE_TEMPLATE
from tests.apps import forms
from tests.apps.ood_app import form_attributes
from tests.apps.slurm_jobs import shared_render_dir
from tests.apps.static_checks import check_manifest, check_staged_service
from tests.ood.oodsite import OodSite

ENTRY_POINT = Path(__file__).resolve().parents[2] / "cookiecutter-mt-app"
HOSTILE = "a'b\"c $(touch /tmp/ood-mt-pwned) `id` ; x\ny é日本"


def _plain_cookiecutter_app(tmp: Path) -> Path:
    assert ENTRY_POINT.is_symlink() and ENTRY_POINT.resolve() == SERVICE_TEMPLATE
    result = subprocess.run([str(Path(sys.executable).parent / "cookiecutter"), "--no-input", str(ENTRY_POINT)],
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
        check_manifest(app)

        attrs = form_attributes(ood_site, app, initializer=False)
        assert [v for _l, v in attrs["mt_share_preset"]["options"]] == ["weblink", "debug"]

        values = {**forms.COMMON, **forms.SHARING, "mt_share_preset": "weblink", "mt_command": HOSTILE}
        staged = ood_site.stage("mtpub", "4.2.3", app.name, values, apps_dir=apps)
        assert "--wckey=multitenant" in staged["native"]
        check_staged_service(Path(staged["staged_root"]), secret_text="touch /tmp/ood-mt-pwned")
    finally:
        shutil.rmtree(apps, ignore_errors=True)
