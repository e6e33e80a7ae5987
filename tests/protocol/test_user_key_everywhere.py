"""The per-user key ("my user only") is created by whichever side needs it first: the job
(bash, mt_publish.sh), the dashboard (Ruby, initializer keys.rb) or the CLI (Python,
ood_mt.keys). The rule cannot live in one language, so this test pins the three copies
together: each creates ~/.ood-mt (0700) and user.key (0600, 64 hex + newline), and the
other two read exactly the key it made; none replaces a key that is already there.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from ood_mt import keys
from ood_mt.app_templates import service_library_text
from ood_mt.render import INITIALIZER_LIBS, INITIALIZER_SRC

RUBY = """
ARGV[1].split(",").each { |lib| require File.join(ARGV[0], lib) }
print MultiTenant::KeyStore.new(key_dir: "/nonexistent", home: ARGV[2]).user_key.unpack1("H*")
"""
BASH = """
set -eu
source "$1"
HOME="$2"
mt_user_key
printf '%s' "$MT_KEY_HEX"
"""


def _argv(side: str, home: Path, library: Path) -> list[str]:
    """The command that loads (or creates) HOME's user key with the bash or Ruby copy."""
    if side == "ruby":
        return ["ruby", "-W0", "-e", RUBY, str(INITIALIZER_SRC / "lib"), ",".join(INITIALIZER_LIBS), str(home)]
    return ["bash", "-c", BASH, "user-key", str(library), str(home)]


def create_with(side: str, home: Path, library: Path) -> str:
    if side == "python":
        return keys.load_or_create_user_key(home).hex()
    done = subprocess.run(_argv(side, home, library), capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{side}: {done.stderr}"
    return done.stdout.strip()


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lib") / "mt_share.sh"
    path.write_text(service_library_text())
    return path


@pytest.mark.parametrize("creator", ["bash", "ruby", "python"])
def test_each_side_creates_a_key_the_others_read(creator: str, tmp_path: Path, library: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    key = create_with(creator, home, library)
    assert len(key) == 64 and set(key) <= set("0123456789abcdef"), key
    key_dir, key_file = home / ".ood-mt", home / ".ood-mt" / "user.key"
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text() == key + "\n"
    assert sorted(p.name for p in key_dir.iterdir()) == ["user.key"], "a temp file was left behind"
    for reader in ("bash", "ruby", "python"):
        assert create_with(reader, home, library) == key, f"{reader} does not read the key {creator} made"
    assert key_file.read_text() == key + "\n"


@pytest.mark.parametrize("side", ["bash", "ruby", "python"])
def test_no_side_accepts_a_key_others_can_read(side: str, tmp_path: Path, library: Path) -> None:
    home = tmp_path / "home"
    (home / ".ood-mt").mkdir(parents=True, mode=0o700)
    key_file = home / ".ood-mt" / "user.key"
    key_file.write_text(os.urandom(32).hex() + "\n")
    key_file.chmod(0o644)
    if side == "python":
        with pytest.raises(keys.KeyFileError):
            keys.load_or_create_user_key(home)
        return
    done = subprocess.run(_argv(side, home, library), capture_output=True, text=True, check=False)
    assert done.returncode != 0, f"{side} used a key others can read"
