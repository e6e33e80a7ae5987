"""The squeue shim (ood_mt.squeue_shim) prints ood_core's status query as squeue prints it: its
layout and the header titles of the fields it fills, checked against the real squeue of EVERY
Slurm version the labs run (tests/fixtures/slurm/<version>/squeue_ood_core*.txt, captured with
ood_core's own field list by tests/fixtures/slurm/capture.py)."""

from __future__ import annotations

import pytest

from ood_mt import squeue_shim
from tests.discovery.test_squeue_shim import FIELDS
from tests.fixtures.slurm import versions

pytestmark = pytest.mark.parametrize("version", versions.VERSIONS)
RS, US = squeue_shim.RECORD_SEPARATOR, squeue_shim.UNIT_SEPARATOR


def rows(text: str) -> list[list[str]]:
    assert text.startswith(RS), f"squeue output does not start with the record separator: {text[:40]!r}"
    return [record.rstrip("\n").split(US) for record in text[1:].split(RS)]


def test_the_shims_titles_are_this_slurms(version: str) -> None:
    header, *jobs = rows(versions.text(version, "squeue_ood_core.txt"))
    letters = [f[1] for f in FIELDS]
    assert len(header) == len(letters) and all(len(job) == len(letters) for job in jobs), version
    real = dict(zip(letters, header))
    wrong = {k: (v, real[k]) for k, v in squeue_shim._TITLES.items() if real[k] != v}
    assert not wrong, f"Slurm {version} titles differ from the shim's (shim, real): {wrong}"


def test_the_cluster_line_is_this_slurms(version: str) -> None:
    text = versions.text(version, "squeue_ood_core_cluster.txt")
    first, rest = text.split("\n", 1)
    assert first == f"CLUSTER: {versions.manifest(version)['cluster']}", first
    assert rest == versions.text(version, "squeue_ood_core.txt") or rows(rest)[0] == rows(
        versions.text(version, "squeue_ood_core.txt"))[0]


def test_a_running_jobs_values_parse_as_the_shim_prints_them(version: str) -> None:
    _header, *jobs = rows(versions.text(version, "squeue_ood_core.txt"))
    letters = [f[1] for f in FIELDS]
    wanted = versions.job(version, "share_long")["id"]
    running = next(dict(zip(letters, j)) for j in jobs if j[letters.index("A")] == wanted)
    assert (running["t"], running["T"], running["u"], running["w"]) == ("R", "RUNNING", "mtpub", "multitenant")
    assert running["k"] == "a comment | with bar"
    assert len(running["S"]) == 19 and running["S"][10] == "T", running["S"]
