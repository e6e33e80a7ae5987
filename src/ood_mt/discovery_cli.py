"""`ood-mt discovery serve | status`: the discovery service that writes the spool (docs/discovery.md).

Registered in the main CLI by ``ood_mt.cli``. The routing and the files are ``ood_mt.spool``'s.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Optional

import click

from ood_mt import shares, spool
from ood_mt.shares_cli import _fail, _load, _site_options


@click.group("discovery")
def discovery_group() -> None:
    """The discovery service and its spool (docs/discovery.md).

    One root service per OOD and login host runs ONE squeue per interval and writes, per
    audience, the share-like records receivers may read: group/<group>.listing
    (root:<group> 0640) and user/<user>.listing (the user's, 0400) under site.json's
    spool_dir, then a heartbeat. The dashboard and `ood-mt list/show/inspect` read those
    files instead of running squeue while the heartbeat is fresh (younger than 3
    intervals), and verify every share exactly as before.
    """


def _cycle(site: shares.SiteSummary, squeue: str, timeout: float, interval: float) -> bool:
    """One squeue, one spool update. False (one line on stderr, heartbeat untouched) when Slurm failed."""
    try:
        listing = shares.run_with_timeout(shares.squeue_argv(squeue), timeout)
        routing = spool.route(site, listing)
    except shares.DiscoveryError as exc:
        click.echo(f"ood-mt discovery: {exc}; spool not updated (readers fall back to squeue once stale)", err=True)
        return False
    report = spool.write(site.spool_dir, routing, interval)
    for note in report.notes:
        click.echo(f"ood-mt discovery: {note}", err=True)
    if report.written or report.removed:
        click.echo(f"ood-mt discovery: wrote {', '.join(report.written) or 'nothing'}; "
                   f"removed {', '.join(report.removed) or 'nothing'}", err=True)
    return True


@discovery_group.command(
    "serve",
    epilog="""\b
Examples (as root; the systemd unit ood-mt-discovery runs the first):
  # ood-mt discovery serve
  # ood-mt discovery serve --once --site-json /etc/ood-mt/site.json
""",
)
@_site_options
@click.option("--once", is_flag=True, help="Run one cycle and exit: 0 when the spool was written, 1 when "
                                           "Slurm failed.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=None,
              help="Seconds between cycles (default: site.json's discovery_interval_seconds).")
def serve_command(site_json: Optional[Path], site_file: Optional[Path], squeue: Optional[str],
                  timeout: Optional[float], once: bool, interval: Optional[float]) -> None:
    """Keep the discovery spool current (root only).

    Every interval: ONE `squeue` with the share contract's listing (site.json's squeue and
    timeout), the records routed by their token's cleartext audience (never decrypted:
    readers verify), the listing files replaced atomically when their bytes change, files of
    audiences without shares removed, then the heartbeat. When squeue fails or times out,
    one line goes to stderr and the heartbeat is left alone, so readers fall back to their
    own squeue once it is stale. Changes and cuts (limits.spool_records) are logged to
    stderr. SIGTERM or SIGINT stop it cleanly after the current cycle.
    """
    if os.geteuid() != 0:
        _fail("discovery serve", "must run as root (it writes files owned by each group and user); "
                                 "fix: run it as root, or through the ood-mt-discovery systemd unit")
    site = _load("discovery serve", site_json, site_file)
    every = float(interval if interval is not None else site.discovery_interval_seconds)
    squeue_bin = squeue or site.squeue
    limit = site.squeue_timeout_seconds if timeout is None else timeout
    try:
        if once:
            sys.exit(0 if _cycle(site, squeue_bin, limit, every) else 1)
        stop = threading.Event()

        def _stop(_signum: int, _frame: Optional[FrameType]) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        click.echo(f"ood-mt discovery: serving {site.spool_dir} every {every:g} s", err=True)
        while not stop.is_set():
            started = time.monotonic()
            _cycle(site, squeue_bin, limit, every)
            stop.wait(max(0.0, every - (time.monotonic() - started)))
        click.echo("ood-mt discovery: stopped", err=True)
    except spool.SpoolError as exc:
        _fail("discovery serve", str(exc))


@discovery_group.command(
    "status",
    epilog="""\b
Example:
  $ ood-mt discovery status
  /var/lib/ood-mt/spool: fresh (written 4 s ago, every 10 s)
  group/chem101.listing  3 records  2026-01-31T09:12:00
""",
)
@click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the site YAML instead of site.json.")
@click.option("--site-json", type=click.Path(dir_okay=False, path_type=Path), help="site.json to read.")
def status_command(site_json: Optional[Path], site_file: Optional[Path]) -> None:
    """Say whether the spool is fresh, how old it is, and which listing files it holds.

    Exits 0 when the spool is fresh, 1 when it is stale or has no heartbeat (readers then
    run their own squeue). Any user may run it; record counts come from the file sizes.
    """
    site = _load("discovery status", site_json, site_file)
    beat = spool.heartbeat(site.spool_dir)
    if beat is None:
        click.echo(f"{site.spool_dir}: no heartbeat (is the ood-mt-discovery service running?)")
    else:
        state = "fresh" if beat.fresh() else "STALE"
        click.echo(f"{site.spool_dir}: {state} (written {beat.age():.0f} s ago, every {beat.interval:g} s)")
    for sub in (spool.GROUP_DIR, spool.USER_DIR):
        try:
            names = sorted(n for n in os.listdir(site.spool_dir / sub) if n.endswith(spool.SUFFIX))
        except OSError:
            continue
        for name in names:
            st = os.stat(site.spool_dir / sub / name)
            when = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(st.st_mtime))
            click.echo(f"{sub}/{name}  {st.st_size // shares.RECORD_BYTES} records  {when}")
    sys.exit(0 if beat is not None and beat.fresh() else 1)
