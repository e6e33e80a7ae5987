"""The lab generation setting (lab/generation.sh, lab/generations/*.env) and the configs
lab/seed.sh renders from it: no podman needed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GENERATIONS = sorted(p.stem for p in (REPO / "lab" / "generations").glob("*.env"))


def keys(generation: str) -> dict[str, str]:
    text = (REPO / "lab" / "generations" / f"{generation}.env").read_text()
    return dict(re.findall(r"^(LAB_[A-Z0-9_]+)=(.*)$", text, re.M))


def seed(lab: Path, out: Path, generation: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(lab / "seed.sh"), str(out), "labx"], capture_output=True, text=True,
                          env={**os.environ, "OOD_MT_LAB_GENERATION": generation}, check=False)


def test_two_generations_with_the_same_keys() -> None:
    assert {"bookworm", "trixie"} <= set(GENERATIONS)
    first = set(keys(GENERATIONS[0]))
    for generation in GENERATIONS:
        assert set(keys(generation)) == first, f"lab/generations/{generation}.env: keys differ from {GENERATIONS[0]}"
        assert keys(generation)["LAB_SUITE"] == generation


@pytest.mark.parametrize("generation", GENERATIONS)
def test_seed_renders_the_generations_values(tmp_path: Path, generation: str) -> None:
    done = seed(REPO / "lab", tmp_path / "seed", generation)
    assert done.returncode == 0, done.stderr
    conf = (tmp_path / "seed/common/slurm.conf").read_text()
    dbd = (tmp_path / "seed/slurm/slurmdbd.conf").read_text()
    assert not re.search(r"@[A-Z_]+@", conf + dbd), "a placeholder was left unfilled"
    values = keys(generation)
    assert f"SlurmctldPidFile={values['LAB_SLURMCTLD_PIDFILE']}\n" in conf
    assert f"SlurmdPidFile={values['LAB_SLURMD_PIDFILE']}\n" in conf
    assert f"PidFile={values['LAB_SLURMDBD_PIDFILE']}\n" in dbd
    assert "ClusterName=labx\n" in conf


def test_an_unknown_generation_is_refused_by_name(tmp_path: Path) -> None:
    done = seed(REPO / "lab", tmp_path / "seed", "sid")
    assert done.returncode == 2
    assert "OOD_MT_LAB_GENERATION='sid' has no lab/generations/sid.env" in done.stderr
    assert "bookworm" in done.stderr and "trixie" in done.stderr


@pytest.mark.parametrize(("edited", "line", "message"), [
    ("templates/slurm.conf", "X=@LAB_NOT_SET@", "lab/templates/slurm.conf uses @LAB_NOT_SET@"),
    ("generations/bookworm.env", 'LAB_X="quoted value"', "line 'LAB_X=\"quoted value\"' is not KEY=VALUE"),
], ids=["placeholder-not-set", "malformed-generation-line"])
def test_a_bad_template_or_generation_file_is_refused(tmp_path: Path, edited: str, line: str, message: str) -> None:
    lab = tmp_path / "lab"
    shutil.copytree(REPO / "lab", lab, ignore=shutil.ignore_patterns("containerfiles", "files"))
    with (lab / edited).open("a") as fh:
        fh.write(line + "\n")
    done = seed(lab, tmp_path / "seed", "bookworm")
    assert done.returncode != 0
    assert message in done.stderr
