"""The app suite as `ood-mt build` ships it, built from the lab site file with test overrides.

Tests run what the build writes (the real src/ood_mt/render.py), not a hand re-render.
Overrides go into a temporary copy of the lab site file, e.g. the LLM binary pointing at
tests/apps/doubles/ollama_test_double.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.apps.app_render import REPO, lab_doc

OOD_MT = REPO / ".venv" / "bin" / "ood-mt"
DOUBLES = Path(__file__).resolve().parent / "doubles"


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def lab_gate_python(work: Path) -> Path:
    """A Python the lab users can run the share gate with (`python -m ood_mt.gate`), made in WORK
    (idempotently): Debian's /usr/bin/python3 with python3-aiohttp (installed by bootstrap) and a
    copy of the package readable by all, behind a wrapper. On a cluster role ood_mt_cli installs
    the kit in /opt/ood-mt/venv (the site key gate_python's default), which this host lacks."""
    home = work / "gate-python"
    shutil.copytree(REPO / "src" / "ood_mt", home / "lib" / "ood_mt", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    wrapper = home / "python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={home / "lib"} exec /usr/bin/python3 "$@"\n')
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() or path == wrapper else 0o644)
    return wrapper


def _local_apps_with_gate_python(work: Path, entries: list[dict[str, Any]], gate_python: str) -> None:
    """Site-local apps carry the gate's Python as `ood-mt new-app` wrote it (the site's value then):
    copies in WORK with the test site's value, the ENTRIES pointed at them."""
    for entry in entries:
        copy = work / "local_apps" / entry["name"]
        shutil.copytree(entry["path"], copy, dirs_exist_ok=True)
        before = copy / "template" / "before.sh.erb"
        before.write_text(re.sub(r'^MT_GATE_PYTHON=.*$', f"MT_GATE_PYTHON={json.dumps(gate_python)}",
                                 before.read_text(), flags=re.M))
        entry["path"] = str(copy)


def build_suite(work: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Build every app of the lab site (merged with OVERRIDES under `multitenant`) into
    WORK/build; return WORK/build/apps. WORK must be readable by the lab users. The share gate
    runs with lab_gate_python(WORK) unless OVERRIDES name a gate_python."""
    raw = lab_doc()
    overrides = dict(overrides or {})
    overrides.setdefault("gate_python", str(lab_gate_python(work)))
    raw["multitenant"] = _merge(raw["multitenant"], overrides)
    _local_apps_with_gate_python(work, raw["multitenant"].get("local_apps", []), overrides["gate_python"])
    site_file = work / "site.yml"
    site_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    out = work / "build"
    done = subprocess.run([str(OOD_MT), "build", "--site", str(site_file), "--out", str(out)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"ood-mt build failed: {done.stderr}{done.stdout}"
    for root, dirs, _files in os.walk(out):
        for name in dirs:
            (Path(root) / name).chmod(0o755)
    return out / "apps"


def site_overrides_with_doubles() -> dict[str, Any]:
    """Site overrides of the run-time tests: the programs the lab cannot install are
    replaced by the test doubles in tests/apps/doubles (named so)."""
    client = str(DOUBLES / "client_command_test_double")
    return {"apps": {"llm": {"binary": str(DOUBLES / "ollama_test_double")},
                     "jupyter": {"command": client}, "cloudbeaver": {"command": client},
                     "codeserver": {"command": client}, "gradio": {"python": client}}}
