"""Slurm discovery and verification of shares, for people outside the dashboard.

Mirrors ``src/ood_mt/initializer/lib/multitenant.rb`` step for step: the same single squeue
call, the same fixed-width parsing, the same checks in the same order and the same
rejection reasons (docs/architecture.md, "Discovery" and "Protocol v1"). The CLI in
``shares_cli`` prints what this module finds.
"""

from __future__ import annotations

import datetime
import grp
import json
import os
import pwd
import re
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from ood_mt import codec, keys, share_contract
from ood_mt.codec import Rejected
from ood_mt.config import SITE_JSON_FORMAT, SITE_JSON_PATH, SiteConfigError, load_site

LISTING = share_contract.contract()["listing"]
LISTING_FIELDS: tuple[tuple[str, int], ...] = tuple((name, int(width)) for name, width in LISTING["fields"])
SQUEUE_FORMAT = ",".join(f"{name}:{width}|" for name, width in LISTING_FIELDS)
# Every field is padded to its width and followed by '|'; the record ends with a newline.
RECORD_BYTES = sum(width + 1 for _name, width in LISTING_FIELDS) + 1
_GROUP_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", re.ASCII)


class SiteSummaryError(Exception):
    """The site summary cannot be used; the message names the file, the field and the fix."""


class DiscoveryError(Exception):
    """squeue failed, timed out or could not be started."""


_REBUILD = "fix: rebuild it with `ood-mt build` and redeploy (playbooks/site.yml), or pass --site with the site YAML"


def _field(data: dict[str, Any], name: str, kind: str, source: str) -> Any:
    """``data[name]`` if it is of ``kind`` (site.json as `ood-mt build` writes it), else SiteSummaryError."""
    value = data[name]
    ok = {
        "text": isinstance(value, str) and value != "",
        "string": isinstance(value, str),
        "count": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        "seconds": isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0,
        "names": isinstance(value, list) and all(isinstance(v, str) and v for v in value),
        "name map": isinstance(value, dict) and all(isinstance(v, str) and v for v in value.values()),
    }[kind]
    if not ok:
        raise SiteSummaryError(f"{source}: field {name} must be {_KINDS[kind]} (got {value!r}); {_REBUILD}")
    return value


_KINDS = {"text": "a non-empty string", "string": "a string", "count": "a non-negative integer",
          "seconds": "a positive number of seconds", "names": "a list of names", "name map": "a mapping of names"}
# site.json field -> what it must be (config.SiteConfig.public_summary writes them).
_SUMMARY_FIELDS = {"site": "text", "cluster": "text", "wckey": "text", "publisher_group": "text",
                   "tenant_groups": "names", "tenant_group_pattern": "string", "key_dir": "text",
                   "refresh_seconds": "count", "discovery_interval_seconds": "seconds", "spool_dir": "text",
                   "card_cluster": "text", "squeue": "text", "squeue_timeout_seconds": "seconds",
                   "delivery_apps": "names", "preset_delivery": "name map"}


@dataclass(frozen=True)
class SiteSummary:
    """The public facts of a site that discovery and verification need: site.json, format 3
    (``config.SiteConfig.public_summary``), read as written, never completed with defaults here."""

    site: str
    cluster: str
    wckey: str
    publisher_group: str
    tenant_groups: tuple[str, ...]
    tenant_group_pattern: str
    key_dir: Path
    refresh_seconds: int
    discovery_interval_seconds: int
    spool_dir: Path
    card_cluster: str
    squeue: str
    squeue_timeout_seconds: float
    delivery_apps: tuple[str, ...]
    preset_delivery: dict[str, str]

    def is_tenant_group(self, group: str) -> bool:
        if group in self.tenant_groups:
            return True
        return bool(self.tenant_group_pattern) and re.fullmatch(self.tenant_group_pattern, group) is not None

    @classmethod
    def from_dict(cls, data: Any, source: str) -> SiteSummary:
        if not isinstance(data, dict):
            raise SiteSummaryError(f"{source}: not a JSON object; {_REBUILD}")
        if data.get("format") != SITE_JSON_FORMAT:
            raise SiteSummaryError(
                f"{source}: format {data.get('format')!r}, but this ood-mt reads format {SITE_JSON_FORMAT} "
                f"(the one that also names squeue, its timeout and the delivery apps); {_REBUILD}")
        missing = [name for name in _SUMMARY_FIELDS if name not in data]
        if missing:
            raise SiteSummaryError(f"{source}: field(s) {', '.join(missing)} missing; {_REBUILD}")
        v = {name: _field(data, name, kind, source) for name, kind in _SUMMARY_FIELDS.items()}
        try:
            re.compile(v["tenant_group_pattern"])
        except re.error as exc:
            raise SiteSummaryError(f"{source}: field tenant_group_pattern is not a regex ({exc}); {_REBUILD}") from None
        return cls(site=v["site"], cluster=v["cluster"], wckey=v["wckey"].lower(),
                   publisher_group=v["publisher_group"], tenant_groups=tuple(v["tenant_groups"]),
                   tenant_group_pattern=v["tenant_group_pattern"], key_dir=Path(v["key_dir"]),
                   refresh_seconds=v["refresh_seconds"],
                   discovery_interval_seconds=int(v["discovery_interval_seconds"]), spool_dir=Path(v["spool_dir"]),
                   card_cluster=v["card_cluster"], squeue=v["squeue"],
                   squeue_timeout_seconds=float(v["squeue_timeout_seconds"]),
                   delivery_apps=tuple(v["delivery_apps"]), preset_delivery=dict(v["preset_delivery"]))


def load_site_summary(site_json: Optional[Path] = None, site_file: Optional[Path] = None) -> SiteSummary:
    """Read site.json (default SITE_JSON_PATH, /etc/ood-mt/site.json) or, with site_file, the site YAML."""
    if site_file is not None:
        try:
            return SiteSummary.from_dict(load_site(site_file).public_summary(), str(site_file))
        except SiteConfigError as exc:
            raise SiteSummaryError(str(exc)) from None
    path = Path(site_json or SITE_JSON_PATH)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SiteSummaryError(
            f"{path}: missing; fix: deploy the kit (role ood_mt_keys writes it), or pass --site-json PATH "
            "or --site inventories/<site>/group_vars/all/multitenant.yml"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SiteSummaryError(f"{path}: cannot be read as JSON ({exc}); {_REBUILD}") from None
    return SiteSummary.from_dict(data, str(path))


@dataclass(frozen=True)
class Job:
    """One squeue row whose name could carry a share."""

    jobid: str
    owner: str
    wckey: str
    name: str
    comment: str
    start_time: Optional[int] = None  # epoch seconds of Slurm's StartTime (local time), None when not started
    # The record's bytes exactly as squeue printed them (the discovery spool stores these).
    record: bytes = field(default=b"", repr=False, compare=False)


def squeue_argv(squeue: str, jobid: Optional[str] = None) -> list[str]:
    """The discovery call; with ``jobid``, the same columns for that one job (any state)."""
    if jobid is not None:
        return [squeue, "--noheader", "--states=all", "-j", jobid, "-O", SQUEUE_FORMAT]
    return [squeue, "--noheader", "--states=RUNNING", "-O", SQUEUE_FORMAT]


def parse_squeue(output: bytes) -> list[Job]:
    """Rows of ``squeue -O SQUEUE_FORMAT`` whose name starts with mt1:.

    Every record is exactly RECORD_BYTES long with '|' after each fixed-width field, so a
    job name or comment (which may hold '|' and newlines) cannot create or shift a record.
    Anything else means the listing cannot be trusted: DiscoveryError, no record at all.
    A job id listed twice is treated the same way."""
    if len(output) % RECORD_BYTES:
        raise DiscoveryError(f"squeue listing misaligned: {len(output)} bytes is not a whole number of "
                             f"{RECORD_BYTES}-byte records; nothing from it is used")
    jobs: list[Job] = []
    seen: set[bytes] = set()
    for start in range(0, len(output), RECORD_BYTES):
        record = output[start : start + RECORD_BYTES]
        values: list[bytes] = []
        pos = 0
        for name, width in LISTING_FIELDS:
            if record[pos + width : pos + width + 1] != b"|":
                raise DiscoveryError(f"squeue listing misaligned: record {start // RECORD_BYTES + 1} has no '|' "
                                     f"after {name}; nothing from it is used")
            values.append(record[pos : pos + width].rstrip(b" "))
            pos += width + 1
        if record[pos:] != b"\n":
            raise DiscoveryError(f"squeue listing misaligned: record {start // RECORD_BYTES + 1} does not end "
                                 "with a newline; nothing from it is used")
        jobid_b, user_b, wckey_b, start_b, name_b, comment_b = values
        start_text = start_b.decode("ascii", "replace")
        if not share_contract.matches(LISTING["jobid"], jobid_b.decode("ascii", "replace")) or \
                not share_contract.matches(LISTING["user"], user_b.decode("ascii", "replace")) or \
                not share_contract.matches(LISTING["start_time"], start_text):
            raise DiscoveryError(f"squeue listing misaligned: record {start // RECORD_BYTES + 1} does not start "
                                 "with a job id and a user name; nothing from it is used")
        if jobid_b in seen:
            raise DiscoveryError(f"squeue listing lists job {jobid_b.decode()} twice; nothing from it is used")
        seen.add(jobid_b)
        name = name_b.decode("utf-8", "replace")
        comment = comment_b.decode("utf-8", "replace")
        if comment == "(null)":  # squeue's text for "no comment"
            comment = ""
        if name.startswith(codec.PREFIX):
            jobs.append(Job(jobid=jobid_b.decode(), owner=user_b.decode(), wckey=wckey_b.decode("utf-8", "replace"),
                            name=name, comment=comment, start_time=_local_epoch(start_text), record=record))
    return jobs


def _local_epoch(text: str) -> Optional[int]:
    """Slurm's StartTime (the squeue host's local time), as epoch seconds; None if not started."""
    if not text[:1].isdigit():
        return None
    return int(datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").timestamp())


def is_group_name(name: str) -> bool:
    """A group audience as receivers accept it (a POSIX-style name, never '.' first)."""
    return _GROUP_RE.fullmatch(name) is not None


def is_site_wckey(site: SiteSummary, wckey: str) -> bool:
    """Is ``wckey`` (as squeue prints it: any case, '*' when it is the user's default) the site's?"""
    return wckey.lower().removeprefix("*") == site.wckey


def run_with_timeout(argv: list[str], timeout: float) -> bytes:
    """stdout of argv; the whole process group is killed on timeout. Raises DiscoveryError."""
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
    except OSError as exc:
        raise DiscoveryError(f"{argv[0]} could not run: {exc}") from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise DiscoveryError(f"{argv[0]} timed out after {timeout:g} s") from None
    if proc.returncode != 0:
        first = err.decode("utf-8", "replace").strip().splitlines()
        raise DiscoveryError(f"{argv[0]} failed ({proc.returncode}): {first[0] if first else ''}")
    return out


def discover(squeue: str, timeout: float, jobid: Optional[str] = None) -> list[Job]:
    """ONE squeue call (docs/architecture.md, "Discovery"); ``squeue`` and ``timeout`` come from site.json."""
    return parse_squeue(run_with_timeout(squeue_argv(squeue, jobid), timeout))


@dataclass(frozen=True)
class Identity:
    """The user checks are made for; group names include the primary group."""

    name: str
    uid: int
    gid: int
    home: Path
    group_names: tuple[str, ...]

    @classmethod
    def current(cls) -> Identity:
        entry = pwd.getpwuid(os.getuid())
        names = []
        for gid in dict.fromkeys([entry.pw_gid, *os.getgroups()]):
            try:
                names.append(grp.getgrgid(gid).gr_name)
            except KeyError:
                continue
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), tuple(names))


@dataclass
class Step:
    """One check of an evaluation, for `ood-mt inspect`."""

    name: str
    ok: Optional[bool]  # None: not checked
    detail: str


@dataclass
class Evaluation:
    """The outcome of checking one job: a share, or the first rejection; every step taken."""

    job: Job
    steps: list[Step] = field(default_factory=list)
    payload: Optional[dict[str, Any]] = None
    group: str = ""
    token: str = ""
    rejection: Optional[Rejected] = None

    @property
    def accepted(self) -> bool:
        return self.rejection is None and self.payload is not None

    def log_line(self) -> str:
        assert self.rejection is not None
        detail = f" ({self.rejection.detail})" if self.rejection.detail else ""
        return f"ood-mt: job {self.job.jobid}: rejected: {self.rejection.reason}{detail}"

    def label(self) -> str:
        assert self.payload is not None
        return f"{self.payload['title']} from {self.job.owner} (job {self.job.jobid})"


KeyLookup = Callable[[str, int], bytes]


def group_key(key_dir: Path, group: str, version: int) -> bytes:
    """Key ``version`` of ``group`` from the key files, or Rejected: no-key / key-version-retired."""
    try:
        return keys.read_group_keys(key_dir, group).key_for(version)
    except keys.KeyFileError as exc:
        raise Rejected("no-key", str(exc)) from None
# in_group(user, group): is USER a member of GROUP (member list or primary group)?
MembershipLookup = Callable[[str, str], bool]


def in_group(user: str, group_name: str) -> bool:
    """Member of the group by the member list OR by primary gid (the system's directory)."""
    try:
        group = grp.getgrnam(group_name)
    except KeyError:
        return False
    if user in group.gr_mem:
        return True
    try:
        return pwd.getpwnam(user).pw_gid == group.gr_gid
    except KeyError:
        return False


class Verifier:
    """Decides which jobs are shares ``identity`` may see; the initializer's rules."""

    def __init__(self, site: SiteSummary, identity: Identity, *, group_key: Optional[KeyLookup] = None,
                 user_key: Optional[Callable[[str], bytes]] = None, check_membership: bool = True,
                 membership: MembershipLookup = in_group) -> None:
        self.site = site
        self.me = identity
        self._in_group = membership
        self._group_key = group_key or self._my_group_key
        self._user_key = user_key or self._my_user_key
        # audit (root) checks every share, not the ones addressed to root.
        self.check_membership = check_membership

    def _my_group_key(self, group: str, version: int) -> bytes:
        return group_key(self.site.key_dir, group, version)

    def _my_user_key(self, user: str) -> bytes:
        try:
            return keys.load_or_create_user_key(self.me.home)
        except keys.KeyFileError as exc:
            raise Rejected("no-key", str(exc)) from None

    def evaluate(self, job: Job, *, check_wckey: bool = True) -> Evaluation:
        ev = Evaluation(job=job)
        try:
            self._run(ev, check_wckey)
        except Rejected as exc:
            ev.rejection = exc
            ev.steps.append(Step(exc.reason, False, exc.detail))
        return ev

    def _run(self, ev: Evaluation, check_wckey: bool) -> None:
        job = ev.job
        if check_wckey:
            if not is_site_wckey(self.site, job.wckey):
                raise Rejected("wrong-wckey", f"job wckey {job.wckey!r}, site wckey {self.site.wckey}")
            ev.steps.append(Step("wckey", True, f"{job.wckey} is the site WCKey"))
        else:
            ev.steps.append(Step("wckey", None, "not checked: give --job-id of a running job"))
        if not self._in_group(job.owner, self.site.publisher_group):
            raise Rejected("publisher-not-in-group", f"{job.owner} is not in {self.site.publisher_group}")
        ev.steps.append(Step("publisher", True, f"{job.owner} is in {self.site.publisher_group}"))
        token = codec.join_transport(job.name, job.comment or None)
        if token is None:
            raise Rejected("bad-encoding", "name/comment do not form a token")
        ev.token = token
        parsed = codec.parse_token(token)
        where = "name + comment" if token != job.name else "name"
        ev.steps.append(Step("token", True, f"{len(token)} characters from the {where}; audience {parsed.aud}, "
                                            f"key version {parsed.kv}"))
        key, ev.group = self.audience_key(parsed.aud, parsed.kv)
        ev.steps.append(Step("key", True, f"key {parsed.kv} of {parsed.aud} readable"))
        self._check_owner_in_audience(job.owner, parsed.aud)
        ev.steps.append(Step("owner", True, f"{job.owner} is in the audience {parsed.aud}"))
        payload = codec.decode(token, group_key=key, jobid=job.jobid, owner=job.owner)
        ev.steps.append(Step("tag", True, f"authentic for job {job.jobid} of {job.owner}; decrypted"))
        share_contract.check_payload(payload, self.site.delivery_apps)
        self._check_fresh(job, payload)
        ev.steps.append(Step("payload", True, f"{payload['mode']} share of app {payload['app']} "
                                              f"via {payload['delivery']}"))
        if "users" in payload:
            uids = codec.decode_users(payload["users"])
            if self.check_membership and self.me.uid not in uids:
                raise Rejected("not-in-audience", f"uid {self.me.uid} not in the share's user list")
            ev.steps.append(Step("users", True, f"{len(uids)} listed users"))
        ev.payload = payload

    def audience_key(self, aud: str, kv: int) -> tuple[bytes, str]:
        if aud.startswith("~"):
            if self.check_membership and aud[1:] != self.me.name:
                raise Rejected("not-in-audience", f"share is for user {aud[1:]} only")
            if kv != keys.USER_KEY_VERSION:
                raise Rejected("key-version-retired", f"user keys have version 1, got {kv}")
            return self._user_key(aud[1:]), aud
        if not is_group_name(aud):
            raise Rejected("bad-encoding", f"audience {aud!r} is not a group name")
        if not self.site.is_tenant_group(aud):
            raise Rejected("not-in-audience", f"{aud} is not a tenant group of this site")
        if self.check_membership and aud not in self.me.group_names:
            raise Rejected("not-in-audience", f"{self.me.name} is not in group {aud}")
        return self._group_key(aud, kv), aud

    @staticmethod
    def _check_fresh(job: Job, payload: dict[str, Any]) -> None:
        """A share published before its job last started is left over from before a requeue:
        its host and port may now belong to someone else."""
        slack = share_contract.contract()["limits"]["start_slack_seconds"]
        if job.start_time is not None and payload["created"] < job.start_time - slack:
            raise Rejected("stale-share", f"published at {payload['created']}, before the job (re)started "
                                          f"at {job.start_time}; the job has not republished yet")

    def _check_owner_in_audience(self, owner: str, aud: str) -> None:
        """A publisher shares only with an audience they belong to: "my user only" is for
        the owner alone, a group share needs the owner in that group. Otherwise a member of
        the publisher group could address cards to any group whose key they hold."""
        if aud.startswith("~"):
            if aud[1:] != owner:
                raise Rejected("publisher-not-in-audience", f"share for user {aud[1:]} published by {owner}")
        elif not self._in_group(owner, aud):
            raise Rejected("publisher-not-in-audience", f"{owner} is not in group {aud}")


def limit_per_publisher(evaluations: list[Evaluation]) -> None:
    """At most ``shares_per_publisher`` accepted shares per publisher: the newest (by
    created, then job id) stay, the others are rejected with too-many-shares."""
    limit = share_contract.contract()["limits"]["shares_per_publisher"]
    by_owner: dict[str, list[Evaluation]] = {}
    for ev in evaluations:
        if ev.accepted:
            by_owner.setdefault(ev.job.owner, []).append(ev)
    for owner, accepted in by_owner.items():
        accepted.sort(key=lambda e: (e.payload["created"], _job_order(e.job.jobid)), reverse=True)  # type: ignore[index]
        for ev in accepted[limit:]:
            ev.rejection = Rejected("too-many-shares", f"{owner} publishes more than {limit} shares to you")
            ev.steps.append(Step("too-many-shares", False, ev.rejection.detail))


def _job_order(jobid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.split(r"[_+]", jobid))


def group_size(group: str) -> int:
    """Members of a group by member list plus users whose primary group it is."""
    try:
        entry = grp.getgrnam(group)
    except KeyError:
        return 0
    members = set(entry.gr_mem)
    members.update(p.pw_name for p in pwd.getpwall() if p.pw_gid == entry.gr_gid)
    return len(members)


def audience_size(ev: Evaluation) -> int:
    assert ev.payload is not None
    users = ev.payload.get("users")
    if isinstance(users, dict) and isinstance(users.get("n"), int):
        return int(users["n"])
    if ev.group.startswith("~"):
        return 1
    return group_size(ev.group)


def since(payload: dict[str, Any]) -> str:
    created = payload.get("created")
    if not isinstance(created, int):
        return "?"
    return datetime.datetime.fromtimestamp(created, tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class AdminKeys:
    """Key lookups for `ood-mt audit`: every group's keys and users' own keys, read as root."""

    def __init__(self, site: SiteSummary) -> None:
        self.site = site

    def group_key(self, group: str, version: int) -> bytes:
        return group_key(self.site.key_dir, group, version)

    def user_key(self, user: str) -> bytes:
        try:
            entry = pwd.getpwnam(user)
            return keys.read_user_key_of(Path(entry.pw_dir), entry.pw_uid)
        except KeyError:
            raise Rejected("no-key", f"user {user} is unknown") from None
        except keys.KeyFileError as exc:
            raise Rejected("no-key", f"user key of {user}: {exc}") from None


def check_admin_access(site: SiteSummary) -> list[str]:
    """Key files `audit` cannot read (empty when it can read them all)."""
    unreadable = []
    try:
        groups = sorted(os.listdir(site.key_dir))
    except OSError as exc:
        return [f"{site.key_dir}: {exc.strerror}"]
    for group in groups:
        group_dir = site.key_dir / group
        try:
            names = os.listdir(group_dir)
        except OSError as exc:
            unreadable.append(f"{group_dir}: {exc.strerror}")
            continue
        for name in names:
            if (name == "current" or name.endswith(".key")) and not os.access(group_dir / name, os.R_OK):
                unreadable.append(str(group_dir / name))
    return unreadable


def gate_url(conn: dict[str, str]) -> Optional[str]:
    """The base URL of a gated service (docs/gate.md): http://<host>:<port>/<gate_secret>/, composed
    by receivers (the gate strips the first path segment); None for a share without a gate secret."""
    secret, host, port = conn.get("gate_secret"), conn.get("host"), conn.get("port")
    if not (secret and host and port):
        return None
    return f"http://{host}:{port}/{secret}/"
