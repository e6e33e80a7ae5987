"""Real runs of role ood_mt_keys on localhost, with every path in a temp dir.

Key material is derived independently here (HMAC per docs/architecture.md "Keys") and
compared with the installed files; the ansible output must never contain it.
"""

from __future__ import annotations

import grp
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from pathlib import Path

import pytest
import yaml

from tests.roles.ansible_runner import Run, run, tool


def expected_key(master_hex: str, group: str, version: int) -> str:
    msg = f"ood-mt/1 group-key\n{group}\n{version}".encode()
    return hmac.new(bytes.fromhex(master_hex), msg, hashlib.sha256).hexdigest()


class KeysLab:
    """A temp world for the role: site vars, master secret, build dir, key dir."""

    def __init__(self, root: Path, groups: list[str]) -> None:
        self.root = root
        self.groups = groups
        self.key_dir = root / "hosts/etc/ood-mt/keys"
        self.site_json_dest = root / "hosts/etc/ood-mt/site.json"
        self.master_file = root / "controller/master.secret"
        self.build = root / "build"
        (self.build / "etc").mkdir(parents=True)
        (self.build / "etc/site.json").write_text(json.dumps({"site": "t", "wckey": "multitenant"}) + "\n")
        (self.build / "manifest.json").write_text(json.dumps(
            {"format": 1, "site": "t", "apps": [], "files": []}))
        self.playbook = root / "play.yml"
        self.playbook.write_text(yaml.safe_dump([{
            "name": "Keys role under test", "hosts": "localhost", "connection": "local",
            "gather_facts": False, "roles": ["ood_mt.multitenant.ood_mt_keys"]}]))

    def vars_file(self, version: int, generate: bool) -> Path:
        path = self.root / f"vars-{version}.yml"
        path.write_text(yaml.safe_dump({
            "multitenant": {
                "site": "t", "tenant_groups": [self.groups[0]],
                # the second group is found through the pattern, as getent lists it
                "tenant_group_pattern": f"{self.groups[1][:-1]}[1-9]",
                "keys": {"dir": str(self.key_dir), "current_version": version,
                         "master_secret_file": str(self.master_file),
                         "generate_master_if_missing": generate}},
            "ood_mt_keys_build_dir": str(self.build),
            "ood_mt_keys_site_config_dest": str(self.site_json_dest)}))
        return path

    def play(self, version: int, generate: bool = True, check: bool = False) -> Run:
        argv = [tool("ansible-playbook"), "-i", "localhost,", str(self.playbook), "-e",
                f"@{self.vars_file(version, generate)}", "--diff", "-v"]
        if check:
            argv.append("--check")
        return run(argv)


@pytest.fixture()
def lab(tmp_path: Path, temp_groups: list[str]) -> KeysLab:
    return KeysLab(tmp_path, temp_groups)


def assert_layout(lab: KeysLab, master: str, versions: list[int], current: int) -> None:
    assert stat.S_IMODE(lab.key_dir.stat().st_mode) == 0o755
    for group in lab.groups:
        gid = grp.getgrnam(group).gr_gid
        gdir = lab.key_dir / group
        st = gdir.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, gid, 0o750)
        names = sorted(p.name for p in gdir.iterdir())
        assert names == sorted(["current"] + [f"v{v}.key" for v in versions])
        for name in names:
            fst = (gdir / name).stat()
            assert (fst.st_uid, fst.st_gid, stat.S_IMODE(fst.st_mode)) == (0, gid, 0o440), name
        assert (gdir / "current").read_text() == f"{current}\n"
        for version in versions:
            assert (gdir / f"v{version}.key").read_text() == expected_key(master, group, version) + "\n"


def test_generate_install_rotate_and_never_log_keys(lab: KeysLab) -> None:
    first = lab.play(1)
    assert first.rc == 0, first.output
    master = lab.master_file.read_text().strip()
    assert stat.S_IMODE(lab.master_file.stat().st_mode) == 0o600
    assert re.fullmatch("[0-9a-f]{64}", master), "the generated master secret is not 64 lower-case hex digits"
    assert_layout(lab, master, [1], 1)
    assert lab.site_json_dest.read_text() == (lab.build / "etc/site.json").read_text()
    assert stat.S_IMODE(lab.site_json_dest.stat().st_mode) == 0o644
    assert "key v1 installed" in first.stdout

    again = lab.play(1)
    assert again.rc == 0, again.output
    assert again.recap()["changed"] == 0, again.stdout

    outputs = [first, again]
    for version in (2, 3):
        rotated = lab.play(version)
        assert rotated.rc == 0, rotated.output
        outputs.append(rotated)
    assert_layout(lab, master, [2, 3], 3)

    secrets_seen = [master] + [expected_key(master, g, v) for g in lab.groups for v in (1, 2, 3)]
    for result in outputs:
        for secret in secrets_seen:
            assert secret not in result.output


def test_check_mode_changes_nothing(lab: KeysLab) -> None:
    lab.master_file.parent.mkdir(parents=True)
    lab.master_file.write_text(secrets.token_hex(32) + "\n")
    os.chmod(lab.master_file, 0o600)
    result = lab.play(1, check=True)
    assert result.rc == 0, result.output
    assert not lab.key_dir.exists()
    assert not lab.site_json_dest.exists()


def test_missing_master_without_generation_fails_clearly(lab: KeysLab) -> None:
    result = lab.play(1, generate=False)
    assert result.rc != 0
    assert f"{lab.master_file} does not exist" in result.stdout
    assert "openssl rand -hex 32" in result.stdout
    assert not lab.key_dir.exists()


def test_group_readable_master_is_refused(lab: KeysLab) -> None:
    lab.master_file.parent.mkdir(parents=True)
    lab.master_file.write_text(secrets.token_hex(32) + "\n")
    os.chmod(lab.master_file, 0o640)
    result = lab.play(1)
    assert result.rc != 0
    assert "chmod 600" in result.stdout
