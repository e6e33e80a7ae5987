"""The app suite as `ood-mt build` ships it, built from the lab site file with test overrides.

Tests run what the build writes (the real src/ood_mt/render.py), not a hand re-render.
Overrides go into a temporary copy of the lab site file, e.g. the LLM binary pointing at
tests/apps/doubles/ollama_test_double.
"""

from __future__ import annotations

import copy
import os
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


def build_suite(work: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Build every app of the lab site (merged with OVERRIDES under `multitenant`) into
    WORK/build; return WORK/build/apps. WORK must be readable by the lab users."""
    raw = lab_doc()
    raw["multitenant"] = _merge(raw["multitenant"], overrides or {})
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
