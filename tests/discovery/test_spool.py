"""ood_mt.spool without Slurm: routing, the files' owners and modes, freshness, refusals."""

from __future__ import annotations

import grp
import os
import pwd
import stat
import subprocess
import time
from pathlib import Path

import pytest

from ood_mt import shares, spool
from tests.discovery.spool_fixtures import fresh_spool, identity, share_row, site, write_heartbeat
from tests.initializer.test_shares_unit import squeue_row

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the spool writer chowns files (root)")


def _records(data: bytes) -> list[str]:
    return [job.jobid for job in shares.parse_squeue(data)]


def test_route_by_audience_drops_foreign_wckeys_and_foreign_user_audiences(tmp_path: Path) -> None:
    listing = (share_row("10", "mtpub", "mtclass")
               + share_row("11", "mtpub", "mtclass", wckey="*MultiTenant")  # default WCKey, any case
               + share_row("12", "mtpub", "mtclass", wckey="other")
               + share_row("13", "mtpub", "~mtpub")
               + share_row("14", "mtpub", "~mtrecv")  # ~user of someone else than the owner
               + share_row("15", "mtpub", "notatenant")
               + squeue_row("16", "mtpub", "multitenant", "mt1:not-a-token")
               + squeue_row("17", "mtpub", "multitenant", "plain job"))
    routing = spool.route(site(tmp_path), listing)
    assert {g: _records(b"".join(r)) for g, r in routing.groups.items()} == {"mtclass": ["10", "11"]}
    assert {u: _records(b"".join(r)) for u, r in routing.users.items()} == {"mtpub": ["13"]}


def test_routed_records_are_the_raw_squeue_bytes(tmp_path: Path) -> None:
    row = share_row("21", "mtpub", "mtclass")
    listing = squeue_row("20", "mallory", "*", "x") + row
    assert spool.route(site(tmp_path), listing).files() == {"group/mtclass.listing": row}


def test_hostile_names_and_comments_cannot_forge_a_record(tmp_path: Path) -> None:
    """A record holding another record in its name or comment is routed (or dropped) as the one
    record it is; the spool routes by the cleartext audience only: readers verify the rest."""
    forged = share_row("999", "mtpub", "mtclass")
    hostile = squeue_row("31", "mallory", "multitenant", "mt1:mtclass:1:" + "A" * 100, forged.decode()[:1000])
    listing = (squeue_row("30", "mallory", "a|b\nc", "x\n" + forged.decode()[:900])
               + hostile + share_row("32", "mtpub", "mtclass"))
    files = spool.route(site(tmp_path), listing).files()
    assert files == {"group/mtclass.listing": hostile + share_row("32", "mtpub", "mtclass")}
    assert _records(files["group/mtclass.listing"]) == ["31", "32"]


def test_a_misaligned_listing_routes_nothing(tmp_path: Path) -> None:
    with pytest.raises(shares.DiscoveryError):
        spool.route(site(tmp_path), b"slurm_load_jobs error\n" + share_row("40", "mtpub", "mtclass"))


def test_dotted_or_pattern_audiences(tmp_path: Path) -> None:
    by_pattern = site(tmp_path, tenant_groups=[], tenant_group_pattern="mt.*")
    routing = spool.route(by_pattern, share_row("41", "mtpub", "mtclass") + share_row("42", "mtpub", "other"))
    assert list(routing.groups) == ["mtclass"]


def test_a_file_holds_at_most_the_contract_limit_newest_kept(tmp_path: Path) -> None:
    assert spool.record_limit() == 500
    listing = b"".join(share_row(str(50 + i), "mtpub", "mtclass", start=f"2026-01-31T09:00:{i:02d}")
                       for i in range(5))
    routing = spool.route(site(tmp_path), listing, limit=3)
    assert _records(routing.files()["group/mtclass.listing"]) == ["52", "53", "54"]
    assert routing.notes == ["group/mtclass.listing: 5 shares, kept the 3 newest by start time "
                             "(limits.spool_records)"]


@needs_root
def test_files_owners_modes_and_heartbeat(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    report = fresh_spool(spool_dir, share_row("60", "mtpub", "mtclass") + share_row("61", "mtpub", "~mtpub"),
                         interval=7, now=1_800_000_000)
    assert sorted(report.written) == ["group/mtclass.listing", "user/mtpub.listing"]
    want = {
        "": (0, 0, 0o755, stat.S_IFDIR), "group": (0, 0, 0o755, stat.S_IFDIR), "user": (0, 0, 0o755, stat.S_IFDIR),
        "group/mtclass.listing": (0, grp.getgrnam("mtclass").gr_gid, 0o640, stat.S_IFREG),
        "user/mtpub.listing": (pwd.getpwnam("mtpub").pw_uid, pwd.getpwnam("mtpub").pw_gid, 0o400, stat.S_IFREG),
        "heartbeat": (0, 0, 0o644, stat.S_IFREG),
    }
    for rel, (uid, gid, mode, kind) in want.items():
        st = os.lstat(spool_dir / rel)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), stat.S_IFMT(st.st_mode)) == (uid, gid, mode, kind), rel
    assert (spool_dir / "heartbeat").read_text() == '{"format": 1, "written": 1800000000, "interval": 7}\n'
    assert sorted(p.name for p in spool_dir.rglob("*") if p.name.startswith(".") and p.name != ".lock") == []


@needs_root
def test_unchanged_bytes_keep_the_file_and_changes_replace_it_atomically(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    listing = share_row("70", "mtpub", "mtclass")
    fresh_spool(spool_dir, listing)
    path = spool_dir / "group" / "mtclass.listing"
    os.utime(path, ns=(1, 1))
    before = os.stat(path)
    report = fresh_spool(spool_dir, listing)
    assert (report.written, report.unchanged) == ([], 1)
    assert os.stat(path).st_mtime_ns == 1 and os.stat(path).st_ino == before.st_ino
    report = fresh_spool(spool_dir, listing + share_row("71", "mtpub", "mtclass"))
    assert report.written == ["group/mtclass.listing"]
    assert os.stat(path).st_ino != before.st_ino, "a changed file is a new file renamed into place"
    assert _records(path.read_bytes()) == ["70", "71"]


@needs_root
def test_files_of_audiences_without_shares_are_removed(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    fresh_spool(spool_dir, share_row("80", "mtpub", "mtclass") + share_row("81", "mtpub", "~mtpub"))
    (spool_dir / "group" / ".stray.tmp").write_bytes(b"left by a crash")
    report = fresh_spool(spool_dir, b"")
    assert sorted(report.removed) == ["group/mtclass.listing", "user/mtpub.listing"]
    assert sorted(os.listdir(spool_dir / "group")) == [] and os.listdir(spool_dir / "user") == []


@needs_root
@pytest.mark.parametrize("how", ["symlink", "not root-owned", "subdir symlink"])
def test_an_unsafe_spool_dir_is_refused(tmp_path: Path, how: str) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o755)
    spool_dir = tmp_path / "spool"
    if how == "symlink":
        spool_dir.symlink_to(real)
    elif how == "not root-owned":
        spool_dir.mkdir()
        os.chown(spool_dir, pwd.getpwnam("mtout").pw_uid, 0)
    else:
        spool_dir.mkdir()
        (spool_dir / "group").symlink_to(real)
    with pytest.raises(spool.SpoolError, match=r"symlink|not root"):
        fresh_spool(spool_dir, share_row("90", "mtpub", "mtclass"))
    assert list(real.iterdir()) == []


@needs_root
def test_the_reader_gets_its_groups_and_its_own_file_only(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    fresh_spool(spool_dir, share_row("100", "mtpub", "mtclass") + share_row("101", "mtpub", "~mtpub"))
    the_site = site(spool_dir)
    assert [j.jobid for j in spool.read(the_site, identity("mtpub")).jobs or []] == ["100", "101"]
    assert [j.jobid for j in spool.read(the_site, identity("mtrecv")).jobs or []] == ["100"]
    assert spool.read(the_site, identity("mtout")).jobs == [], "fresh spool, no file: no shares"


@needs_root
def test_an_outsider_cannot_read_the_group_file(open_tmp: Path) -> None:
    spool_dir = open_tmp / "spool"
    fresh_spool(spool_dir, share_row("110", "mtpub", "mtclass") + share_row("111", "mtpub", "~mtpub"))
    for user, rel, readable in (("mtout", "group/mtclass.listing", False), ("mtrecv", "group/mtclass.listing", True),
                                ("mtrecv", "user/mtpub.listing", False), ("mtpub", "user/mtpub.listing", True)):
        done = subprocess.run(["/usr/sbin/runuser", "-u", user, "--", "cat", str(spool_dir / rel)], capture_output=True,
                              check=False)
        assert (done.returncode == 0) is readable, (user, rel, done.stderr)


@needs_root
@pytest.mark.parametrize("beat", [None, "not json", {"format": 2, "written": 0, "interval": 10},
                                  {"format": 1, "written": "x", "interval": 10},
                                  {"format": 1, "written": 1000, "interval": 0}])
def test_a_missing_or_bad_heartbeat_means_fall_back(tmp_path: Path, beat: object) -> None:
    spool_dir = tmp_path / "spool"
    fresh_spool(spool_dir, share_row("120", "mtpub", "mtclass"))
    if beat is None:
        (spool_dir / "heartbeat").unlink()
    else:
        write_heartbeat(spool_dir, beat)
    got = spool.read(site(spool_dir), identity("mtrecv"), now=1000)
    assert got.jobs is None and "heartbeat" in got.reason


@needs_root
@pytest.mark.parametrize(("age", "fresh"), [(0, True), (29, True), (30, False), (3600, False), (-10, True),
                                            (-11, False)])
def test_freshness_is_three_intervals_and_not_from_the_future(tmp_path: Path, age: int, fresh: bool) -> None:
    spool_dir = tmp_path / "spool"
    fresh_spool(spool_dir, share_row("130", "mtpub", "mtclass"), interval=10, now=1_800_000_000)
    got = spool.read(site(spool_dir), identity("mtrecv"), now=1_800_000_000 + age)
    assert (got.jobs is not None) is fresh, got.reason


@needs_root
def test_unchanged_is_a_few_stats(tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    the_site, me = site(spool_dir), identity("mtrecv")
    now = time.time()
    fresh_spool(spool_dir, share_row("140", "mtpub", "mtclass"), now=now)
    seen = spool.signature(the_site, me)
    fresh_spool(spool_dir, share_row("140", "mtpub", "mtclass"), now=now)
    assert spool.unchanged(the_site, me, seen, now=now), "heartbeat rewritten, listing bytes the same"
    fresh_spool(spool_dir, share_row("141", "mtpub", "mtclass"), now=now)
    assert not spool.unchanged(the_site, me, seen, now=now)
    assert not spool.unchanged(the_site, me, spool.signature(the_site, me), now=now + 3600), "stale"
