"""End to end on the real host Slurm: publish, discover, verify, cards, cleanup, CLI.

A publisher job (mtpub, --wckey=multitenant) publishes with the real bash library (a service's
template/mt_share.sh: ood_mt.app_templates.service_library_text()); the RENDERED initializer runs
inside OOD's own dashboard code (tests/ood/oodsite.py: boot, request hook, Session.all with ood_core's
squeue status check, card bodies through connections/_custom.html.erb) as each lab user via
runuser; the share CLI runs as the lab users too. Keys are generated per test run.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ood_mt import app_templates, codec, config, keys, render, shares_cli
from tests.ood.oodsite import OOD_VERSIONS, OodSite, site_around

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
LAB_SITE = REPO / "inventories/lab/group_vars/all/multitenant.yml"
PUBLISH_WAIT_S = 90


def run_as(user: str, argv: list[str], env: dict[str, str] | None = None, timeout: float = 120,
           stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """argv as USER with a clean login-like environment (secrets never in argv)."""
    entry = pwd.getpwnam(user)
    clean = {"HOME": entry.pw_dir, "USER": user, "LOGNAME": user, "LANG": "C.UTF-8",
             "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
    clean.update(env or {})
    return subprocess.run(["runuser", "-u", user, "--", *argv], capture_output=True, text=True, env=clean,
                          timeout=timeout, input=stdin, check=False, cwd="/")


@dataclass
class Lab:
    base: Path
    keys_dir: Path
    master: bytes
    initializer: Path
    site_json: Path
    apps: Path
    jobs: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    ood: OodSite | None = None

    def dashboard(self, user: str, *extra: str) -> dict[str, Any]:
        """USER's sessions page through OOD's code: {"cards", "log" (the kit's lines),
        "specs" (job ids the kit offers in forms), "form" (with --form APP: its attributes)}."""
        assert self.ood is not None
        page = self.ood.run(user, OOD_VERSIONS[0], "sessions")
        cards = [{**card, "connection": card.get("connect", {}), "view_html": card.get("body", "")}
                 for card in page["result"]]
        result: dict[str, Any] = {"cards": cards, "log": _kit_lines(page["log"]),
                                  "specs": page["boot"]["multitenant_specs"]}
        if extra[:1] == ("--form",):
            form = self.ood.run(user, OOD_VERSIONS[0], "form", extra[1])
            result["form"] = {"attributes": {a["id"]: a for a in form["result"]["attributes"]}}
        return result

    def cli(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        command, *rest = args
        code = ("import sys; from ood_mt import shares_cli; "
                f"shares_cli.{command}_command(sys.argv[1:], prog_name='ood-mt {command}')")
        return run_as(user, ["/usr/bin/python3", "-c", code, "--site-json", str(self.site_json), *rest],
                      env={"PYTHONPATH": str(self.base / "py")})


def _write_key_file(path: Path, text: str, group_gid: int) -> None:
    path.write_text(text)
    os.chown(path, 0, group_gid)
    path.chmod(0o440)


def _submit(user: str, workdir: Path, script: str, wckey: bool = True, name: str = "mt-placeholder") -> str:
    argv = ["sbatch", "--parsable", f"--chdir={workdir}", f"--output={workdir}/slurm-%j.out", "-J", name]
    if wckey:
        argv.append("--wckey=multitenant")
    proc = run_as(user, argv, stdin=script)
    assert proc.returncode == 0, f"sbatch as {user}: {proc.stderr}"
    return proc.stdout.strip().split(";")[0]


def _squeue_field(jobid: str, fmt: str) -> str:
    proc = subprocess.run(["squeue", "-h", "-j", jobid, "-o", fmt], capture_output=True, text=True, check=False)
    return proc.stdout.strip()


def _wait(jobid: str, predicate: str, workdir: Path) -> None:
    deadline = time.monotonic() + PUBLISH_WAIT_S
    while time.monotonic() < deadline:
        if predicate == "running" and _squeue_field(jobid, "%T") == "RUNNING":
            return
        if predicate == "published" and _squeue_field(jobid, "%j").startswith("mt1:"):
            return
        time.sleep(0.5)
    out = workdir / f"slurm-{jobid}.out"
    pytest.fail(f"job {jobid} not {predicate} after {PUBLISH_WAIT_S} s; output: "
                f"{out.read_text() if out.exists() else '(none)'}")


def _publish_script(base: Path, mode: str) -> str:
    return f"""#!/bin/bash
set -euo pipefail
source {base}/mt_share.sh
mt_publish --app database --title "Test DB {mode}" --preset connection --mode {mode} \\
  --delivery sys/mt_delivery_default --audience group --group mtclass --key-dir {base}/keys \\
  --conn host="$(hostname -s)" --conn port=4242 --conn database=classdb --conn user=student \\
  --conn 'password=pa#ss:x{{y}}' --conn 'x_note=2024-01-31'
exec sleep 900
"""


def _rename(user: str, jobid: str, name: str) -> None:
    proc = run_as(user, ["scontrol", "update", f"JobId={jobid}", f"JobName={name}"])
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def lab(host_slurm: dict[str, str]) -> Any:
    base = Path(tempfile.mkdtemp(prefix="ood-mt-initializer-", dir="/tmp"))
    base.chmod(0o755)
    jobs: dict[str, str] = {}
    try:
        # Keys: current 3, previous 2 kept, 1 retired (file gone), as the keys role leaves them.
        master = os.urandom(32)
        keys_dir = base / "keys"
        group_dir = keys_dir / "mtclass"
        group_dir.mkdir(parents=True)
        keys_dir.chmod(0o755)
        gid = grp.getgrnam("mtclass").gr_gid
        os.chown(group_dir, 0, gid)
        group_dir.chmod(0o750)
        for version in (2, 3):
            key_hex = keys.derive_group_key(master, "mtclass", version).hex()
            _write_key_file(group_dir / f"v{version}.key", key_hex + "\n", gid)
        _write_key_file(group_dir / "current", "3\n", gid)

        raw = yaml.safe_load(LAB_SITE.read_text())
        raw["multitenant"]["cluster"] = host_slurm.get("OOD_MT_SLURM_CLUSTER", "hostlab")
        raw["multitenant"]["keys"]["dir"] = str(keys_dir)
        # The lab's site-local app was generated for the lab's cluster; this site runs on this
        # machine's Slurm cluster, and the test is about the built-in apps.
        raw["multitenant"]["local_apps"] = []
        site = config.validate(raw, str(LAB_SITE))
        initializer = base / "ood_multitenant.rb"
        render.render_initializer(site, initializer)
        site_json = base / "site.json"
        site_json.write_text(json.dumps(site.public_summary()))
        (base / "mt_share.sh").write_text(app_templates.service_library_text(), encoding="utf-8")
        shutil.copytree(REPO / "src/ood_mt", base / "py/ood_mt")
        # the real apps (deliveries render the cards, mt_jupyter's form lists the shares)
        render.build(site, base / "build")
        work = base / "work"
        work.mkdir()
        work.chmod(0o1777)
        for path in base.rglob("*"):
            if path.is_relative_to(keys_dir) or path.is_relative_to(work):
                continue
            path.chmod(0o755 if path.is_dir() else 0o644)

        lab = Lab(base, keys_dir, master, initializer, site_json, base / "build" / "apps", jobs)
        lab.ood = site_around(base, lab.apps, initializer, keys_dir, master, site_json, cluster_id=site.data["cluster"])
        jobs["card"] = _submit("mtpub", work, _publish_script(base, "card"))
        jobs["form"] = _submit("mtpub", work, _publish_script(base, "form"))
        jobs["forged"] = _submit("mtrecv", work, _publish_script(base, "card"))
        plain = "#!/bin/bash\nexec sleep 900\n"
        jobs["copied"] = _submit("mtpub", work, plain)
        jobs["outsider_copy"] = _submit("mtout", work, plain, wckey=False)
        jobs["tampered"] = _submit("mtpub", work, plain)
        jobs["retired"] = _submit("mtpub", work, plain)
        for name in ("card", "form", "forged"):
            _wait(jobs[name], "published", work)
        for name in ("copied", "outsider_copy", "tampered", "retired"):
            _wait(jobs[name], "running", work)
        card_name = _squeue_field(jobs["card"], "%1024j")
        lab.tokens["card"] = card_name
        _rename("mtpub", jobs["copied"], card_name)
        _rename("mtout", jobs["outsider_copy"], card_name)
        payload = {"v": 1, "app": "llm", "title": "Forged", "preset": "", "mode": "card",
                   "delivery": "sys/mt_delivery_default", "session": "x", "created": int(time.time()),
                   "conn": {"host": "evil.example", "port": "1"}}
        good = codec.encode(payload, group_key=keys.derive_group_key(master, "mtclass", 3), aud="mtclass", kv=3,
                            jobid=jobs["tampered"], owner="mtpub")
        flip = len(good) - 30
        tampered = good[:flip] + ("A" if good[flip] != "A" else "B") + good[flip + 1 :]
        _rename("mtpub", jobs["tampered"], tampered)
        retired = codec.encode(payload, group_key=keys.derive_group_key(master, "mtclass", 1), aud="mtclass", kv=1,
                               jobid=jobs["retired"], owner="mtpub")
        _rename("mtpub", jobs["retired"], retired)
        lab.tokens["tampered"] = tampered
        yield lab
    finally:
        if jobs:
            subprocess.run(["scancel", *jobs.values()], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _kit_lines(log: list[str]) -> list[str]:
    """The kit's own log lines (Rails' log also holds OOD's), without the level prefix."""
    return [line.split(": ", 1)[1] for line in log if ": ood-mt: " in line]


def _rejections(result: dict[str, Any], jobs: dict[str, str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, jobid in jobs.items():
        prefix = f"ood-mt: job {jobid}: rejected: "
        found[name] = [line[len(prefix):].split(" ", 1)[0] for line in result["log"] if line.startswith(prefix)]
    return found


def _my_cards(result: dict[str, Any], lab: Lab) -> list[dict[str, Any]]:
    return [c for c in result["cards"] if c["job_id"] in lab.jobs.values()]


@pytest.mark.parametrize("receiver", ["mtrecv", "mtrecv2"])
def test_receiver_gets_a_running_card_that_renders(lab: Lab, receiver: str) -> None:
    result = lab.dashboard(receiver, "--form", "mt_jupyter")
    cards = _my_cards(result, lab)
    assert [c["job_id"] for c in cards] == [lab.jobs["card"]]
    card = cards[0]
    assert card["status"] == "running"
    assert card["token"] == "sys/mt_delivery_default"
    assert card["title"] == f"Test DB card from mtpub (job {lab.jobs['card']})"
    assert card["connection"]["password"] == "pa#ss:x{y}"
    assert card["connection"]["x_note"] == "2024-01-31"  # a date-like string stays a string
    assert "4242" in card["view_html"] and "pa#ss:x{y}" in card["view_html"]
    conn_file = Path(card["connection_path"])
    assert conn_file.stat().st_mode & 0o777 == 0o600
    assert conn_file.parent.stat().st_mode & 0o777 == 0o700
    assert conn_file.stat().st_uid == pwd.getpwnam(receiver).pw_uid
    form_ids = [option[1] for option in result["form"]["attributes"]["mt_database_share"]["options"]]
    # "card" shares are offered in client forms too; "form" shares only there
    assert lab.jobs["form"] in form_ids and lab.jobs["card"] in form_ids
    assert lab.jobs["form"] in result["specs"]


def test_every_forgery_is_rejected_with_its_reason(lab: Lab) -> None:
    result = lab.dashboard("mtrecv")
    reasons = _rejections(result, lab.jobs)
    assert reasons == {
        "card": [], "form": [],
        "forged": ["publisher-not-in-group"],
        "copied": ["bad-tag"],
        "outsider_copy": ["wrong-wckey"],
        "tampered": ["bad-tag"],
        "retired": ["key-version-retired"],
    }


def test_outsider_sees_nothing_and_reads_no_key(lab: Lab) -> None:
    result = lab.dashboard("mtout")
    assert result["cards"] == []
    assert not any(spec_id in lab.jobs.values() for spec_id in result["specs"])
    assert set(_rejections(result, lab.jobs)["card"]) == {"not-in-audience"}
    for target in ("mtclass/current", "mtclass/v3.key", "mtclass/v2.key"):
        proc = run_as("mtout", ["cat", str(lab.keys_dir / target)])
        assert proc.returncode != 0 and "Permission denied" in proc.stderr


def test_publisher_gets_no_card_but_uses_its_shares_in_forms(lab: Lab) -> None:
    result = lab.dashboard("mtpub")
    assert _my_cards(result, lab) == []
    assert _rejections(result, lab.jobs)["card"] == []
    assert lab.jobs["form"] in result["specs"] and lab.jobs["card"] in result["specs"]


def test_cli_list_and_show_as_receiver(lab: Lab) -> None:
    listed = lab.cli("mtrecv", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [r for r in json.loads(listed.stdout) if r["jobid"] in lab.jobs.values()]
    assert sorted(r["jobid"] for r in rows) == sorted([lab.jobs["card"], lab.jobs["form"]])
    assert all("conn" not in r for r in rows), "list never prints connection secrets"
    shown = lab.cli("mtrecv", "show", lab.jobs["card"], "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["conn"]["password"] == "pa#ss:x{y}"
    forged = lab.cli("mtrecv", "show", lab.jobs["forged"])
    assert forged.returncode == 1
    assert f"ood-mt: job {lab.jobs['forged']}: rejected: publisher-not-in-group" in forged.stderr
    outsider = lab.cli("mtout", "list", "--json")
    assert outsider.returncode == 0, outsider.stderr
    assert [r for r in json.loads(outsider.stdout) if r["jobid"] in lab.jobs.values()] == []


def test_cli_inspect_explains(lab: Lab) -> None:
    full = lab.cli("mtrecv", "inspect", lab.tokens["card"], "--job-id", lab.jobs["card"], "--owner", "mtpub")
    assert full.returncode == 0, full.stdout + full.stderr
    assert "step 1  wckey" in full.stdout
    assert f"accepted: Test DB card from mtpub (job {lab.jobs['card']})" in full.stdout
    tampered = lab.cli("mtrecv", "inspect", lab.tokens["tampered"], "--job-id", lab.jobs["tampered"],
                       "--owner", "mtpub")
    assert tampered.returncode == 1 and "rejected: bad-tag" in tampered.stdout
    partial = lab.cli("mtrecv", "inspect", lab.tokens["card"])
    assert partial.returncode == 1 and "not fully checked" in partial.stdout
    assert "key 3 of mtclass readable" in partial.stdout
    outsider = lab.cli("mtout", "inspect", lab.tokens["card"])
    assert outsider.returncode == 1 and "rejected: not-in-audience" in outsider.stdout


def test_cli_audit_as_root_and_refused_without_key_access(lab: Lab) -> None:
    result = CliRunner().invoke(shares_cli.audit_command, ["--site-json", str(lab.site_json), "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["jobid"]: r for r in json.loads(result.output)}
    status = {name: rows[jobid]["status"] for name, jobid in lab.jobs.items()}
    assert status == {"card": "ok", "form": "ok", "forged": "publisher-not-in-group", "copied": "bad-tag",
                      "outsider_copy": "wrong-wckey", "tampered": "bad-tag", "retired": "key-version-retired"}
    card = rows[lab.jobs["card"]]
    assert (card["publisher"], card["audience"], card["app"]) == ("mtpub", "mtclass", "database")
    members = set(grp.getgrnam("mtclass").gr_mem) | {p.pw_name for p in pwd.getpwall()
                                                     if p.pw_gid == grp.getgrnam("mtclass").gr_gid}
    assert card["size"] == len(members)
    refused = lab.cli("mtout", "audit")
    assert refused.returncode == 2 and "cannot read key files" in refused.stderr
    assert "run `ood-mt audit` as root" in refused.stderr


def _form_ids(result: dict[str, Any]) -> list[str]:
    return [option[1] for option in result["form"]["attributes"]["mt_database_share"]["options"]]


def test_receiver_hides_a_share_until_it_is_published_anew(lab: Lab) -> None:
    """`ood-mt hide` as mtrecv: the card goes (db file and connection too), the share leaves
    mtrecv's forms and `ood-mt list`, `list --hidden` shows it; mtrecv2 keeps it. A broken hidden
    file hides nothing and is left alone; a new publication of the job (another created) is shown."""
    card = lab.jobs["card"]
    hidden_file = Path(pwd.getpwnam("mtrecv").pw_dir) / ".config/ood-mt/hidden.json"
    hidden_file.unlink(missing_ok=True)
    try:
        before = _my_cards(lab.dashboard("mtrecv"), lab)
        assert [c["job_id"] for c in before] == [card]
        db_file = lab.base / "data/mtrecv/batch_connect/db" / before[0]["id"]
        conn_dir = Path(before[0]["connection_path"]).parent
        done = lab.cli("mtrecv", "hide", card)
        assert done.returncode == 0 and f"job {card}: hidden (Test DB card from mtpub" in done.stdout, done.stderr
        assert hidden_file.stat().st_uid == pwd.getpwnam("mtrecv").pw_uid
        assert hidden_file.stat().st_mode & 0o777 == 0o600
        after = lab.dashboard("mtrecv", "--form", "mt_jupyter")
        assert _my_cards(after, lab) == [] and not db_file.exists() and not conn_dir.exists()
        assert card not in after["specs"] and card not in _form_ids(after)
        assert lab.jobs["form"] in _form_ids(after)
        listed = json.loads(lab.cli("mtrecv", "list", "--json").stdout)
        assert card not in [r["jobid"] for r in listed] and lab.jobs["form"] in [r["jobid"] for r in listed]
        hidden_rows = json.loads(lab.cli("mtrecv", "list", "--hidden", "--json").stdout)
        assert [(r["jobid"], r["running"], r["publisher"]) for r in hidden_rows] == [(card, True, "mtpub")]
        assert [c["job_id"] for c in _my_cards(lab.dashboard("mtrecv2"), lab)] == [card], "only mtrecv hid it"

        good = hidden_file.read_bytes()
        broken = b'{"format": 1, "hidden": [{"jobid": "' + card.encode()
        assert run_as("mtrecv", ["sh", "-c", f"printf %s '{broken.decode()}' > {hidden_file}"]).returncode == 0
        shown = lab.dashboard("mtrecv")
        assert [c["job_id"] for c in _my_cards(shown, lab)] == [card], "a broken file hides nothing"
        assert [line for line in shown["log"] if f"hidden shares file {hidden_file}: not valid JSON" in line
                and "fix:" in line], shown["log"]
        refused = lab.cli("mtrecv", "hide", lab.jobs["form"])
        assert refused.returncode == 2 and "left as it was" in refused.stderr
        assert hidden_file.read_bytes() == broken
        assert run_as("mtrecv", ["sh", "-c", f"printf %s '{good.decode()}' > {hidden_file}"]).returncode == 0
        assert _my_cards(lab.dashboard("mtrecv"), lab) == []

        # The publisher publishes the job anew (a re-share: another created): shown again.
        payload = {"v": 1, "app": "database", "title": "Test DB card", "preset": "connection", "mode": "card",
                   "delivery": "sys/mt_delivery_default", "session": "re", "created": int(time.time()) + 1,
                   "conn": {"host": "node", "port": "4242", "database": "classdb", "user": "student",
                            "password": "pw"}}
        _rename("mtpub", card, codec.encode(payload, group_key=keys.derive_group_key(lab.master, "mtclass", 3),
                                             aud="mtclass", kv=3, jobid=card, owner="mtpub"))
        assert [c["job_id"] for c in _my_cards(lab.dashboard("mtrecv"), lab)] == [card]
        hidden_rows = json.loads(lab.cli("mtrecv", "list", "--hidden", "--json").stdout)
        assert [(r["jobid"], r["running"]) for r in hidden_rows] == [(card, False)]
        undone = lab.cli("mtrecv", "hide", "--undo", card)
        assert undone.returncode == 0 and "shown again" in undone.stdout
        assert json.loads(lab.cli("mtrecv", "list", "--hidden", "--json").stdout) == []
    finally:
        hidden_file.unlink(missing_ok=True)


def test_scancel_removes_card_and_connection_at_next_refresh(lab: Lab) -> None:
    before = _my_cards(lab.dashboard("mtrecv"), lab)
    assert len(before) == 1
    conn_dir = Path(before[0]["connection_path"]).parent
    db_file = lab.base / "data/mtrecv/batch_connect/db" / before[0]["id"]
    assert conn_dir.is_dir() and db_file.is_file()
    subprocess.run(["scancel", lab.jobs["card"]], check=True)
    deadline = time.monotonic() + 60
    while _squeue_field(lab.jobs["card"], "%T") == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.5)
    after = lab.dashboard("mtrecv")
    assert _my_cards(after, lab) == []
    assert not db_file.exists() and not conn_dir.exists()
    state = json.loads((lab.base / "data/mtrecv/batch_connect/.ood-mt/state.json").read_text())
    assert state["cards"] == {}
