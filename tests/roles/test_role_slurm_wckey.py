"""Real runs of role ood_mt_slurm_wckey on localhost against config files in a temp dir.

The host's real Slurm daemons are NOT restarted (other tests use them): the role's
`command` service manager runs test-double restart commands that only log the daemon's
name, and a test-double TCP listener stands in for the daemons' ports. The ordered
restarts against real daemons are exercised by the Molecule lab. The config check uses
Slurm's real parser (scontrol).
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.roles.ansible_runner import Run, run, tool
from tests.roles.slurm_conf import minimal_slurm_conf

pytestmark = pytest.mark.skipif(shutil.which("scontrol") is None, reason="needs Slurm's scontrol")

SLURM_CONF = minimal_slurm_conf("# lab slurm.conf", "t",
                                "AccountingStorageEnforce=associations,limits  # site policy\n", "d")
SLURMDBD_CONF = "# dbd\nDbdHost=localhost\nStorageType=accounting_storage/mysql\n"


@pytest.fixture()
def fake_daemon_ports() -> Iterator[dict[str, int]]:
    """Test double: listening sockets standing in for slurmdbd/slurmctld/slurmd ports."""
    sockets = []
    ports = {}
    for daemon in ("slurmdbd", "slurmctld", "slurmd"):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sockets.append(sock)
        ports[daemon] = sock.getsockname()[1]
    stop = threading.Event()

    def accept_loop(sock: socket.socket) -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                conn.close()
            except OSError:
                continue

    threads = [threading.Thread(target=accept_loop, args=(s,), daemon=True) for s in sockets]
    for thread in threads:
        thread.start()
    yield ports
    stop.set()
    for thread in threads:
        thread.join()
    for sock in sockets:
        sock.close()


class SlurmLab:
    def __init__(self, root: Path, ports: dict[str, int]) -> None:
        self.root = root
        self.ports = ports
        self.conf_dir = root / "etc/slurm"
        self.conf_dir.mkdir(parents=True)
        self.slurm_conf = self.conf_dir / "slurm.conf"
        self.dbd_conf = self.conf_dir / "slurmdbd.conf"
        self.slurm_conf.write_text(SLURM_CONF)
        self.dbd_conf.write_text(SLURMDBD_CONF)
        self.dbd_conf.chmod(0o600)
        self.restart_log = root / "restarts.log"
        self.inventory = root / "hosts.yml"
        local = {"localhost": {"ansible_connection": "local"}}
        self.inventory.write_text(yaml.safe_dump({"all": {"children": {
            "slurm_dbd": {"hosts": local}, "slurm_controllers": {"hosts": local},
            "slurm_compute": {"hosts": local}}}}))
        self.playbook = root / "play.yml"
        self.playbook.write_text(yaml.safe_dump([{
            "name": "WCKey role under test", "hosts": "slurm_dbd:slurm_controllers:slurm_compute",
            "gather_facts": False, "roles": ["ood_mt.multitenant.ood_mt_slurm_wckey"]}]))

    def play(self, enforce: bool = True, restart: bool = True, check: bool = False,
             failing: str = "") -> Run:
        commands = {d: f"echo {d} >> {self.restart_log}" + (" && exit 1" if d == failing else "")
                    for d in ("slurmdbd", "slurmctld", "slurmd")}
        extra = {"multitenant": {"site": "t", "enforce_wckeys": enforce},
                 "ood_mt_slurm_wckey_conf_dir": str(self.conf_dir),
                 "ood_mt_slurm_wckey_restart": restart,
                 "ood_mt_slurm_wckey_service_manager": "command",
                 "ood_mt_slurm_wckey_restart_commands": commands,
                 "ood_mt_slurm_wckey_ports": self.ports,
                 "ood_mt_slurm_wckey_wait_timeout": 5}
        argv = [tool("ansible-playbook"), "-i", str(self.inventory), str(self.playbook), "-e", json.dumps(extra),
                "--diff"]
        if check:
            argv.append("--check")
        return run(argv)

    def restarts(self) -> list[str]:
        return self.restart_log.read_text().split() if self.restart_log.exists() else []

    def backups(self) -> list[Path]:
        return sorted(p for p in self.conf_dir.iterdir() if p.name.endswith("~"))


@pytest.fixture()
def lab(tmp_path: Path, fake_daemon_ports: dict[str, int]) -> SlurmLab:
    return SlurmLab(tmp_path, fake_daemon_ports)


def test_enable_restarts_in_order_then_idempotent_then_disable(lab: SlurmLab) -> None:
    first = lab.play()
    assert first.rc == 0, first.output
    assert lab.slurm_conf.read_text() == SLURM_CONF.replace(
        "associations,limits  #", "associations,limits,wckeys  #") + "TrackWCKey=yes\n"
    assert lab.dbd_conf.read_text() == SLURMDBD_CONF + "TrackWCKey=yes\n"
    assert lab.dbd_conf.stat().st_mode & 0o777 == 0o600
    assert lab.restarts() == ["slurmdbd", "slurmctld", "slurmd"]
    assert lab.backups()

    second = lab.play()
    assert second.rc == 0, second.output
    assert second.recap()["changed"] == 0, second.stdout
    assert lab.restarts() == ["slurmdbd", "slurmctld", "slurmd"]

    off = lab.play(enforce=False)
    assert off.rc == 0, off.output
    assert "AccountingStorageEnforce=associations,limits  # site policy\n" in lab.slurm_conf.read_text()
    assert "TrackWCKey=yes" in lab.slurm_conf.read_text()
    # only slurm.conf changed: slurmdbd is not restarted
    assert lab.restarts() == ["slurmdbd", "slurmctld", "slurmd", "slurmctld", "slurmd"]


def test_check_mode_changes_nothing(lab: SlurmLab) -> None:
    result = lab.play(check=True)
    assert result.rc == 0, result.output
    assert result.recap()["changed"] > 0
    assert lab.slurm_conf.read_text() == SLURM_CONF
    assert lab.dbd_conf.read_text() == SLURMDBD_CONF
    assert lab.restarts() == [] and lab.backups() == []


def test_no_restart_prints_the_manual_order(lab: SlurmLab) -> None:
    result = lab.play(restart=False)
    assert result.rc == 0, result.output
    assert lab.restarts() == []
    out = result.stdout
    assert "1. restart slurmdbd on localhost" in out
    assert out.index("1. restart slurmdbd") < out.index("2. then restart slurmctld") < out.index(
        "3. then restart slurmd")


def test_failed_restart_rolls_back_every_file(lab: SlurmLab) -> None:
    result = lab.play(failing="slurmctld")
    assert result.rc != 0
    assert "slurmctld on localhost did not come back" in result.stdout
    assert lab.slurm_conf.read_text() == SLURM_CONF
    assert lab.dbd_conf.read_text() == SLURMDBD_CONF
    # slurmdbd restarted on the new config, slurmctld failed; then both restarted on the old one
    assert lab.restarts() == ["slurmdbd", "slurmctld", "slurmdbd", "slurmctld"]


def test_a_candidate_slurms_parser_rejects_leaves_both_files_untouched(lab: SlurmLab) -> None:
    """Every candidate is checked before any file is written: slurmdbd.conf (written first)
    is not changed when the slurm.conf candidate is refused; no half-applied pair of files."""
    broken = SLURM_CONF.replace("CPUs=1", "CPUs=lots")
    lab.slurm_conf.write_text(broken)
    result = lab.play()
    assert result.rc != 0
    assert "validation of the new" in result.stdout
    assert lab.dbd_conf.read_text() == SLURMDBD_CONF
    assert lab.slurm_conf.read_text() == broken
    assert sorted(p.name for p in lab.conf_dir.iterdir()) == ["slurm.conf", "slurmdbd.conf"]  # no backup, no candidate
    assert lab.restarts() == []
