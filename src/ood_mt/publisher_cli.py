"""`ood-mt unshare`: a publisher's requests to the share agent of a running job.

The agent (mt_publish.sh, `mt_agent_start`) runs inside the job and reads requests from
``<session dir>/mt_agent/request``; the session directory is the job's working directory
(OOD submits with ``-D <staged root>``), 0700 and the publisher's, and so is ``mt_agent``:
only the publisher's own processes can write a request (docs/architecture.md "Share agent").
This command runs as the publisher, checks that the job is theirs and that the directory is
what the agent made, writes the request atomically and prints the agent's one-line reply.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn, Optional

import click

from ood_mt import hidden, shares

AGENT_DIR = "mt_agent"
REQUESTS = ("unshare",)


class AgentError(Exception):
    """The request cannot be delivered; the message says why and the fix."""


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
    """Write REQUEST for the agent in DIRECTORY and return its reply, or None after WAIT seconds."""
    assert request in REQUESTS
    reply = directory / "reply"
    reply.unlink(missing_ok=True)
    tmp = directory / f".request.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(request + "\n")
    os.replace(tmp, directory / "request")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            return reply.read_text(encoding="utf-8", errors="replace").strip()
        except FileNotFoundError:
            time.sleep(0.2)
    return None


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
    "not shared: you unshared it …". Only the job's owner can do this.
    """
    if not hidden.JOBID.match(jobid):
        _fail("unshare", f"JOBID {jobid!r} is not a Slurm job id (digits, e.g. 4711)")
    me = shares.Identity.current()
    try:
        owner, workdir = job_owner_and_workdir(jobid, squeue)
        if owner != me.name:
            raise AgentError(f"job {jobid} belongs to {owner}; only its publisher can unshare it")
        directory = agent_dir(workdir, me.uid)
        answer = send(directory, "unshare", wait)
    except AgentError as exc:
        _fail("unshare", str(exc))
    except OSError as exc:
        _fail("unshare", f"cannot write the request in {workdir / AGENT_DIR} ({exc.strerror})")
    if answer is None:
        _fail("unshare", f"job {jobid} did not answer within {wait:g} s (its share agent may have stopped); "
                         "the request stays there for it. Fix: stop the session if it must not be shared", 1)
    click.echo(f"job {jobid}: {answer}")
    if not answer.startswith(("unshared", "already unshared")):
        sys.exit(1)
