"""The initializer's minitest files (tests/initializer/*_test.rb) under the Ruby of EVERY lab
generation (lab/generations/*.env: Debian 12's Ruby 3.1, Debian 13's Ruby 3.3), inside that
generation's OOD image (localhost/ood-mt-lab-ood:<generation>, the host OOD runs on), with this
checkout bind-mounted read-only and no network.

Marked `molecule`: it needs root, podman and the lab images, so it runs in the Molecule part of
scripts/test.sh; lab/build_images.sh builds a missing image first (cached by input hash).
The host's own Ruby runs the same files in test_initializer_minitest.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.slurm import versions
from tests.initializer.test_initializer_minitest import MINITEST_FILES, assert_minitest_passed

REPO = Path(__file__).resolve().parents[2]
# One generation when OOD_MT_LAB_GENERATION names it (scripts/test.sh runs the molecule part once
# per generation), else every generation.
GENERATIONS = [os.environ["OOD_MT_LAB_GENERATION"]] if os.environ.get("OOD_MT_LAB_GENERATION") \
    else sorted(versions.generation_versions())
MOUNT = "/ood-mt"

pytestmark = pytest.mark.molecule


@pytest.fixture(scope="module", params=GENERATIONS)
def ood_image(request: pytest.FixtureRequest) -> str:
    if os.geteuid() != 0 or shutil.which("podman") is None:
        pytest.skip("the lab images need root and podman (see docs/testing.md)")
    generation: str = request.param
    build = subprocess.run([str(REPO / "lab" / "build_images.sh")],
                           env={**os.environ, "OOD_MT_LAB_GENERATION": generation},
                           capture_output=True, text=True, check=False, timeout=3600)
    assert build.returncode == 0, \
        f"lab/build_images.sh ({generation}) failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    return f"localhost/ood-mt-lab-ood:{generation}"


@pytest.mark.parametrize("test_file", MINITEST_FILES, ids=[p.stem for p in MINITEST_FILES])
def test_minitest_file_under_the_generations_ruby(ood_image: str, test_file: Path) -> None:
    rel = test_file.relative_to(REPO)
    proc = subprocess.run(
        ["podman", "run", "--rm", "--network=none", "--volume", f"{REPO}:{MOUNT}:ro", "--workdir", MOUNT,
         "--env", f"PYTHONPATH={MOUNT}/src", "--env", "OOD_MT_PYTHON=python3", "--entrypoint", "ruby", ood_image,
         "-W0", f"-I{MOUNT}/{rel.parent}", f"{MOUNT}/{rel}"],
        capture_output=True, text=True, timeout=600, check=False)
    assert_minitest_passed(f"{test_file.name} in {ood_image}", proc)
