"""Fixtures of the app-suite tests: every app of the lab site, rendered once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.apps import app_render


@pytest.fixture(scope="session")
def rendered_apps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return app_render.render_all(tmp_path_factory.mktemp("apps"))
