"""Helpers to run ansible / ansible-playbook from tests with the repository's ansible.cfg."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"


def tool(name: str) -> str:
    """Path of a CLI from the project's venv (falls back to PATH)."""
    candidate = VENV_BIN / name
    return str(candidate) if candidate.exists() else name


def ansible_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
        # interpreter discovery finds broken pyenv shims on some machines; use the venv's python
        "ANSIBLE_PYTHON_INTERPRETER": tool("python"),
        # Modules reach the host through the interpreter's stdin instead of a temporary file, as
        # ansible.cfg's [ssh_connection] pipelining does on a real site (that key does not reach the
        # local connection the tests use). About a quarter less time per task.
        "ANSIBLE_PIPELINING": "True",
    })
    env.update(extra or {})
    return env


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def recap(self) -> dict[str, int]:
        """Sum of PLAY RECAP counters over all hosts."""
        totals: dict[str, int] = {}
        for line in self.stdout.splitlines():
            if " : ok=" in line:
                for key, value in re.findall(r"(\w+)=(\d+)", line):
                    totals[key] = totals.get(key, 0) + int(value)
        return totals


def run(argv: list[str], env: dict[str, str] | None = None, cwd: Path = REPO, timeout: int = 540) -> Run:
    proc = subprocess.run(argv, cwd=cwd, env=ansible_env(env), capture_output=True, text=True,
                          timeout=timeout, check=False)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def module_json(module: str, args: dict, check: bool = False, diff: bool = False) -> tuple[int, dict]:
    """Run one module on localhost with JSON args; return (rc, result dict)."""
    argv = [tool("ansible"), "localhost", "-c", "local", "-i", "localhost,", "-m", module,
            "-a", json.dumps(args)]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    result = run(argv, env={"ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"})
    data = json.loads(result.stdout)
    task = data["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return result.rc, task
