"""`ood-mt discovery serve/status` and `ood-mt list/show/inspect` reading the spool, with squeue doubles."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ood_mt import cli, shares, spool
from tests.discovery.spool_fixtures import fresh_spool, identity, share_row
from tests.initializer.test_shares_unit import SITE

REPO = Path(__file__).resolve().parents[2]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the spool writer chowns files (root)")


def squeue_double(tmp: Path, listing: bytes | None, calls: Path) -> Path:
    """A squeue that logs each call to CALLS and prints LISTING (None: fails as Slurm does when down)."""
    data = tmp / "listing.bin"
    if listing is not None:
        data.write_bytes(listing)
    script = tmp / "squeue"
    body = f'cat "{data}"' if listing is not None else \
        'echo "slurm_load_jobs error: Unable to contact slurm controller" >&2; exit 1'
    script.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\n{body}\n')
    script.chmod(0o755)
    return script


def site_json(tmp: Path, spool_dir: Path, squeue: Path) -> Path:
    path = tmp / "site.json"
    path.write_text(json.dumps({**SITE, "spool_dir": str(spool_dir), "squeue": str(squeue),
                                "key_dir": str(tmp / "no-keys")}))
    return path


def _calls(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@needs_root
def test_serve_once_writes_the_spool_from_one_squeue(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    squeue = squeue_double(tmp_path, share_row("10", "mtpub", "mtclass") + share_row("11", "mtpub", "~mtpub"), calls)
    sj = site_json(tmp_path, tmp_path / "spool", squeue)
    done = CliRunner().invoke(cli.main, ["discovery", "serve", "--once", "--site-json", str(sj)])
    assert done.exit_code == 0, done.output
    assert _calls(calls) == [" ".join(shares.squeue_argv("x")[1:])]
    assert sorted(str(p.relative_to(tmp_path / "spool")) for p in (tmp_path / "spool").rglob("*.listing")) == [
        "group/mtclass.listing", "user/mtpub.listing"]
    status = CliRunner().invoke(cli.main, ["discovery", "status", "--site-json", str(sj)])
    assert status.exit_code == 0 and "fresh" in status.output and "group/mtclass.listing  1 records" in status.output


@needs_root
def test_serve_once_keeps_the_old_heartbeat_when_slurm_fails(tmp_path: Path) -> None:
    fresh_spool(tmp_path / "spool", share_row("20", "mtpub", "mtclass"), now=1_000_000)
    before = (tmp_path / "spool" / "heartbeat").read_bytes()
    sj = site_json(tmp_path, tmp_path / "spool", squeue_double(tmp_path, None, tmp_path / "calls"))
    done = CliRunner().invoke(cli.main, ["discovery", "serve", "--once", "--site-json", str(sj)])
    assert done.exit_code == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Unable to contact slurm controller" in lines[0] and "not updated" in lines[0]
    assert (tmp_path / "spool" / "heartbeat").read_bytes() == before
    status = CliRunner().invoke(cli.main, ["discovery", "status", "--site-json", str(sj)])
    assert status.exit_code == 1 and "STALE" in status.output


def test_serve_refuses_to_run_as_a_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    sj = site_json(tmp_path, tmp_path / "spool", squeue_double(tmp_path, b"", tmp_path / "calls"))
    done = CliRunner().invoke(cli.main, ["discovery", "serve", "--once", "--site-json", str(sj)])
    assert done.exit_code == 2 and "must run as root" in done.stderr
    assert not (tmp_path / "spool").exists() and not (tmp_path / "calls").exists()


@needs_root
def test_serve_refuses_a_symlinked_spool_dir(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "spool").symlink_to(tmp_path / "real")
    sj = site_json(tmp_path, tmp_path / "spool", squeue_double(tmp_path, b"", tmp_path / "calls"))
    done = CliRunner().invoke(cli.main, ["discovery", "serve", "--once", "--site-json", str(sj)])
    assert done.exit_code == 2 and "is a symlink" in done.stderr
    assert list((tmp_path / "real").iterdir()) == []


@needs_root
def test_serve_loops_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    sj = site_json(tmp_path, tmp_path / "spool", squeue_double(tmp_path, share_row("30", "mtpub", "mtclass"), calls))
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"}
    proc = subprocess.Popen([sys.executable, "-m", "ood_mt.cli", "discovery", "serve", "--interval", "0.2",
                             "--site-json", str(sj)], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while len(_calls(calls)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert len(_calls(calls)) >= 3 and err.strip().endswith("ood-mt discovery: stopped")
    assert err.count("wrote group/mtclass.listing") == 1, "written once, then unchanged"


@needs_root
def test_list_reads_a_fresh_spool_and_never_calls_squeue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_spool(tmp_path / "spool", share_row("40", "mtpub", "mtclass"))
    calls = tmp_path / "calls"
    sj = site_json(tmp_path, tmp_path / "spool", squeue_double(tmp_path, None, calls))
    monkeypatch.setattr(shares.Identity, "current", classmethod(lambda cls: identity("mtrecv")))
    for argv, says in ((["list", "-v"], "ood-mt: job 40: rejected: no-key"),
                       (["show", "40"], "ood-mt: job 40: rejected: no-key"),
                       (["inspect", "mt1:x", "--job-id", "40", "--owner", "mtpub"],
                        "wckey                  ok    multitenant is the site WCKey")):
        # No key directory here: the job came from the spool and was verified (and rejected) as from squeue.
        done = CliRunner().invoke(cli.main, [*argv, "--site-json", str(sj)])
        assert says in done.stderr + done.output, (argv, done.output, done.stderr)
        assert "asking Slurm" not in done.stderr
    assert _calls(calls) == []


@needs_root
def test_a_stale_spool_falls_back_to_squeue_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh_spool(tmp_path / "spool", share_row("50", "mtpub", "mtclass"), now=1_000_000)
    calls = tmp_path / "calls"
    sj = site_json(tmp_path, tmp_path / "spool", squeue_double(tmp_path, share_row("51", "mtpub", "mtclass"), calls))
    monkeypatch.setattr(shares.Identity, "current", classmethod(lambda cls: identity("mtrecv")))
    done = CliRunner().invoke(cli.main, ["list", "-v", "--site-json", str(sj)])
    lines = done.stderr.splitlines()
    assert lines[0].startswith("ood-mt list: discovery spool not used (heartbeat in ") and "asking Slurm" in lines[0]
    assert [line for line in lines if "asking Slurm" in line] == [lines[0]]
    assert "job 51: rejected" in done.stderr and "job 50" not in done.stderr
    assert len(_calls(calls)) == 1
    done = CliRunner().invoke(cli.main, ["show", "51", "--site-json", str(sj)])
    assert done.stderr.count("asking Slurm") == 1 and len(_calls(calls)) == 3  # show: the job, then the running


@needs_root
def test_squeue_option_queries_slurm_directly(tmp_path: Path) -> None:
    fresh_spool(tmp_path / "spool", share_row("60", "mtpub", "mtclass"))
    calls = tmp_path / "calls"
    sj = site_json(tmp_path, tmp_path / "spool", squeue_double(tmp_path, None, tmp_path / "unused"))
    (tmp_path / "direct").mkdir()
    direct = squeue_double(tmp_path / "direct", b"", calls)
    done = CliRunner().invoke(cli.main, ["list", "--site-json", str(sj), "--squeue", str(direct)])
    assert done.exit_code == 0 and done.stderr == "" and len(_calls(calls)) == 1
    assert spool.read(shares.load_site_summary(sj), identity("mtrecv")).jobs, "the spool was fresh all along"
