"""Unit tests of plugins/modules/slurm_conf_param.py (ood_mt.multitenant.slurm_conf_param).

Pure edits are tested through the module's functions; check mode, diff, backup, validation
and error messages through a real `ansible localhost -m ood_mt.multitenant.slurm_conf_param` run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ansible_collections.ood_mt.multitenant.plugins.modules import slurm_conf_param as scp

from tests.roles.ansible_runner import module_json
from tests.roles.slurm_conf import minimal_slurm_conf

MODULE = "ood_mt.multitenant.slurm_conf_param"

SITE_CONF = minimal_slurm_conf(
    "# Site slurm.conf -- keep my comments", "demo",
    "\n# accounting\naccountingstorageenforce=associations,limits   # site policy\n"
    "#AccountingStorageEnforce=commented,out\n",
    "debug")


def test_union_keeps_existing_order_and_every_other_line() -> None:
    after, previous, current = scp.edit_text(SITE_CONF, "AccountingStorageEnforce", None, ["wckeys"], "present")
    assert previous == "associations,limits"
    assert current == "associations,limits,wckeys"
    before_lines = SITE_CONF.splitlines()
    after_lines = after.splitlines()
    assert len(before_lines) == len(after_lines)
    changed = [(b, a) for b, a in zip(before_lines, after_lines) if a != b]
    # only the active line changed; its key spelling and trailing comment are kept
    assert changed == [(before_lines[5], "accountingstorageenforce=associations,limits,wckeys   # site policy")]


def test_case_insensitive_members_and_keys_are_not_duplicated() -> None:
    text = "AccountingStorageEnforce=Associations,WCKeys\n"
    after, _, current = scp.edit_text(text, "ACCOUNTINGSTORAGEENFORCE", None, ["wckeys", "associations"], "present")
    assert after == text
    assert current == "Associations,WCKeys"


def test_second_edit_is_a_no_op() -> None:
    once, _, _ = scp.edit_text(SITE_CONF, "AccountingStorageEnforce", None, ["wckeys"], "present")
    twice, _, _ = scp.edit_text(once, "AccountingStorageEnforce", None, ["wckeys"], "present")
    assert twice == once
    set_once, _, _ = scp.edit_text(once, "TrackWCKey", "yes", None, "present")
    set_twice, _, _ = scp.edit_text(set_once, "TrackWCKey", "yes", None, "present")
    assert set_twice == set_once


def test_remove_only_the_named_member() -> None:
    text = "AccountingStorageEnforce=associations,wckeys,limits\n"
    after, _, current = scp.edit_text(text, "AccountingStorageEnforce", None, ["WCKEYS"], "absent")
    assert current == "associations,limits"
    assert after == "AccountingStorageEnforce=associations,limits\n"


def test_empty_list_removes_the_line_and_keeps_the_rest() -> None:
    text = "# head\nAccountingStorageEnforce=wckeys\nClusterName=x\n"
    after, _, current = scp.edit_text(text, "AccountingStorageEnforce", None, ["wckeys"], "absent")
    assert current is None
    assert after == "# head\nClusterName=x\n"


def test_missing_key_is_appended_and_last_duplicate_wins() -> None:
    after, previous, _ = scp.edit_text("ClusterName=x", "TrackWCKey", "yes", None, "present")
    assert previous is None
    assert after == "ClusterName=x\nTrackWCKey=yes\n"
    dup = "TrackWCKey=no\ntrackwckey=no\n"
    after_dup, _, _ = scp.edit_text(dup, "TrackWCKey", "yes", None, "present")
    assert after_dup == "TrackWCKey=no\ntrackwckey=yes\n"


@pytest.fixture()
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "slurm.conf"
    path.write_text(SITE_CONF)
    return path


def test_check_mode_writes_nothing_and_reports_diff(conf: Path) -> None:
    rc, result = module_json(MODULE, {"path": str(conf), "key": "AccountingStorageEnforce",
                                                  "members": ["wckeys"], "backup": True}, check=True, diff=True)
    assert rc == 0, result
    assert result["changed"] is True
    assert conf.read_text() == SITE_CONF
    assert sorted(p.name for p in conf.parent.iterdir()) == ["slurm.conf"]
    diff = result["diff"]
    diff = diff[0] if isinstance(diff, list) else diff
    assert "associations,limits,wckeys" in diff["after"]
    assert diff["before"] == SITE_CONF


def test_apply_makes_backup_then_second_run_unchanged(conf: Path) -> None:
    conf.chmod(0o640)
    args = {"path": str(conf), "key": "TrackWCKey", "value": "yes", "backup": True}
    rc, first = module_json(MODULE, args)
    assert rc == 0, first
    assert first["changed"] is True
    backup = Path(first["backup_file"])
    assert backup.read_text() == SITE_CONF
    assert conf.read_text() == SITE_CONF + "TrackWCKey=yes\n"
    assert conf.stat().st_mode & 0o777 == 0o640
    rc, second = module_json(MODULE, args)
    assert rc == 0 and second["changed"] is False
    assert sorted(p.name for p in conf.parent.iterdir()) == sorted(["slurm.conf", backup.name])


def test_missing_file_gives_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "slurm.conf"
    rc, result = module_json(MODULE, {"path": str(missing), "key": "TrackWCKey", "value": "yes"})
    assert rc != 0
    assert str(missing) in result["msg"] and "no such file" in result["msg"]


@pytest.mark.skipif(shutil.which("scontrol") is None, reason="needs Slurm's scontrol (slurm-client)")
def test_validate_with_slurms_own_parser_rejects_and_leaves_file(conf: Path) -> None:
    """Slurm's parser (scontrol, reading SLURM_CONF, no daemon needed) is the validate hook."""
    validate = "env SLURM_CONF=%s scontrol show hostnames localhost"
    rc, bad = module_json(MODULE, {"path": str(conf), "key": "AccountingStorageEnforce",
                                               "members": ["wckeyz"], "backup": True, "validate": validate})
    assert rc != 0
    assert "validation" in bad["msg"] and "wckeyz" in bad["msg"]
    assert conf.read_text() == SITE_CONF
    assert sorted(p.name for p in conf.parent.iterdir()) == ["slurm.conf"]
    rc, good = module_json(MODULE, {"path": str(conf), "key": "AccountingStorageEnforce",
                                                "members": ["wckeys"], "validate": validate})
    assert rc == 0 and good["changed"] is True
    assert "associations,limits,wckeys" in conf.read_text()


def test_several_edits_are_one_write_with_one_backup(conf: Path) -> None:
    edits = [{"key": "TrackWCKey", "value": "yes"}, {"key": "AccountingStorageEnforce", "members": ["wckeys"]}]
    rc, result = module_json(MODULE, {"path": str(conf), "edits": edits, "backup": True})
    assert rc == 0 and result["changed"] is True, result
    assert [p["current"] for p in result["params"]] == ["yes", "associations,limits,wckeys"]
    assert conf.read_text() == scp.edit_text(scp.edit_text(SITE_CONF, "TrackWCKey", "yes", None, "present")[0],
                                             "AccountingStorageEnforce", None, ["wckeys"], "present")[0]
    assert len([p for p in conf.parent.iterdir() if p.name != "slurm.conf"]) == 1
    rc, again = module_json(MODULE, {"path": str(conf), "edits": edits})
    assert rc == 0 and again["changed"] is False


def test_an_edit_with_neither_value_nor_members_is_refused(conf: Path) -> None:
    rc, result = module_json(MODULE, {"path": str(conf), "edits": [{"key": "TrackWCKey"}]})
    assert rc != 0
    assert "edits item 0: give exactly one of value and members for TrackWCKey" in result["msg"]


@pytest.mark.skipif(shutil.which("scontrol") is None, reason="needs Slurm's scontrol (slurm-client)")
def test_validate_only_checks_the_candidate_and_never_writes(conf: Path) -> None:
    validate = "env SLURM_CONF=%s scontrol show hostnames localhost"
    good = {"path": str(conf), "edits": [{"key": "AccountingStorageEnforce", "members": ["wckeys"]}],
            "validate": validate, "validate_only": True}
    rc, result = module_json(MODULE, good)
    assert rc == 0 and result["changed"] is False and result["would_change"] is True, result
    rc, bad = module_json(MODULE, {**good, "edits": [{"key": "AccountingStorageEnforce",
                                                                  "members": ["wckeyz"]}]})
    assert rc != 0 and "validation" in bad["msg"]
    assert conf.read_text() == SITE_CONF
    assert sorted(p.name for p in conf.parent.iterdir()) == ["slurm.conf"]
