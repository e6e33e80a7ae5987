"""The onboarding module's parsers (plugins/module_utils/ood_mt_sacctmgr_parse.py) on the output
of EVERY Slurm version the labs run (tests/fixtures/slurm/<version>/, captured by
tests/fixtures/slurm/capture.py with the module's own argv builders): a parser change that
breaks either version fails here."""

from __future__ import annotations

import pytest
from ansible_collections.ood_mt.multitenant.plugins.module_utils import ood_mt_sacctmgr_parse as parse

from tests.fixtures.slurm import versions

pytestmark = pytest.mark.parametrize("version", versions.VERSIONS)
ONBOARDED = ["mtpub", "mtrecv", "mtrecv2"]
ASKED = ["mtpub", "mtout", "root", "ghost"]


def test_members_of_the_site_wckey(version: str) -> None:
    m = versions.manifest(version)
    members = parse.parse_members(versions.text(version, "list_wckey_name_multitenant.txt"), m["wckey"], m["cluster"])
    assert set(ONBOARDED) <= set(members), members
    assert "mtout" not in members


def test_members_of_an_unknown_cluster_are_none(version: str) -> None:
    assert parse.parse_members(versions.text(version, "list_wckey_empty.txt"), "multitenant", "nosuchcluster") == []


def test_wckeys_held_by_the_users_asked_for(version: str) -> None:
    counts = parse.parse_row_counts(versions.text(version, "list_wckey_users_count.txt"), ASKED)
    held = parse.wckeys_held(versions.text(version, "list_wckey_users_wckeys.txt"), ASKED, counts)
    assert "multitenant" in held["mtpub"], held
    assert "multitenant" not in held.get("mtout", []), held
    assert "ghost" not in held
    assert sum(counts.values()) == sum(len(v) for v in held.values())


def test_association_users(version: str) -> None:
    assert parse.parse_association_users(versions.text(version, "list_association_users.txt")) == {"mtpub", "mtrecv"}


def test_squeue_jobs_of_the_capture(version: str) -> None:
    jobs = {j.job_id: j for j in parse.parse_squeue_jobs(versions.text(version, "squeue_jobs.txt"))}
    for label, state in (("share_long", "RUNNING"), ("plain", "RUNNING"), ("held_share", "PENDING")):
        want = versions.job(version, label)
        got = jobs.get(want["id"])
        assert got is not None, f"job {want['id']} ({label}) not parsed from {version}/squeue_jobs.txt"
        assert (got.user, got.wckey, got.state) == (want["user"], "multitenant", state)
    array = versions.job(version, "held_array")["id"]
    assert array in jobs, "a pending array is listed under its base id"


def test_sacct_states_before_and_after_the_cancel(version: str) -> None:
    ids = [versions.job(version, k)["id"] for k in ("share_long", "share_short", "held_share")]
    before = parse.unrecorded_jobs(versions.text(version, "sacct_before_cancel.txt"), ids)
    assert before == ids, f"running and held jobs are not ended: {before}"
    assert parse.unrecorded_jobs(versions.text(version, "sacct_after_cancel.txt"), ids) == []


def test_unreachable_slurmdbd_is_recognised(version: str) -> None:
    entry = versions.manifest(version)["files"]["list_wckey_slurmdbd_down.txt"]
    assert entry["rc"] != 0
    stderr = (versions.HERE / version / entry["stderr_file"]).read_text()
    message = parse.unreachable_message(stderr, None)
    assert message is not None and "(port 6819)" in message, f"{version}: {stderr!r} -> {message!r}"
