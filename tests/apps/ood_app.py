"""Forms, staging and card views of one built app, done by OOD's own dashboard code
(tests/ood/oodsite.py), for the tests that do not need Slurm.

`stage` is Session#save without its submission: OOD stages the app's template/ (rsync,
ERB in its TemplateBinding, each file with its .erb's mode) and writes its own job script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.ood.oodsite import OOD_VERSIONS, OodSite

# Hostile text for every free-text form field and share value: quotes, command
# substitution, backticks, ;, a newline, a glob and non-ASCII.
HOSTILE = "a'b\"c $(touch CANARY) `touch CANARY`; touch CANARY\nzweite Zeile ü € * \\ end"
DEFAULT_VERSION = OOD_VERSIONS[0]


def stage(ood: OodSite, app: Path, form: dict[str, Any], user: str = "mtpub",
          version: str = DEFAULT_VERSION) -> Path:
    """Stage APP for USER with FORM; return the staged root (OOD's session directory)."""
    return Path(ood.stage(user, version, app.name, form, apps_dir=app.parent)["staged_root"])


def form_attributes(ood: OodSite, app: Path, user: str = "mtpub", version: str = DEFAULT_VERSION,
                    initializer: bool = True) -> dict[str, dict[str, Any]]:
    """APP's form as OOD builds it: {attribute id: {widget, label, value, options}}.
    Fails when OOD marks the app invalid (its form would not be shown)."""
    got = ood.run(user, version, "form", app.name, apps_dir=app.parent, initializer=initializer)["result"]
    assert got["valid"], f"OOD {version} marks {app.name} invalid: {got['reason']}"
    attrs = {a["id"]: a for a in got["attributes"]}
    broken = {k: a["error"] for k, a in attrs.items() if "error" in a}
    assert not broken, f"{app.name}: attributes OOD cannot build: {broken}"
    return attrs


def render_view(ood: OodSite, app: Path, connection: dict[str, Any], version: str = DEFAULT_VERSION) -> str:
    """The card body OOD renders for a running session of APP (a delivery or service app)."""
    return ood.view("mtrecv", version, app.name, connection, apps_dir=app.parent)
