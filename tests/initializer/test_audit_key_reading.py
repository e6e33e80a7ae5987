"""`ood-mt audit` reads users' own keys as root: only private regular files of that user
(finding 6 of the hostile-publisher review: a symlink to /dev/zero or a FIFO in place of
~/.ood-mt/user.key made audit hang or exhaust memory)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ood_mt import keys

KEY = "ab" * 32 + "\n"


def _home(tmp_path: Path) -> Path:
    own = tmp_path / ".ood-mt"
    own.mkdir(mode=0o700)
    return tmp_path


def test_a_private_key_file_is_read(tmp_path: Path) -> None:
    home = _home(tmp_path)
    (home / ".ood-mt" / "user.key").write_text(KEY)
    (home / ".ood-mt" / "user.key").chmod(0o600)
    assert keys.read_user_key_of(home, os.geteuid()) == bytes.fromhex("ab" * 32)


@pytest.mark.parametrize("kind", ["symlink to /dev/zero", "fifo", "huge file", "group readable", "other owner"])
def test_anything_else_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    home = _home(tmp_path)
    path = home / ".ood-mt" / "user.key"
    uid = os.geteuid()
    if kind == "symlink to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "huge file":
        path.write_text(KEY * 10_000)
        path.chmod(0o600)
    elif kind == "group readable":
        path.write_text(KEY)
        path.chmod(0o640)
    else:
        path.write_text(KEY)
        path.chmod(0o600)
        uid += 1
    result: list[BaseException] = []
    reader = threading.Thread(target=lambda: _capture(result, home, uid), daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), f"{kind}: reading the key hung"
    assert result and isinstance(result[0], keys.KeyFileError), f"{kind}: {result}"


def _capture(result: list[BaseException], home: Path, uid: int) -> None:
    try:
        keys.read_user_key_of(home, uid)
    except BaseException as exc:
        result.append(exc)
