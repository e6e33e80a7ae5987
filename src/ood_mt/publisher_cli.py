"""`ood-mt share` and `ood-mt unshare`: a publisher's requests to the share agent of a running job.

The agent (mt_publish.sh, `mt_agent_start`) runs inside the job and reads requests from
``<session dir>/mt_agent/request``; the session directory is the job's working directory
(OOD submits with ``-D <staged root>``), 0700 and the publisher's, and so is ``mt_agent``:
only the publisher's own processes can write a request (docs/architecture.md "Share agent").
This command runs as the publisher, checks that the job is theirs and that the directory is
what the agent made, writes the request atomically and prints the agent's one-line reply.

A request is a few ``key=value`` lines (``parse_request``: fixed keys, each value to its
pattern, at most 1024 bytes). The agent checks the same rule again (it is the security
boundary); tests/vectors/agent_requests.json pins both copies, and
tests/vectors/agent_until.json pins ``until_epoch`` to the agent's ``mt_until_epoch``.
"""

from __future__ import annotations

import datetime
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn, Optional

import click

from ood_mt import hidden, shares

AGENT_DIR = "mt_agent"
MAX_REQUEST_BYTES = 1024
# Each key's value pattern (whole value), as mt__agent_pattern in mt_publish.sh.
PATTERNS = {
    "request": "share|unshare",
    "audience": "user|group|users",
    "group": "[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}",
    "users": "[A-Za-z0-9_.][A-Za-z0-9_.@-]{0,31}(,[A-Za-z0-9_.][A-Za-z0-9_.@-]{0,31}){0,49}",
    "preset": "[a-z0-9_-]{1,32}",
    "until": "never|[1-9][0-9]{9}",
    "status": "[A-Za-z0-9 .,:;!?()_/+@#%&'-]{0,200}",
}
DURATION = re.compile(r"([1-9][0-9]{0,3})([mhd])")
CLOCK = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}")
UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}


class AgentError(Exception):
    """The request cannot be delivered; the message says why and the fix."""


class RequestError(ValueError):
    """A request the share agent would refuse; the message says why."""


def parse_request(text: str) -> dict[str, str]:
    """The request TEXT as a dict, or RequestError: the agent's rule (mt__agent_parse)."""
    size = len(text.encode("utf-8", errors="surrogateescape"))
    if size > MAX_REQUEST_BYTES:
        raise RequestError(f"the request has {size} bytes, at most {MAX_REQUEST_BYTES}")
    if "\0" in text:
        raise RequestError("the request holds a NUL byte or is not plain text")
    body = text.removesuffix("\n")
    if not body:
        raise RequestError("the request is empty")
    fields: dict[str, str] = {}
    for line in body.split("\n"):
        match = re.fullmatch(r"([a-z]+)=(.*)", line, re.ASCII)
        if match is None:
            raise RequestError(f"line {line!r} is not key=value")
        key, value = match.groups()
        if key not in PATTERNS:
            raise RequestError(f"unknown key {key!r}; keys: {' '.join(PATTERNS)}")
        if key in fields:
            raise RequestError(f"key {key} given twice")
        if re.fullmatch(f"({PATTERNS[key]})", value, re.ASCII) is None:
            raise RequestError(f"{key}: {value!r} does not match {PATTERNS[key]}")
        fields[key] = value
    _check_request_rules(fields)
    return fields


def _check_request_rules(fields: dict[str, str]) -> None:
    kind, audience = fields.get("request"), fields.get("audience")
    if kind is None:
        raise RequestError("request= is missing (share or unshare)")
    if kind == "unshare" and len(fields) != 1:
        raise RequestError("unshare takes no other key")
    if kind == "share":
        if len(fields) == 1:
            raise RequestError("share needs at least one of audience, group, users, preset, until, status")
        if fields.get("users") and audience != "users":
            raise RequestError("users= goes with audience=users only")
        if audience == "users" and not fields.get("users"):
            raise RequestError("audience=users needs users=")
        if audience == "user" and fields.get("group"):
            raise RequestError("group= does not go with audience=user")
        if fields.get("group") and not audience:
            raise RequestError("group= needs audience=group or audience=users")


def build_request(fields: dict[str, str]) -> str:
    """The request text for FIELDS (in the agent's key order), checked by parse_request."""
    text = "".join(f"{key}={fields[key]}\n" for key in PATTERNS if key in fields)
    parse_request(text)
    return text


def until_epoch(text: str, now: float) -> int:
    """Epoch seconds of an expiry given as a duration (30m, 2h, 7d: 1-9999 units) or a local time
    "YYYY-MM-DD HH:MM", after NOW; RequestError otherwise. The agent's mt_until_epoch."""
    duration = DURATION.fullmatch(text)
    if duration:
        epoch = int(now) + int(duration.group(1)) * UNIT_SECONDS[duration.group(2)]
    else:
        try:
            if not CLOCK.fullmatch(text):
                raise ValueError(text)
            epoch = int(datetime.datetime.strptime(text, "%Y-%m-%d %H:%M").timestamp())
            if datetime.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M") != text:
                raise ValueError(text)
        except (ValueError, OverflowError):
            raise RequestError(f"{text!r} is neither a duration (30m, 2h, 7d) nor a time YYYY-MM-DD HH:MM") from None
    if epoch <= int(now):
        raise RequestError(f"{text!r} is not in the future")
    return epoch


def _fail(command: str, message: str, code: int = 2) -> NoReturn:
    click.echo(f"ood-mt {command}: {message}", err=True)
    sys.exit(code)


def job_owner_and_workdir(jobid: str, squeue: str = "squeue", timeout: float = 10.0) -> tuple[str, Path]:
    """(owner, working directory) of running job JOBID, from one squeue call."""
    try:
        done = subprocess.run([squeue, "--noheader", "--states=RUNNING", "-j", jobid, "-o", "%u %Z"],
                              capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AgentError(f"cannot ask Slurm about job {jobid} ({exc}); is Slurm reachable from this host?") from None
    line = done.stdout.strip()
    if done.returncode != 0 or not line or " " not in line or "\n" in line:
        raise AgentError(f"job {jobid} is not running (squeue: {(done.stderr or line or 'no such job').strip()})")
    owner, workdir = line.split(" ", 1)
    return owner, Path(workdir)


def agent_dir(workdir: Path, uid: int) -> Path:
    """The job's agent directory, checked: a real directory of UID, mode 0700."""
    path = workdir / AGENT_DIR
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise AgentError(f"{path} does not exist: this job has no share agent (it is not sharing, sharing failed, "
                         "or it was started before the kit had one); nothing was changed") from None
    except OSError as exc:
        raise AgentError(f"cannot look at {path} ({exc.strerror})") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or stat.S_IMODE(info.st_mode) != 0o700:
        raise AgentError(f"{path} is not a directory of yours with mode 0700, as the share agent makes it; "
                         "nothing was sent. Fix: stop the session (Delete on its card) if you do not trust it")
    return path


def send(directory: Path, request: str, wait: float) -> Optional[str]:
    """Write REQUEST (checked by parse_request) for the agent in DIRECTORY and return its reply,
    or None after WAIT seconds."""
    parse_request(request)
    reply = directory / "reply"
    reply.unlink(missing_ok=True)
    tmp = directory / f".request.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(request if request.endswith("\n") else request + "\n")
    os.replace(tmp, directory / "request")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            return reply.read_text(encoding="utf-8", errors="replace").strip()
        except FileNotFoundError:
            time.sleep(0.2)
    return None


def deliver(command: str, jobid: str, request: str, wait: float, squeue: str) -> str:
    """Send REQUEST to job JOBID's agent as its owner; the reply, or exit 2 (not delivered) or 1 (no answer)."""
    if not hidden.JOBID.match(jobid):
        _fail(command, f"JOBID {jobid!r} is not a Slurm job id (digits, e.g. 4711)")
    me = shares.Identity.current()
    workdir = Path("?")
    try:
        owner, workdir = job_owner_and_workdir(jobid, squeue)
        if owner != me.name:
            raise AgentError(f"job {jobid} belongs to {owner}; only its publisher can {command} it")
        directory = agent_dir(workdir, me.uid)
        answer = send(directory, request, wait)
    except AgentError as exc:
        _fail(command, str(exc))
    except OSError as exc:
        _fail(command, f"cannot write the request in {workdir / AGENT_DIR} ({exc.strerror})")
    if answer is None:
        _fail(command, f"job {jobid} did not answer within {wait:g} s (its share agent may have stopped); "
                       "the request stays there for it. Fix: stop the session if it must not be shared", 1)
    click.echo(f"job {jobid}: {answer}")
    return answer


@click.command(
    "share",
    epilog="""\b
Examples (as the publisher, on a login node, in Jupyter or in the job itself):
  $ ood-mt share 4711 --audience group --group physics101
  job 4711: shared: shared with group physics101; a new publication; the gate's secret was rotated (...)
  $ ood-mt share 4711 --status "model loaded, ready for class"
  $ ood-mt share 4711 --until 2h              # or --until "2026-12-03 18:00", --until never
  $ ood-mt share 4711 --audience users --group physics101 --users alice,bob
""",
)
@click.option("--audience", type=click.Choice(["user", "group", "users"]),
              help="New audience: you only (user), a tenant group, or selected users of a group. A new audience "
                   "rotates the credentials first, so the earlier audience loses access.")
@click.option("--group", "group", metavar="G", help="Tenant group of the new audience (default: the current one).")
@click.option("--users", metavar="U1,U2", help="User names, comma-separated (with --audience users).")
@click.option("--preset", metavar="P", help="Card preset receivers see (the service's presets, e.g. weblink, api).")
@click.option("--until", "until", metavar="WHEN",
              help="End the share at WHEN: a duration from now (30m, 2h, 7d) or a time \"YYYY-MM-DD HH:MM\" "
                   "(this host's clock and time zone); `never` removes the expiry.")
@click.option("--status", metavar="TEXT",
              help="Status line receivers see on their card (at most 200 of: letters, digits, space and "
                   ".,:;!?()_/+@#%&'-); \"\" removes it.")
@click.option("--wait", type=float, default=30.0, show_default=True, help="Seconds to wait for the job's answer.")
@click.option("--squeue", default="squeue", show_default=True, help="squeue binary to call.")
@click.argument("jobid")
def share_command(audience: Optional[str], group: Optional[str], users: Optional[str], preset: Optional[str],
                  until: Optional[str], status: Optional[str], wait: float, squeue: str, jobid: str) -> None:
    """Change how a running service of yours is shared.

    The share agent in job JOBID applies the change and answers in one line; your card's
    sharing line and `ood-mt list` show the outcome. A new audience (--audience, --group,
    --users) is a new publication with new credentials: the gate's secret and, for a
    database, the password change first, so members of the earlier audience lose access, and
    receivers who hid the earlier publication see the new one. --preset and --status publish
    again with the same credentials; --until only sets when sharing ends (the agent then
    unshares, as `ood-mt unshare` does). After `ood-mt unshare` or an expiry, `ood-mt share
    JOBID --audience ...` shares again (with new credentials). Only the job's owner can do this.
    """
    fields: dict[str, str] = {"request": "share"}
    for key, value in (("audience", audience), ("group", group), ("preset", preset), ("status", status)):
        if value is not None:
            fields[key] = value
    if users is not None:
        fields["users"] = ",".join(name.strip() for name in users.split(",") if name.strip())
    try:
        if until is not None:
            fields["until"] = "never" if until == "never" else str(until_epoch(until, time.time()))
        request = build_request(fields)
    except RequestError as exc:
        _fail("share", f"{exc}; nothing was sent (see --help)")
    answer = deliver("share", jobid, request, wait, squeue)
    if not answer.startswith(("shared", "sharing again", "expires at", "no expiry")):
        sys.exit(1)


@click.command(
    "unshare",
    epilog="""\b
Example (as the publisher, on a login node, in Jupyter or in the job itself):
  $ ood-mt unshare 4711
  job 4711: unshared at 2026-01-31 10:02:11: the job's name is no longer a share (...);
  the gate's secret was rotated (the old one is refused)
""",
)
@click.option("--wait", type=float, default=30.0, show_default=True,
              help="Seconds to wait for the job's answer.")
@click.option("--squeue", default="squeue", show_default=True, help="squeue binary to call.")
@click.argument("jobid")
def unshare_command(wait: float, squeue: str, jobid: str) -> None:
    """Stop sharing a running service of yours without stopping it.

    The share agent in job JOBID replaces the job's name with one that is not a share
    (receivers' cards and client-form entries go at their next refresh, 30 s by default),
    rotates the share gate's secret (the old one is refused at once) and, for a database,
    changes the password. The service keeps running for you; your card's sharing line says
    "not shared: you unshared it …". `ood-mt share JOBID --audience ...` shares it again,
    with new credentials. Only the job's owner can do this.
    """
    answer = deliver("unshare", jobid, "request=unshare\n", wait, squeue)
    if not answer.startswith(("unshared", "already unshared")):
        sys.exit(1)
