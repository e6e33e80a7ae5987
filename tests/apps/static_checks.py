"""The static checks every service app passes, built-in or new (tests/apps/test_static.py,
tests/apps/test_new_kind.py, tests/build/test_cookiecutter_app_static.py): the rules are
ood_mt.app_checks, the ones `ood-mt build` runs on site-local apps; here they are asserted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ood_mt import app_checks


def check_manifest(app: Path) -> dict[str, Any]:
    """APP's manifest.yml has OOD's keys, none empty, role batch_connect; return it."""
    problems = app_checks.manifest_problems(app)
    assert not problems, f"{app.name}: " + "; ".join(p.render() for p in problems)
    return yaml.safe_load((app / "manifest.yml").read_text())


def check_scripts(scripts: list[Path]) -> None:
    """SCRIPTS pass bash -n and shellcheck -s bash."""
    problems = app_checks.shell_problems(scripts)
    assert not problems, "\n".join(p.render() for p in problems)


def check_staged_service(session: Path, secret_text: str = "CANARY") -> list[Path]:
    """A service session staged by OOD: script.sh executable (the job runs ./script.sh), every
    staged script of the kit passes bash -n and shellcheck, and SECRET_TEXT (a hostile form
    value's payload) appears in none of them in clear. Returns the scripts checked."""
    assert (session / "script.sh").stat().st_mode & 0o100, f"{session}: staged script.sh is not executable"
    scripts = app_checks.staged_scripts(session)
    assert {s.name for s in scripts} >= set(app_checks.SERVICE_SCRIPTS), f"{session}: kit scripts missing"
    for script in scripts:
        assert secret_text not in script.read_text(), f"{script.name} holds a form value in clear"
    check_scripts(scripts)
    return scripts
