"""The bundle the OOD and CLI roles copy in one piece (plugins/module_utils/ood_mt_file_bundle.py):
made byte-identical from identical contents, installed atomically with owner and mode, refused
when it does not match the manifest, and never written in check mode."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from ansible_collections.ood_mt.multitenant.plugins.module_utils import ood_mt_file_bundle as bundle


def _files(base: Path, contents: dict[str, bytes]) -> None:
    for name, data in contents.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_bytes(data)


def _entry(src: str, dest: Path, data: bytes, mode: str = "0640") -> dict:
    return {"src": src, "dest": str(dest), "owner": "root", "group": "root", "mode": mode,
            "sha256": hashlib.sha256(data).hexdigest()}


def test_the_bundle_is_the_same_bytes_for_the_same_contents(tmp_path: Path) -> None:
    _files(tmp_path / "b", {"apps/a/x.sh": b"echo x\n", "initializer/i.rb": b"# i\n"})
    bundle.make_bundle(str(tmp_path / "one.tar"), str(tmp_path / "b"), ["initializer/i.rb", "apps/a/x.sh"])
    os.utime(tmp_path / "b/apps/a/x.sh", (1, 1))  # a rebuild touches the files
    bundle.make_bundle(str(tmp_path / "two.tar"), str(tmp_path / "b"), ["apps/a/x.sh", "initializer/i.rb"])
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    (tmp_path / "b/apps/a/x.sh").write_bytes(b"echo y\n")
    bundle.make_bundle(str(tmp_path / "three.tar"), str(tmp_path / "b"), ["apps/a/x.sh", "initializer/i.rb"])
    assert (tmp_path / "three.tar").read_bytes() != (tmp_path / "one.tar").read_bytes()


def test_a_link_is_not_bundled(tmp_path: Path) -> None:
    _files(tmp_path, {"real": b"x"})
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(bundle.BundleError, match="not a regular file"):
        bundle.make_bundle(str(tmp_path / "o.tar"), str(tmp_path), ["link"])


def test_install_writes_owner_mode_and_content_and_dirs_first(tmp_path: Path) -> None:
    _files(tmp_path / "b", {"apps/a/x.sh": b"echo x\n"})
    bundle.make_bundle(str(tmp_path / "o.tar"), str(tmp_path / "b"), ["apps/a/x.sh"])
    dest = tmp_path / "host/apps/a/x.sh"
    result = bundle.install(str(tmp_path / "o.tar"),
                            [{"path": str(dest.parent), "owner": "root", "group": "root", "mode": "0750"}],
                            [_entry("apps/a/x.sh", dest, b"echo x\n", "0755")], check=False, want_diff=True)
    assert dest.read_bytes() == b"echo x\n"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    assert stat.S_IMODE(dest.parent.stat().st_mode) == 0o750
    assert result["changed"] and result["installed"] == [str(dest)]
    assert result["diff"][0]["after"] == "echo x\n" and result["diff"][0]["before"] == ""
    assert [p.name for p in dest.parent.iterdir()] == ["x.sh"]  # no temporary file left


def test_check_mode_writes_nothing_and_tolerates_a_missing_bundle(tmp_path: Path) -> None:
    dest = tmp_path / "host/x"
    result = bundle.install(str(tmp_path / "absent.tar"), [], [_entry("x", dest, b"new\n")], check=True,
                            want_diff=True)
    assert result["changed"] and not dest.exists()
    assert "not shown" in result["diff"][0]["after"]


def test_a_member_that_does_not_match_the_manifest_is_refused(tmp_path: Path) -> None:
    _files(tmp_path / "b", {"x": b"old\n"})
    bundle.make_bundle(str(tmp_path / "o.tar"), str(tmp_path / "b"), ["x"])
    dest = tmp_path / "host/x"
    dest.parent.mkdir()
    dest.write_bytes(b"kept\n")
    with pytest.raises(bundle.BundleError, match="does not match the manifest's sha256"):
        bundle.install(str(tmp_path / "o.tar"), [], [_entry("x", dest, b"new\n")], check=False, want_diff=False)
    assert dest.read_bytes() == b"kept\n"
    # check mode: an older bundle is what the copy before it replaces; report, do not fail
    assert bundle.install(str(tmp_path / "o.tar"), [], [_entry("x", dest, b"new\n")], check=True,
                          want_diff=False)["changed"]


def test_a_link_member_and_a_missing_member_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "o.tar"
    with tarfile.open(archive, "w:") as tar:
        info = tarfile.TarInfo("x")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/shadow"
        tar.addfile(info)
        data = tarfile.TarInfo("y")
        data.size = 1
        tar.addfile(data, io.BytesIO(b"y"))
    with pytest.raises(bundle.BundleError, match="not a regular file"):
        bundle.read_members(str(archive), ["x"])
    with pytest.raises(bundle.BundleError, match="lacks z"):
        bundle.read_members(str(archive), ["y", "z"])
