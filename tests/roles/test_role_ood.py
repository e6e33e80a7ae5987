"""Real runs of role ood_mt_ood on localhost, with every destination inside a temp dir."""

from __future__ import annotations

import grp
import hashlib
import json
import stat
from pathlib import Path

import pytest
import yaml

from tests.apps.app_render import lab_doc
from tests.roles.ansible_runner import Run, run, tool


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class OodLab:
    """A build dir with a small manifest made from real files (a stand-in for `ood-mt build`)."""

    def __init__(self, root: Path, groups: list[str]) -> None:
        self.root = root
        self.publisher = groups[0]
        self.apps_dir = root / "host/var/www/ood/apps/sys"
        self.dash_dir = root / "host/etc/ood/config/apps/dashboard"
        self.state_file = root / "host/etc/ood-mt/installed-apps.json"
        self.build = root / "build"
        self.clusters_dir = root / "clusters.d"
        self.clusters_dir.mkdir(parents=True)
        (self.clusters_dir / "t.yml").write_text("---\nv2:\n  metadata:\n    title: T\n  job:\n    adapter: slurm\n")
        self.playbook = root / "play.yml"
        self.playbook.write_text(yaml.safe_dump([{
            "name": "OOD role under test", "hosts": "localhost", "connection": "local",
            "gather_facts": False, "roles": ["ood_mt.multitenant.ood_mt_ood"]}]))

    def write_build(self, apps: dict[str, tuple[str, dict[str, str]]], card_cluster: str = "t") -> None:
        """apps: name -> (role, {relative path: content})."""
        (self.build / "etc").mkdir(parents=True, exist_ok=True)
        (self.build / "etc/site.json").write_text(json.dumps({"cluster": "t", "card_cluster": card_cluster}))
        manifest: dict = {"format": 1, "site": "t", "apps": [], "files": []}
        for name, (role, files) in sorted(apps.items()):
            gated = role == "service"
            group = self.publisher if gated else "root"
            dest = self.apps_dir / name
            manifest["apps"].append({"name": name, "role": role, "group": group,
                                     "dir_mode": "0750" if gated else "0755", "dest": str(dest)})
            for rel, content in sorted(files.items()):
                src = self.build / "apps" / name / rel
                src.parent.mkdir(parents=True, exist_ok=True)
                src.write_text(content)
                manifest["files"].append({"src": f"apps/{name}/{rel}", "dest": str(dest / rel), "owner": "root",
                                          "group": group, "mode": "0640" if gated else "0644",
                                          "sha256": sha256(src)})
        init = self.build / "initializer/ood_multitenant.rb"
        init.parent.mkdir(parents=True, exist_ok=True)
        init.write_text("# initializer stand-in\nMULTITENANT_SITE = 't'\n")
        manifest["initializer"] = {"src": "initializer/ood_multitenant.rb",
                                   "dest": str(self.dash_dir / "initializers/ood_multitenant.rb"),
                                   "owner": "root", "group": "root", "mode": "0644", "sha256": sha256(init)}
        (self.build / "manifest.json").write_text(json.dumps(manifest, sort_keys=True, indent=1))

    def play(self, check: bool = False, enable: bool = True, site: dict | None = None,
             role_vars: dict | None = None) -> Run:
        """Run the role; SITE adds keys to the site variable, ROLE_VARS sets role variables."""
        extra = {"multitenant": {"site": "t", "paths": {"dashboard_config_dir": str(self.dash_dir),
                                                        "ood_apps_dir": str(self.apps_dir)}, **(site or {})},
                 "ood_mt_ood_build_dir": str(self.build), "ood_mt_ood_state_file": str(self.state_file),
                 "ood_mt_ood_bundle_file": str(self.root / "host/var/lib/ood-mt/bundle.tar"),
                 "ood_mt_ood_clusters_dir": str(self.clusters_dir),
                 "ood_mt_ood_enable": enable, **(role_vars or {})}
        argv = [tool("ansible-playbook"), "-i", "localhost,", str(self.playbook), "-e", json.dumps(extra), "--diff"]
        if check:
            argv.append("--check")
        return run(argv)


APPS = {
    "mt_database": ("service", {"form.yml.erb": "---\ntitle: DB\n", "template/script.sh.erb": "#!/bin/bash\n"}),
    "mt_jupyter": ("client", {"form.yml.erb": "---\ntitle: Jupyter\n"}),
    "mt_delivery_debug": ("delivery", {"view.html.erb": "<p>debug</p>\n"}),
}


@pytest.fixture()
def lab(tmp_path: Path, temp_groups: list[str]) -> OodLab:
    lab = OodLab(tmp_path, temp_groups)
    lab.write_build(APPS)
    return lab


def owner_mode(path: Path) -> tuple[int, str, int]:
    st = path.stat()
    return st.st_uid, grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode)


def test_install_modes_env_idempotence_and_removal(lab: OodLab) -> None:
    lab.dash_dir.mkdir(parents=True)
    env = lab.dash_dir / "env"
    env.write_text("# site settings\nOOD_DASHBOARD_TITLE=Lab\nMULTITENANT_ENABLE=true\n")

    first = lab.play()
    assert first.rc == 0, first.output
    db = lab.apps_dir / "mt_database"
    assert owner_mode(db) == (0, lab.publisher, 0o750)
    assert owner_mode(db / "template") == (0, lab.publisher, 0o750)
    assert owner_mode(db / "template/script.sh.erb") == (0, lab.publisher, 0o640)
    assert owner_mode(lab.apps_dir / "mt_jupyter") == (0, "root", 0o755)
    assert owner_mode(lab.apps_dir / "mt_jupyter/form.yml.erb") == (0, "root", 0o644)
    init = lab.dash_dir / "initializers/ood_multitenant.rb"
    assert init.read_text() == (lab.build / "initializer/ood_multitenant.rb").read_text()
    assert owner_mode(init) == (0, "root", 0o644)
    assert env.read_text() == "# site settings\nOOD_DASHBOARD_TITLE=Lab\nMULTITENANT_ENABLE=true\n"
    # the kit was switched off while files changed, then on again
    assert "MULTITENANT_ENABLE=false" in first.stdout
    record = json.loads(lab.state_file.read_text())
    assert sorted(a["name"] for a in record["apps"]) == sorted(APPS)

    second = lab.play()
    assert second.rc == 0, second.output
    assert second.recap()["changed"] == 0, second.stdout

    # drop an app and a file, and leave something the role does not manage next to the apps
    foreign = lab.apps_dir / "not_ours"
    foreign.mkdir()
    smaller = dict(APPS)
    del smaller["mt_delivery_debug"]
    smaller["mt_database"] = ("service", {"form.yml.erb": "---\ntitle: DB v2\n"})
    lab.write_build(smaller)
    third = lab.play()
    assert third.rc == 0, third.output
    assert not (lab.apps_dir / "mt_delivery_debug").exists()
    assert not (db / "template").exists()
    assert (db / "form.yml.erb").read_text() == "---\ntitle: DB v2\n"
    assert foreign.is_dir()
    assert lab.play().recap()["changed"] == 0


def test_env_file_created_and_kept_off(lab: OodLab) -> None:
    result = lab.play(enable=False)
    assert result.rc == 0, result.output
    env = lab.dash_dir / "env"
    assert env.read_text() == "MULTITENANT_ENABLE=false\n"
    assert owner_mode(env) == (0, "root", 0o644)


@pytest.mark.parametrize("clean", [False, True])
def test_puns_are_cleaned_after_a_change_only_when_asked(lab: OodLab, clean: bool) -> None:
    """ood_mt_ood_clean_puns gates the handler. nginx_stage is a test double here (OOD's
    nginx_stage cannot run without a PUN setup): a script that records its arguments."""
    calls = lab.root / "nginx_stage.calls"
    double = lab.root / "nginx_stage_test_double"
    double.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    double.chmod(0o755)
    first = lab.play(role_vars={"ood_mt_ood_clean_puns": clean, "ood_mt_ood_nginx_stage": str(double)})
    assert first.rc == 0, first.output
    assert (calls.read_text().splitlines() if calls.exists() else []) == (["nginx_clean"] if clean else [])
    again = lab.play(role_vars={"ood_mt_ood_clean_puns": clean, "ood_mt_ood_nginx_stage": str(double)})
    assert again.rc == 0 and again.recap()["changed"] == 0, again.output
    assert (calls.read_text().splitlines() if calls.exists() else []) == (["nginx_clean"] if clean else [])


def test_check_mode_changes_nothing(lab: OodLab) -> None:
    result = lab.play(check=True)
    assert result.rc == 0, result.output
    assert result.recap()["changed"] > 0
    assert not (lab.root / "host").exists()


def test_bad_manifest_is_refused_before_any_change(lab: OodLab) -> None:
    manifest = json.loads((lab.build / "manifest.json").read_text())
    manifest["format"] = 2
    (lab.build / "manifest.json").write_text(json.dumps(manifest))
    result = lab.play()
    assert result.rc != 0
    assert "manifest.json is not a format-1 manifest" in result.stdout
    assert not (lab.root / "host").exists()


def test_a_site_cluster_without_its_clusters_d_file_is_refused_before_any_change(lab: OodLab) -> None:
    (lab.clusters_dir / "t.yml").unlink()
    result = lab.play()
    assert result.rc != 0
    assert f"has no {lab.clusters_dir}/t.yml" in result.stdout
    assert "must name one of OOD's clusters.d files" in result.stdout
    assert not (lab.root / "host").exists()


def test_the_kits_cluster_entry_adds_the_shim_hides_itself_and_keeps_the_site_cluster(lab: OodLab) -> None:
    """discovery.card_cluster (PrivateData=jobs): cards name the kit's entry, which is the site's
    cluster file plus the squeue shim for OOD's status check, hidden from OOD's menus."""
    lab.write_build({"mt_x": ("client", {"manifest.yml": "name: x\n"})}, card_cluster="t_mt")
    first = lab.play(role_vars={"ood_mt_ood_squeue_shim": "/opt/ood-mt/venv/bin/ood-mt-squeue"})
    assert first.rc == 0, first.output
    entry = yaml.safe_load((lab.clusters_dir / "t_mt.yml").read_text())
    assert entry["v2"]["job"] == {"adapter": "slurm", "bin_overrides": {"squeue": "/opt/ood-mt/venv/bin/ood-mt-squeue"}}
    assert entry["v2"]["metadata"] == {"title": "T (shared sessions)", "hidden": True}
    assert (lab.clusters_dir / "t_mt.yml").read_text().startswith("# Written by role ood_mt_ood")
    assert yaml.safe_load((lab.clusters_dir / "t.yml").read_text())["v2"]["metadata"] == {"title": "T"}
    again = lab.play(role_vars={"ood_mt_ood_squeue_shim": "/opt/ood-mt/venv/bin/ood-mt-squeue"})
    assert again.rc == 0 and again.recap()["changed"] == 0, again.output


@pytest.mark.skipif(not (Path(tool("ood-mt")).exists()), reason="needs the ood-mt CLI (pip install -e .)")
def test_real_build_installs_and_is_idempotent(tmp_path: Path, temp_groups: list[str]) -> None:
    """`ood-mt build` output from the lab site file, with its paths pointed into tmp."""
    site = lab_doc()  # the lab's site-local app at its absolute path
    lab = OodLab(tmp_path, temp_groups)
    site["multitenant"]["site"] = "t"
    (lab.clusters_dir / f"{site['multitenant']['cluster']}.yml").write_text("---\nv2:\n  job:\n    adapter: slurm\n")
    site["multitenant"]["publisher_group"] = lab.publisher
    site["multitenant"]["tenant_groups"] = [temp_groups[1]]
    site["multitenant"]["paths"] = {"ood_apps_dir": str(lab.apps_dir), "dashboard_config_dir": str(lab.dash_dir)}
    site_file = tmp_path / "site.yml"
    site_file.write_text(yaml.safe_dump(site))
    built = run([tool("ood-mt"), "build", "--site", str(site_file), "--out", str(lab.build)])
    assert built.rc == 0, built.output
    manifest = json.loads((lab.build / "manifest.json").read_text())

    first = lab.play()
    assert first.rc == 0, first.output
    for app in manifest["apps"]:
        assert owner_mode(Path(app["dest"])) == (0, app["group"], int(app["dir_mode"], 8))
    for entry in [*manifest["files"], manifest["initializer"]]:
        dest = Path(entry["dest"])
        assert sha256(dest) == entry["sha256"]
        assert owner_mode(dest) == (0, entry["group"], int(entry["mode"], 8))
    second = lab.play()
    assert second.rc == 0, second.output
    assert second.recap()["changed"] == 0, second.stdout


WEB_ORIGIN = {"web_apps_origin": "https://ood-apps.example-usercontent.org"}


def web_apps_vars(lab: OodLab, **overrides: object) -> dict:
    return {"ood_mt_ood_web_apps_conf": str(lab.root / "host/etc/httpd/conf.d/ood-mt-web-apps.conf"),
            "ood_mt_ood_web_apps_auth_directives": ["AuthType openid-connect", "Require valid-user"],
            "ood_mt_ood_web_apps_host_regex": r"c[0-9]+\.cluster\.example\.org",
            "ood_mt_ood_web_apps_reload": False, **overrides}


def test_web_apps_vhost_installed_idempotent_and_removed(lab: OodLab) -> None:
    conf = lab.root / "host/etc/httpd/conf.d/ood-mt-web-apps.conf"
    conf.parent.mkdir(parents=True)
    first = lab.play(site=WEB_ORIGIN, role_vars=web_apps_vars(lab))
    assert first.rc == 0, first.output
    text = conf.read_text()
    assert "ServerName ood-apps.example-usercontent.org" in text
    assert "    Require valid-user" in text and r"^/rnode/(c[0-9]+\.cluster\.example\.org)/" in text
    assert "/pun" not in text.replace("no /pun", "")
    assert owner_mode(conf) == (0, "root", 0o644)
    assert lab.play(site=WEB_ORIGIN, role_vars=web_apps_vars(lab)).recap()["changed"] == 0
    # The site drops web_apps_origin: the proxy goes with it.
    gone = lab.play(role_vars=web_apps_vars(lab))
    assert gone.rc == 0, gone.output
    assert not conf.exists()


@pytest.mark.parametrize("bad", [
    {"ood_mt_ood_web_apps_auth_directives": []},
    {"ood_mt_ood_web_apps_host_regex": ""},
    {"ood_mt_ood_web_apps_host_regex": "[a-z]+"},  # would reach localhost: an open door to the OOD host
])
def test_web_apps_vhost_refused_without_auth_or_safe_hosts(lab: OodLab, bad: dict) -> None:
    result = lab.play(site=WEB_ORIGIN, role_vars=web_apps_vars(lab, **bad))
    assert result.rc != 0
    assert "Shared web apps on their own origin" in result.stdout, result.stdout
    assert not (lab.root / "host").exists()
