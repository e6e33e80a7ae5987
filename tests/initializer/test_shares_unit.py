"""ood_mt.shares without Slurm: parsing, site summary errors, the squeue timeout."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ood_mt import shares, shares_cli

HANGING_SQUEUE_DOUBLE = Path(__file__).resolve().parent / "hanging_squeue_double.sh"
SITE = {"site": "lab", "cluster": "hostlab", "wckey": "multitenant", "publisher_group": "mtusr",
        "tenant_groups": ["mtclass"], "tenant_group_pattern": "", "key_dir": "/etc/ood-mt/keys",
        "refresh_seconds": 30, "format": 3, "squeue": "squeue", "squeue_timeout_seconds": 10,
        "discovery_interval_seconds": 10, "spool_dir": "/var/lib/ood-mt/spool", "card_cluster": "hostlab",
        "delivery_apps": ["mt_delivery_default", "mt_delivery_debug", "mt_delivery_readfile"],
        "preset_delivery": {"debug": "debug", "document": "readfile"}}


def squeue_row(jobid: str, user: str, wckey: str, name: str, comment: str = "(null)", start: str = "N/A") -> bytes:
    """One record as Slurm 22.05 prints the contract's listing format: every field padded
    with spaces by BYTES to its width and followed by '|', then a newline."""
    values = [jobid, user, wckey, start, name, comment]
    return b"".join(v.encode()[:width].ljust(width) + b"|"
                    for v, (_field, width) in zip(values, shares.LISTING_FIELDS)) + b"\n"


def test_parse_keeps_shares_and_resists_hostile_names() -> None:
    out = (squeue_row("7", "mallory", "*", "a|b|c")
           + squeue_row("8", "mallory", "*", "x\n999|mtpub|multitenant|mt1:mtclass:1:FORGED", "c\n1|a|b|mt1:x")
           + squeue_row("9", "eve", "*", "é😀 mt1:")
           + squeue_row("10", "mtpub", "multitenant", "mt1:mtclass:1:REAL")
           + squeue_row("11", "mtpub", "multitenant", "mt1:" + "A" * 1019, "mt1c:" + "B" * 100))
    jobs = shares.parse_squeue(out)
    assert [(j.jobid, j.owner, j.wckey, j.name[:18], j.comment[:6]) for j in jobs] == [
        ("10", "mtpub", "multitenant", "mt1:mtclass:1:REAL", ""),
        ("11", "mtpub", "multitenant", "mt1:" + "A" * 14, "mt1c:B"),
    ]


def test_a_hostile_wckey_and_name_cannot_forge_a_record() -> None:
    """The forgery the old resynchronising parser allowed (WCKeys not enforced): a WCKey
    holding '|' made the record look wrong, the parser resynchronised at the next line,
    which was inside the attacker's job name: another job id and owner."""
    out = (squeue_row("20", "mallory", "a|b\nc", "x\n999 |mtpub|multitenant|mt1:mtclass:1:FORGED")
           + squeue_row("21", "mtpub", "multitenant", "mt1:REAL"))
    assert [(j.jobid, j.owner) for j in shares.parse_squeue(out)] == [("21", "mtpub")]


@pytest.mark.parametrize("what", ["stray line", "short record", "missing separator", "no job id", "newline in user",
                                  "job listed twice"])
def test_a_misaligned_listing_yields_nothing(what: str) -> None:
    good = squeue_row("15", "mtpub", "multitenant", "mt1:c")
    out = {
        "stray line": b"slurm_load_jobs error: something\n" + good,
        "short record": good + good[:100] + b"\n",
        "missing separator": good.replace(b"|", b" ", 1),
        "no job id": squeue_row("x15", "mtpub", "multitenant", "mt1:c"),
        "newline in user": squeue_row("16", "mt\npub", "multitenant", "mt1:c"),
        "job listed twice": good + good,
    }[what]
    with pytest.raises(shares.DiscoveryError, match="nothing from it is used"):
        shares.parse_squeue(out)


def test_argv_is_the_documented_single_call() -> None:
    assert shares.squeue_argv("squeue") == ["squeue", "--noheader", "--states=RUNNING", "-O",
                                    "JobID:20|,UserName:40|,WCKey:70|,StartTime:20|,Name:1024|,Comment:1024|"]


def test_hanging_squeue_is_killed_after_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(shares.DiscoveryError, match=r"timed out after 0.5 s"):
        shares.discover(str(HANGING_SQUEUE_DOUBLE), timeout=0.5)
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(("change", "message"), [
    ({"wckey": None}, "field(s) wckey missing"),
    ({"tenant_groups": "mtclass"}, "field tenant_groups must be a list"),
    ({"tenant_group_pattern": "("}, "field tenant_group_pattern is not a regex"),
    ({"refresh_seconds": "30"}, "field refresh_seconds must be a non-negative integer"),
])
def test_site_summary_errors_name_file_field_and_fix(tmp_path: Path, change: dict, message: str) -> None:
    data = {**SITE, **change}
    data = {k: v for k, v in data.items() if v is not None}
    path = tmp_path / "site.json"
    path.write_text(json.dumps(data))
    with pytest.raises(shares.SiteSummaryError) as info:
        shares.load_site_summary(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_cli_reports_a_missing_site_json_clearly(tmp_path: Path) -> None:
    result = CliRunner().invoke(shares_cli.list_command, ["--site-json", str(tmp_path / "nope.json")])
    assert result.exit_code == 2
    assert "nope.json: missing; fix: deploy the kit" in result.output


def test_every_command_help_has_an_example() -> None:
    for command in (shares_cli.list_command, shares_cli.hide_command, shares_cli.show_command, shares_cli.audit_command,
                    shares_cli.inspect_command):
        result = CliRunner().invoke(command, ["--help"])
        assert result.exit_code == 0 and "Example" in result.output and "--site-json" in result.output
