"""Fixtures of the app-suite tests: every app of the lab site, rendered once per session."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest

from tests.apps import app_render
from tests.apps.site_build import build_suite, site_overrides_with_doubles
from tests.apps.slurm_jobs import shared_render_dir


@pytest.fixture(scope="session")
def rendered_apps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return app_render.render_all(tmp_path_factory.mktemp("apps"))


@pytest.fixture(scope="session")
def built_apps() -> Iterator[Path]:
    """`ood-mt build` output (apps dir) of the lab site with the test doubles as programs,
    in a directory the lab users can read."""
    work = shared_render_dir()
    try:
        yield build_suite(work, site_overrides_with_doubles())
    finally:
        shutil.rmtree(work, ignore_errors=True)
