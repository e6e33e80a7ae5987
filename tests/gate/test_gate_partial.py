"""The job side of the gate (shared/partials/mt_gate.sh, staged in every service's
service_helpers.sh), run by bash as a job runs it, with stand-ins for OOD's find_port and
wait_until_port_used: a service on 127.0.0.1 behind the gate on the shared port, the secret in
no output or argv, TERM stopping both; and a Python without aiohttp: nothing shared, said so."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ood_mt.app_templates import SERVICE_HELPERS, SHARED, service_library_text

REPO = Path(__file__).resolve().parents[2]

# ood_core's helpers, as the basic template's job script defines them (enough of them).
OOD_HELPERS = r'''
find_port() {
  /usr/bin/python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}
wait_until_port_used() {
  local hp="$1" t="${2:-30}" i=0
  while ! (exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}") 2>/dev/null; do
    ((i++ >= t * 10)) && return 1
    sleep 0.1
  done
}
'''

JOB = r'''
set -u
source ./lib.sh
host=127.0.0.1
port="$(find_port 127.0.0.1)"
export host port
mt_gate_prepare
cd www
bash -c 'source ../lib.sh; mt_gate_run -- bash -c "exec /usr/bin/python3 -m http.server \"\$port\" --bind 127.0.0.1"' \
  >../script.out 2>&1 &
echo "script_pid=$!"
cd ..
if mt_gate_wait 30; then
  printf 'port=%s\nsvc_port=%s\n' "${port}" "${svc_port}"
  printf '%s' "$(mt_gate_secret)" >secret.seen
  echo "status=published"
else
  echo "status=${mt_share_status}"
fi
'''


def _python(tmp: Path, flags: str = "") -> Path:
    wrapper = tmp / "gate-python"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={REPO / "src"} exec /usr/bin/python3 {flags} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def _job(tmp: Path, python: Path) -> tuple[dict[str, str], str]:
    lib = OOD_HELPERS + service_library_text() + "\n" + "\n".join(
        (SHARED / "partials" / name).read_text() for name in SERVICE_HELPERS)
    (tmp / "lib.sh").write_text(lib)
    (tmp / "www").mkdir()
    (tmp / "www" / "index.html").write_text("<p>the service</p>\n")
    done = subprocess.run(["bash", "-c", JOB], cwd=tmp, capture_output=True, text=True, timeout=90,
                          env={**os.environ, "MT_GATE_PYTHON": str(python)})
    values = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return values, done.stdout + done.stderr


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_service_is_reached_only_through_the_gate(tmp_path: Path) -> None:
    values, output = _job(tmp_path, _python(tmp_path))
    script_pid = int(values["script_pid"])
    try:
        assert values.get("status") == "published", output
        secret = (tmp_path / "secret.seen").read_text()
        port, svc_port = values["port"], values["svc_port"]
        assert (tmp_path / "mt_gate" / "secret").stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "mt_gate").stat().st_mode & 0o777 == 0o700
        assert _status(f"http://127.0.0.1:{port}/{secret}/") == 200
        assert _status(f"http://127.0.0.1:{port}/") == 404
        assert _status(f"http://127.0.0.1:{port}/{secret[:-1]}x/") == 404
        # The service on loopback only: not on the host's other addresses.
        other = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
        for address in other[:1]:
            with pytest.raises(OSError):
                urllib.request.urlopen(f"http://{address}:{svc_port}/", timeout=3)
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert "ood_mt.gate --listen" in ps and secret not in ps
        time.sleep(0.5)
        assert secret not in output + (tmp_path / "script.out").read_text()
    finally:
        os.kill(script_pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while _alive(script_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(script_pid)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"--listen 0.0.0.0:{values['port']}" not in ps, "the gate outlived its job"
    assert f"http.server {values['svc_port']}" not in ps, "the service outlived its job"


def test_without_aiohttp_nothing_is_shared_and_the_job_says_why(tmp_path: Path) -> None:
    # -S: no site-packages, so no aiohttp (the package still comes from PYTHONPATH).
    values, output = _job(tmp_path, _python(tmp_path, "-S"))
    try:
        assert "status=published" not in output
        assert "aiohttp" in values.get("status", ""), output
        assert "is NOT shared without its gate" in output
        assert not (tmp_path / "mt_gate" / "secret").exists()
    finally:
        if "script_pid" in values:
            os.kill(int(values["script_pid"]), signal.SIGTERM)
