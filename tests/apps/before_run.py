"""Execute a staged before.sh in bash (outside Slurm) and read back the variables it set.

OOD's job-script helpers come from tests/apps/doubles/ood_basic_template_test_double.sh
(a TEST DOUBLE, named so); before.sh itself and everything it sources run for real.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional

from tests.apps.site_build import DOUBLES

BASIC_TEMPLATE_DOUBLE = DOUBLES / "ood_basic_template_test_double.sh"

# Sources the double, then before.sh, then writes NAME\0VALUE\0 for every variable asked
# for (an unset one is reported as a missing name) to fd 3.
_RUNNER = r"""
set -u
source "$1"
cd "$2" || exit 90
shift 2
dump_to="$1"
shift
trap 'for n in "$@"; do if [[ -v "$n" ]]; then printf "%s\0%s\0" "$n" "${!n}"; fi; done >"$dump_to"' EXIT
source ./before.sh
"""


def run_before(session: Path, names: list[str], env: Optional[dict[str, str]] = None,
               user: Optional[str] = None) -> tuple[subprocess.CompletedProcess[str], dict[str, bytes]]:
    """Source SESSION/before.sh in a fresh bash; return (the run, {name: value bytes})."""
    dump = session / ".before-vars.dump"
    argv = ["bash", "-c", _RUNNER, "before-runner", str(BASIC_TEMPLATE_DOUBLE), str(session), str(dump), *names]
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    run_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(session), "TMPDIR": str(session),
               "LANG": "C.UTF-8", **(env or {})}
    done = subprocess.run(argv, capture_output=True, text=True, env=run_env, timeout=60, check=False)
    values: dict[str, bytes] = {}
    if dump.exists():
        parts = dump.read_bytes().split(b"\0")
        values = {parts[i].decode(): parts[i + 1] for i in range(0, len(parts) - 1, 2)}
        dump.unlink()
    return done, values


_JOB_RUNNER = r"""
set -u
source "$1"
cd "$2" || exit 90
source ./before.sh
./script.sh
"""


def run_client_job(session: Path, record: Path) -> subprocess.CompletedProcess[str]:
    """Run a staged client job outside Slurm: before.sh sourced, then script.sh, whose
    program is tests/apps/doubles/client_command_test_double (it records argv and env in
    RECORD). OOD's helpers come from the basic-template test double."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(session), "TMPDIR": str(session),
           "LANG": "C.UTF-8", "MT_TEST_RECORD": str(record)}
    return subprocess.run(["bash", "-c", _JOB_RUNNER, "client-job-runner", str(BASIC_TEMPLATE_DOUBLE), str(session)],
                          capture_output=True, text=True, env=env, timeout=60, check=False)
