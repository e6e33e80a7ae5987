"""The static checks of a service app: the one place of each rule.

`ood-mt build` runs them on every site-local service (``multitenant.local_apps``) before it
builds anything; the tests run the same functions on the built-in apps and on apps made by
`ood-mt new-app` and cookiecutter (tests/apps/static_checks.py).

What a service app must pass:

- it is made from the kit's service template: manifest.yml, a form, submit.yml.erb and the
  job files (``REQUIRED_FILES``), with the kit-owned library (``KIT_OWNED``);
- YAML files parse; manifest.yml has OOD's keys (``MANIFEST_KEYS``), none empty, role
  ``batch_connect``;
- its ERB files render (form, submit, ``template/*.erb``, view) in stand-ins of the bindings
  OOD renders them in (``erb_check.rb``, needs ``ruby``), the form and submit to YAML mappings;
  its submit asks for the site's WCKey and its form for the site's cluster;
- the rendered job scripts pass ``bash -n`` and ``shellcheck -s bash`` (needs ``shellcheck``);
- the kit-owned library files are byte for byte what the kit renders now (otherwise
  ``ood-mt refresh-app`` brings them up to date).

Every problem names the app file, what is wrong and the fix (``AppProblem``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# OOD's keys of an app's manifest.yml (each non-empty); a batch-connect app has role batch_connect.
MANIFEST_KEYS = ("name", "category", "subcategory", "role", "description")
# The files the kit's service template writes that the kit owns: `ood-mt refresh-app` rewrites
# them, the build refuses an app whose copies differ from what the kit renders now.
KIT_OWNED = ("template/mt_share.sh", "template/service_helpers.sh")
# The files a service made from the kit's template has (a form.yml.erb or form.yml besides).
REQUIRED_FILES = ("manifest.yml", "submit.yml.erb", "template/before.sh.erb", "template/script.sh.erb",
                  "template/after.sh.erb", *KIT_OWNED)
# The job scripts of a service as OOD stages them (template/<name>[.erb] -> <name>).
SERVICE_SCRIPTS = ("before.sh", "script.sh", "after.sh", "mt_share.sh", "service_helpers.sh")
# OOD's own files in a staged session (its job script, ood_core's helpers): not the app's to check.
OOD_STAGED_FILES = frozenset({"job_script_content.sh", "ood_core_helpers.sh"})
ERB_CHECK = Path(__file__).resolve().parent / "erb_check.rb"
# What to install when a checking tool is missing.
TOOL_PACKAGES = {"ruby": "ruby", "shellcheck": "shellcheck (RHEL: ShellCheck from EPEL)"}
TOOL_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class AppProblem:
    """One thing wrong with an app: FILE (relative to the app) and the fix."""

    file: str
    message: str
    fix: str

    def render(self) -> str:
        return f"{self.file}: {self.message}. Fix: {self.fix}"


class ToolMissing(Exception):
    """A program the checks need is not on PATH; the message says what to install."""


def require_tool(name: str, why: str) -> str:
    """The path of program NAME, or ToolMissing naming WHY it is needed and the package."""
    found = shutil.which(name)
    if not found:
        raise ToolMissing(f"`{name}` is not on PATH; {why}. Fix: install {TOOL_PACKAGES.get(name, name)} "
                          "on this machine (the controller that runs `ood-mt build`)")
    return found


# ---------------------------------------------------------------- shape and YAML


def shape_problems(app: Path) -> list[AppProblem]:
    """APP is a directory made from the kit's service template (REQUIRED_FILES, a form)."""
    if not app.is_dir():
        return [AppProblem(str(app), "does not exist" if not app.exists() else "is not a directory",
                           "create the app there with `ood-mt new-app --site <site file> --out "
                           f"{app.parent} {app.name}`, or correct the entry's path")]
    problems = []
    missing = [rel for rel in REQUIRED_FILES if not (app / rel).is_file()]
    if not (app / "form.yml.erb").is_file() and not (app / "form.yml").is_file():
        missing.insert(0, "form.yml.erb")
    if missing:
        problems.append(AppProblem(", ".join(missing), "missing: this is not a service made from the kit's "
                                   "template", "make the app with `ood-mt new-app` and move your changes into "
                                   "it (docs/app-author-guide.md); for a kit-owned file alone, run "
                                   f"`ood-mt refresh-app {app}`"))
    linked = sorted(str(p.relative_to(app)) for p in app.rglob("*") if p.is_symlink())
    if linked:
        problems.append(AppProblem(", ".join(linked), "symbolic link(s): the build installs files only",
                                   "replace each link by the file itself"))
    return problems


def _yaml_error(exc: Exception) -> str:
    """A YAML error on one line: where, and what."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(str(exc).split())


def manifest_problems(app: Path) -> list[AppProblem]:
    """APP's manifest.yml parses, has OOD's keys, none empty, and role batch_connect."""
    try:
        manifest = yaml.safe_load((app / "manifest.yml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return [AppProblem("manifest.yml", f"cannot be read as YAML ({_yaml_error(exc)})", "correct the YAML syntax")]
    if not isinstance(manifest, dict):
        return [AppProblem("manifest.yml", "is not a YAML mapping", "write OOD's keys: " + ", ".join(MANIFEST_KEYS))]
    problems = []
    empty = [k for k in MANIFEST_KEYS if not str(manifest.get(k) or "").strip()]
    if empty:
        problems.append(AppProblem("manifest.yml", f"lacks OOD's key(s) {', '.join(empty)} (or they are empty)",
                                   "give each a value, as `ood-mt new-app` writes them"))
    if manifest.get("role") not in (None, "", "batch_connect"):
        problems.append(AppProblem("manifest.yml", f"role is {manifest['role']!r}, not batch_connect",
                                   "write 'role: batch_connect' (a service is a batch-connect app)"))
    return problems


def yaml_problems(app: Path) -> list[AppProblem]:
    """Every plain YAML file of APP (``*.yml``, ``*.yaml``; not ERB) parses (manifest.yml:
    ``manifest_problems``)."""
    problems = []
    for path in sorted(p for p in app.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file()
                       and p != app / "manifest.yml"):
        try:
            yaml.safe_load(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            problems.append(AppProblem(str(path.relative_to(app)), f"is not valid YAML ({_yaml_error(exc)})",
                                       "correct the YAML syntax"))
    return problems


# ---------------------------------------------------------------- ERB and shell


def erb_problems(app: Path, out: Path, groups: Iterable[str]) -> tuple[list[AppProblem], dict[str, Any]]:
    """Render APP's ERB files as OOD would (erb_check.rb), the job files into OUT; return the
    problems and what the rendering found: ``native`` (submit's sbatch arguments), ``cluster``."""
    ruby = require_tool("ruby", "the ERB files of site-local apps are rendered with it, as OOD renders them")
    done = subprocess.run([ruby, str(ERB_CHECK), str(app), str(out), *groups], capture_output=True, text=True,
                          timeout=TOOL_TIMEOUT_SECONDS, check=False)
    try:
        result = json.loads(done.stdout)
    except ValueError:
        return [AppProblem("(ERB files)", f"the ERB check failed ({done.stderr.strip() or done.stdout.strip()})",
                           "check the Ruby installation (erb, yaml, json are in its standard library)")], {}
    fix = "correct the ERB (form values are context.<id> in template/*.erb, bare names in submit.yml.erb)"
    return [AppProblem(p["file"], p["message"].replace("\n", " "), "correct the YAML the file renders to")
            if p.get("yaml") else AppProblem(p["file"], f"does not render: {p['message']}".replace("\n", " "), fix)
            for p in result["problems"]], result


def shell_problems(scripts: list[Path], names: dict[Path, str] | None = None) -> list[AppProblem]:
    """``bash -n`` and ``shellcheck -s bash`` of SCRIPTS; NAMES gives the app file each came from."""
    names = names or {}
    shellcheck = require_tool("shellcheck", "the job scripts of site-local apps are checked with it")
    problems = []
    for script in scripts:
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
        if done.returncode:
            problems.append(AppProblem(names.get(script, script.name), "fails `bash -n`: "
                                       + done.stderr.strip().replace(str(script), script.name).replace("\n", "; "),
                                       "correct the shell syntax"))
    if not scripts:
        return problems
    done = subprocess.run([shellcheck, "-s", "bash", "-f", "gcc", *(s.name for s in scripts)],
                          cwd=scripts[0].parent, capture_output=True, text=True,
                          timeout=TOOL_TIMEOUT_SECONDS, check=False)
    by_name = {s.name: names.get(s, s.name) for s in scripts}
    for line in done.stdout.splitlines():
        file, _, rest = line.partition(":")
        problems.append(AppProblem(by_name.get(file, file), f"shellcheck: {f'{file}:' if file in by_name else ''}"
                                   f"{rest.strip()}", "correct the script, or disable that check on the line "
                                   "above with a `# shellcheck disable=SC<n>` comment saying why"))
    if done.returncode and not done.stdout.strip():
        problems.append(AppProblem("(scripts)", f"shellcheck failed: {done.stderr.strip()}", "see its message"))
    return problems


def staged_scripts(staged: Path) -> list[Path]:
    """The kit's job scripts of a staged (rendered) session directory, OOD's own left out."""
    return sorted(p for p in staged.glob("*.sh") if p.name not in OOD_STAGED_FILES)


def library_problems(app: Path, reference: dict[str, bytes]) -> list[AppProblem]:
    """APP's kit-owned files are byte for byte REFERENCE (what the kit renders now)."""
    stale = [rel for rel, text in reference.items() if (app / rel).is_file() and (app / rel).read_bytes() != text]
    if not stale:
        return []
    return [AppProblem(", ".join(stale), "differs from the kit's current publishing library (an app made by an "
                       "older kit, or an edited kit file)", f"run `ood-mt refresh-app {app}`, which rewrites "
                       "only the kit-owned files; keep your own code in the other files")]


# ---------------------------------------------------------------- the whole app


def service_app_problems(app: Path, *, wckey: str, cluster: str, groups: Iterable[str],
                         reference: dict[str, bytes], workdir: Path) -> list[AppProblem]:
    """Every static check of a service app APP for a site (its WCKEY, CLUSTER and GROUPS offered
    to the form). REFERENCE: the kit-owned files as the kit renders them now. WORKDIR: an empty
    directory for the rendered files. ToolMissing when ruby or shellcheck is not installed."""
    problems = shape_problems(app)
    if problems:
        return problems
    problems = manifest_problems(app) + yaml_problems(app) + library_problems(app, reference)
    rendered = workdir / "template"
    erb, result = erb_problems(app, rendered, groups)
    problems += erb
    if result:
        native = result.get("native")
        if native is not None and f"--wckey={wckey}" not in native:
            problems.append(AppProblem("submit.yml.erb", f"does not ask for the site's WCKey '--wckey={wckey}' in "
                                       f"script.native (got {native})", "keep the native arguments "
                                       "`ood-mt new-app` wrote: receivers refuse a share of a job without the "
                                       "site's WCKey"))
        form_file = "form.yml.erb" if (app / "form.yml.erb").is_file() else "form.yml"
        if native is not None and result["cluster"] != cluster:
            problems.append(AppProblem(form_file, f"runs on cluster {result['cluster']!r}, not the site's "
                                       f"{cluster!r}", f"write 'cluster: \"{cluster}\"' as `ood-mt new-app` does"))
    scripts = staged_scripts(rendered) if rendered.is_dir() else []
    names = {s: f"template/{s.name}.erb" if (app / "template" / f"{s.name}.erb").is_file() else f"template/{s.name}"
             for s in scripts}
    return problems + shell_problems(scripts, names)
