"""`ood-mt list | show | audit | inspect`: shares seen from a terminal.

Registered in the main CLI by ``ood_mt.cli``. Discovery and verification are those of
the dashboard initializer (``ood_mt.shares``), so a share shown here is a share the
user's dashboard shows, and a rejection here has the reason the dashboard logs.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional

import click

from ood_mt import codec, hidden, shares, spool
from ood_mt.codec import Rejected
from ood_mt.config import SITE_JSON_PATH

_SITE_HELP = f"Public site summary to read (default {SITE_JSON_PATH}, written by the deployment)."
_SITE_FILE_HELP = "Read the site YAML (inventories/<site>/group_vars/all/multitenant.yml) instead of site.json."


def _site_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--timeout", type=float, default=None,
                        help="Seconds squeue may take before it is killed (default: site.json's "
                             "squeue_timeout_seconds).")(func)
    func = click.option("--squeue", default=None,
                        help="squeue binary to call; also means: query Slurm directly, not the discovery "
                             "spool (default: site.json's squeue, when the spool is stale).")(func)
    func = click.option("--site", "site_file", type=click.Path(dir_okay=False, path_type=Path),
                        help=_SITE_FILE_HELP)(func)
    func = click.option("--site-json", type=click.Path(dir_okay=False, path_type=Path), help=_SITE_HELP)(func)
    return func


def _fail(command: str, message: str) -> NoReturn:
    click.echo(f"ood-mt {command}: {message}", err=True)
    sys.exit(2)


def _load(command: str, site_json: Optional[Path], site_file: Optional[Path]) -> shares.SiteSummary:
    try:
        return shares.load_site_summary(site_json, site_file)
    except shares.SiteSummaryError as exc:
        _fail(command, str(exc))


@dataclasses.dataclass
class _Slurm:
    """Where this command finds running jobs: the discovery spool while it is fresh (``spool_site``),
    else site.json's squeue and timeout; --squeue/--timeout mean "query Slurm directly"."""

    command: str
    squeue: str
    timeout: float
    spool_site: Optional[shares.SiteSummary] = None

    @classmethod
    def of(cls, command: str, site: shares.SiteSummary, squeue: Optional[str],
           timeout: Optional[float], *, spool_ok: bool = False) -> _Slurm:
        return cls(command, squeue or site.squeue, site.squeue_timeout_seconds if timeout is None else timeout,
                   site if spool_ok and squeue is None else None)

    def discover(self, jobid: Optional[str] = None) -> list[shares.Job]:
        try:
            return shares.discover(self.squeue, self.timeout, jobid)
        except shares.DiscoveryError as exc:
            _fail(self.command, f"{exc}; is Slurm reachable from this host?")

    def spooled(self, me: shares.Identity) -> Optional[list[shares.Job]]:
        """The running share-like jobs ``me`` may see from the spool; None when it is stale or
        missing (said once on stderr) or this command queries Slurm directly."""
        if self.spool_site is None:
            return None
        got = spool.read(self.spool_site, me)
        if got.jobs is None:
            click.echo(f"ood-mt {self.command}: discovery spool not used ({got.reason}); asking Slurm directly",
                       err=True)
            self.spool_site = None
        return got.jobs

    def running(self, me: shares.Identity) -> list[shares.Job]:
        """Running share-like jobs: the spool's when fresh, else ONE squeue."""
        jobs = self.spooled(me)
        return self.discover() if jobs is None else jobs


def _print_rows(rows: list[dict[str, Any]], as_json: bool, empty: str, header: list[str],
                cells: Callable[[dict[str, Any]], list[Any]]) -> None:
    """Rows as a JSON array, a table (``cells`` of each row under ``header``), or ``empty`` when there are none."""
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
    elif not rows:
        click.echo(empty)
    else:
        click.echo(_table([cells(r) for r in rows], header))


def _row(ev: shares.Evaluation, me: str) -> dict[str, Any]:
    assert ev.payload is not None
    p = ev.payload
    return {"jobid": ev.job.jobid, "app": p["app"], "title": p["title"], "preset": p["preset"],
            "mode": p["mode"], "publisher": ev.job.owner, "audience": ev.group, "delivery": p["delivery"],
            "since": shares.since(p), "yours": ev.job.owner == me, "label": ev.label(),
            "conn_keys": sorted(p["conn"]), "status": str(p["conn"].get("x_status", ""))}


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


@click.command(
    "list",
    epilog="""\b
Example:
  $ ood-mt list
  JOBID  APP  TITLE       FROM   AUDIENCE  MODE  SINCE
  4711   llm  Llama 3.2   alice  chem101   form  2026-01-31T09:12:00Z
""",
)
@_site_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.option("-v", "--verbose", is_flag=True, help="Also print why other share-like jobs were rejected.")
@click.option("--hidden", "show_hidden", is_flag=True,
              help="List the shares you hid (`ood-mt hide`) instead, with whether each is still running.")
def list_command(site_json: Optional[Path], site_file: Optional[Path], squeue: Optional[str], timeout: Optional[float],
                 as_json: bool, verbose: bool, show_hidden: bool) -> None:
    """List the shares you can use now.

    Reads the running share-like jobs from the discovery spool (docs/discovery.md) while it
    is fresh, else asks Slurm once (the dashboard's own query; one line on stderr says so),
    verifies each share-like job with the keys you can read, and prints the ones addressed to you: to one of your
    groups, to a user list that holds you, or to you alone. Your own shares are marked.
    STATUS is the publisher's status line (`ood-mt share --status`).
    Connection secrets are never printed here; see `ood-mt show JOBID`. Shares you hid with
    `ood-mt hide` are left out (`--hidden` lists them).
    """
    site = _load("list", site_json, site_file)
    me = shares.Identity.current()
    hidden_set = _hidden_set(me)
    verifier = shares.Verifier(site, me)
    rows = []
    evaluations = [verifier.evaluate(job) for job in _Slurm.of("list", site, squeue, timeout, spool_ok=True)
                   .running(me)]
    shares.limit_per_publisher(evaluations)
    if show_hidden:
        _list_hidden(hidden_set, evaluations, as_json)
        return
    for ev in evaluations:
        if ev.accepted and ev.payload is not None and hidden_set.hides(ev.job.jobid, ev.payload["created"]):
            continue
        if ev.accepted:
            rows.append(_row(ev, me.name))
        elif verbose:
            click.echo(ev.log_line(), err=True)
    header = ["JOBID", "APP", "TITLE", "FROM", "AUDIENCE", "MODE", "SINCE", "STATUS"]
    _print_rows(rows, as_json, "no shares visible to you", header,
                lambda r: [r["jobid"], r["app"], r["title"], r["publisher"] + (" (you)" if r["yours"] else ""),
                           r["audience"], r["mode"], r["since"], r["status"]])


def _hidden_set(me: shares.Identity) -> hidden.HiddenSet:
    """The user's hidden shares; a file breaking the rule is said once on stderr and hides nothing."""
    got = hidden.load(me.home)
    if got.problem:
        click.echo(got.message(), err=True)
    return got


def _list_hidden(hidden_set: hidden.HiddenSet, evaluations: list[shares.Evaluation], as_json: bool) -> None:
    running = {(ev.job.jobid, ev.payload["created"]) for ev in evaluations if ev.accepted and ev.payload is not None}
    rows = [{"jobid": e["jobid"], "created": e["created"], "since": shares.since(e),
             "app": str(e.get("app", "")), "title": str(e.get("title", "")), "publisher": str(e.get("publisher", "")),
             "running": (e["jobid"], e["created"]) in running} for e in hidden_set.entries]
    _print_rows(rows, as_json, "no hidden shares", ["JOBID", "APP", "TITLE", "FROM", "SINCE", "STATE"],
                lambda r: [r["jobid"], r["app"], r["title"], r["publisher"], r["since"],
                           "running" if r["running"] else "ended"])


@click.command(
    "hide",
    epilog="""\b
Examples:
  $ ood-mt hide 4711
  job 4711: hidden (Llama 3.2 from alice); its card goes at your dashboard's next refresh
  $ ood-mt list --hidden
  $ ood-mt hide --undo 4711
""",
)
@_site_options
@click.option("--undo", is_flag=True, help="Show the job's shares again.")
@click.argument("jobid")
def hide_command(site_json: Optional[Path], site_file: Optional[Path], squeue: Optional[str],
                 timeout: Optional[float], undo: bool, jobid: str) -> None:
    """Hide a share from your cards, client forms and `ood-mt list`.

    Hides this publication of job JOBID: if its publisher shares it again later (a new
    publication, with a new `since`), it is shown again. The list is your own file,
    ~/.config/ood-mt/hidden.json; nothing is cancelled and the publisher is not told.
    Pressing Delete (or Cancel) on the share's card in the dashboard does the same.
    `--undo` shows the job's shares again, however they were hidden.
    """
    if not hidden.JOBID.match(jobid):
        _fail("hide", f"JOBID {jobid!r} is not a Slurm job id (digits, e.g. 4711)")
    me = shares.Identity.current()
    hidden_set = hidden.load(me.home)
    if hidden_set.problem:
        _fail("hide", hidden_set.message().removeprefix("ood-mt: ") + "; the file was left as it was")
    if undo:
        kept = [e for e in hidden_set.entries if e["jobid"] != jobid]
        if len(kept) == len(hidden_set.entries):
            click.echo(f"job {jobid}: was not hidden")
            return
        hidden_set.entries = kept
        hidden.save(hidden_set)
        click.echo(f"job {jobid}: shown again; its card comes back at your dashboard's next refresh")
        return
    site = _load("hide", site_json, site_file)
    verifier = shares.Verifier(site, me)
    found = [ev for ev in (verifier.evaluate(job) for job in _Slurm.of("hide", site, squeue, timeout, spool_ok=True)
                           .running(me) if job.jobid == jobid) if ev.accepted]
    if not found or found[0].payload is None:
        _fail("hide", f"job {jobid} is not a running share visible to you (see `ood-mt list`); nothing was hidden")
    ev = found[0]
    assert ev.payload is not None
    if hidden_set.hides(jobid, ev.payload["created"]):
        click.echo(f"job {jobid}: already hidden ({ev.label()})")
        return
    hidden_set.entries = hidden.with_entry(hidden_set.entries, hidden.entry(jobid, ev.payload, ev.job.owner))
    hidden.save(hidden_set)
    click.echo(f"job {jobid}: hidden ({ev.label()}); its card goes at your dashboard's next refresh")


@click.command(
    "show",
    epilog="""\b
Example:
  $ ood-mt show 4711
  job 4711: accepted: Llama 3.2 from alice (job 4711)
  ...
  conn.host: node12
""",
)
@_site_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.argument("jobid")
def show_command(site_json: Optional[Path], site_file: Optional[Path], squeue: Optional[str],
                 timeout: Optional[float], as_json: bool, jobid: str) -> None:
    """Show one share, its connection details included, if it is visible to you.

    JOBID is the Slurm job id of the publishing job, looked up in the discovery spool while
    it is fresh, else with squeue. Exits 1 with the rejection reason
    (the same identifier the dashboard logs) when the job is not a share you may use.
    """
    if not jobid.replace("_", "").isdigit():
        _fail("show", f"JOBID {jobid!r} is not a Slurm job id (digits, e.g. 4711)")
    site = _load("show", site_json, site_file)
    me = shares.Identity.current()
    slurm = _Slurm.of("show", site, squeue, timeout, spool_ok=True)
    spooled = slurm.spooled(me)
    if spooled is not None:  # the spool holds running jobs only
        jobs = [j for j in spooled if j.jobid == jobid]
        running = {j.jobid for j in jobs}
    else:
        jobs = [j for j in slurm.discover(jobid) if j.jobid == jobid]
        running = {j.jobid for j in slurm.discover()}
    if not jobs:
        click.echo(f"ood-mt: job {jobid}: rejected: not-a-share (no running job with a share name)", err=True)
        sys.exit(1)
    ev = shares.Verifier(site, me).evaluate(jobs[0])
    if ev.accepted and jobid not in running:
        ev.rejection = Rejected("job-not-running", "the job is not running")
    if not ev.accepted:
        click.echo(ev.log_line(), err=True)
        sys.exit(1)
    row = _row(ev, me.name)
    assert ev.payload is not None
    row["conn"] = ev.payload["conn"]
    gate_url = shares.gate_url(row["conn"])
    if gate_url:
        row["gate_url"] = gate_url
    if as_json:
        click.echo(json.dumps(row, indent=2, sort_keys=True))
        return
    click.echo(f"job {jobid}: accepted: {row['label']}")
    for key in ("app", "preset", "mode", "publisher", "audience", "delivery", "since"):
        click.echo(f"{key}: {row[key]}")
    for key, value in sorted(ev.payload["conn"].items()):
        click.echo(f"conn.{key}: {value}")
    if gate_url:
        click.echo(f"url (through the share gate): {gate_url}")


@click.command(
    "audit",
    epilog="""\b
Example (as root on an OOD host):
  # ood-mt audit
  JOBID  PUBLISHER  AUDIENCE  SIZE  APP  MODE  SINCE                 STATUS
  4711   alice      chem101   212   llm  form  2026-01-31T09:12:00Z  ok
""",
)
@_site_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
def audit_command(site_json: Optional[Path], site_file: Optional[Path], squeue: Optional[str],
                  timeout: Optional[float], as_json: bool) -> None:
    """List every active share on the cluster (administrators).

    Verifies every share-like running job with every group key and users' own keys, so
    it needs read access to all files under the key dir (run it as root). For each share:
    publisher, audience and its size, app, mode, since when, and "ok" or the rejection
    reason a receiver's dashboard would log. Connection details are not printed.
    """
    site = _load("audit", site_json, site_file)
    unreadable = shares.check_admin_access(site)
    if unreadable:
        _fail("audit", "cannot read key files: " + ", ".join(unreadable[:5])
              + ("" if len(unreadable) <= 5 else f" (+{len(unreadable) - 5} more)")
              + "; fix: run `ood-mt audit` as root on a host with the keys (an OOD host)")
    admin = shares.AdminKeys(site)
    me = shares.Identity.current()
    verifier = shares.Verifier(site, me, group_key=admin.group_key, user_key=admin.user_key, check_membership=False)
    rows = []
    for job in _Slurm.of("audit", site, squeue, timeout).discover():
        ev = verifier.evaluate(job)
        row: dict[str, Any] = {"jobid": job.jobid, "publisher": job.owner, "audience": ev.group or "?",
                               "status": "ok" if ev.accepted else ev.rejection.reason if ev.rejection else "?"}
        if ev.accepted and ev.payload is not None:
            row.update(size=shares.audience_size(ev), app=ev.payload["app"], mode=ev.payload["mode"],
                       since=shares.since(ev.payload))
        else:
            row.update(size=0, app="?", mode="?", since="?",
                       detail=ev.rejection.detail if ev.rejection else "")
        rows.append(row)
    header = ["JOBID", "PUBLISHER", "AUDIENCE", "SIZE", "APP", "MODE", "SINCE", "STATUS"]
    _print_rows(rows, as_json, "no active shares", header, lambda r: [r[name.lower()] for name in header])


@click.command(
    "inspect",
    epilog="""\b
Examples:
  $ ood-mt inspect "$(squeue -h -j 4711 -o %j)" --job-id 4711 --owner alice
  step 1  wckey      ok    multitenant is the site WCKey
  ...
  accepted: Llama 3.2 from alice (job 4711)
  $ ood-mt inspect 'mt1:chem101:3:AbC...'
""",
)
@_site_options
@click.argument("job_name")
@click.option("--comment", help="The job's Comment, when the token was split over name and comment.")
@click.option("--job-id", help="Job id the token was made for (needed to check the tag).")
@click.option("--owner", help="User who owns that job (needed to check the tag).")
def inspect_command(site_json: Optional[Path], site_file: Optional[Path], squeue: Optional[str],
                    timeout: Optional[float], job_name: str, comment: Optional[str], job_id: Optional[str],
                    owner: Optional[str]) -> None:
    """Explain, step by step, why a job name is or is not accepted as a share by you.

    JOB_NAME is the job's name as squeue prints it (`squeue -h -j ID -o %j`). With
    --job-id and --owner the check is complete (the tag binds the token to that job and
    user); with --job-id of a running job, the job's WCKey is checked too. Without them,
    only the token's syntax, audience and your key access are checked. Exits 0 when
    accepted, 1 when rejected.
    """
    site = _load("inspect", site_json, site_file)
    me = shares.Identity.current()
    if bool(job_id) != bool(owner):
        _fail("inspect", "give --job-id and --owner together (both come from `squeue -j ID -o '%i %u'`)")
    wckey = ""
    if job_id:
        slurm = _Slurm.of("inspect", site, squeue, timeout, spool_ok=True)
        spooled = slurm.spooled(me)
        found = [j for j in (slurm.discover(job_id) if spooled is None else spooled) if j.jobid == job_id]
        wckey = found[0].wckey if found else ""
    job = shares.Job(jobid=job_id or "0", owner=owner or me.name, wckey=wckey, name=job_name, comment=comment or "")
    verifier = shares.Verifier(site, me)
    ev = verifier.evaluate(job, check_wckey=bool(wckey)) if job_id else _inspect_without_job(verifier, job)
    for number, step in enumerate(ev.steps, 1):
        state = {True: "ok", False: "FAIL", None: "skip"}[step.ok]
        click.echo(f"step {number}  {step.name:<22} {state:<4}  {step.detail}")
    if ev.accepted:
        click.echo(f"accepted: {ev.label()}")
        return
    if ev.rejection is not None:
        click.echo(f"rejected: {ev.rejection.reason}" + (f" ({ev.rejection.detail})" if ev.rejection.detail else ""))
    else:
        click.echo("not fully checked: give --job-id and --owner to check the tag")
    sys.exit(1)


def _inspect_without_job(verifier: shares.Verifier, job: shares.Job) -> shares.Evaluation:
    """Checks that need no job: transport, syntax, audience, key access."""
    ev = shares.Evaluation(job=job)
    ev.steps.append(shares.Step("wckey", None, "not checked: give --job-id of a running job"))
    ev.steps.append(shares.Step("publisher", None, "not checked: give --owner"))
    try:
        token = codec.join_transport(job.name, job.comment or None)
        if token is None:
            raise Rejected("not-a-share", "the name does not start with mt1:")
        parsed = codec.parse_token(token)
        ev.steps.append(shares.Step("token", True, f"{len(token)} characters; audience {parsed.aud}, "
                                                   f"key version {parsed.kv}"))
        verifier.audience_key(parsed.aud, parsed.kv)
        ev.steps.append(shares.Step("key", True, f"key {parsed.kv} of {parsed.aud} readable by {verifier.me.name}"))
        ev.steps.append(shares.Step("tag", None, "not checked: give --job-id and --owner"))
    except Rejected as exc:
        ev.rejection = exc
        ev.steps.append(shares.Step(exc.reason, False, exc.detail))
    return ev
