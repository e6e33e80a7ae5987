"""Fixtures shared by the role tests: temporary POSIX groups (the roles chown to them)."""

from __future__ import annotations

import grp
import os
import secrets
import subprocess
from collections.abc import Iterator

import pytest


@pytest.fixture()
def temp_groups() -> Iterator[list[str]]:
    """Two fresh POSIX groups, deleted afterwards (needs root)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create POSIX groups and chown files to them")
    names = [f"oodmtt{secrets.token_hex(3)}{i}" for i in range(2)]
    for name in names:
        subprocess.run(["groupadd", name], check=True)
    try:
        yield names
    finally:
        for name in names:
            try:
                grp.getgrnam(name)
            except KeyError:
                continue
            subprocess.run(["groupdel", name], check=False)
