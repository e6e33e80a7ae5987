"""Make and install tar bundles of files: the pure part of modules ood_mt_bundle and ood_mt_install_files.

Why a bundle: copying a build's ~90 files one `ansible.builtin.copy` at a time costs one
module run per file (minutes over a slow connection); the roles copy ONE archive and this
code installs the files from it in one module run. No Ansible here. Imported as
`ansible_collections.ood_mt.multitenant.plugins.module_utils.ood_mt_file_bundle`.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import io
import os
import pwd
import stat
import tarfile
import tempfile
from typing import Any, Dict, List, Optional

# Text diffs are offered for files up to this size; bigger or binary files are named only.
DIFF_MAX_BYTES = 64 * 1024


class BundleError(Exception):
    """The bundle or an entry cannot be used; the message names it and the fix."""


def owner_ids(owner: str, group: str, where: str) -> tuple[int, int]:
    """(uid, gid) of OWNER and GROUP on this host; BundleError naming WHERE and the fix."""
    try:
        uid = pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise BundleError(f"{where}: owner {owner!r} does not exist on this host") from None
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise BundleError(f"{where}: group {group!r} does not exist on this host; create it "
                          "(multitenant.publisher_group / clients_group in the site file)") from None
    return uid, gid


def read_members(archive: str, names: List[str]) -> Optional[Dict[str, bytes]]:
    """The bytes of each named regular-file member; None when the archive is not there
    (check mode before the first copy). Links, devices and missing members are refused."""
    if not names:
        return {}
    if not os.path.exists(archive):
        return None
    wanted = set(names)
    found: Dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:") as tar:
            for member in tar:
                name = member.name[2:] if member.name.startswith("./") else member.name
                if name not in wanted:
                    continue
                if not member.isreg():
                    raise BundleError(f"{archive}: member {name} is not a regular file; rebuild the bundle")
                handle = tar.extractfile(member)
                if handle is None:
                    raise BundleError(f"{archive}: member {name} cannot be read; rebuild the bundle")
                found[name] = handle.read()
    except (OSError, tarfile.TarError) as exc:
        raise BundleError(f"{archive}: cannot be read as a tar archive ({exc}); run the role again "
                          "(it copies the bundle before installing)") from None
    missing = sorted(wanted - set(found))
    if missing:
        raise BundleError(f"{archive}: lacks {', '.join(missing[:5])}; the build and its bundle differ, "
                          "rebuild with `ood-mt build` and run the role again")
    return found


def _text(data: Optional[bytes]) -> Optional[str]:
    if data is None or len(data) > DIFF_MAX_BYTES:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _current(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as handle:
            return handle.read(DIFF_MAX_BYTES + 1)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return None


def _write_atomically(path: str, data: bytes, uid: int, gid: int, mode: int) -> None:
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".ood-mt-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchown(handle.fileno(), uid, gid)
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _fix_dir(path: str, uid: int, gid: int, mode: int) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        # missing parents as `file state=directory` makes them: root, 0755 (umask applies)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        os.mkdir(path, mode)
        st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise BundleError(f"{path}: exists and is not a directory; remove it and run the role again")
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def install(archive: str, dirs: List[Dict[str, Any]], files: List[Dict[str, Any]], check: bool,
            want_diff: bool) -> Dict[str, Any]:
    """Create/fix DIRS (in order) and install FILES from ARCHIVE (member = the entry's src),
    each written to a temporary file beside its destination and renamed into place with its
    owner, group and mode. Every member must hash to the entry's sha256. In check mode
    nothing is written. Returns {changed, dirs, installed, diff}."""
    for entry in dirs:
        owner_ids(entry["owner"], entry["group"], f"directory {entry['path']}")
    resolved = [(owner_ids(e["owner"], e["group"], f"file {e['dest']}"), e) for e in files]
    members = read_members(archive, [e["src"] for e in files])
    if members is not None:
        for entry in files:
            if hashlib.sha256(members[entry["src"]]).hexdigest() != entry["sha256"]:
                if check:
                    members = None  # an older bundle on the host: the copy before this would replace it
                    break
                raise BundleError(f"{archive}: {entry['src']} does not match the manifest's sha256; the build "
                                  "and its bundle differ, rebuild with `ood-mt build` and run the role again")
    diffs: List[Dict[str, str]] = []
    if want_diff:
        for _ids_of_entry, entry in resolved:
            after = _text(members[entry["src"]]) if members is not None else None
            before = _text(_current(entry["dest"]))
            diffs.append({"before_header": entry["dest"], "after_header": entry["dest"],
                          "before": before if before is not None else "",
                          "after": after if after is not None else
                          f"(new content: {entry['sha256'][:12]}, not shown)\n"})
    if not check:
        for entry in dirs:
            uid, gid = owner_ids(entry["owner"], entry["group"], f"directory {entry['path']}")
            _fix_dir(entry["path"], uid, gid, int(entry["mode"], 8))
        if members is None:
            raise BundleError(f"{archive}: missing on this host; the role copies it first, run the role again")
        for (uid, gid), entry in resolved:
            _write_atomically(entry["dest"], members[entry["src"]], uid, gid, int(entry["mode"], 8))
    return {"changed": bool(dirs or files), "dirs": [d["path"] for d in dirs],
            "installed": [e["dest"] for e in files], "diff": diffs}


def make_bundle(out: str, base: str, names: List[str]) -> None:
    """Write OUT: a tar of BASE/<name> for each name, byte for byte the same for the same
    contents (sorted, mtime 0, owner root, mode 0644), so copying it again changes nothing.
    Runs on the controller (module ood_mt_bundle, delegated to localhost)."""
    tmp = out + ".tmp"
    with tarfile.open(tmp, "w:", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(set(names)):
            path = os.path.join(base, name)
            if os.path.islink(path) or not os.path.isfile(path):
                raise BundleError(f"{path}: not a regular file; rebuild it")
            with open(path, "rb") as handle:
                data = handle.read()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, out)
