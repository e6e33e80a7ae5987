"""The share agent (mt_publish.sh `mt_agent_start`) run by bash as a service job runs it, without
Slurm: a stand-in `scontrol` records the rename, the real gate runs in front of a real HTTP
service, and the publisher's side is ood_mt.publisher_cli (what `ood-mt unshare` sends). The
real-Slurm run, receivers and the database included, is tests/apps/test_run_unshare.py."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from ood_mt import keys, publisher_cli
from ood_mt.app_templates import SERVICE_HELPERS, SHARED, service_library_text
from tests.gate.test_gate_partial import OOD_HELPERS, _python

VECTORS = Path(__file__).resolve().parents[1] / "vectors"

JOB = r'''
set -u
source ./lib.sh
host=127.0.0.1
port="$(find_port 127.0.0.1)"
SLURM_JOB_ID=4711
MT_SHARE_AUDIENCE=group MT_SHARE_GROUP=mtclass MT_SHARE_MODE=card MT_SHARE_PRESET=weblink MT_SHARE_USERS=""
MT_SHARE_UNTIL="${TEST_SHARE_UNTIL:-}"
MT_PRESET_DELIVERY="*=mt_delivery_default"
export host port SLURM_JOB_ID
mt_gate_prepare
SERVICE='exec /usr/bin/python3 -m http.server "$port" --bind 127.0.0.1'
export SERVICE
(cd www && exec bash -c 'source ../lib.sh; mt_gate_run -- bash -c "$SERVICE"') >script.out 2>&1 &
SCRIPT_PID=$!
mt_gate_wait 30 || { echo "gate did not start: ${mt_share_status}"; exit 1; }
mt_service_publish --app custom --title "Agent test" --key-dir "$PWD/keys" \
  --conn host=127.0.0.1 --conn port="$port" --conn gate_secret="$(mt_gate_secret)"
printf 'port=%s\nstatus=%s\nagent=%s\n' "$port" "${mt_share_status}" "${MT_AGENT_PID:-}" >job.ready
wait "$SCRIPT_PID"
'''


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.fixture
def job(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    with run_job(tmp_path, "") as started:
        yield started


@contextlib.contextmanager
def run_job(tmp_path: Path, until: str) -> Iterator[tuple[Path, dict[str, str]]]:
    """The JOB script running in TMP_PATH with the form's "Share until" UNTIL; (dir, job.ready values)."""
    tmp_path.mkdir(exist_ok=True)
    lib = OOD_HELPERS + service_library_text() + "\n" + "\n".join(
        (SHARED / "partials" / name).read_text() for name in SERVICE_HELPERS)
    (tmp_path / "lib.sh").write_text(lib)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("<p>the service</p>\n")
    group = tmp_path / "keys" / "mtclass"
    group.mkdir(parents=True)
    (group / "current").write_text("1\n")
    (group / "v1.key").write_text(keys.derive_group_key(os.urandom(32), "mtclass", 1).hex() + "\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >>{tmp_path}/scontrol.log\n')
    (bin_dir / "scontrol").chmod(0o755)
    with open(tmp_path / "job.out", "w") as out:
        proc = subprocess.Popen(["bash", "-c", JOB], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
                                                             "MT_GATE_PYTHON": str(_python(tmp_path)),
                                                             "TEST_SHARE_UNTIL": until})
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "job.ready").exists():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "job.out").read_text()
            time.sleep(0.2)
        time.sleep(0.2)
        values = dict(line.split("=", 1) for line in (tmp_path / "job.ready").read_text().splitlines())
        yield tmp_path, values
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_unshare_renames_rotates_the_gate_secret_and_keeps_the_service(job: tuple[Path, dict[str, str]]) -> None:
    work, values = job
    assert values["status"] == "\"shared with group mtclass\"" and values["agent"], values
    directory = publisher_cli.agent_dir(work, os.getuid())
    old = (work / "mt_gate" / "secret").read_text().strip()
    base = f"http://127.0.0.1:{values['port']}"
    assert _status(f"{base}/{old}/") == 200
    published = (work / "scontrol.log").read_text()
    assert "JobName=mt1:mtclass:1:" in published

    started = time.monotonic()
    reply = publisher_cli.send(directory, "request=unshare", 20)
    assert reply is not None and reply.startswith("unshared at "), (work / "job.out").read_text()
    assert "no longer a share" in reply and "the gate's secret was rotated" in reply
    assert time.monotonic() - started < 5
    assert (work / "scontrol.log").read_text().splitlines()[-1] == "update JobId=4711 JobName=mt-unshared Comment="
    new = (work / "mt_gate" / "secret").read_text().strip()
    assert new != old
    assert _status(f"{base}/{old}/") == 404, "the old secret is refused"
    assert _status(f"{base}/{new}/") == 200, "the service keeps running, for the publisher"
    assert "share agent: unshared at" in (work / "job.out").read_text()
    assert old not in (work / "job.out").read_text() and new not in (work / "job.out").read_text()

    again = publisher_cli.send(directory, "request=unshare", 20)
    assert again is not None and again.startswith("already unshared: ")
    assert (work / "scontrol.log").read_text().count("mt-unshared") == 1


def test_a_malformed_request_is_refused_with_a_clear_message(job: tuple[Path, dict[str, str]]) -> None:
    work, _values = job
    directory = publisher_cli.agent_dir(work, os.getuid())
    (directory / "request").write_text("rm -rf /\n")
    deadline = time.monotonic() + 10
    while not (directory / "reply").exists():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert (directory / "reply").read_text() == "refused: line 'rm -rf /' is not key=value; nothing was changed\n"
    assert "mt-unshared" not in (work / "scontrol.log").read_text()
    (directory / "reply").unlink()
    os.symlink("/etc/passwd", directory / "request")
    deadline = time.monotonic() + 10
    while not (directory / "reply").exists():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert (directory / "reply").read_text().startswith("refused: the request is not a plain file of yours")


def test_the_cli_refuses_a_directory_the_agent_did_not_make(tmp_path: Path) -> None:
    with pytest.raises(publisher_cli.AgentError, match="has no share agent"):
        publisher_cli.agent_dir(tmp_path, os.getuid())
    (tmp_path / "mt_agent").mkdir(mode=0o755)
    (tmp_path / "mt_agent").chmod(0o755)
    with pytest.raises(publisher_cli.AgentError, match="mode 0700"):
        publisher_cli.agent_dir(tmp_path, os.getuid())
    with pytest.raises(publisher_cli.AgentError, match="mode 0700"):
        publisher_cli.agent_dir(tmp_path, os.getuid() + 1)


def _squeue_double(tmp_path: Path, line: str) -> str:
    double = tmp_path / f"squeue-{len(list(tmp_path.glob('squeue-*')))}"
    double.write_text(f"#!/bin/sh\nprintf '%s\\n' '{line}'\n" if line else "#!/bin/sh\nexit 0\n")
    double.chmod(0o755)
    return str(double)


def test_the_cli_refuses_what_it_cannot_deliver(tmp_path: Path) -> None:
    import pwd

    from click.testing import CliRunner

    me = pwd.getpwuid(os.getuid()).pw_name
    runner = CliRunner()
    for args, message in (
        (["4x"], "is not a Slurm job id"),
        (["--squeue", _squeue_double(tmp_path, ""), "4711"], "job 4711 is not running"),
        (["--squeue", _squeue_double(tmp_path, f"someoneelse {tmp_path}"), "4711"],
         "job 4711 belongs to someoneelse; only its publisher can unshare it"),
        (["--squeue", _squeue_double(tmp_path, f"{me} {tmp_path}"), "4711"], "this job has no share agent"),
    ):
        result = runner.invoke(publisher_cli.unshare_command, args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    help_text = runner.invoke(publisher_cli.unshare_command, ["--help"]).output
    assert "Example" in help_text and "ood-mt unshare 4711" in help_text


def test_no_answer_is_said_and_exits_1(tmp_path: Path) -> None:
    import pwd

    from click.testing import CliRunner

    (tmp_path / "mt_agent").mkdir(mode=0o700)
    me = pwd.getpwuid(os.getuid()).pw_name
    result = CliRunner().invoke(publisher_cli.unshare_command,
                                ["--squeue", _squeue_double(tmp_path, f"{me} {tmp_path}"), "--wait", "0.5", "4711"])
    assert result.exit_code == 1 and "did not answer within 0.5 s" in result.output
    assert (tmp_path / "mt_agent" / "request").read_text() == "request=unshare\n"
    assert (tmp_path / "mt_agent" / "request").stat().st_mode & 0o777 == 0o600


def _library(tmp_path: Path) -> Path:
    lib = tmp_path / "lib.sh"
    lib.write_text(service_library_text() + "\n" + "\n".join(
        (SHARED / "partials" / name).read_text() for name in SERVICE_HELPERS))
    return lib


def test_request_vectors_python_and_agent_agree(tmp_path: Path) -> None:
    """tests/vectors/agent_requests.json: the CLI's parse_request and the agent's mt__agent_parse."""
    cases = json.loads((VECTORS / "agent_requests.json").read_text())["cases"]
    lib = _library(tmp_path)
    script = [f"source {lib}"]
    for i, case in enumerate(cases):
        (tmp_path / f"r{i}").write_bytes(case["text"].encode())
        script.append(f'if mt__agent_parse {tmp_path}/r{i} request; then echo "{i} ok"; else echo "{i} $MT_ERROR"; fi')
    done = subprocess.run(["bash", "-c", "\n".join(script)], capture_output=True, text=True, check=True)
    agent = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert len(agent) == len(cases), done.stderr
    for i, case in enumerate(cases):
        try:
            publisher_cli.parse_request(case["text"])
            python = "ok"
        except publisher_cli.RequestError as exc:
            python = str(exc)
        if case["ok"]:
            assert python == "ok" and agent[str(i)] == "ok", (case["name"], python, agent[str(i)])
        else:
            assert case["reason"] in python and case["reason"] in agent[str(i)], (case["name"], python, agent[str(i)])


def test_until_vectors_python_and_agent_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/vectors/agent_until.json: publisher_cli.until_epoch and the agent's mt_until_epoch."""
    data = json.loads((VECTORS / "agent_until.json").read_text())
    monkeypatch.setenv("TZ", data["tz"])
    time.tzset()
    lib = _library(tmp_path)
    try:
        for case in data["cases"]:
            code = f'source {lib}; mt_until_epoch "$1" {data["now"]} && echo "$MT_UNTIL_EPOCH"'
            done = subprocess.run(["bash", "-c", code, "x", case["text"]],
                                  capture_output=True, text=True, check=False)
            agent = int(done.stdout) if done.returncode == 0 else None
            try:
                python: int | None = publisher_cli.until_epoch(case["text"], data["now"])
            except publisher_cli.RequestError:
                python = None
            assert agent == python == case["epoch"], (case, agent, python)
    finally:
        monkeypatch.undo()
        time.tzset()


def _ask(directory: Path, text: str) -> str:
    reply = publisher_cli.send(directory, text, 20)
    assert reply is not None
    return reply


def test_share_changes_audience_status_and_expiry(job: tuple[Path, dict[str, str]]) -> None:
    """A status update keeps `created` and the secret; a new audience rotates the secret first and
    is a new publication; the expiry unshares on time; sharing again after it works."""
    work, values = job
    directory = publisher_cli.agent_dir(work, os.getuid())
    base = f"http://127.0.0.1:{values['port']}"
    first = (directory / "share").read_text()
    assert "audience=group\ngroup=mtclass\n" in first and "created=" in first
    old = (work / "mt_gate" / "secret").read_text().strip()

    reply = _ask(directory, "request=share\nstatus=model loaded\n")
    assert reply == "shared: shared with group mtclass; status: model loaded", reply
    assert (work / "mt_gate" / "secret").read_text().strip() == old
    state = (directory / "share").read_text()
    assert "status=model loaded\n" in state
    assert first.split("created=")[1] == state.split("created=")[1], "a status update keeps created"
    assert (work / "scontrol.log").read_text().count("JobName=mt1:mtclass:1:") == 2

    (work / "keys" / "mtusr").mkdir()
    (work / "keys" / "mtusr" / "current").write_text("1\n")
    (work / "keys" / "mtusr" / "v1.key").write_text(keys.derive_group_key(os.urandom(32), "mtusr", 1).hex() + "\n")
    time.sleep(1)
    reply = _ask(directory, "request=share\naudience=group\ngroup=mtusr\n")
    assert reply.startswith("shared: shared with group mtusr; status: model loaded; a new publication; "
                            "the gate's secret was rotated"), reply
    new = (work / "mt_gate" / "secret").read_text().strip()
    assert new != old and _status(f"{base}/{old}/") == 404 and _status(f"{base}/{new}/") == 200
    assert int((directory / "share").read_text().split("created=")[1]) > int(first.split("created=")[1])
    assert (work / "scontrol.log").read_text().splitlines()[-1].startswith("update JobId=4711 JobName=mt1:mtusr:1:")

    until = int(time.time()) + 3
    reply = _ask(directory, f"request=share\nuntil={until}\n")
    assert reply.startswith("expires at "), reply
    deadline = time.monotonic() + 10
    while "mt-unshared" not in (work / "scontrol.log").read_text():
        assert time.monotonic() < deadline, (work / "job.out").read_text()
        time.sleep(0.2)
    assert time.time() >= until
    assert "the share expired at" in (directory / "unshared").read_text()
    deadline = time.monotonic() + 5
    while _status(f"{base}/{new}/") != 404:
        assert time.monotonic() < deadline, "the expiry rotates the secret"
        time.sleep(0.2)

    assert _ask(directory, "request=share\nstatus=back\n").startswith("refused: this job is unshared")
    reply = _ask(directory, "request=share\naudience=group\ngroup=mtclass\n")
    assert reply.startswith("shared: shared with group mtclass; status: back") is False
    assert reply.startswith("shared: shared with group mtclass"), reply
    assert "until" not in (directory / "share").read_text(), "an ended expiry does not carry over"
    assert (work / "scontrol.log").read_text().splitlines()[-1].startswith("update JobId=4711 JobName=mt1:mtclass:1:")

    for text, reason in (("request=share\nuntil=1000000000\n", "is not in the future"),
                         ("request=share\naudience=group\ngroup=nosuchgroup\n", "the earlier publication was ended")):
        assert reason in _ask(directory, text)


def test_share_cli_checks_before_sending(tmp_path: Path) -> None:
    from click.testing import CliRunner

    runner = CliRunner()
    for args, message in ((["--status", "$(id)", "4711"], "does not match"),
                          (["--users", "alice", "4711"], "users= goes with audience=users only"),
                          (["--until", "tomorrow", "4711"], "is neither a duration"),
                          (["4711"], "share needs at least one")):
        result = runner.invoke(publisher_cli.share_command, args)
        assert result.exit_code == 2 and message in result.output and "nothing was sent" in result.output, result.output


def test_the_forms_share_until_reaches_the_agent(tmp_path: Path) -> None:
    started = time.time()
    with run_job(tmp_path / "ok", "2h") as (work, values):
        state = (work / "mt_agent" / "share").read_text()
        until = int(state.split("until=")[1].split()[0])
        assert started + 7200 - 5 <= until <= time.time() + 7200, state
        assert values["status"].startswith("\"shared with group mtclass; until "), values
    with run_job(tmp_path / "bad", "tomorrow") as (work, values):
        assert values["status"] == ("\"not shared: form field 'Share until': 'tomorrow' is neither a duration "
                                    "(30m, 2h, 7d) nor a time YYYY-MM-DD HH:MM; fix it in the form\""), values
        assert not (work / "mt_agent").exists() and not (work / "scontrol.log").exists()
