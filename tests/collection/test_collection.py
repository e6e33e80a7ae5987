"""The repository root as the Ansible collection ood_mt.multitenant, tested as its users get it:
built with `ansible-galaxy collection build`, installed from the tarball into a temporary
collections path (never the checkout's link), with the oldest and the newest supported
ansible-core (SUPPORTED; the dev venv's version runs too). From the installed copy: `ansible-doc`
shows every module, every playbook passes `--syntax-check`, the modules run (module_utils
included), and `ansible-test sanity` passes (lint part: it is a static check).

Each ansible-core lives in a cached venv, `.lab/ansible-core-<version>`, made with pip on first
use. ansible-test bootstraps pip into its own venvs with a script it downloads from a host this
machine cannot reach; get_pip_offline.py stands in for it (its docstring says how).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.build.test_contract_copies import walk

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / ".lab"
# The oldest and newest ansible-core the collection supports (meta/runtime.yml, README); 2.16 is
# the last to manage EL8 hosts' platform Python 3.6 (see tests/config.yml for the modules' Python).
SUPPORTED = ("2.16", "2.19")
MODULES = sorted(path.stem for path in (REPO / "plugins" / "modules").glob("*.py"))
PLAYBOOKS = sorted(path.stem for path in (REPO / "playbooks").glob("*.yml"))
FILTERS = sorted(path.stem for path in (REPO / "plugins" / "filter").glob("*.yml"))  # their docs
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"
SHIM = Path(__file__).resolve().parent / "get_pip_offline.py"
# ansible-test needs minutes on a first run (it makes a venv per sanity test), seconds after
SANITY_TIMEOUT_S = 1800


# ------------------------------------------------------------------ metadata: one version, one range


def test_the_collection_version_is_the_package_version() -> None:
    """One version for the Python package and the collection: src/ood_mt/__init__.py's (which
    pyproject.toml reads: tests/build/test_version.py), restated in galaxy.yml."""
    package = re.search(r'^__version__ = "([^"]+)"$', (REPO / "src" / "ood_mt" / "__init__.py").read_text(), re.M)
    assert package and GALAXY["version"] == package.group(1)
    assert f"## [{GALAXY['version']}]" in (REPO / "CHANGELOG.md").read_text()


def test_the_supported_range_is_stated_once_per_place() -> None:
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    newest = tuple(int(part) for part in SUPPORTED[1].split("."))
    first_unsupported = f"{newest[0]}.{newest[1] + 1}"
    assert runtime["requires_ansible"] == f">={SUPPORTED[0]}.0,<{first_unsupported}"
    # what every role asserts at run time (role ood_mt_site)
    site_defaults = yaml.safe_load((REPO / "roles" / "ood_mt_site" / "defaults" / "main.yml").read_text())
    assert site_defaults["ood_mt_site_ansible_core_min"] == SUPPORTED[0]
    assert site_defaults["ood_mt_site_ansible_core_below"] == first_unsupported
    for meta in (REPO / "roles").glob("*/meta/main.yml"):
        assert yaml.safe_load(meta.read_text())["galaxy_info"]["min_ansible_version"] == SUPPORTED[0], meta
    readme = (REPO / "README.md").read_text()
    assert f"ansible-core {SUPPORTED[0]} to {SUPPORTED[1]}" in readme


def test_the_checkout_names_roles_and_plugins_by_fqcn() -> None:
    """A short name works in the checkout only by accident and fails in the installed collection."""
    files = [*REPO.glob("roles/*/tasks/*.yml"), *REPO.glob("roles/*/handlers/*.yml"), *REPO.glob("playbooks/*.yml"),
             *REPO.glob("molecule/*/*.yml")]
    short = []
    for path in files:
        where = str(path.relative_to(REPO))
        text = path.read_text()
        short += [(where, m.group(1)) for m in re.finditer(r"\|\s*(ood_mt_site_problems|ood_mt_group_key)\b", text)]
        for key, value in walk(yaml.safe_load(text)):
            names: list[Any] = []
            if key in ("role", "import_playbook"):
                names = [value]
            elif key.split(".")[-1] in ("include_role", "import_role") and isinstance(value, dict):
                names = [value.get("name")]
            elif key == "roles" and isinstance(value, list):
                names = [item.get("role") if isinstance(item, dict) else item for item in value]
            elif key in MODULES:
                names = [key]
            short += [(where, name) for name in names if not str(name).startswith(f"{FQCN}.")]
    assert short == [], "name roles, playbooks, modules and filters as ood_mt.multitenant.<name>"


# ------------------------------------------------------------------ ansible-core venvs, build, install


# What the filters need of the kit's package beyond ansible-core's own dependencies (the package
# itself comes from src/ on PYTHONPATH: a controller has it installed next to Ansible).
FILTER_DEPENDENCIES = ("jsonschema",)


def ansible_core(version: str) -> Path:
    """bin/ of a venv holding ansible-core VERSION.* (and FILTER_DEPENDENCIES), made once and
    reused while it fits."""
    if version == "dev":
        return Path(sys.executable).parent
    venv = LAB / f"ansible-core-{version}"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", f"import ansible.release as r, {', '.join(FILTER_DEPENDENCIES)}; print(r.__version__)"]
    if python.exists():
        done = subprocess.run(probe, capture_output=True, text=True, check=False)
        if done.returncode == 0 and done.stdout.startswith(f"{version}."):
            return venv / "bin"
    LAB.mkdir(exist_ok=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"ansible-core=={version}.*",
                    *FILTER_DEPENDENCIES], check=True, timeout=900)
    done = subprocess.run(probe, capture_output=True, text=True, check=True)
    assert done.stdout.startswith(f"{version}."), done.stdout
    return venv / "bin"


@dataclass
class Installed:
    version: str
    bin: Path
    collections: Path  # the temporary collections path: <it>/ansible_collections/ood_mt/multitenant
    home: Path  # a scratch dir: cwd of every command, and its ansible.cfg (empty)
    tarball: Path

    @property
    def root(self) -> Path:
        return self.collections / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]

    def env(self) -> dict[str, str]:
        """The caller's environment without any Ansible setting; only the temporary collections path."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        env.update(ANSIBLE_CONFIG=str(self.home / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(self.collections),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PATH=f"{self.bin}:{env.get('PATH', '')}")
        return env

    def run(self, *argv: str, cwd: Path | None = None, timeout: int = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.bin / argv[0]), *argv[1:]], cwd=cwd or self.home,
                              env={**self.env(), **(env or {})}, capture_output=True, text=True, timeout=timeout,
                              check=False)


def build_and_install(version: str, scratch: Path) -> Installed:
    home = scratch / "home"
    home.mkdir(parents=True)
    (home / "ansible.cfg").write_text("[defaults]\n")
    installed = Installed(version, ansible_core(version), scratch / "collections", home, Path())
    built = installed.run("ansible-galaxy", "collection", "build", str(REPO), "--output-path", str(scratch / "dist"))
    assert built.returncode == 0, built.stdout + built.stderr
    installed.tarball = scratch / "dist" / f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
    done = installed.run("ansible-galaxy", "collection", "install", str(installed.tarball), "-p",
                         str(installed.collections))
    assert done.returncode == 0, done.stdout + done.stderr
    assert installed.root.is_dir() and not installed.root.is_symlink()
    return installed


@pytest.fixture(scope="module", params=[SUPPORTED[0], "dev", SUPPORTED[1]],
                ids=lambda v: f"ansible-core-{v}")
def installed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    yield build_and_install(request.param, tmp_path_factory.mktemp(f"collection-{request.param}"))


# ------------------------------------------------------------------ the artefact and the installed copy


def test_the_artefact_holds_the_ansible_content_only(installed: Installed) -> None:
    with tarfile.open(installed.tarball) as tar:
        names = {name.rstrip("/") for name in tar.getnames()}
    tops = {name.split("/")[0] for name in names}
    assert tops == {"MANIFEST.json", "FILES.json", "README.md", "CHANGELOG.md", "docs", "inventories", "meta",
                    "playbooks", "plugins", "roles", "tests"}
    assert {n for n in names if n.startswith("tests/")} == {
        "tests/config.yml", "tests/sanity", *(f"tests/sanity/ignore-2.{minor}.txt" for minor in range(16, 20))}
    assert {n.split("/")[1] for n in names if n.startswith("inventories/")} == {"example"}
    assert {f"plugins/modules/{m}.py" for m in MODULES} <= names and "meta/runtime.yml" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert installed.tarball.stat().st_size < 250_000


def test_ansible_doc_shows_every_module(installed: Installed) -> None:
    # One ansible-doc for all modules (one interpreter start instead of one per module); its
    # output is cut at each module's header, which names the module's file in the installed copy.
    done = installed.run("ansible-doc", *(f"{FQCN}.{module}" for module in MODULES))
    assert done.returncode == 0, done.stdout + done.stderr
    starts = [done.stdout.find(f"{installed.root}/plugins/modules/{module}.py") for module in MODULES]
    assert -1 not in starts and starts == sorted(starts), done.stdout
    for module, start, end in zip(MODULES, starts, [*starts[1:], len(done.stdout)]):
        page = done.stdout[start:end]
        assert f"{FQCN}.{module}" in page, f"{module}: {page}"
        assert "EXAMPLES" in page and "RETURN VALUES" in page, f"{module}: {page}"
    listed = installed.run("ansible-doc", "--list", FQCN)
    assert listed.returncode == 0, listed.stderr
    assert {f"{FQCN}.{m}" for m in MODULES} <= set(re.findall(r"^(\S+)", listed.stdout, re.M))


def test_ansible_doc_shows_every_filter(installed: Installed) -> None:
    assert FILTERS == ["ood_mt_group_key", "ood_mt_site_problems"]
    for name in FILTERS:
        done = installed.run("ansible-doc", "-t", "filter", f"{FQCN}.{name}")
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"{FQCN}.{name}" in done.stdout and "EXAMPLES" in done.stdout, done.stdout


def test_every_playbook_passes_syntax_check(installed: Installed) -> None:
    inventory = installed.root / "inventories" / "example" / "hosts.yml"
    # One ansible-playbook checks them all (it names each playbook it checked; a failing one fails it).
    done = installed.run("ansible-playbook", *(f"{FQCN}.{playbook}" for playbook in PLAYBOOKS), "--syntax-check",
                         "-i", str(inventory))
    assert done.returncode == 0, done.stdout + done.stderr
    for playbook in PLAYBOOKS:
        assert f"playbook: {installed.root}/playbooks/{playbook}.yml" in done.stdout, done.stdout


# slurm.conf after the play's first task; the bundle/install tasks then copy exactly this.
EDITED_CONF = "ClusterName=test\nAccountingStorageEnforce=associations,wckeys\n"


def test_the_modules_run_from_the_installed_collection(installed: Installed) -> None:
    """Each module runs (sacctmgr_wckey as far as it can without Slurm: past its module_utils imports)."""
    conf = installed.home / "slurm.conf"
    conf.write_text("ClusterName=test\nAccountingStorageEnforce=associations\n")
    play = installed.home / "modules.yml"
    play.write_text(yaml.safe_dump([{
        "name": "Modules", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"ansible_python_interpreter": str(installed.bin / "python")},
        "tasks": [
            {"name": "Enforce WCKeys", f"{FQCN}.slurm_conf_param": {
                "path": str(conf), "key": "AccountingStorageEnforce", "members": ["wckeys"]}, "register": "edit"},
            {"name": "Plan an empty install", f"{FQCN}.ood_mt_install_plan": {
                "apps": [], "files": [], "state_file": str(installed.home / "none.json")}, "register": "plan"},
            {"name": "Bundle a file", f"{FQCN}.ood_mt_bundle": {
                "dest": str(installed.home / "b.tar"), "base": str(installed.home), "names": ["slurm.conf"]},
             "register": "bundle"},
            {"name": "Install it", f"{FQCN}.ood_mt_install_files": {
                "archive": str(installed.home / "b.tar"), "files": [{
                    "src": "slurm.conf", "dest": str(installed.home / "copy.conf"), "owner": "root",
                    "group": "root", "mode": "0600",
                    "sha256": hashlib.sha256(EDITED_CONF.encode()).hexdigest()}]},
             "register": "installed"},
            {"name": "Onboard without Slurm", f"{FQCN}.sacctmgr_wckey": {
                "wckey": "multitenant", "users": ["alice"], "cluster": "test",
                "sacctmgr_path": "/nonexistent/sacctmgr"}, "register": "onboard", "ignore_errors": True},
            {"name": "Check", "ansible.builtin.assert": {"that": [
                "edit.changed and edit.current == 'associations,wckeys'",
                "not plan.changed and not plan.pending",
                "bundle.changed and bundle.sha256 | length == 64",
                "installed.changed and installed.installed | length == 1",
                "onboard.failed and 'cannot run /nonexistent/sacctmgr' in onboard.msg"]}},
        ]}]))
    done = installed.run("ansible-playbook", "-i", "localhost,", str(play))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "AccountingStorageEnforce=associations,wckeys" in conf.read_text()
    assert (installed.home / "copy.conf").read_text() == conf.read_text() == EDITED_CONF


def test_the_filters_and_the_site_check_run_from_the_installed_collection(installed: Installed) -> None:
    """The filters get the site variable as each ansible-core passes it (2.19 tags its values) and
    answer as `ood-mt validate` and ood_mt.keys do; role ood_mt_site includes by FQCN."""
    from ood_mt.keys import derive_group_key

    site = REPO / "inventories" / "lab" / "group_vars" / "all" / "multitenant.yml"
    play = installed.home / "filters.yml"
    play.write_text(yaml.safe_dump([{
        "name": "Filters", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [
            {"name": "Check the site", "ansible.builtin.include_role": {"name": f"{FQCN}.ood_mt_site"},
             "vars": {"ood_mt_site_keys": ["site", "keys", "tenant_groups"]}},
            {"name": "Derive a key", "ansible.builtin.set_fact": {
                "key": f"{{{{ '{'ab' * 32}' | {FQCN}.ood_mt_group_key('cs101', 2) }}}}",
                "problems": f"{{{{ multitenant | combine({{'tenant_groups': ['bad group!']}}) "
                            f"| {FQCN}.ood_mt_site_problems(['tenant_groups']) }}}}"}},
            {"name": "Show", "ansible.builtin.debug": {"msg": "key={{ key }} problems={{ problems | to_json }}"}},
        ]}]))
    done = installed.run("ansible-playbook", "-i", "localhost,", str(play), "-e", f"@{site}",
                         env={"PYTHONPATH": str(REPO / "src")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"key={derive_group_key(bytes.fromhex('ab' * 32), 'cs101', 2).hex()} " in done.stdout
    assert "tenant_groups[0]: is not a valid POSIX group name (got 'bad group!')" in done.stdout


# ------------------------------------------------------------------ ansible-test sanity


def offline_pip_bootstrap(ansible_bin: Path) -> None:
    """Put get_pip_offline.py where ansible-test looks for its pip bootstrap script, for each pip
    version this ansible-test pins; a script that is there already and not ours is left alone."""
    python = ansible_bin / "python"
    code = "import ansible_test, os; print(os.path.dirname(ansible_test.__file__))"
    where = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    pins = set(re.findall(r"pip='(\d[\d.]*)'", (Path(where) / "_internal" / "python_requirements.py").read_text()))
    assert pins, "ansible-test pins no pip version: has its bootstrap changed?"
    cache = Path.home() / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    ours = SHIM.read_text()
    marker = ours.splitlines()[0]
    for pin in pins:
        path = cache / f"get_pip_{pin.replace('.', '_')}.py"
        if not path.exists() or (path.read_text().splitlines()[:1] == [marker] and path.read_text() != ours):
            path.write_text(ours)


@pytest.mark.lint
@pytest.mark.parametrize("version", SUPPORTED, ids=lambda v: f"ansible-core-{v}")
def test_ansible_test_sanity_passes(version: str, tmp_path: Path) -> None:
    """Every sanity test of this ansible-core that applies to the collection (docs/testing.md), on
    the installed artefact with the host's Python; tests/sanity/ignore-*.txt says why for each entry."""
    installed = build_and_install(version, tmp_path)
    offline_pip_bootstrap(installed.bin)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    done = installed.run("ansible-test", "sanity", "--python", python, "--requirements", "--local", "--color", "no",
                         cwd=installed.root, timeout=SANITY_TIMEOUT_S)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-20000:]
    ran = re.findall(r'^Running sanity test "([\w-]+)"', output, re.M)
    assert {"validate-modules", "ansible-doc", "import", "compile", "pylint", "pep8", "yamllint"} <= set(ran), ran
