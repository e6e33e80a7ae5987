"""The discovery listing's Python parser (ood_mt.shares.parse_squeue, which the spool and the
CLI use) and the spool's routing, on `squeue -O <the share contract's listing>` as EVERY Slurm
version the labs run printed it (tests/fixtures/slurm/<version>/). The initializer's Ruby
parser reads the same files in slurm_fixtures_test.rb."""

from __future__ import annotations

import pytest

from ood_mt import shares, spool
from tests.fixtures.slurm import versions
from tests.initializer.test_shares_unit import SITE

pytestmark = pytest.mark.parametrize("version", versions.VERSIONS)


def test_listing_format_is_the_contracts(version: str) -> None:
    assert versions.manifest(version)["listing_format"] == shares.SQUEUE_FORMAT, \
        f"{version}: fixtures captured with another listing format: rerun tests/fixtures/slurm/capture.py"


def test_running_listing_keeps_the_share_jobs_whole(version: str) -> None:
    data = versions.output(version, "squeue_listing_running.txt")
    jobs = {j.jobid: j for j in shares.parse_squeue(data)}
    long_job, short_job = versions.job(version, "share_long"), versions.job(version, "share_short")
    assert versions.job(version, "plain")["id"] not in jobs, "a name without mt1: is no share candidate"
    got = jobs[long_job["id"]]
    assert got.name == "mt1:" + "L" * 1019, "the 1023-byte name is read whole"
    assert (got.owner, got.wckey, got.comment) == ("mtpub", "multitenant", "a comment | with bar")
    assert got.start_time is not None and got.start_time > 0
    assert got.record in data
    assert (jobs[short_job["id"]].name, jobs[short_job["id"]].comment) == ("mt1:short", ""), "(null) is no comment"


def test_one_job_listings(version: str) -> None:
    (running,) = shares.parse_squeue(versions.output(version, "squeue_listing_job.txt"))
    assert running.jobid == versions.job(version, "share_long")["id"]
    (held,) = shares.parse_squeue(versions.output(version, "squeue_listing_held.txt"))
    assert (held.jobid, held.name) == (versions.job(version, "held_share")["id"], "mt1:held")


def test_spool_reads_the_wckey_as_this_slurm_prints_it(version: str) -> None:
    """The capture's names are no tokens, so the spool keeps none of them; but it must get past
    the WCKey check (squeue's spelling of the site's WCKey) to the token check."""
    site = shares.SiteSummary.from_dict({**SITE, "wckey": versions.manifest(version)["wckey"]}, "test")
    listing = versions.output(version, "squeue_listing_running.txt")
    assert spool.route(site, listing).files() == {}
    reasons = {job.jobid: spool.audience_of(site, job)[1] for job in shares.parse_squeue(listing)}
    assert len(reasons) == 2 and "wrong-wckey" not in reasons.values(), reasons
