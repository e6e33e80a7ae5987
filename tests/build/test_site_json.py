"""site.json (format 3) is read as `ood-mt build` writes it: the CLI takes squeue, its timeout
and the delivery apps from it, and refuses a format-1 file with a rebuild hint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ood_mt import shares, shares_cli
from ood_mt.config import SITE_JSON_FORMAT, load_site

REPO = Path(__file__).resolve().parents[2]
LAB_SITE = REPO / "inventories" / "lab" / "group_vars" / "all" / "multitenant.yml"
HANGING_SQUEUE_DOUBLE = REPO / "tests" / "initializer" / "hanging_squeue_double.sh"


def write_summary(tmp_path: Path, **change: object) -> Path:
    data = {**load_site(LAB_SITE).public_summary(), **change}
    path = tmp_path / "site.json"
    path.write_text(json.dumps(data))
    return path


def test_the_summary_is_read_as_written(tmp_path: Path) -> None:
    written = load_site(LAB_SITE).public_summary()
    site = shares.load_site_summary(write_summary(tmp_path))
    assert written["format"] == SITE_JSON_FORMAT == 3
    assert site.discovery_interval_seconds == written["discovery_interval_seconds"] == 10
    assert str(site.spool_dir) == written["spool_dir"] == "/var/lib/ood-mt/spool"
    assert site.card_cluster == written["card_cluster"] == written["cluster"]  # empty card_cluster: the site's
    assert site.squeue == written["squeue"]
    assert site.squeue_timeout_seconds == written["squeue_timeout_seconds"]
    assert list(site.delivery_apps) == written["delivery_apps"]
    assert site.preset_delivery == written["preset_delivery"]
    assert shares.load_site_summary(site_file=LAB_SITE) == site


def test_a_format_1_summary_asks_for_a_rebuild(tmp_path: Path) -> None:
    path = write_summary(tmp_path, format=1)
    with pytest.raises(shares.SiteSummaryError) as info:
        shares.load_site_summary(path)
    assert str(info.value).startswith(f"{path}: format 1, but this ood-mt reads format 3")
    assert "fix: rebuild it with `ood-mt build` and redeploy" in str(info.value)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("squeue", "", "field squeue must be a non-empty string"),
    ("squeue_timeout_seconds", 0, "field squeue_timeout_seconds must be a positive number of seconds"),
    ("delivery_apps", "mt_delivery_default", "field delivery_apps must be a list of names"),
    ("preset_delivery", ["debug"], "field preset_delivery must be a mapping of names"),
])
def test_format_2_fields_are_checked(tmp_path: Path, field: str, value: object, message: str) -> None:
    path = write_summary(tmp_path, **{field: value})
    with pytest.raises(shares.SiteSummaryError, match=message):
        shares.load_site_summary(path)


@pytest.mark.parametrize("option", [[], ["--timeout", "0.5"]])
def test_the_cli_calls_the_squeue_of_site_json_with_its_timeout(tmp_path: Path, option: list[str]) -> None:
    """site.json names the hanging squeue double and a 0.5 s timeout: the command waits that long, no more."""
    path = write_summary(tmp_path, squeue=str(HANGING_SQUEUE_DOUBLE), squeue_timeout_seconds=0.5 if not option else 60)
    result = CliRunner().invoke(shares_cli.list_command, ["--site-json", str(path), *option])
    assert result.exit_code == 2
    assert f"ood-mt list: {HANGING_SQUEUE_DOUBLE} timed out after 0.5 s" in result.output
