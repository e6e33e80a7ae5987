"""Unit tests of the sacctmgr_wckey module's validation, parsing and planning.

The sacctmgr output parsed here was captured from a real Slurm 22.05 (see
sacctmgr_samples/README.md); no daemon is needed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE_PATH = REPO_ROOT / "roles" / "ood_mt_onboarding" / "library" / "sacctmgr_wckey.py"
SAMPLES = Path(__file__).resolve().parent / "sacctmgr_samples"


def _load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sacctmgr_wckey", MODULE_PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["sacctmgr_wckey"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


sw = _load_module()


def sample(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


@pytest.fixture
def all_rows() -> list:
    return sw.parse_wckey_listing(sample("list_wckey_all_clusters.txt"))


# ---------------------------------------------------------------- parsing


def test_parse_empty_output_gives_no_rows() -> None:
    assert sample("list_wckey_empty.txt") == ""
    assert sw.parse_wckey_listing(sample("list_wckey_empty.txt")) == []


def test_parse_keeps_clusters_apart_and_the_empty_wckey(all_rows: list) -> None:
    assert sw.WckeyRow("multitenant", "capture2", "capc") in all_rows
    assert sw.WckeyRow("", "hostlab", "capd") in all_rows
    assert sw.WckeyRow("*", "hostlab", "root") in all_rows
    assert {row.cluster for row in all_rows} == {"hostlab", "capture2"}


def test_parse_lower_cases_like_slurm() -> None:
    rows = sw.parse_wckey_listing("MultiTenant|hostlab|Alice\n")
    assert rows == [sw.WckeyRow("multitenant", "hostlab", "alice")]


def test_parse_rejects_a_line_with_the_wrong_shape() -> None:
    with pytest.raises(sw.WckeyModuleError, match=r"line 2.*WCKey\|Cluster\|User"):
        sw.parse_wckey_listing("|hostlab|a\nnot a listing line\n")


def test_parse_association_users_sample() -> None:
    # 'ghost' was asked for but has no association, so it is absent.
    assert sw.parse_association_users(sample("list_association_users.txt")) == {"capa", "capb"}


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("bad", ["", "  ", "*multitenant", "a,b", "a|b", "a b", "a=b", "a'b", None, 3])
def test_invalid_wckeys_are_refused_with_the_parameter_named(bad: object) -> None:
    with pytest.raises(sw.WckeyModuleError, match="parameter 'wckey'"):
        sw.normalize_wckey(bad)


def test_wckey_is_lower_cased() -> None:
    assert sw.normalize_wckey("MultiTenant") == "multitenant"


def test_users_are_normalized_into_a_new_list_without_touching_the_input() -> None:
    given = ["Bob", "alice", "bob", "ALICE"]
    snapshot = list(given)
    assert sw.normalize_users(given) == ["bob", "alice"]
    assert given == snapshot


@pytest.mark.parametrize("bad", ["", "a,b", "a b", "-x", "a|b"])
def test_invalid_user_names_name_the_item(bad: str) -> None:
    with pytest.raises(sw.WckeyModuleError, match=r"'users' item 1"):
        sw.normalize_users(["ok", bad])


# ---------------------------------------------------------------- planning


def test_plan_adds_only_missing_users_on_the_chosen_cluster(all_rows: list) -> None:
    # capc has 'multitenant' on capture2 but not on hostlab; capa already has it on hostlab.
    plan = sw.plan_changes(all_rows, "hostlab", "multitenant", ["capa", "capc"], "present", True)
    assert plan.add == ["capc"]
    assert plan.default_wckey_add == ["capc"]  # capc has no WCKey at all on hostlab
    assert "capc" in plan.after and "capc" not in plan.before
    assert plan.changed


def test_plan_does_not_add_the_default_for_users_with_any_wckey(all_rows: list) -> None:
    # capb has only 'multitenant' on hostlab (no empty key), capd only the empty default.
    plan = sw.plan_changes(all_rows, "hostlab", "newkey", ["capb", "capd"], "present", True)
    assert plan.add == ["capb", "capd"]
    assert plan.default_wckey_add == []


def test_star_rows_are_not_associations() -> None:
    rows = sw.parse_wckey_listing("*|hostlab|jobsonly\n")
    plan = sw.plan_changes(rows, "hostlab", "multitenant", ["jobsonly"], "present", True)
    assert plan.default_wckey_add == ["jobsonly"]


def test_plan_without_ensure_default(all_rows: list) -> None:
    plan = sw.plan_changes(all_rows, "hostlab", "multitenant", ["capc"], "present", False)
    assert plan.add == ["capc"] and plan.default_wckey_add == []


def test_plan_is_a_no_op_when_everyone_is_there(all_rows: list) -> None:
    members = sorted(r.user for r in all_rows if r.cluster == "hostlab" and r.wckey == "multitenant")
    plan = sw.plan_changes(all_rows, "hostlab", "multitenant", members, "present", True)
    assert not plan.changed
    assert plan.before == plan.after == members


def test_plan_compares_mixed_case_input_after_normalization(all_rows: list) -> None:
    wckey = sw.normalize_wckey("MultiTenant")
    users = sw.normalize_users(["CAPA", "capb"])
    assert not sw.plan_changes(all_rows, "hostlab", wckey, users, "present", True).changed


def test_plan_absent_removes_only_members_of_that_cluster(all_rows: list) -> None:
    plan = sw.plan_changes(all_rows, "capture2", "multitenant", ["capb", "capa"], "absent", True)
    assert plan.remove == ["capb"]  # capa is not on capture2's multitenant
    assert plan.after == ["capc"]
    assert plan.default_wckey_add == []


def test_plan_on_an_empty_listing() -> None:
    plan = sw.plan_changes([], "hostlab", "multitenant", ["u1"], "present", True)
    assert plan.before == [] and plan.after == ["u1"]
    assert plan.default_wckey_add == ["u1"]


# ---------------------------------------------------------------- commands


def test_write_commands_order_and_syntax() -> None:
    plan = sw.Plan(before=[], after=["a", "b"], add=["a", "b"], default_wckey_add=["b"])
    commands = sw.write_commands("/usr/bin/sacctmgr", "hostlab", "multitenant", plan)
    assert commands == [
        ["/usr/bin/sacctmgr", "-i", "add", "user", "b", "wckey=", "cluster=hostlab"],
        ["/usr/bin/sacctmgr", "-i", "modify", "user", "where", "name=b", "cluster=hostlab", "set",
         "defaultwckey="],
        ["/usr/bin/sacctmgr", "-i", "add", "user", "a,b", "wckey=multitenant", "cluster=hostlab"],
    ]


def test_one_add_command_for_a_thousand_users() -> None:
    users = [f"user{i:04d}" for i in range(1000)]
    plan = sw.Plan(before=[], after=users, add=users)
    commands = sw.write_commands("sacctmgr", "hostlab", "k", plan)
    assert len(commands) == 1
    assert commands[0][4].split(",") == users


def test_chunks_respect_the_byte_limit_and_keep_every_name() -> None:
    names = [f"u{i:06d}" for i in range(30_000)]  # 8 bytes each with the comma
    chunks = sw.chunk_names(names, fixed_bytes=100)
    assert len(chunks) > 1
    assert [n for chunk in chunks for n in chunk] == names
    assert all(100 + sum(len(n) + 1 for n in chunk) <= sw.MAX_COMMAND_BYTES for chunk in chunks)


# ---------------------------------------------------------------- errors


def test_unreachable_slurmdbd_message_from_captured_stderr() -> None:
    message = sw.unreachable_message(sample("stderr_slurmdbd_down.txt"), "dbhost")
    assert message is not None
    assert message.startswith("sacctmgr could not reach slurmdbd: ")
    assert message.endswith("is slurmdbd running on localhost (port 6819)?")


def test_other_errors_are_not_reported_as_unreachable() -> None:
    assert sw.unreachable_message("sacctmgr: error: Unknown option: foo", "h") is None


def test_unknown_users_message_says_which_and_how() -> None:
    message = sw.unknown_users_message(["ghost", "spook"], "hostlab")
    assert "ghost, spook" in message
    assert "sacctmgr -i add user ghost,spook account=<account> cluster=hostlab" in message


def test_cluster_and_host_from_slurm_conf(tmp_path: Path) -> None:
    conf = tmp_path / "slurm.conf"
    conf.write_text("# c\nClusterName=Lab1 # comment\naccountingstoragehost=db1\n", encoding="utf-8")
    assert sw.cluster_from_slurm_conf(str(conf)) == ("Lab1", "db1")
    assert sw.cluster_from_slurm_conf(str(tmp_path / "missing.conf")) == (None, None)


# ---------------------------------------------------------------- live jobs (offboarding)


def test_parse_squeue_keeps_users_wckeys_and_states() -> None:
    jobs = sw.parse_squeue_jobs(sample("squeue_jobs.txt"))
    assert sw.ActiveJob("22424", "mtrecv2", "multitenant", "PENDING") in jobs  # --wckey=MultiTenant
    assert sw.ActiveJob("22425", "mtrecv2", "*", "RUNNING") in jobs  # default WCKey
    assert len(jobs) == 5


def test_jobs_holding_wckey_are_only_the_removed_users_jobs_under_it() -> None:
    jobs = sw.parse_squeue_jobs(sample("squeue_jobs.txt"))
    held = sw.jobs_holding_wckey(jobs, "multitenant", ["mtrecv2"])
    assert [job.job_id for job in held] == ["22423", "22424", "22426"]
    assert sw.jobs_holding_wckey(jobs, "multitenant", ["nobody"]) == []
    assert [job.user for job in sw.jobs_holding_wckey(jobs, "multitenant", ["mtout"])] == ["mtout"]


def test_parse_squeue_refuses_unexpected_lines() -> None:
    with pytest.raises(sw.WckeyModuleError, match="unexpected squeue output line 1"):
        sw.parse_squeue_jobs("22423 mtrecv2 multitenant RUNNING\n")


def test_jobs_sacct_has_not_seen_end_are_still_unrecorded() -> None:
    before = sw.unrecorded_jobs(sample("sacct_before_cancel.txt"), ["22423", "22424", "22426"])
    assert before == ["22423", "22424", "22426"]  # PENDING in sacct, and two not listed at all
    after = sw.unrecorded_jobs(sample("sacct_after_cancel.txt"), ["22423", "22424", "22426"])
    assert after == []


def test_active_jobs_message_names_jobs_and_both_fixes() -> None:
    jobs = sw.jobs_holding_wckey(sw.parse_squeue_jobs(sample("squeue_jobs.txt")), "multitenant", ["mtrecv2"])
    message = sw.active_jobs_message(jobs, "multitenant")
    assert "22423 (mtrecv2, RUNNING)" in message and "22426 (mtrecv2, PENDING)" in message
    assert "nothing was changed" in message and "active_jobs: cancel" in message


def test_sibling_tools_follow_an_absolute_sacctmgr() -> None:
    assert sw.sibling_tool("/opt/slurm/bin/sacctmgr", "squeue") == "/opt/slurm/bin/squeue"
    assert sw.sibling_tool("sacctmgr", "scancel") == "scancel"


def test_bad_active_jobs_value_is_refused_before_any_call() -> None:
    with pytest.raises(sw.WckeyModuleError, match="'active_jobs' is 'kill'"):
        sw.run_module({"wckey": "multitenant", "users": ["a"], "state": "absent", "active_jobs": "kill"},
                      False, "/nonexistent/sacctmgr")
