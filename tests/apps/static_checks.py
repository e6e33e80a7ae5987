"""The static checks every service app passes, built-in or new (tests/apps/test_static.py,
tests/apps/test_new_kind.py, tests/build/test_cookiecutter_app_static.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.apps.ood_app import OOD_STAGED_FILES

MANIFEST_KEYS = {"name", "category", "subcategory", "role", "description"}
SERVICE_SCRIPTS = {"before.sh", "script.sh", "after.sh", "mt_share.sh", "service_helpers.sh"}


def check_manifest(app: Path) -> dict[str, Any]:
    """APP's manifest.yml has OOD's keys, none empty, role batch_connect; return it."""
    manifest = yaml.safe_load((app / "manifest.yml").read_text())
    missing = MANIFEST_KEYS - set(manifest)
    assert not missing, f"{app.name}/manifest.yml lacks {missing}"
    assert all(str(manifest[k]).strip() for k in MANIFEST_KEYS), app.name
    assert manifest["role"] == "batch_connect", app.name
    return manifest


def check_staged_service(session: Path, secret_text: str = "CANARY") -> list[Path]:
    """A service session staged by OOD: script.sh executable (the job runs ./script.sh), every
    staged script of the kit passes bash -n and shellcheck, and SECRET_TEXT (a hostile form
    value's payload) appears in none of them in clear. Returns the scripts checked."""
    assert (session / "script.sh").stat().st_mode & 0o100, f"{session}: staged script.sh is not executable"
    scripts = sorted(p for p in session.glob("*.sh") if p.name not in OOD_STAGED_FILES)
    assert {s.name for s in scripts} >= SERVICE_SCRIPTS, f"{session}: kit scripts missing"
    for script in scripts:
        subprocess.run(["bash", "-n", str(script)], check=True)
        assert secret_text not in script.read_text(), f"{script.name} holds a form value in clear"
    result = subprocess.run(["shellcheck", "-s", "bash", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    return scripts
