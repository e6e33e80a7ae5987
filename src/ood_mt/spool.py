"""The discovery spool (docs/discovery.md): one squeue listing, routed per audience into files.

Three parts, one concern each:

- ``route``: which records of ONE squeue listing go to which file. Jobs under the site WCKey
  whose name is a token; the token's cleartext audience (never decrypted) picks the file:
  a tenant group → ``group/<g>.listing``; ``~user`` → ``user/<user>.listing`` only when that
  user owns the job; anything else is dropped. A file holds the raw records, byte for byte
  as squeue printed them, so readers parse it with the parser they use for squeue.
- ``write`` (root, ``ood-mt discovery serve``): atomic replace, owners and modes, files of
  audiences without shares removed, then the heartbeat.
- ``read`` (readers, as the user): the user's group files and own file when the heartbeat is
  fresh; None when it is not (the caller runs its own squeue).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import json
import math
import os
import pwd
import re
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ood_mt import codec, share_contract, shares
from ood_mt.codec import Rejected

HEARTBEAT = "heartbeat"
HEARTBEAT_FORMAT = 1
GROUP_DIR = "group"
USER_DIR = "user"
SUFFIX = ".listing"
LOCK = ".lock"
# The spool is fresh while its heartbeat is younger than this many intervals.
FRESH_INTERVALS = 3
GROUP_MODE = 0o640
USER_MODE = 0o400
HEARTBEAT_MODE = 0o644
DIR_MODE = 0o755
# File names in the spool: a group name (shares.is_group_name) or a user name that cannot
# be a hidden, temporary or relative name.
_USER_FILE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,39}", re.ASCII)


class SpoolError(Exception):
    """The spool directory cannot be used safely; the message says why and the fix."""


def record_limit() -> int:
    """At most this many records per listing file (share contract, ``limits.spool_records``)."""
    return int(share_contract.contract()["limits"]["spool_records"])


# --- route -------------------------------------------------------------------------------


@dataclass
class Routing:
    """The records of each audience's file, and what was dropped or cut (log lines)."""

    groups: dict[str, list[bytes]] = field(default_factory=dict)
    users: dict[str, list[bytes]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def files(self) -> dict[str, bytes]:
        """``<dir>/<name>.listing`` (relative to the spool dir) → its bytes."""
        out = {f"{GROUP_DIR}/{g}{SUFFIX}": b"".join(r) for g, r in self.groups.items()}
        out.update({f"{USER_DIR}/{u}{SUFFIX}": b"".join(r) for u, r in self.users.items()})
        return out


def audience_of(site: shares.SiteSummary, job: shares.Job) -> tuple[Optional[str], str]:
    """(``"group"`` or ``"user"`` file name, "") for a job the spool keeps, else (None, why)."""
    if not shares.is_site_wckey(site, job.wckey):
        return None, "wrong-wckey"
    token = codec.join_transport(job.name, job.comment or None)
    if token is None:
        return None, "not-a-share"
    try:
        aud = codec.parse_token(token).aud
    except Rejected as exc:
        return None, exc.reason
    if aud.startswith("~"):
        user = aud[1:]
        if user != job.owner:
            return None, "publisher-not-in-audience"
        if not _USER_FILE_RE.fullmatch(user):
            return None, "bad-encoding"
        return f"{USER_DIR}/{user}", ""
    if not shares.is_group_name(aud) or not site.is_tenant_group(aud):
        return None, "not-in-audience"
    return f"{GROUP_DIR}/{aud}", ""


def route(site: shares.SiteSummary, listing: bytes, limit: Optional[int] = None) -> Routing:
    """The spool's files for ONE squeue listing (the share contract's fixed-width records).

    Raises shares.DiscoveryError when the listing cannot be trusted (nothing is routed then)."""
    limit = record_limit() if limit is None else limit
    routing = Routing()
    by_file: dict[str, list[shares.Job]] = {}
    for job in shares.parse_squeue(listing):
        where, _why = audience_of(site, job)
        if where is not None:
            by_file.setdefault(where, []).append(job)
    for where, jobs in sorted(by_file.items()):
        if len(jobs) > limit:
            newest = sorted(jobs, key=lambda j: (j.start_time or 0, _job_order(j.jobid)), reverse=True)
            routing.notes.append(f"{where}{SUFFIX}: {len(jobs)} shares, kept the {limit} newest by start time "
                                 f"(limits.spool_records)")
            jobs = newest[:limit]
        # Job-id order: the same shares give the same bytes, whatever order squeue listed them in.
        records = [j.record for j in sorted(jobs, key=lambda j: _job_order(j.jobid))]
        kind, name = where.split("/", 1)
        (routing.groups if kind == GROUP_DIR else routing.users)[name] = records
    return routing


def _job_order(jobid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.split(r"[_+]", jobid))


# --- write (root) --------------------------------------------------------------------------


@dataclass
class WriteReport:
    """What one cycle changed, relative to the spool dir."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    notes: list[str] = field(default_factory=list)


def check_dir(path: Path, *, create: bool) -> None:
    """``path`` is a real directory (not a symlink) owned by root, mode 0755; created when missing
    and ``create``. SpoolError otherwise."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not create:
            raise SpoolError(f"{path}: missing") from None
        os.mkdir(path, DIR_MODE)
        os.chown(path, 0, 0)
        os.chmod(path, DIR_MODE)
        return
    if stat.S_ISLNK(st.st_mode):
        raise SpoolError(f"{path}: is a symlink; the spool must be a real directory owned by root "
                         "(fix: remove the link, or set discovery.spool_dir to a root-owned directory)")
    if not stat.S_ISDIR(st.st_mode):
        raise SpoolError(f"{path}: not a directory (fix: remove it, or set discovery.spool_dir elsewhere)")
    if st.st_uid != 0:
        raise SpoolError(f"{path}: owned by uid {st.st_uid}, not root; anyone owning it could forge the "
                         f"spool (fix: chown root:root {path}, or set discovery.spool_dir elsewhere)")
    if stat.S_IMODE(st.st_mode) != DIR_MODE:
        os.chmod(path, DIR_MODE)


def _owner(relpath: str) -> tuple[int, int, int]:
    """(uid, gid, mode) of a spool file; KeyError when its group or user does not exist here."""
    kind, name = relpath[: -len(SUFFIX)].split("/", 1)
    if kind == GROUP_DIR:
        return 0, grp.getgrnam(name).gr_gid, GROUP_MODE
    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid, USER_MODE


def _current(path: Path) -> Optional[tuple[bytes, int, int, int]]:
    """(bytes, uid, gid, mode) of a regular file at path (not followed if a link), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read()
        return data, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)
    finally:
        os.close(fd)


def _replace(path: Path, data: bytes, uid: int, gid: int, mode: int) -> None:
    """Write ``data`` to a temporary file next to ``path`` and rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            os.fchown(handle.fileno(), uid, gid)
            os.fchmod(handle.fileno(), mode)
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write(spool_dir: Path, routing: Routing, interval: float, now: Optional[float] = None) -> WriteReport:
    """Bring the spool in line with ``routing`` (root only), then write the heartbeat.

    A listing file is replaced only when its bytes, owner or mode differ, so its mtime says
    "changed"; files of audiences without shares (and stray temporary files) are removed."""
    report = WriteReport(notes=list(routing.notes))
    check_dir(spool_dir, create=True)
    for sub in (GROUP_DIR, USER_DIR):
        check_dir(spool_dir / sub, create=True)
    with open(spool_dir / LOCK, "a") as lock:  # one writer at a time (two services on one spool)
        fcntl.flock(lock, fcntl.LOCK_EX)
        wanted = routing.files()
        skipped = set()
        for rel, data in sorted(wanted.items()):
            try:
                uid, gid, mode = _owner(rel)
            except KeyError:
                report.notes.append(f"{rel}: no such group or user on this host; not written")
                skipped.add(rel)
                continue
            if _current(spool_dir / rel) == (data, uid, gid, mode):
                report.unchanged += 1
                continue
            _replace(spool_dir / rel, data, uid, gid, mode)
            report.written.append(rel)
        for sub in (GROUP_DIR, USER_DIR):
            for name in sorted(os.listdir(spool_dir / sub)):
                rel = f"{sub}/{name}"
                if rel not in wanted or rel in skipped:
                    os.unlink(spool_dir / rel)
                    if not name.startswith("."):
                        report.removed.append(rel)
        written = int(time.time() if now is None else now)
        beat = json.dumps({"format": HEARTBEAT_FORMAT, "written": written, "interval": interval}).encode() + b"\n"
        _replace(spool_dir / HEARTBEAT, beat, 0, 0, HEARTBEAT_MODE)
    return report


# --- read (as the user) -----------------------------------------------------------------------


@dataclass(frozen=True)
class Heartbeat:
    written: float
    interval: float

    def fresh(self, now: Optional[float] = None) -> bool:
        """Younger than FRESH_INTERVALS intervals, and not from the future (beyond one interval)."""
        now = time.time() if now is None else now
        return now - self.written < FRESH_INTERVALS * self.interval and self.written <= now + self.interval

    def age(self, now: Optional[float] = None) -> float:
        return (time.time() if now is None else now) - self.written


def heartbeat(spool_dir: Path) -> Optional[Heartbeat]:
    """The spool's heartbeat, or None when it is missing or not what ``write`` writes."""
    try:
        return parse_heartbeat((spool_dir / HEARTBEAT).read_bytes())
    except OSError:
        return None


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def parse_heartbeat(text: bytes) -> Optional[Heartbeat]:
    """The heartbeat in TEXT, or None (docs/discovery.md, "Freshness"; pinned with the
    initializer's reader by tests/vectors/spool_freshness.json): strict JSON (no NaN or
    Infinity), an object whose ``format`` is the integer 1 and whose ``written`` and
    ``interval`` are finite numbers, ``interval`` > 0."""
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    fmt = data.get("format")
    if type(fmt) is not int or fmt != HEARTBEAT_FORMAT:
        return None
    written, interval = data.get("written"), data.get("interval")
    if not all(type(v) in (int, float) and math.isfinite(v) for v in (written, interval)):
        return None
    if interval <= 0:
        return None
    return Heartbeat(float(written), float(interval))


def reader_files(site: shares.SiteSummary, identity: shares.Identity) -> list[Path]:
    """The listing files ``identity`` reads: its tenant groups' files and its own file."""
    files = [site.spool_dir / GROUP_DIR / f"{g}{SUFFIX}" for g in sorted(set(identity.group_names))
             if shares.is_group_name(g) and site.is_tenant_group(g)]
    if _USER_FILE_RE.fullmatch(identity.name):
        files.append(site.spool_dir / USER_DIR / f"{identity.name}{SUFFIX}")
    return files


@dataclass(frozen=True)
class SpoolRead:
    """What a reader got from the spool: the jobs (None: use squeue) and why not, when not."""

    jobs: Optional[list[shares.Job]]
    reason: str = ""


def read(site: shares.SiteSummary, identity: shares.Identity, now: Optional[float] = None) -> SpoolRead:
    """The share-like running jobs ``identity`` may see, from the spool, parsed with
    shares.parse_squeue; ``jobs`` None (with the reason) when the spool is stale, missing or
    unreadable, so the caller asks Slurm itself. A missing listing file means no shares."""
    beat = heartbeat(site.spool_dir)
    if beat is None:
        return SpoolRead(None, f"no heartbeat in {site.spool_dir}")
    if not beat.fresh(now):
        return SpoolRead(None, f"heartbeat in {site.spool_dir} is {beat.age(now):.0f} s old "
                               f"(stale after {FRESH_INTERVALS} x {beat.interval:g} s)")
    jobs: dict[str, shares.Job] = {}
    for path in reader_files(site, identity):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            return SpoolRead(None, f"{path}: {exc.strerror or exc}")
        try:
            for job in shares.parse_squeue(data):
                jobs.setdefault(job.jobid, job)
        except shares.DiscoveryError as exc:
            return SpoolRead(None, f"{path}: {exc}")
    return SpoolRead(sorted(jobs.values(), key=lambda j: _job_order(j.jobid)))


Signature = tuple[tuple[str, Optional[tuple[int, int, int]]], ...]


def signature(site: shares.SiteSummary, identity: shares.Identity) -> Signature:
    """(path, (mtime_ns, size, inode) or None) of every file ``identity`` reads: a few stat calls.
    Equal to the previous read's signature while the spool is fresh = nothing changed."""
    out = []
    for path in reader_files(site, identity):
        try:
            st = os.stat(path)
            out.append((str(path), (st.st_mtime_ns, st.st_size, st.st_ino)))
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EACCES):
                raise
            out.append((str(path), None))
    return tuple(out)


def unchanged(site: shares.SiteSummary, identity: shares.Identity, previous: Optional[Signature],
              now: Optional[float] = None) -> bool:
    """True when the spool is fresh and no file ``identity`` reads changed since ``previous``."""
    beat = heartbeat(site.spool_dir)
    return previous is not None and beat is not None and beat.fresh(now) and signature(site, identity) == previous
