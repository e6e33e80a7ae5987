"""Execute a staged before.sh in bash (outside Slurm) and read back the variables it set.

The session was staged by OOD's own code (tests/apps/ood_app.py), which also wrote
ood_core's own helper functions (ood_core_helpers.sh); they are set up the way OOD's job
script does before it sources before.sh (source_helpers, then host=$(hostname)).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Optional

OOD_HELPERS = "ood_core_helpers.sh"

# Sets up ood_core's helpers, sources before.sh, then writes NAME\0VALUE\0 for every
# variable asked for (an unset one is left out) to the dump file.
_RUNNER = r"""
set -u
cd "$2" || exit 90
source "$1"
source_helpers
host=$(hostname)
export host
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
    argv = ["bash", "-c", _RUNNER, "before-runner", str(session / OOD_HELPERS), str(session), str(dump), *names]
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    run_env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(session), "TMPDIR": str(session),
               "LANG": "C.UTF-8", **(env or {})}
    done = subprocess.run(argv, capture_output=True, text=True, env=run_env, timeout=60, check=False)
    values: dict[str, bytes] = {}
    if dump.exists():
        parts = dump.read_bytes().split(b"\0")
        values = {parts[i].decode(): parts[i + 1] for i in range(0, len(parts) - 1, 2)}
        dump.unlink()
    return done, values
