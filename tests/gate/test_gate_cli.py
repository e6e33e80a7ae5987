"""The gate's command line: how the secret reaches it, readiness, refusals of bad setups, and the
gate run as a lab user by Debian's /usr/bin/python3 with python3-aiohttp (what a job on a compute
node does: the user cannot read root's venv)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

from tests.gate.conftest import SRC, SYSTEM_PYTHON, Upstream, gate_env, wait_ready

LAB_USER = "mtpub"


def gate_cli(args: List[str], python: str = SYSTEM_PYTHON, stdin: Optional[str] = None,
             flags: Optional[List[str]] = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, *(flags or []), "-m", "ood_mt.gate", *args], env=gate_env(), input=stdin,
                          capture_output=True, text=True, timeout=30, check=False)


def test_write_secret_makes_a_private_fresh_secret(secret_dir: Path) -> None:
    first, second = secret_dir / "a", secret_dir / "b"
    assert gate_cli(["--write-secret", str(first)]).returncode == 0
    assert gate_cli(["--write-secret", str(second)]).returncode == 0
    assert (first.stat().st_mode & 0o777) == 0o600
    assert first.read_text() != second.read_text()
    assert len(first.read_text().strip()) == 43
    again = gate_cli(["--write-secret", str(first)])
    assert again.returncode == 2 and "the file exists" in again.stderr


@pytest.mark.parametrize("problem, fix", [
    ("group readable", "chmod 600"),
    ("missing", "--write-secret"),
    ("symlink", "symlink is refused"),
    ("too short", "32 to 256 characters"),
    ("bad characters", "32 to 256 characters"),
    ("two lines", "32 to 256 characters"),
    ("directory", "not a regular file"),
    ("other owner", "not by the user running the gate"),
])
def test_bad_secret_files_are_refused_with_the_fix(secret_dir: Path, problem: str, fix: str) -> None:
    path = secret_dir / "secret"
    good = "s" * 43
    if problem == "group readable":
        path.write_text(good + "\n")
        path.chmod(0o640)
    elif problem == "symlink":
        (secret_dir / "real").write_text(good)
        (secret_dir / "real").chmod(0o600)
        path.symlink_to(secret_dir / "real")
    elif problem == "directory":
        path.mkdir(mode=0o700)
    elif problem != "missing":
        text = {"too short": "abc\n", "bad characters": "a/b" * 20 + "\n", "two lines": good + "\n" + good + "\n",
                "other owner": good + "\n"}[problem]
        path.write_text(text)
        path.chmod(0o600)
        if problem == "other owner":
            if os.geteuid() != 0:
                pytest.skip("giving the file to another user needs root")
            os.chown(path, pwd.getpwnam(LAB_USER).pw_uid, -1)
    done = gate_cli(["--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1", "--secret-file", str(path)])
    assert done.returncode == 2, done.stderr
    assert str(path) in done.stderr and fix in done.stderr, done.stderr
    assert good not in done.stderr + done.stdout


@pytest.mark.parametrize("args, message", [
    (["--listen", "nowhere"], "expected HOST:PORT"),
    (["--upstream", "https://127.0.0.1:1"], "expected http://127.0.0.1:PORT"),
    (["--upstream", "http://127.0.0.1:1/sub"], "(no path)"),
    (["--upstream", "unix:relative.sock"], "absolute path"),
    (["--allow-model-management"], "only applies with --policy ollama"),
])
def test_bad_arguments_name_the_option(secret_dir: Path, args: List[str], message: str) -> None:
    secret = secret_dir / "s"
    assert gate_cli(["--write-secret", str(secret)]).returncode == 0
    base = {"--listen": "127.0.0.1:0", "--upstream": "http://127.0.0.1:1", "--secret-file": str(secret)}
    for name, value in zip(args[::2], args[1::2]):
        base[name] = value
    argv = [x for kv in base.items() for x in kv] + [a for a in args if a == "--allow-model-management"]
    done = gate_cli(argv)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert gate_cli(["--listen", "127.0.0.1:0"]).stderr.strip().endswith(
        "missing --upstream, --secret-file; see python3 -m ood_mt.gate --help")


def test_missing_aiohttp_is_said_and_the_exit_code_lets_the_job_refuse_to_share(secret_dir: Path) -> None:
    """`python3 -S` hides Debian's dist-packages: the interpreter a node without python3-aiohttp has."""
    ok = gate_cli(["--check"])
    assert ok.returncode == 0 and "aiohttp 3.8" in ok.stdout, ok.stdout + ok.stderr
    missing = gate_cli(["--check"], flags=["-S"])
    assert missing.returncode == 3
    assert "aiohttp is not installed" in missing.stderr and "must not be shared without its gate" in missing.stderr
    secret = secret_dir / "s"
    assert gate_cli(["--write-secret", str(secret)], flags=["-S"]).returncode == 0, "needs only the stdlib"
    serve = gate_cli(["--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1", "--secret-file", str(secret)],
                     flags=["-S"])
    assert serve.returncode == 3 and "python3-aiohttp" in serve.stderr


def test_secret_on_stdin(upstream: Upstream, tmp_path: Path) -> None:
    secret = "k" * 40
    ready, log = tmp_path / "ready", tmp_path / "log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([SYSTEM_PYTHON, "-m", "ood_mt.gate", "--listen", "127.0.0.1:0", "--upstream",
                                 upstream.url, "--secret-file", "-", "--ready-file", str(ready)],
                                stdin=subprocess.PIPE, stdout=err, stderr=err, env=gate_env())
        assert proc.stdin is not None
        proc.stdin.write(secret.encode() + b"\n")
        proc.stdin.close()
        try:
            port = wait_ready(proc, ready, log)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{secret}/echo", timeout=10) as resp:
                assert json.loads(resp.read())["target"] == "/echo"
        finally:
            proc.terminate()
            assert proc.wait(10) == 0
    assert "ready on 127.0.0.1:" in log.read_text()


def test_listen_failure_is_clear(upstream: Upstream, secret_dir: Path) -> None:
    secret = secret_dir / "s"
    assert gate_cli(["--write-secret", str(secret)]).returncode == 0
    done = gate_cli(["--listen", "192.0.2.1:8080", "--upstream", upstream.url, "--secret-file", str(secret)])
    assert done.returncode == 1 and "cannot listen on 192.0.2.1:8080" in done.stderr, done.stderr
    assert "ready" not in done.stdout


def children(pid: int) -> List[str]:
    return subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout.split()


@pytest.fixture
def user_dir() -> Iterator[Path]:
    """A directory outside pytest's root-only tmp tree, for the lab user's job files."""
    path = Path(tempfile.mkdtemp(prefix="ood-mt-gate-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_gate_as_a_lab_user_with_debian_python(upstream: Upstream, user_dir: Path) -> None:
    """As a job would: the lab user, /usr/bin/python3 + python3-aiohttp, the package from a copy it
    can read, its own secret file; the secret is in neither argv nor the environment."""
    try:
        user = pwd.getpwnam(LAB_USER)
    except KeyError:
        pytest.fail(f"lab user {LAB_USER} missing: run `bash tests/lab/host_slurm.sh start` (it creates the lab users)")
    if os.geteuid() != 0:
        pytest.skip("runs the gate as a lab user with runuser (needs root)")
    work = user_dir
    shutil.copytree(SRC / "ood_mt", work / "py" / "ood_mt", ignore=shutil.ignore_patterns("__pycache__"))
    for path in [work, *work.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
    env = {"PATH": "/usr/bin:/bin", "HOME": user.pw_dir, "PYTHONPATH": str(work / "py"), "LANG": "C.UTF-8"}

    def as_user(*argv: str, **kw: object) -> subprocess.Popen:
        return subprocess.Popen(["/usr/sbin/runuser", "-u", LAB_USER, "--", SYSTEM_PYTHON, "-m", "ood_mt.gate", *argv],
                                env=env, cwd=work, **kw)  # type: ignore[call-overload]

    made = as_user("--write-secret", str(work / "secret"))
    assert made.wait(30) == 0
    assert (work / "secret").stat().st_uid == user.pw_uid
    secret = (work / "secret").read_text().strip()
    log = work / "gate.log"
    with open(log, "wb") as err:
        proc = as_user("--listen", "127.0.0.1:0", "--upstream", upstream.url, "--secret-file", str(work / "secret"),
                       "--policy", "ollama", "--ready-file", str(work / "ready"), stdout=err, stderr=err)
    try:
        port = wait_ready(proc, work / "ready", log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{secret}/api/tags", timeout=10) as resp:
            assert json.loads(resp.read())["target"] == "/api/tags"
        for path in ("/api/tags", f"/{secret}/api/pull"):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10)
                raise AssertionError(f"{path} passed")
            except urllib.error.HTTPError as exc:
                assert exc.code in (403, 404)
        # who runs it, and what other users can see of it
        pids = children(proc.pid)
        assert len(pids) == 1, f"runuser {proc.pid} should have one child, the gate: {pids}"
        assert Path(f"/proc/{pids[0]}").stat().st_uid == user.pw_uid
        for pid in pids:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            assert secret.encode() not in cmdline
            assert secret.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
            assert b"/usr/bin/python3" in cmdline
    finally:
        # a job's TERM goes to the gate itself (runuser would report its own death by the signal)
        for pid in children(proc.pid):
            os.kill(int(pid), signal.SIGTERM)
        code = proc.wait(15)
    assert code == 0, log.read_text()
    assert secret not in log.read_text()
