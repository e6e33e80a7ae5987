"""Listings and spools for the discovery tests: real tokens in squeue's fixed-width records."""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import Any

from ood_mt import codec, shares, spool
from tests.initializer.test_shares_unit import SITE, squeue_row

KEY = bytes(range(32))


def token(aud: str, jobid: str, owner: str) -> str:
    payload = {"v": 1, "app": "llm", "title": f"share of {jobid}", "preset": "api", "mode": "form",
               "delivery": "sys/mt_delivery_default", "session": "s", "created": int(time.time()),
               "conn": {"host": "node1", "port": "11434"}}
    return codec.encode(payload, group_key=KEY, aud=aud, kv=1, jobid=jobid, owner=owner)


@functools.cache
def share_row(jobid: str, owner: str, aud: str, wckey: str = "multitenant",
              start: str = "2026-01-31T09:00:00") -> bytes:
    """A share's record; the same arguments give the same bytes (cached: tokens hold a nonce)."""
    name, comment = codec.split_transport(token(aud, jobid, owner))
    return squeue_row(jobid, owner, wckey, name, comment or "(null)", start)


def site(spool_dir: Path, **changes: Any) -> shares.SiteSummary:
    return shares.SiteSummary.from_dict({**SITE, "spool_dir": str(spool_dir), **changes}, "test site.json")


def identity(user: str) -> shares.Identity:
    import grp
    import pwd

    entry = pwd.getpwnam(user)
    names = [grp.getgrgid(entry.pw_gid).gr_name] + [g.gr_name for g in grp.getgrall() if user in g.gr_mem]
    return shares.Identity(user, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), tuple(dict.fromkeys(names)))


def fresh_spool(spool_dir: Path, listing: bytes, interval: float = 10, now: float | None = None) -> spool.WriteReport:
    the_site = site(spool_dir)
    return spool.write(spool_dir, spool.route(the_site, listing), interval, now)


def write_heartbeat(spool_dir: Path, data: Any) -> None:
    path = spool_dir / spool.HEARTBEAT
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    os.chmod(path, 0o644)
