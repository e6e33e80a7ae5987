"""Key derivation and the key-file layout (docs/architecture.md, "Keys").

Group keys live in ``<key_dir>/<group>/`` (``current`` + ``v<n>.key``), readable only
by members of the group; per-user keys in ``~/.ood-mt/user.key``. Errors name the
file and the fix, because the people who see them are users and admins, not us.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ood_mt.codec import KEY_LEN, Rejected

_KEY_TEXT_RE = re.compile(r"[0-9a-f]{64}\n?", re.ASCII)
_VERSION_RE = re.compile(r"[1-9][0-9]{0,8}\n?", re.ASCII)
USER_KEY_DIR = ".ood-mt"
USER_KEY_FILE = "user.key"
USER_KEY_VERSION = 1


class KeyFileError(Exception):
    """A key file is missing, unreadable, malformed or unsafe; the message names path and fix."""


def derive_group_key(master: bytes, group: str, version: int) -> bytes:
    """G = HMAC-SHA256(master, "ood-mt/1 group-key\\n" + group + "\\n" + str(version))."""
    if len(master) != KEY_LEN:
        raise ValueError(f"master secret must be {KEY_LEN} bytes, got {len(master)}")
    if not group or "\n" in group:
        raise ValueError("group name must be non-empty and without newlines")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"key version must be an integer >= 1, got {version!r}")
    msg = f"ood-mt/1 group-key\n{group}\n{version}".encode()
    return hmac.new(master, msg, hashlib.sha256).digest()


@dataclass(frozen=True)
class GroupKeys:
    """The keys of one group a receiver may use: ``current`` and, if present, ``current - 1``."""

    group: str
    current: int
    keys: dict[int, bytes] = field(repr=False)

    def key_for(self, version: int) -> bytes:
        """The key for a token's version, or Rejected('key-version-retired')."""
        if version in self.keys:
            return self.keys[version]
        raise Rejected(
            "key-version-retired",
            f"group {self.group}: version {version}, accepted {sorted(self.keys)}",
        )


def _read_text(path: Path, group: str, key_dir: Path) -> str:
    try:
        return path.read_text(encoding="ascii")
    except FileNotFoundError as exc:
        raise KeyFileError(
            f"{path}: missing; you are not in group {group} or keys are not installed at {key_dir} "
            "(fix: run the ood_mt_keys role for this group)"
        ) from exc
    except PermissionError as exc:
        raise KeyFileError(
            f"{path}: not readable; you are not in group {group} or keys are not installed at {key_dir} "
            "(fix: add the user to the group, or re-run the ood_mt_keys role to fix ownership)"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot be read ({exc}); fix: re-run the ood_mt_keys role") from exc


def _parse_key(text: str, path: Path) -> bytes:
    if not _KEY_TEXT_RE.fullmatch(text):
        raise KeyFileError(
            f"{path}: malformed; expected 64 lowercase hex characters and a newline "
            "(fix: re-run the ood_mt_keys role, or recreate the file)"
        )
    return bytes.fromhex(text.strip())


def read_group_keys(key_dir: Path, group: str) -> GroupKeys:
    """Read ``current`` and the keys of versions current and current-1 (the latter if present)."""
    if not group or "/" in group or group in (".", ".."):
        raise KeyFileError(f"{group!r} is not a valid group name for {key_dir}")
    group_dir = Path(key_dir) / group
    current_path = group_dir / "current"
    text = _read_text(current_path, group, Path(key_dir))
    if not _VERSION_RE.fullmatch(text):
        raise KeyFileError(
            f"{current_path}: malformed; expected a positive decimal version and a newline "
            "(fix: re-run the ood_mt_keys role)"
        )
    current = int(text)
    keys = {
        current: _parse_key(
            _read_text(group_dir / f"v{current}.key", group, Path(key_dir)), group_dir / f"v{current}.key"
        )
    }
    previous = group_dir / f"v{current - 1}.key"
    if current > 1 and previous.exists():
        keys[current - 1] = _parse_key(_read_text(previous, group, Path(key_dir)), previous)
    return GroupKeys(group=group, current=current, keys=keys)


def user_key_path(home: Path) -> Path:
    return Path(home) / USER_KEY_DIR / USER_KEY_FILE


def read_user_key_of(home: Path, uid: int) -> bytes:
    """Another user's key, read by root for `ood-mt audit`: only a regular file (never a
    symlink, FIFO or device: opened with O_NOFOLLOW|O_NONBLOCK, checked with fstat) owned
    by UID in a directory owned by UID, private, at most 65 bytes read. KeyFileError else."""
    path = user_key_path(home)
    try:
        parent = path.parent.lstat()
        if not stat.S_ISDIR(parent.st_mode) or parent.st_uid != uid:
            raise KeyFileError(f"{path.parent}: not a directory of uid {uid}")
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        raise KeyFileError(f"{path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != uid or info.st_mode & 0o077:
            raise KeyFileError(f"{path}: not a private regular file of uid {uid}")
        data = os.read(fd, 66)
    finally:
        os.close(fd)
    text = data.decode("ascii", "replace")
    if not _KEY_TEXT_RE.fullmatch(text):
        raise KeyFileError(f"{path}: malformed (expected 64 hex characters)")
    return bytes.fromhex(text[:64])


def _check_private(path: Path, want_dir: bool) -> None:
    info = path.lstat()
    kind_ok = stat.S_ISDIR(info.st_mode) if want_dir else stat.S_ISREG(info.st_mode)
    if not kind_ok:
        raise KeyFileError(f"{path}: not a {'directory' if want_dir else 'regular file'}; fix: remove it")
    if info.st_uid != os.geteuid():
        raise KeyFileError(f"{path}: owned by uid {info.st_uid}, not you; fix: remove it")
    if info.st_mode & 0o077:
        mode = "700" if want_dir else "600"
        raise KeyFileError(
            f"{path}: group/world accessible (mode {stat.S_IMODE(info.st_mode):o}); "
            f"fix: chmod {mode} {path} (and consider the key exposed: delete it to get a new one)"
        )


def _read_user_key(path: Path) -> bytes:
    _check_private(path, want_dir=False)
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot be read ({exc})") from exc
    return _parse_key(text, path)


def load_or_create_user_key(home: Path) -> bytes:
    """The user's own key, created on first use: dir 0700, file 0600, create-if-absent atomically.

    The new key is written to a temp file and hard-linked to its final name: link fails
    when another process (the job or the dashboard) won the race, and then its key is used.
    """
    path = user_key_path(home)
    key_dir = path.parent
    with contextlib.suppress(FileExistsError):
        key_dir.mkdir(mode=0o700)
    _check_private(key_dir, want_dir=True)
    if path.exists() or path.is_symlink():
        return _read_user_key(path)
    tmp = key_dir / f".user.key.{os.getpid()}.{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(os.urandom(KEY_LEN).hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise KeyFileError(f"{path}: cannot be created ({exc})") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return _read_user_key(path)
