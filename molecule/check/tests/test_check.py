"""Verify of the `check` scenario: `site.yml --check --diff` left every node exactly as the
snapshot taken just before it (files, owners, modes, hashes, Slurm WCKeys)."""

from __future__ import annotations

import difflib

import pytest
from labhosts import host


@pytest.mark.parametrize("node", ["slurm", "compute", "ood"])
def test_check_mode_changed_nothing(node: str) -> None:
    h = host(node)
    before = h.file("/var/tmp/ood-mt-before-check.txt")
    assert before.exists, "snapshot missing: the prepare step (shared/snapshot.yml) did not run"
    now = h.check_output("/var/tmp/ood-mt-lab-fingerprint")
    was = before.content_string.rstrip("\n")
    diff = "\n".join(difflib.unified_diff(was.splitlines(), now.splitlines(), "before", "after", lineterm=""))
    assert now == was, f"check mode changed {node}:\n{diff}"
