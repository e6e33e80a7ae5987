"""The Python package is complete on its own: a wheel built from the repository, installed
into a fresh virtualenv outside it, builds the example site byte for byte as the checkout
does (templates, partials, initializer sources and contracts are all package data)."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_SITE = REPO / "inventories" / "example" / "group_vars" / "all" / "multitenant.yml"


def _differences(left: Path, right: Path) -> list[str]:
    found: list[str] = []

    def walk(cmp: filecmp.dircmp[str], rel: str) -> None:
        found.extend(f"{rel}{name}: only on one side" for name in cmp.left_only + cmp.right_only)
        found.extend(f"{rel}{name}: differs" for name in cmp.diff_files + cmp.funny_files)
        for name, sub in cmp.subdirs.items():
            walk(sub, f"{rel}{name}/")

    walk(filecmp.dircmp(left, right), "")
    return found


def test_wheel_installed_elsewhere_builds_what_the_checkout_builds(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
                           capture_output=True, text=True, check=False, cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("ood_multitenant-*.whl")

    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", str(wheel)],
                         capture_output=True, text=True, check=False, cwd=tmp_path, env=clean_env)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert (env_dir / "bin" / "ood-mt").exists(), pip.stdout + pip.stderr
    site_copy = tmp_path / "multitenant.yml"
    site_copy.write_bytes(EXAMPLE_SITE.read_bytes())  # nothing of the checkout is reachable
    from_wheel = subprocess.run([str(env_dir / "bin" / "ood-mt"), "build", "--site", str(site_copy), "--out",
                                 str(tmp_path / "from-wheel")], capture_output=True, text=True, check=False,
                                cwd=tmp_path, env=clean_env)
    assert from_wheel.returncode == 0, from_wheel.stderr
    located = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import ood_mt; print(ood_mt.__file__)"],
                             capture_output=True, text=True, check=True, cwd=tmp_path, env=clean_env).stdout
    assert str(env_dir) in located, f"the test ran the checkout, not the wheel: {located}"

    from_checkout = subprocess.run([sys.executable, "-c", "from ood_mt.cli import main; main()", "build", "--site", str(site_copy), "--out",
                                    str(tmp_path / "from-checkout")], capture_output=True, text=True, check=False,
                                   cwd=REPO)
    assert from_checkout.returncode == 0, from_checkout.stderr
    assert _differences(tmp_path / "from-checkout", tmp_path / "from-wheel") == []
